"""Metrics without downloaded weights: hand-made cases for each, the ground truth
of colorized MNIST, and a short training of the digit classifier."""
from __future__ import annotations

import math

import pytest
import torch

import colorbook.metrics.digits as digits_module
from colorbook.data.mnist import (
    ColorizedMNIST,
    mnist_ab,
    mnist_ab_from_angle,
    mnist_hue_interval,
)
from colorbook.metrics.digits import (
    ClassifierSettings,
    classifier_frechet_distance,
    load_digit_classifier,
    train_digit_classifier,
)
from colorbook.metrics.image import (
    HISTOGRAM_BINS,
    PSNR_CAP_DB,
    ab_histogram,
    ab_histogram_distance,
    colourfulness,
    image_metrics,
    psnr,
    ssim,
)
from colorbook.metrics.mnist import (
    MNISTMetrics,
    chroma_ratio,
    hue_accuracy,
    hue_accuracy_per_digit,
    hue_hits,
    mean_stroke_hue,
    mnist_metrics,
    stroke_mask,
)


def _mnist_like(digits, offsets, size=16, stroke=0.9):
    """Constant-colour Lab images (the data set's formula) with a bright square as the stroke."""
    ab = mnist_ab(digits, offsets).float()
    images = torch.zeros(len(digits), 3, size, size)
    images[:, 1:] = ab[:, :, None, None]
    images[:, 0, 4:12, 4:12] = stroke
    return images


def _rotate_by_pi(lab):
    rotated = lab.clone()
    rotated[:, 1:] = 1.0 - rotated[:, 1:]  # (a*, b*) - 0.5 -> -((a*, b*) - 0.5)
    return rotated


def _gray(lab):
    gray = lab.clone()
    gray[:, 1:] = 0.5
    return gray


@pytest.fixture(scope="module")
def mnist_test():
    dataset = ColorizedMNIST("test")
    images, digits = dataset.as_tensors()
    return dataset, images, digits


# ----------------------------------------------------------------------------
# hue accuracy and chroma ratio
# ----------------------------------------------------------------------------
def test_hue_accuracy_of_ground_truth_is_one_and_angles_round_trip(mnist_test):
    dataset, images, digits = mnist_test
    assert hue_accuracy(images, images, digits) == 1.0
    per_digit = hue_accuracy_per_digit(images, images, digits)
    assert per_digit == {d: 1.0 for d in range(10)}
    angle, valid = mean_stroke_hue(images, stroke_mask(images))
    assert bool(valid.all())
    difference = torch.remainder(angle - dataset.hue_angles + math.pi, 2 * math.pi) - math.pi
    assert float(difference.abs().max()) < 1e-6


def test_neutral_background_ground_truth_is_also_perfect():
    images, digits = ColorizedMNIST("test", limit=200, background="neutral").as_tensors()
    assert mnist_metrics(images, images, digits)["hue_accuracy"] == 1.0


def test_prediction_rotated_by_pi_scores_zero(mnist_test):
    _, images, digits = mnist_test
    rotated = _rotate_by_pi(images)
    assert hue_accuracy(rotated, images, digits) == 0.0
    result = mnist_metrics(rotated, images, digits)
    assert result["hue_error_deg"] == pytest.approx(180.0, abs=1e-6)
    assert result["chroma_ratio"] == pytest.approx(1.0, abs=1e-6)  # rotating keeps the chroma


def test_gray_prediction_has_no_hue_and_zero_chroma(mnist_test):
    _, images, digits = mnist_test
    gray = _gray(images)
    assert hue_accuracy(gray, images, digits) == 0.0  # no hue at all is never right
    assert chroma_ratio(gray, images) == 0.0
    assert chroma_ratio(images, images) == pytest.approx(1.0)
    half = images.clone()
    half[:, 1:] = 0.5 + 0.5 * (half[:, 1:] - 0.5)
    assert chroma_ratio(half, images) == pytest.approx(0.5, rel=1e-6)
    assert hue_accuracy(half, images, digits) == 1.0  # desaturating keeps the hue


def test_intervals_are_closed_and_wrap_around():
    # digit 0 spans -pi/10..pi/10 around v = 0, digit 9 spans 1.7pi..1.9pi
    digits = [0, 0, 9, 9, 3, 3]
    offsets = [-0.45, 0.49, 0.45, -0.49, 0.0, 0.0]
    truth = _mnist_like(digits, offsets)
    assert hue_hits(truth, truth, digits).tolist() == [True] * 6
    # predictions: digit 0 coloured at v = 2pi - 0.05 (inside after wrapping); digit 0 just
    # past its upper boundary; digit 9 coloured like digit 0; digit 9 just before 1.7pi;
    # digit 3 coloured like 3 with u = 0.3; digit 3 coloured like 4.
    pred_digits = [0, 0, 9, 9, 3, 3]
    pred_offsets = [10 - 0.05 * 10 / (2 * math.pi), 0.51, 1.0, -0.51, 0.3, 1.0]
    pred = _mnist_like(pred_digits, pred_offsets)
    assert hue_hits(pred, truth, digits).tolist() == [True, False, False, False, True, False]
    assert hue_accuracy_per_digit(pred, truth, digits) == {0: 0.5, 3: 0.5, 9: 0.0}


def test_hue_interval_matches_data_module():
    epsilon = 1e-4
    for digit in range(10):
        low, high = mnist_hue_interval(digit)
        inside = torch.tensor([low + epsilon, high - epsilon, (low + high) / 2], dtype=torch.float64)
        outside = torch.tensor([low - epsilon, high + epsilon, high + math.pi], dtype=torch.float64)
        truth = _mnist_like([digit] * 3, [0.0] * 3)
        for angles, expected in ((inside, True), (outside, False)):
            pred = truth.clone()
            pred[:, 1:] = mnist_ab_from_angle(angles).float()[:, :, None, None]
            assert hue_hits(pred, truth, [digit] * 3).tolist() == [expected] * 3, (digit, angles)


def test_mean_stroke_ab_averages_over_the_true_stroke_only():
    from colorbook.metrics.mnist import mean_stroke_ab
    truth = _mnist_like([2, 7], [0.0, 0.0])
    pred = truth.clone()
    pred[:, 1:] = 0.5
    pred[:, 1:, 4:8, 4:12] = 0.9  # half of the stroke at 0.9, the other half at 0.5
    pred[:, 1:, :2, :] = 0.0  # the background does not count
    assert torch.allclose(mean_stroke_ab(pred, truth), torch.full((2, 2), 0.7))
    assert torch.allclose(mean_stroke_ab(truth, truth), truth[:, 1:, 0, 0])


def test_stroke_threshold_comes_from_the_true_lightness():
    truth = _mnist_like([2], [0.0])
    pred = truth.clone()
    pred[:, 1:, 4:12, 4:12] = 1.0 - pred[:, 1:, 4:12, 4:12]  # wrong colour on the stroke only
    assert hue_accuracy(pred, truth, [2]) == 0.0
    background_only = truth.clone()
    background_only[:, 1:, :2, :2] = 0.5  # gray background corner: not a stroke pixel
    assert hue_accuracy(background_only, truth, [2]) == 1.0


def test_mnist_metrics_pool_batches_like_one_batch(mnist_test):
    _, images, digits = mnist_test
    pred = images.clone()
    pred[::3] = _rotate_by_pi(images[::3])
    whole = mnist_metrics(pred, images, digits)
    pooled = MNISTMetrics()
    for start in range(0, len(images), 300):
        pooled.update(pred[start : start + 300], images[start : start + 300], digits[start : start + 300])
    assert pooled.compute() == pytest.approx(whole)
    assert whole["hue_accuracy"] == pytest.approx(1 - 334 / 1000)
    assert all(isinstance(value, float) for value in whole.values())
    assert {f"hue_accuracy_digit_{d}" for d in range(10)} <= whole.keys()


def test_mnist_metrics_reject_bad_labels():
    truth = _mnist_like([1, 2], [0.0, 0.0])
    with pytest.raises(ValueError, match="one label per image"):
        mnist_metrics(truth, truth, [1])
    with pytest.raises(ValueError, match="0..9"):
        mnist_metrics(truth, truth, [1, 12])


# ----------------------------------------------------------------------------
# PSNR, SSIM, colourfulness, histograms
# ----------------------------------------------------------------------------
def test_psnr_identical_is_capped_and_known_mse_gives_known_value():
    true = torch.full((2, 3, 8, 8), 0.5)
    assert psnr(true, true).tolist() == pytest.approx([PSNR_CAP_DB] * 2)
    pred = true + 0.1  # MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
    assert psnr(pred, true).tolist() == pytest.approx([20.0, 20.0])
    pred = true.clone()
    pred[1] += 0.05  # MSE 0.0025 -> 26.0206 dB
    assert float(psnr(pred, true)[1]) == pytest.approx(10 * math.log10(1 / 0.0025))


def test_ssim_is_one_for_identical_and_matches_skimage():
    from skimage.metrics import structural_similarity

    generator = torch.Generator().manual_seed(0)
    base = torch.nn.functional.avg_pool2d(torch.rand(3, 3, 44, 38, generator=generator), 3, 1, 1)
    noisy = (base + 0.1 * torch.randn(3, 3, 44, 38, generator=generator)).clamp(0, 1)
    assert ssim(base, base).tolist() == pytest.approx([1.0] * 3, abs=1e-6)
    ours = ssim(noisy, base)
    for index in range(3):
        reference = structural_similarity(
            noisy[index].double().numpy(), base[index].double().numpy(), channel_axis=0, data_range=1.0,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        )
        assert float(ours[index]) == pytest.approx(reference, abs=1e-3)
    assert float(ours.max()) < 0.95  # the noise is visible
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


def test_colourfulness_of_gray_is_zero_and_two_colours_by_hand():
    gray = torch.rand(2, 1, 8, 8).expand(-1, 3, -1, -1)
    assert colourfulness(gray).tolist() == [0.0, 0.0]
    # half pure red (255, 0, 0), half pure blue (0, 0, 255):
    # rg = 255 / 0 -> mean 127.5, std 127.5; yb = 127.5 / -255 -> mean -63.75, std 191.25
    image = torch.zeros(1, 3, 4, 4)
    image[0, 0, :2] = 1.0
    image[0, 2, 2:] = 1.0
    expected = math.sqrt(127.5**2 + 191.25**2) + 0.3 * math.sqrt(127.5**2 + 63.75**2)
    assert float(colourfulness(image)[0]) == pytest.approx(expected)  # 272.62


def test_histogram_distance_zero_for_identical_one_for_disjoint(mnist_test):
    _, images, _ = mnist_test
    assert ab_histogram_distance(images, images) == 0.0
    assert ab_histogram_distance(images[::2], images[1::2]) < 0.5  # same distribution
    left = torch.zeros(1, 3, 4, 4)
    right = torch.ones(1, 3, 4, 4)
    assert ab_histogram_distance(left, right) == pytest.approx(1.0)
    counts = ab_histogram(images[:10])
    assert counts.shape == (HISTOGRAM_BINS**2,) and float(counts.sum()) == 10 * 32 * 32


def test_image_metrics_of_identical_images(mnist_test):
    _, images, _ = mnist_test
    result = image_metrics(images[:50], images[:50], space="lab")
    assert all(isinstance(value, float) for value in result.values())
    assert result["psnr_rgb"] == pytest.approx(PSNR_CAP_DB)
    assert result["psnr_ab"] == pytest.approx(PSNR_CAP_DB)
    assert result["ssim_rgb"] == pytest.approx(1.0, abs=1e-6)
    assert result["ssim_ab"] == pytest.approx(1.0, abs=1e-6)
    assert result["colourfulness_ratio"] == pytest.approx(1.0)
    assert result["ab_hist_hellinger"] == 0.0
    assert result["n_images"] == 50.0


def test_image_metrics_see_the_desaturated_failure(mnist_test):
    _, images, _ = mnist_test
    true = images[:50]
    washed = true.clone()
    washed[:, 1:] = 0.5 + 0.3 * (washed[:, 1:] - 0.5)
    result = image_metrics(washed, true, space="lab")
    assert result["colourfulness_ratio"] < 0.6
    assert result["ab_hist_hellinger"] > 0.9  # the washed colours sit in other bins
    assert result["psnr_ab"] < 20 and result["ssim_ab"] < 1.0
    rgb = image_metrics(torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16), space="rgb")
    assert 0 < rgb["psnr_rgb"] < 20


# ----------------------------------------------------------------------------
# digit classifier and its Fréchet distance (not FID)
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def short_classifier(mnist_test):
    _, images, digits = mnist_test
    images_train, digits_train = ColorizedMNIST("train").as_tensors()
    train = (images_train[::2], digits_train[::2])  # the split is sorted by digit: take every other
    settings = ClassifierSettings(steps=200)
    return train_digit_classifier(settings, train_data=train, test_data=(images, digits), progress=False)


def test_digit_classifier_learns_in_200_steps(short_classifier):
    _, report = short_classifier
    # 11 classes (chance < 0.1); measured 0.80 after 200 steps, 0.94 after the default 1,500
    assert report["test_accuracy"] > 0.5
    assert report["test_wrong_colour_detection"] > 0.3
    assert report["n_train"] == 2000 and report["settings"]["steps"] == 200


def test_classifier_frechet_distance_sees_colour_errors(short_classifier, mnist_test):
    classifier, _ = short_classifier
    _, images, _ = mnist_test
    recoloured, _ = ColorizedMNIST("test", seed=1).as_tensors()  # same digits, new hues from the right intervals
    same = classifier_frechet_distance(images, images, classifier)
    fair = classifier_frechet_distance(images, recoloured, classifier)
    rotated = classifier_frechet_distance(images, _rotate_by_pi(images), classifier)
    gray = classifier_frechet_distance(images, _gray(images), classifier)
    assert abs(same) < 1e-6
    assert 0 < fair < rotated < gray
    with pytest.raises(ValueError, match="32x32"):
        classifier_frechet_distance(images[:, :, :28, :28], images[:, :, :28, :28], classifier)


def test_load_digit_classifier_trains_once_then_uses_the_cache(tmp_path, monkeypatch, mnist_test):
    _, images, digits = mnist_test
    settings = ClassifierSettings(steps=3, batch_size=8)
    tiny = (images[:64], digits[:64])
    original = train_digit_classifier
    monkeypatch.setattr(digits_module, "train_digit_classifier",
                        lambda s, **kw: original(s, train_data=tiny, test_data=tiny, **kw))
    first, report = load_digit_classifier(settings, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("digit_classifier-*.pt"))) == 1

    def must_not_train(*args, **kwargs):
        raise AssertionError("trained again although the classifier is cached")

    monkeypatch.setattr(digits_module, "train_digit_classifier", must_not_train)
    second, cached_report = load_digit_classifier(settings, cache_dir=tmp_path)
    assert cached_report["test_accuracy"] == report["test_accuracy"]
    with torch.no_grad():
        torch.testing.assert_close(second(images[:8]), first(images[:8]))


def test_the_mean_colour_of_a_digit_is_the_squared_loss_optimum_and_is_grayer_than_the_true_colours_on_average():
    from colorbook.data.mnist import mnist_ab, mnist_mean_ab

    digits = torch.arange(10)
    mean = mnist_mean_ab(digits)
    offsets = torch.rand(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.5
    for digit in range(10):
        colours = mnist_ab(torch.full_like(offsets, digit), offsets)
        # the minimiser of the mean squared error over the interval is its mean
        assert torch.allclose(mean[digit], colours.mean(0), atol=2e-3)  # Monte Carlo: ~5e-4
        chroma = (mean[digit] - 0.5).norm()
        assert 0.97 < float(chroma / (colours - 0.5).norm(dim=1).mean()) < 0.99


@pytest.mark.parametrize("background", ["hue", "neutral"])
def test_reference_colorizations_know_every_digit_and_keep_neutral_pixels(background):
    from colorbook.data.mnist import ColorizedMNIST
    from colorbook.metrics.mnist import chroma_ratio, hue_accuracy, mnist_chroma, reference_colorizations

    data = ColorizedMNIST("test", limit=200, background=background)
    images, digits = data.as_tensors()
    references = reference_colorizations(images, digits)
    neutral = mnist_chroma(images) < 1e-3
    for name, coloured in references.items():
        assert coloured.shape == images.shape
        assert torch.equal(coloured[:, 0], images[:, 0]), "L is the input's"
        assert hue_accuracy(coloured, images, digits) == 1.0
        assert torch.equal(coloured[:, 1:].permute(0, 2, 3, 1)[neutral], images[:, 1:].permute(0, 2, 3, 1)[neutral])
    assert 0.97 < chroma_ratio(references["conditional mean"], images) < 0.99
    assert 0.97 < chroma_ratio(references["conditional sample"], images) < 1.03
    assert not torch.equal(references["conditional sample"], images), "a fresh offset per image, not the truth"
