"""Metrics for any colorized images: PSNR and SSIM in RGB and on the ``a*b*`` channels of normalised
Lab, colourfulness (Hasler and Süsstrunk 2003) of generated over real, and the Hellinger distance
between 2-D ``a*b*`` histograms. No downloaded weights; batches of tensors on any device; plain floats
(or per-image tensors for the building blocks).

Introduced in chapter 9 of the book (book/09-evaluation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from colorbook.color import convert

__all__ = [
    "PSNR_CAP_DB",
    "HISTOGRAM_BINS",
    "psnr",
    "ssim",
    "colourfulness",
    "ab_histogram",
    "hellinger_distance",
    "ab_histogram_distance",
    "ImageMetrics",
    "image_metrics",
]

#: PSNR of identical images is infinite; it is capped here (MSE floor 1e-10 on
#: a [0, 1] range) so that means over images and JSON files stay finite.
PSNR_CAP_DB = 100.0
#: Bins per axis of the 2-D ``a*b*`` histogram over ``[0, 1]^2``.
HISTOGRAM_BINS = 32


def _check_images(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor shaped (B, 3, H, W); got {type(x).__name__}."
        )
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(
            f"{name} must be shaped (B, 3, H, W) (or (3, H, W)); got {tuple(x.shape)}."
        )
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be float in [0, 1]; got dtype {x.dtype}. Use x.float() / 255."
        )
    return x


def _check_pair(pred: Tensor, true: Tensor) -> tuple[Tensor, Tensor]:
    pred, true = _check_images(pred, "pred"), _check_images(true, "true")
    if pred.shape != true.shape:
        raise ValueError(
            f"pred and true must have the same shape; got {tuple(pred.shape)} and {tuple(true.shape)}."
        )
    return pred, true.to(pred.device)


# =============================================================================
# all data: PSNR, SSIM, colourfulness, a*b* histograms
# =============================================================================
def psnr(
    pred: Tensor, true: Tensor, data_range: float = 1.0, cap_db: float = PSNR_CAP_DB
) -> Tensor:
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


def _gaussian_window(
    sigma: float, radius: int, channels: int, device: torch.device
) -> Tensor:
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    return (kernel[:, None] * kernel[None, :]).expand(channels, 1, -1, -1).contiguous()


def ssim(
    pred: Tensor, true: Tensor, data_range: float = 1.0, sigma: float = 1.5
) -> Tensor:
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
        raise ValueError(
            f"ssim needs images of at least {side}x{side} pixels; got {tuple(pred.shape[-2:])}."
        )
    x, y = pred.double(), true.double().to(pred.device)
    window = _gaussian_window(sigma, radius, x.shape[1], x.device)

    def blur(
        image: Tensor,
    ) -> Tensor:  # "valid" convolution: only windows inside the image
        return F.conv2d(image, window, groups=x.shape[1])

    mean_x, mean_y = blur(x), blur(y)
    var_x = blur(x * x) - mean_x**2
    var_y = blur(y * y) - mean_y**2
    cov_xy = blur(x * y) - mean_x * mean_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mean_x * mean_y + c1) * (2 * cov_xy + c2)) / (
        (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
    )
    return index.mean(dim=(1, 2, 3))


def colourfulness(rgb: Tensor) -> Tensor:
    """Hasler and Süsstrunk (2003) colourfulness per image, ``(B, 3, H, W)`` RGB in
    ``[0, 1]`` -> ``(B,)``.

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


def ab_histogram_distance(
    pred_lab: Tensor, true_lab: Tensor, bins: int = HISTOGRAM_BINS
) -> float:
    """Hellinger distance between the 2-D ``a*b*`` histograms of two sets of Lab images."""
    return hellinger_distance(
        ab_histogram(pred_lab, bins), ab_histogram(true_lab, bins)
    )


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
        pred_rgb, true_rgb = (
            convert(pred, self.space, "rgb"),
            convert(true, self.space, "rgb"),
        )
        pred_lab, true_lab = (
            convert(pred, self.space, "lab"),
            convert(true, self.space, "lab"),
        )
        self._add("psnr_rgb", psnr(pred_rgb, true_rgb))
        self._add("ssim_rgb", ssim(pred_rgb, true_rgb))
        self._add("psnr_ab", psnr(pred_lab[:, 1:3], true_lab[:, 1:3]))
        self._add("ssim_ab", ssim(pred_lab[:, 1:3], true_lab[:, 1:3]))
        self._add("colourfulness_pred", colourfulness(pred_rgb))
        self._add("colourfulness_true", colourfulness(true_rgb))
        hist_pred, hist_true = (
            ab_histogram(pred_lab, self.bins).cpu(),
            ab_histogram(true_lab, self.bins).cpu(),
        )
        self.hist_pred = (
            hist_pred if self.hist_pred is None else self.hist_pred + hist_pred
        )
        self.hist_true = (
            hist_true if self.hist_true is None else self.hist_true + hist_true
        )
        self.count += pred.shape[0]

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("ImageMetrics.compute() before any update().")
        result = {name: total / self.count for name, total in self.sums.items()}
        true_colour = result["colourfulness_true"]
        result["colourfulness_ratio"] = (
            result["colourfulness_pred"] / true_colour
            if true_colour > 0
            else float("nan")
        )
        result["ab_hist_hellinger"] = hellinger_distance(self.hist_pred, self.hist_true)
        result["n_images"] = float(self.count)
        return result


def image_metrics(pred: Tensor, true: Tensor, space: str = "rgb") -> dict[str, float]:
    """PSNR/SSIM (RGB and ``a*b*``), colourfulness and ``a*b*`` histogram distance of one batch.

    ``pred``, ``true``: ``(B, 3, H, W)`` in ``[0, 1]`` in ``space``. See
    :class:`ImageMetrics` for the keys; use that class to pool many batches.
    """
    metrics = ImageMetrics(space)
    metrics.update(pred, true)
    return metrics.compute()
