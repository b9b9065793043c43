"""Colorized-MNIST metrics: hue accuracy and chroma ratio (no downloaded weights).

Everything works on batches of tensors on any device and returns plain floats
(or per-image tensors for the building blocks).

Colorized MNIST (``"lab"`` images, see :class:`colorbook.data.ColorizedMNIST`):

* **hue accuracy** -- share of digits whose mean predicted hue over the stroke
  pixels falls inside the digit's hue interval ``[2pi(D-0.5)/10, 2pi(D+0.5)/10]``
  (modulo ``2pi``). The hue is the data set's angle
  ``v = atan2(a* - 0.5, b* - 0.5)`` (``sin v`` is ``a``, ``cos v`` is ``b``;
  :func:`colorbook.data.mnist.mnist_angle_from_ab`, where the whole colour
  code lives), *not* the Lab hue
  ``atan2(b, a)``. The mean is the circular mean of the per-pixel angles;
  pixels with (almost) no chroma have no hue and are left out; a digit with no
  coloured stroke pixel counts as a miss. Stroke pixels: true ``L > 0.5``.
* **chroma ratio** -- predicted over true mean chroma ``|(a*, b*) - (0.5, 0.5)|``
  over the stroke pixels: 1 for the truth, 0 for an all-gray prediction, well
  below 1 for the desaturated "brownish" output of MSE-only models.

Introduced in chapter 9 of the book (book/09-evaluation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from colorbook.data.mnist import (
    MNIST_AB_CENTRE,
    mnist_angle_from_ab,
    mnist_angle_from_digit,
    mnist_ab,
    mnist_mean_ab,
)
from colorbook.metrics.image import _check_images, _check_pair

__all__ = [
    "STROKE_THRESHOLD",
    "MIN_HUE_CHROMA",
    "NEAR_GRAY_CHROMA_RATIO",
    "mnist_angle",
    "mnist_chroma",
    "stroke_mask",
    "mean_stroke_ab",
    "mean_stroke_hue",
    "hue_hits",
    "hue_accuracy",
    "hue_accuracy_per_digit",
    "chroma_ratio",
    "MNISTMetrics",
    "recolour",
    "reference_colorizations",
    "mnist_metrics",
]

#: Stroke pixels of a colorized MNIST digit: normalised ``L`` above this.
STROKE_THRESHOLD = 0.5
#: A model whose chroma ratio is below this is "near gray": its hue accuracy and any comparison of its
#: colours mean nothing (the book's one cut-off, chapters 4, 5 and 10).
NEAR_GRAY_CHROMA_RATIO = 0.1
#: Pixels whose chroma ``|(a*, b*) - 0.5|`` (normalised units) is below this
#: have no meaningful hue and are left out of the circular mean. The data set's
#: colours have chroma 0.5 to 0.71; one 8-bit level is 1/255 = 0.0039.
MIN_HUE_CHROMA = 1e-3


def _digits_tensor(
    digits: Tensor | Sequence[int], batch: int, device: torch.device
) -> Tensor:
    digits = torch.as_tensor(digits, device=device).long().flatten()
    if digits.numel() != batch:
        raise ValueError(
            f"digits must hold one label per image ({batch}); got {digits.numel()}."
        )
    if digits.numel() and (int(digits.min()) < 0 or int(digits.max()) > 9):
        raise ValueError("digits must be integers 0..9 (colorized MNIST labels).")
    return digits


# =============================================================================
# colorized MNIST: hue and chroma
# =============================================================================
def mnist_angle(lab_norm: Tensor) -> Tensor:
    """The data set's hue angle ``v = atan2(a* - 0.5, b* - 0.5)`` per pixel.

    ``(B, 3, H, W)`` normalised Lab -> ``(B, H, W)`` radians in ``(-pi, pi]``
    (float64 for exact round trips): :func:`colorbook.data.mnist.mnist_angle_from_ab`
    of the a*, b* channels.
    """
    x = _check_images(lab_norm, "lab_norm").double()
    return mnist_angle_from_ab(x[:, 1], x[:, 2])


def mnist_chroma(lab_norm: Tensor) -> Tensor:
    """Chroma around the data set's centre, ``|(a*, b*) - (0.5, 0.5)|``: ``(B, 3, H, W)`` -> ``(B, H, W)``.

    Normalised units (the data set's colours lie between 0.5 and 0.71). The
    centre is 0.5/255 off OpenCV's neutral ``128/255``, which is negligible here.
    """
    x = _check_images(lab_norm, "lab_norm").double()
    return torch.hypot(x[:, 1] - MNIST_AB_CENTRE, x[:, 2] - MNIST_AB_CENTRE)


def stroke_mask(true_lab: Tensor, threshold: float = STROKE_THRESHOLD) -> Tensor:
    """Boolean ``(B, H, W)``: pixels of the digit, ``L > threshold`` in the *true* image."""
    return _check_images(true_lab, "true_lab")[:, 0] > threshold


def mean_stroke_ab(lab_norm: Tensor, true_lab: Tensor) -> Tensor:
    """``(B, 2)``: the mean normalised a*, b* of ``lab_norm`` ``(B, 3, H, W)`` over the stroke of the
    *true* images ``true_lab`` (:func:`stroke_mask`), values in ``[0, 1]``; where a colorizer puts each
    digit in the (a*, b*) square."""
    mask = stroke_mask(true_lab).unsqueeze(1).to(lab_norm.dtype)
    return (_check_images(lab_norm, "lab_norm")[:, 1:] * mask).sum((2, 3)) / mask.sum((2, 3))


def mean_stroke_hue(
    lab_norm: Tensor, mask: Tensor, min_chroma: float = MIN_HUE_CHROMA
) -> tuple[Tensor, Tensor]:
    """Circular mean of the per-pixel angle :func:`mnist_angle` over ``mask``.

    Returns ``(angle (B,) float64 in (-pi, pi], valid (B,) bool)``; ``valid``
    is False where no masked pixel has chroma >= ``min_chroma`` or the unit
    vectors cancel out (no defined mean hue).
    """
    angle = mnist_angle(lab_norm)
    weight = (mask & (mnist_chroma(lab_norm) >= min_chroma)).double()
    sin_sum = (torch.sin(angle) * weight).sum(dim=(1, 2))
    cos_sum = (torch.cos(angle) * weight).sum(dim=(1, 2))
    valid = torch.hypot(sin_sum, cos_sum) > 1e-9 * weight.sum(dim=(1, 2)).clamp(min=1)
    return torch.atan2(sin_sum, cos_sum), valid


def _wrap(angle: Tensor) -> Tensor:
    """Angle difference wrapped to ``[-pi, pi)``."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def hue_hits(
    pred_lab: Tensor,
    true_lab: Tensor,
    digits: Tensor | Sequence[int],
    threshold: float = STROKE_THRESHOLD,
    min_chroma: float = MIN_HUE_CHROMA,
) -> Tensor:
    """Boolean ``(B,)``: the mean predicted stroke hue lies in the digit's interval.

    ``pred_lab``, ``true_lab``: ``(B, 3, H, W)`` normalised Lab; ``digits``
    ``(B,)`` in 0..9. The interval ``[2pi(D-0.5)/10, 2pi(D+0.5)/10]`` is
    closed and compared modulo ``2pi``; the stroke comes from the true ``L``.
    """
    pred_lab, true_lab = _check_pair(pred_lab, true_lab)
    digits = _digits_tensor(digits, pred_lab.shape[0], pred_lab.device)
    angle, valid = mean_stroke_hue(
        pred_lab, stroke_mask(true_lab, threshold), min_chroma
    )
    # mnist_hue_interval(D) = (2pi(D-0.5)/10, 2pi(D+0.5)/10): centre 2pi D/10,
    # half-width pi/10.
    centre = mnist_angle_from_digit(digits)
    return valid & (_wrap(angle - centre).abs() <= math.pi / 10)


def hue_accuracy(
    pred_lab: Tensor, true_lab: Tensor, digits: Tensor | Sequence[int], **options: float
) -> float:
    """Share of digits whose predicted hue is inside their interval (see :func:`hue_hits`)."""
    return float(hue_hits(pred_lab, true_lab, digits, **options).double().mean())


def hue_accuracy_per_digit(
    pred_lab: Tensor, true_lab: Tensor, digits: Tensor | Sequence[int], **options: float
) -> dict[int, float]:
    """``{digit: hue accuracy}`` for the digits present in the batch."""
    hits = hue_hits(pred_lab, true_lab, digits, **options)
    digits = _digits_tensor(digits, hits.shape[0], hits.device)
    return {
        int(d): float(hits[digits == d].double().mean())
        for d in torch.unique(digits).tolist()
    }


def chroma_ratio(
    pred_lab: Tensor, true_lab: Tensor, threshold: float = STROKE_THRESHOLD
) -> float:
    """Predicted over true mean chroma (:func:`mnist_chroma`) over the stroke pixels.

    1 for the truth, 0 for a gray prediction ``a* = b* = 0.5``; NaN when the
    true stroke has no chroma at all.
    """
    pred_lab, true_lab = _check_pair(pred_lab, true_lab)
    mask = stroke_mask(true_lab, threshold)
    true_sum = mnist_chroma(true_lab)[mask].sum()
    if float(true_sum) == 0.0:
        return float("nan")
    return float(mnist_chroma(pred_lab)[mask].sum() / true_sum)


class MNISTMetrics:
    """Accumulates the colorized-MNIST metrics over batches.

    ``update(pred_lab, true_lab, digits)``; ``compute()`` returns plain floats:
    ``hue_accuracy``, ``hue_accuracy_digit_0`` .. ``_9`` (digits seen),
    ``hue_error_deg`` (mean absolute circular difference between the predicted
    and the true mean stroke hue; invalid predictions count as 180 degrees),
    ``chroma_ratio`` and ``n_images``.
    """

    def __init__(
        self, threshold: float = STROKE_THRESHOLD, min_chroma: float = MIN_HUE_CHROMA
    ) -> None:
        self.threshold = threshold
        self.min_chroma = min_chroma
        self.hits = torch.zeros(10, dtype=torch.float64)
        self.totals = torch.zeros(10, dtype=torch.float64)
        self.hue_error_sum = 0.0
        self.chroma_pred = 0.0
        self.chroma_true = 0.0

    @torch.no_grad()
    def update(
        self, pred_lab: Tensor, true_lab: Tensor, digits: Tensor | Sequence[int]
    ) -> None:
        pred_lab, true_lab = _check_pair(pred_lab, true_lab)
        digits = _digits_tensor(digits, pred_lab.shape[0], pred_lab.device)
        hits = hue_hits(pred_lab, true_lab, digits, self.threshold, self.min_chroma)
        self.hits += torch.bincount(digits[hits], minlength=10).double().cpu()
        self.totals += torch.bincount(digits, minlength=10).double().cpu()
        mask = stroke_mask(true_lab, self.threshold)
        pred_angle, pred_valid = mean_stroke_hue(pred_lab, mask, self.min_chroma)
        true_angle, _ = mean_stroke_hue(true_lab, mask, self.min_chroma)
        error = torch.where(
            pred_valid,
            _wrap(pred_angle - true_angle).abs(),
            torch.full_like(pred_angle, math.pi),
        )
        self.hue_error_sum += float(error.sum())
        self.chroma_pred += float(mnist_chroma(pred_lab)[mask].sum())
        self.chroma_true += float(mnist_chroma(true_lab)[mask].sum())

    def compute(self) -> dict[str, float]:
        total = float(self.totals.sum())
        if total == 0:
            raise ValueError("MNISTMetrics.compute() before any update().")
        result = {"hue_accuracy": float(self.hits.sum()) / total}
        for digit in range(10):
            if self.totals[digit] > 0:
                result[f"hue_accuracy_digit_{digit}"] = float(
                    self.hits[digit] / self.totals[digit]
                )
        result["hue_error_deg"] = math.degrees(self.hue_error_sum / total)
        result["chroma_ratio"] = (
            self.chroma_pred / self.chroma_true
            if self.chroma_true > 0
            else float("nan")
        )
        result["n_images"] = total
        return result


def mnist_metrics(
    pred_lab: Tensor,
    true_lab: Tensor,
    digits: Tensor | Sequence[int],
    threshold: float = STROKE_THRESHOLD,
) -> dict[str, float]:
    """Hue accuracy (overall and per digit), hue error and chroma ratio of one batch.

    ``(B, 3, H, W)`` normalised Lab and ``digits (B,)``; see :class:`MNISTMetrics`.
    """
    metrics = MNISTMetrics(threshold)
    metrics.update(pred_lab, true_lab, digits)
    return metrics.compute()


# =============================================================================
# reference colorizations: what an ideal model of each kind would paint
# =============================================================================
def recolour(images_lab: Tensor, ab: Tensor) -> Tensor:
    """``images_lab`` ``(N, 3, H, W)`` colorized MNIST with each image's colour replaced by
    ``ab`` ``(N, 2)``; neutral pixels (chroma below :data:`MIN_HUE_CHROMA`, the black
    background of ``background="neutral"``) stay neutral. Returns a new tensor."""
    images_lab = _check_images(images_lab, "images_lab")
    if ab.shape != (images_lab.shape[0], 2):
        raise ValueError(f"ab must be (N, 2) with N = {images_lab.shape[0]}; got {tuple(ab.shape)}")
    coloured = (mnist_chroma(images_lab) >= MIN_HUE_CHROMA).unsqueeze(1)
    new_ab = ab.to(images_lab)[:, :, None, None].expand_as(images_lab[:, 1:])
    return torch.cat([images_lab[:, :1], torch.where(coloured, new_ab, images_lab[:, 1:])], dim=1)


def reference_colorizations(images_lab: Tensor, digits: Tensor, seed: int = 0) -> dict[str, Tensor]:
    """Two ideal colorizers of colorized MNIST that know every digit, for the metrics' floors.

    - ``"conditional mean"``: the digit's mean colour (:func:`colorbook.data.mnist.mnist_mean_ab`),
      what a perfect reconstruction-only model (squared loss) predicts;
    - ``"conditional sample"``: a fresh offset ``u`` per image, a sample of the true colour
      distribution, what a perfect GAN could paint.

    ``images_lab`` ``(N, 3, H, W)`` normalised Lab, ``digits`` ``(N,)``. Returns name -> images
    ``(N, 3, H, W)``; a model's distance to these says how much of its gap is colour averaging
    (which a critic can remove) and how much is the digit it did not recognise (which it cannot).
    """
    digits = _digits_tensor(digits, images_lab.shape[0], images_lab.device)
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.rand(len(digits), generator=generator, dtype=torch.float64) - 0.5
    return {
        "conditional mean": recolour(images_lab, mnist_mean_ab(digits.cpu())),
        "conditional sample": recolour(images_lab, mnist_ab(digits.cpu(), offsets)),
    }
