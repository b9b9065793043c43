"""colorbook.color against OpenCV (cv2.cvtColor, float32) and scikit-image.

Measured with opencv-python-headless 5.0, scikit-image 0.26 (max absolute errors):

* rgb_to_lab vs cv2.COLOR_RGB2LAB: L 0.19, a 0.51, b 0.36 on random pixels, and
  L 0.19 / a 0.42 / b 0.31 on astronaut, coffee, chelsea (mean 0.05 to 0.09). OpenCV's float path goes
  through a 33^3 trilinear lookup table (16-bit entries), so it is itself ~0.5 off
  the formula; at the table's nodes the difference is 0.008.
* rgb_to_lab vs skimage.color (the exact formula) with OpenCV's white point:
  a, b 1e-13, L 7e-5 (OpenCV's dark-segment slope is the rounded 903.3).
* lab_to_rgb vs cv2.COLOR_LAB2RGB (not tabulated, spline gamma): 7.9e-5.
* cv2.COLOR_LAB2RGB(rgb_to_lab(x)) vs x: 8.6e-5.
* rgb -> lab -> rgb with our functions: 1.5e-5 (OpenCV's two 6-digit matrices are not
  exact inverses of each other).
* rgb_to_gray vs cv2.COLOR_RGB2GRAY: 1.2e-7.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import skimage.color
import skimage.data
import torch

from colorbook import color

OPENCV_WHITE = np.array([0.950456, 1.0, 1.088754])
SKIMAGE_D65 = np.array([0.95047, 1.0, 1.08883])


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) numpy -> (1, 3, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)


def to_numpy(batch: torch.Tensor) -> np.ndarray:
    return batch[0].permute(1, 2, 0).detach().cpu().numpy()


def max_error_per_channel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b).reshape(-1, a.shape[-1]).max(axis=0)


@pytest.fixture(scope="module")
def random_rgb() -> np.ndarray:
    return np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)


@pytest.fixture(scope="module", params=["astronaut", "coffee", "chelsea"])
def photo(request) -> np.ndarray:
    # every second pixel: still the real photo's colours, a quarter of the time
    return np.ascontiguousarray(getattr(skimage.data, request.param)()[::2, ::2]).astype(np.float32) / 255.0


# -- forward: RGB -> Lab --------------------------------------------------------
def test_rgb_to_lab_matches_opencv_random(random_rgb):
    reference = cv2.cvtColor(random_rgb, cv2.COLOR_RGB2LAB)
    ours = to_numpy(color.rgb_to_lab(to_tensor(random_rgb)))
    error = max_error_per_channel(ours, reference)
    # OpenCV interpolates a lookup table: measured L 0.19, a 0.51, b 0.36.
    assert error[0] < 0.25 and error[1] < 0.6 and error[2] < 0.45, error


def test_rgb_to_lab_matches_opencv_photos(photo):
    reference = cv2.cvtColor(photo, cv2.COLOR_RGB2LAB)
    ours = to_numpy(color.rgb_to_lab(to_tensor(photo)))
    error = max_error_per_channel(ours, reference)
    # measured at most L 0.19, a 0.42, b 0.31 over the three photos
    assert error[0] < 0.25 and error[1] < 0.5 and error[2] < 0.4, error
    mean_error = np.abs(ours - reference).mean()
    assert mean_error < 0.1, mean_error  # measured 0.049 (astronaut) to 0.088 (chelsea)


def test_rgb_to_lab_matches_opencv_on_its_table_nodes():
    # OpenCV's RGB->Lab table has 33 nodes per axis; there its interpolation is exact
    # up to the 16-bit storage of the table.
    axis = np.linspace(0, 1, 33, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 33, 3)
    reference = cv2.cvtColor(grid, cv2.COLOR_RGB2LAB)
    error = max_error_per_channel(to_numpy(color.rgb_to_lab(to_tensor(grid))), reference)
    assert error.max() < 0.01, error  # measured 0.008


def test_rgb_to_lab_equals_exact_formula_from_skimage(photo):
    # skimage implements the same CIE formulas in float64; give it OpenCV's white point.
    xyz = skimage.color.rgb2xyz(photo.astype(np.float64))
    reference = skimage.color.xyz2lab(xyz / OPENCV_WHITE * SKIMAGE_D65)
    ours = to_numpy(color.rgb_to_lab(to_tensor(photo).double()))
    error = max_error_per_channel(ours, reference)
    assert error[0] < 2e-4 and error[1] < 1e-9 and error[2] < 1e-9, error


def test_rgb_to_lab_inverts_opencv_lab2rgb(random_rgb, photo):
    for image in (random_rgb, photo):
        lab = to_numpy(color.rgb_to_lab(to_tensor(image)))
        back = cv2.cvtColor(np.ascontiguousarray(lab), cv2.COLOR_LAB2RGB)
        assert np.abs(back - image).max() < 2e-4  # measured 8.6e-5


# -- inverse: Lab -> RGB --------------------------------------------------------
def test_lab_to_rgb_matches_opencv(random_rgb, photo):
    for image in (random_rgb, photo):
        lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
        reference = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
        ours = to_numpy(color.lab_to_rgb(to_tensor(lab)))
        assert np.abs(ours - reference).max() < 1e-4  # measured 7.9e-5


def test_lab_to_rgb_out_of_gamut_clamped_like_opencv():
    rng = np.random.default_rng(1)
    lab = np.stack(
        [rng.uniform(0, 100, (32, 32)), rng.uniform(-127, 127, (32, 32)), rng.uniform(-127, 127, (32, 32))], -1
    ).astype(np.float32)
    reference = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    ours = color.lab_to_rgb(to_tensor(lab))
    assert ours.min() >= 0 and ours.max() <= 1
    assert np.abs(to_numpy(ours) - reference).max() < 1e-4
    unclamped = color.lab_to_rgb(to_tensor(lab), clamp=False)
    assert unclamped.min() < -0.05 and unclamped.max() > 1.05  # random Lab leaves the gamut
    assert torch.isfinite(unclamped).all()


def test_round_trip_rgb_lab_rgb(random_rgb, photo):
    for image in (random_rgb, photo[::2, ::2]):
        x = to_tensor(np.ascontiguousarray(image)).double()
        back = color.lab_to_rgb(color.rgb_to_lab(x))
        assert (back - x).abs().max() < 5e-5  # measured 1.5e-5
        back_norm = color.lab_norm_to_rgb(color.rgb_to_lab_norm(x))
        assert (back_norm - x).abs().max() < 5e-5


def test_known_colours():
    corners = torch.tensor([[0.0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]).T.reshape(3, 5, 1)
    lab = color.rgb_to_lab(corners)[:, :, 0].T
    assert torch.allclose(lab[0], torch.zeros(3), atol=1e-4)  # black
    assert torch.allclose(lab[1], torch.tensor([100.0, 0, 0]), atol=1e-2)  # D65 white
    assert torch.allclose(lab[2], torch.tensor([53.24, 80.09, 67.20]), atol=0.05)  # sRGB red


# -- normalisation -----------------------------------------------------------------
def test_normalisation_is_opencv_8bit_over_255():
    lab = torch.tensor([50.0, -20.0, 30.0]).view(3, 1, 1)
    norm = color.normalize_lab(lab).flatten()
    assert torch.allclose(norm, torch.tensor([0.5, 108 / 255, 158 / 255]))
    assert torch.allclose(color.denormalize_lab(color.normalize_lab(lab)), lab)
    # agrees with OpenCV's 8-bit conversion divided by 255 (up to 8-bit rounding)
    image = (np.random.default_rng(2).random((16, 16, 3)) * 255).astype(np.uint8)
    eight_bit = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32) / 255.0
    ours = to_numpy(color.rgb_to_lab_norm(to_tensor(image.astype(np.float32) / 255.0)))
    assert np.abs(ours - eight_bit).max() <= 1.5 / 255


def test_normalised_lab_of_the_rgb_cube_is_in_unit_range():
    axis = torch.linspace(0, 1, 17)
    cube = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij")).reshape(1, 3, 17 * 17, 17)
    norm = color.rgb_to_lab_norm(cube)
    assert norm.min() >= 0 and norm.max() <= 1
    assert norm[:, 0].max() > 0.999 and norm[:, 1].min() < 0.2 and norm[:, 1].max() > 0.8


# -- gray ------------------------------------------------------------------------------
def test_gray_matches_opencv(random_rgb, photo):
    for image in (random_rgb, photo):
        reference = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        ours = color.rgb_to_gray(to_tensor(image))
        assert ours.shape == (1, 1, *image.shape[:2])
        assert np.abs(ours[0, 0].numpy() - reference).max() < 1e-5  # measured 1.2e-7


def test_convert_and_gray_of():
    rgb = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    assert color.convert(rgb, "rgb", "rgb") is rgb
    lab = color.convert(rgb, "rgb", "lab")
    assert torch.allclose(lab, color.rgb_to_lab_norm(rgb))
    assert torch.allclose(color.convert(lab, "lab", "rgb"), rgb, atol=5e-5)
    assert torch.equal(color.gray_of(lab, "lab"), lab[:, :1])
    assert torch.allclose(color.gray_of(rgb, "rgb"), color.rgb_to_gray(rgb))
    assert color.gray_of(rgb[0], "rgb").shape == (1, 8, 8)


def test_single_image_keeps_its_rank():
    image = torch.rand(3, 5, 7)
    assert color.rgb_to_lab(image).shape == (3, 5, 7)
    assert color.lab_norm_to_rgb(color.rgb_to_lab_norm(image)).shape == (3, 5, 7)
    assert color.rgb_to_gray(image).shape == (1, 5, 7)
    assert color.chroma(color.rgb_to_lab_norm(image)).shape == (1, 5, 7)


def test_chroma_and_hue():
    lab = torch.tensor([[60.0, 3.0, 4.0], [60.0, 0.0, 0.0], [60.0, -10.0, 0.0]]).T.reshape(1, 3, 3, 1)
    norm = color.normalize_lab(lab)
    assert torch.allclose(color.chroma(norm).flatten(), torch.tensor([5.0, 0.0, 10.0]), atol=1e-4)
    assert torch.allclose(color.hue(norm).flatten(), torch.tensor([math.atan2(4, 3), 0.0, math.pi]), atol=1e-4)


# -- dtypes and devices ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_are_kept(dtype):
    rgb = torch.rand(1, 3, 4, 4)
    lab = color.rgb_to_lab(rgb.to(dtype))
    assert lab.dtype == dtype
    tolerance = {torch.float16: 0.1, torch.bfloat16: 0.5, torch.float64: 1e-4}[dtype]
    assert (lab.double() - color.rgb_to_lab(rgb).double()).abs().max() < tolerance
    assert color.lab_to_rgb(lab).dtype == dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    rgb = torch.rand(2, 3, 16, 16)
    on_gpu = color.rgb_to_lab(rgb.cuda())
    assert on_gpu.is_cuda
    assert (on_gpu.cpu() - color.rgb_to_lab(rgb)).abs().max() < 1e-3
    assert (color.lab_to_rgb(on_gpu).cpu() - color.lab_to_rgb(color.rgb_to_lab(rgb))).abs().max() < 1e-5


# -- gradients --------------------------------------------------------------------------
def test_gradcheck_rgb_to_lab():
    # interior points on both sides of the gamma and Lab thresholds (kinks excluded)
    x = torch.rand(1, 3, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
    x[0, :, 0, 0] = torch.tensor([0.01, 0.002, 0.03], dtype=torch.float64)  # dark: linear segments
    assert torch.autograd.gradcheck(color.rgb_to_lab_norm, (x.requires_grad_(),))


def test_gradcheck_lab_to_rgb_and_chroma_hue():
    lab = color.rgb_to_lab_norm(torch.rand(1, 3, 3, 3, dtype=torch.float64) * 0.9 + 0.05)
    assert torch.autograd.gradcheck(lambda v: color.lab_norm_to_rgb(v, clamp=False), (lab.requires_grad_(),))
    assert torch.autograd.gradcheck(color.chroma, (lab,))
    assert torch.autograd.gradcheck(color.hue, (lab,))


def test_gradients_finite_at_black_white_and_gray():
    rgb = torch.tensor([[0.0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [0, 0, 1]]).T.reshape(1, 3, 4, 1)
    rgb.requires_grad_(True)
    lab = color.rgb_to_lab_norm(rgb)
    (lab.sum() + color.chroma(lab).sum() + color.hue(lab).sum()).backward()
    assert torch.isfinite(rgb.grad).all()
    assert rgb.grad[0, :, 0].abs().sum() > 0  # pure black still gets a gradient
    lab_in = torch.tensor([0.0, 128 / 255, 128 / 255]).view(1, 3, 1, 1).repeat(1, 1, 2, 1)
    lab_in[0, 0, 1] = 1.0
    lab_in.requires_grad_(True)
    (color.lab_norm_to_rgb(lab_in).sum() + color.chroma(lab_in).sum() + color.hue(lab_in).sum()).backward()
    assert torch.isfinite(lab_in.grad).all()


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [torch.rand(2, 4, 8, 8), torch.rand(8, 8), torch.rand(1, 1, 3, 8, 8), torch.rand(8, 8, 3)],
    ids=["four-channels", "2d", "5d", "channels-last"],
)
def test_bad_shapes_raise_value_error(bad):
    for function in (color.rgb_to_lab, color.lab_to_rgb, color.rgb_to_gray, color.normalize_lab, color.chroma):
        with pytest.raises(ValueError, match="channels|shaped"):
            function(bad)


def test_bad_types_and_spaces():
    with pytest.raises(ValueError, match="floating-point"):
        color.rgb_to_lab(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        color.rgb_to_lab(np.zeros((1, 3, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="Unknown colour space 'hsv'"):
        color.convert(torch.rand(1, 3, 2, 2), "rgb", "hsv")
    with pytest.raises(ValueError, match="Unknown colour space"):
        color.gray_of(torch.rand(1, 3, 2, 2), "xyz")
    with pytest.raises(ValueError, match="channels"):
        color.convert(torch.rand(1, 1, 2, 2), "lab", "lab")
