"""Differentiable colour-space conversions in torch (RGB <-> CIELAB, luma).

All functions take float tensors shaped ``(B, 3, H, W)`` or ``(3, H, W)`` (one
image) on any device and return the same rank. They follow OpenCV's
``cv2.cvtColor`` float32 definitions so that data prepared with OpenCV (as the
DTU report did) and data prepared here agree:

* sRGB gamma: ``c / 12.92`` below 0.04045, ``((c + 0.055) / 1.055) ** 2.4`` above;
* the sRGB -> XYZ matrix of OpenCV (``sRGB2XYZ_D65``) and the D65 white point
  ``(0.950456, 1, 1.088754)``;
* ``f(t) = t ** (1/3)`` above ``0.008856`` and ``7.787 t + 16/116`` below, with
  ``L = 116 f(Y) - 16`` (or ``903.3 Y`` in the dark segment),
  ``a = 500 (f(X) - f(Y))``, ``b = 200 (f(Y) - f(Z))``.

How close to OpenCV (measured in ``tests/test_color.py``, opencv 5.0):

* ``lab_to_rgb`` vs ``cv2.COLOR_LAB2RGB``: max difference below ``1e-4``
  (OpenCV evaluates the gamma with a 1024-entry spline table).
* ``rgb_to_lab`` vs ``cv2.COLOR_RGB2LAB``: up to about 0.2 in ``L`` and 0.5 in
  ``a, b``, because OpenCV computes float RGB -> Lab through a 33x33x33
  trilinear lookup table with 16-bit entries (``enableRGB2LabInterpolation``),
  an approximation of the very formulas above. At the table's nodes the two
  agree to 0.01. Our ``rgb_to_lab`` is the exact formula: it inverts OpenCV's
  (untabulated) ``COLOR_LAB2RGB`` to 1e-4 in RGB and equals
  ``skimage.color.rgb2lab`` given OpenCV's white point to 1e-9 in ``a, b``
  (1e-4 in ``L``: OpenCV uses the rounded slope 903.3 in the dark segment).

Units: ``rgb`` in ``[0, 1]``; real Lab has ``L`` in ``[0, 100]`` and ``a, b``
roughly in ``[-127, 127]``. The *normalised* Lab used by the data sets and the
DTU models (``"lab"`` in :func:`convert`) is OpenCV's 8-bit convention divided
by 255: ``L / 100``, ``(a + 128) / 255``, ``(b + 128) / 255`` -- all in
``[0, 1]`` for colours inside the sRGB gamut.

Gradients are safe everywhere: every ``pow`` / cube root is evaluated on an
input clamped to its own branch (the other branch is the linear segment), so
``torch.where`` never multiplies an infinite derivative by zero. Half and
bfloat16 inputs are computed in float32 and cast back (the cube roots and the
2.4 power lose too much precision in 16-bit floats).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "COLOR_SPACES",
    "rgb_to_lab",
    "lab_to_rgb",
    "normalize_lab",
    "denormalize_lab",
    "rgb_to_lab_norm",
    "lab_norm_to_rgb",
    "rgb_to_gray",
    "convert",
    "gray_of",
    "chroma",
    "hue",
]

#: Names accepted by :func:`convert` and :func:`gray_of`.
COLOR_SPACES = ("rgb", "lab")

# OpenCV's constants (modules/imgproc/src/color_lab.cpp).
_RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_XYZ_TO_RGB = (
    (3.240479, -1.53715, -0.498535),
    (-0.969256, 1.875991, 0.041556),
    (0.055648, -0.204043, 1.057311),
)
_WHITE_D65 = (0.950456, 1.0, 1.088754)

_GAMMA_THRESHOLD = 0.04045  # sRGB-encoded value where the power segment starts
_LINEAR_THRESHOLD = 0.0031308  # the same point in linear light
_LAB_T_THRESHOLD = 0.008856  # (6/29)^3
_LAB_SLOPE = 7.787  # (29/3)^3 / 116
_LAB_OFFSET = 16.0 / 116.0
_LAB_L_SLOPE = 903.3  # (29/3)^3
_LAB_F_THRESHOLD = 6.0 / 29.0  # f(t) at the threshold, used by the inverse
_LAB_L_THRESHOLD = 8.0  # L at the threshold, used by the inverse (as in OpenCV)

# 8-bit OpenCV convention: a, b are stored with an offset of 128, and all
# channels are then divided by 255 (the DTU normalisation).
_AB_OFFSET = 128.0
_AB_SCALE = 255.0
_L_SCALE = 100.0

# ITU-R BT.601 luma, as in cv2.COLOR_RGB2GRAY.
_LUMA = (0.299, 0.587, 0.114)


# ----------------------------------------------------------------------------
# input checking
# ----------------------------------------------------------------------------
def _as_batch(x: Tensor, name: str, channels: int = 3) -> tuple[Tensor, bool]:
    """Return ``x`` as ``(B, C, H, W)`` and whether it was a single image."""
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor shaped (B, {channels}, H, W) or "
            f"({channels}, H, W); got {type(x).__name__}."
        )
    if not (x.is_floating_point()):
        raise ValueError(
            f"{name} must be a floating-point tensor with values in [0, 1]; got dtype "
            f"{x.dtype}. Convert 8-bit images with x.float() / 255 first."
        )
    if x.dim() == 3:
        single = True
        x = x.unsqueeze(0)
    elif x.dim() == 4:
        single = False
    else:
        raise ValueError(
            f"{name} must be shaped (B, {channels}, H, W) or ({channels}, H, W); "
            f"got shape {tuple(x.shape)}."
        )
    if x.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channels in dimension 1 (channels first, "
            f"(B, {channels}, H, W) or ({channels}, H, W)); got shape {tuple(x.shape)}. "
            "Channels-last arrays need x.permute(2, 0, 1) (or (0, 3, 1, 2) for a batch)."
        )
    return x, single


def _restore(x: Tensor, single: bool) -> Tensor:
    return x.squeeze(0) if single else x


def _compute_dtype(x: Tensor) -> torch.dtype:
    """Work in float32 for 16-bit floats, keep float32 / float64 as they are."""
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _mix(x: Tensor, matrix: tuple[tuple[float, ...], ...]) -> Tensor:
    """Apply a 3x3 colour matrix to the channel dimension of ``(B, 3, H, W)``."""
    m = torch.tensor(matrix, dtype=x.dtype, device=x.device)
    return torch.einsum("ij,bjhw->bihw", m, x)


def _clip01(x: Tensor) -> Tensor:
    """Clip to ``[0, 1]`` keeping the gradient 1 at exactly 0 and 1.

    ``Tensor.clamp`` has a zero gradient at its bounds, which would silence
    pure black / white pixels; outside the range the gradient is 0 as it should.
    """
    return torch.where((x >= 0.0) & (x <= 1.0), x, x.clamp(0.0, 1.0))


def _check_space(space: str, what: str) -> str:
    if not isinstance(space, str) or space.lower() not in COLOR_SPACES:
        raise ValueError(f"Unknown colour space {space!r} for {what}; expected one of {COLOR_SPACES}.")
    return space.lower()


# ----------------------------------------------------------------------------
# sRGB gamma and the Lab companding function, gradient-safe
# ----------------------------------------------------------------------------
def _srgb_to_linear(c: Tensor) -> Tensor:
    power = ((c.clamp(min=_GAMMA_THRESHOLD) + 0.055) / 1.055) ** 2.4
    return torch.where(c > _GAMMA_THRESHOLD, power, c / 12.92)


def _linear_to_srgb(c: Tensor) -> Tensor:
    power = 1.055 * c.clamp(min=_LINEAR_THRESHOLD) ** (1.0 / 2.4) - 0.055
    return torch.where(c > _LINEAR_THRESHOLD, power, c * 12.92)


def _lab_f(t: Tensor) -> Tensor:
    cube_root = t.clamp(min=_LAB_T_THRESHOLD) ** (1.0 / 3.0)
    return torch.where(t > _LAB_T_THRESHOLD, cube_root, _LAB_SLOPE * t + _LAB_OFFSET)


def _lab_f_inverse(f: Tensor) -> Tensor:
    # The cube has no singular derivative, but keep each branch on its own side
    # anyway so that huge out-of-range inputs cannot overflow the unused branch.
    cube = f.clamp(min=_LAB_F_THRESHOLD) ** 3
    linear = (f.clamp(max=_LAB_F_THRESHOLD) - _LAB_OFFSET) / _LAB_SLOPE
    return torch.where(f > _LAB_F_THRESHOLD, cube, linear)


# ----------------------------------------------------------------------------
# public conversions
# ----------------------------------------------------------------------------
def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB ``(B, 3, H, W)`` in ``[0, 1]`` -> CIELAB in real units.

    Returns ``L`` in ``[0, 100]`` and ``a, b`` roughly in ``[-127, 127]``
    (same shape as the input). Inputs are clipped to ``[0, 1]`` first, as
    ``cv2.cvtColor(..., cv2.COLOR_RGB2LAB)`` does for float images (the
    gradient is zero where an input lies outside ``[0, 1]``).
    """
    x, single = _as_batch(rgb, "rgb")
    dtype = x.dtype
    x = _clip01(x.to(_compute_dtype(x)))
    xyz = _mix(_srgb_to_linear(x), _RGB_TO_XYZ)
    white = torch.tensor(_WHITE_D65, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    xyz = xyz / white
    f = _lab_f(xyz)
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    y = xyz[:, 1:2]
    lightness = torch.where(y > _LAB_T_THRESHOLD, 116.0 * fy - 16.0, _LAB_L_SLOPE * y)
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    lab = torch.cat([lightness, a, b], dim=1).to(dtype)
    return _restore(lab, single)


def lab_to_rgb(lab: Tensor, clamp: bool = True) -> Tensor:
    """CIELAB in real units ``(B, 3, H, W)`` -> sRGB.

    ``L`` in ``[0, 100]``, ``a, b`` in about ``[-127, 127]``. With
    ``clamp=True`` (OpenCV's behaviour) the linear RGB is clipped to ``[0, 1]``
    before the gamma, so the output is in ``[0, 1]``; with ``clamp=False``
    out-of-gamut colours give values outside ``[0, 1]`` (negative values go
    through the linear segment of the sRGB curve), which is useful to measure
    how far a prediction left the gamut.
    """
    x, single = _as_batch(lab, "lab")
    dtype = x.dtype
    x = x.to(_compute_dtype(x))
    lightness, a, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    # OpenCV: dark segment when L <= 8, where Y = L / 903.3.
    fy_cube = (lightness.clamp(min=_LAB_L_THRESHOLD) + 16.0) / 116.0
    y_dark = lightness / _LAB_L_SLOPE
    y = torch.where(lightness > _LAB_L_THRESHOLD, fy_cube**3, y_dark)
    fy = torch.where(lightness > _LAB_L_THRESHOLD, fy_cube, _LAB_SLOPE * y_dark + _LAB_OFFSET)
    fx = fy + a / 500.0
    fz = fy - b / 200.0
    white = torch.tensor(_WHITE_D65, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    xyz = torch.cat([_lab_f_inverse(fx), y, _lab_f_inverse(fz)], dim=1) * white
    linear = _mix(xyz, _XYZ_TO_RGB)
    if clamp:
        linear = _clip01(linear)
    rgb = _linear_to_srgb(linear)
    if clamp:
        rgb = _clip01(rgb)  # guards against rounding just above 1
    return _restore(rgb.to(dtype), single)


def normalize_lab(lab: Tensor) -> Tensor:
    """Real Lab -> normalised Lab (DTU): ``L/100, (a+128)/255, (b+128)/255``.

    Shapes ``(B, 3, H, W)`` or ``(3, H, W)``; the result lies in ``[0, 1]`` for
    in-gamut colours (``a, b`` of sRGB colours stay inside ``[-128, 127]``).
    """
    x, single = _as_batch(lab, "lab")
    out = torch.cat(
        [x[:, 0:1] / _L_SCALE, (x[:, 1:3] + _AB_OFFSET) / _AB_SCALE],
        dim=1,
    )
    return _restore(out, single)


def denormalize_lab(lab_norm: Tensor) -> Tensor:
    """Normalised Lab in ``[0, 1]`` -> real Lab (inverse of :func:`normalize_lab`)."""
    x, single = _as_batch(lab_norm, "lab_norm")
    out = torch.cat(
        [x[:, 0:1] * _L_SCALE, x[:, 1:3] * _AB_SCALE - _AB_OFFSET],
        dim=1,
    )
    return _restore(out, single)


def rgb_to_lab_norm(rgb: Tensor) -> Tensor:
    """sRGB in ``[0, 1]`` -> normalised Lab in ``[0, 1]`` (``"rgb"`` -> ``"lab"``)."""
    return normalize_lab(rgb_to_lab(rgb))


def lab_norm_to_rgb(lab_norm: Tensor, clamp: bool = True) -> Tensor:
    """Normalised Lab -> sRGB (``"lab"`` -> ``"rgb"``); see :func:`lab_to_rgb` for ``clamp``."""
    return lab_to_rgb(denormalize_lab(lab_norm), clamp=clamp)


def rgb_to_gray(rgb: Tensor) -> Tensor:
    """Luma ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, ``cv2.COLOR_RGB2GRAY``).

    ``(B, 3, H, W)`` -> ``(B, 1, H, W)`` (or ``(3, H, W)`` -> ``(1, H, W)``), in
    ``[0, 1]`` for inputs in ``[0, 1]``. Works on gamma-encoded values, as
    OpenCV does; it is not the Lab ``L`` channel.
    """
    x, single = _as_batch(rgb, "rgb")
    weights = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    gray = (x * weights).sum(dim=1, keepdim=True)
    return _restore(gray, single)


def convert(x: Tensor, src: str, dst: str) -> Tensor:
    """Convert an image batch between the named colour spaces ``"rgb"`` and ``"lab"``.

    ``"lab"`` is the *normalised* Lab of the data sets (see module docstring).
    Shapes ``(B, 3, H, W)`` or ``(3, H, W)``, values in ``[0, 1]``. Returns ``x``
    itself when ``src == dst`` (after checking the shape). Converting to
    ``"rgb"`` clamps to ``[0, 1]``.
    """
    src = _check_space(src, "convert(src=...)")
    dst = _check_space(dst, "convert(dst=...)")
    _as_batch(x, "x")
    if src == dst:
        return x
    if src == "rgb":
        return rgb_to_lab_norm(x)
    return lab_norm_to_rgb(x)


def gray_of(x: Tensor, space: str) -> Tensor:
    """Gray input for a model working in ``space``: ``(B, 3, H, W)`` -> ``(B, 1, H, W)``.

    For ``"lab"`` it is the normalised ``L`` channel (``L / 100``); for ``"rgb"``
    the BT.601 luma :func:`rgb_to_gray`. Both in ``[0, 1]``.
    """
    space = _check_space(space, "gray_of(space=...)")
    batch, single = _as_batch(x, "x")
    if space == "lab":
        return _restore(batch[:, 0:1], single)
    return rgb_to_gray(x)


def _safe_norm_and_angle(lab_norm: Tensor) -> tuple[Tensor, Tensor, bool]:
    x, single = _as_batch(lab_norm, "lab_norm")
    a = x[:, 1:2] * _AB_SCALE - _AB_OFFSET
    b = x[:, 2:3] * _AB_SCALE - _AB_OFFSET
    squared = a * a + b * b
    nonzero = squared > 0
    # Double-where: at a = b = 0 feed harmless values so the (unused) sqrt and
    # atan2 derivatives are finite; the result there is exactly 0.
    safe_squared = torch.where(nonzero, squared, torch.ones_like(squared))
    safe_a = torch.where(nonzero, a, torch.ones_like(a))
    radius = torch.where(nonzero, safe_squared.sqrt(), torch.zeros_like(squared))
    angle = torch.where(nonzero, torch.atan2(b, safe_a), torch.zeros_like(squared))
    return radius, angle, single


def chroma(lab_norm: Tensor) -> Tensor:
    """Chroma ``sqrt(a^2 + b^2)`` in real Lab units of a normalised Lab batch.

    ``(B, 3, H, W)`` -> ``(B, 1, H, W)`` (``(3, H, W)`` -> ``(1, H, W)``), values
    in about ``[0, 181]`` (0 = gray). Differentiable with a zero gradient at
    ``a = b = 0``.
    """
    radius, _, single = _safe_norm_and_angle(lab_norm)
    return _restore(radius, single)


def hue(lab_norm: Tensor) -> Tensor:
    """Hue angle ``atan2(b, a)`` in radians, in ``(-pi, pi]``, of a normalised Lab batch.

    ``(B, 3, H, W)`` -> ``(B, 1, H, W)``. Gray pixels (``a = b = 0``) get 0
    with a zero gradient; the hue of near-gray pixels is meaningless, so weight
    it by :func:`chroma` when averaging.
    """
    _, angle, single = _safe_norm_and_angle(lab_norm)
    return _restore(angle, single)
