"""FID: the Fréchet distance itself, weights lookup, caching, and the feature
pipeline end to end with a randomly initialised stand-in for the FID Inception
(the real weights cannot be downloaded here)."""
from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pytest
import torch

from colorbook.metrics.fid import (
    CACHE_ENV_VAR,
    FID_WEIGHTS_FILE,
    FID_WEIGHTS_URL,
    FRECHET_METHODS,
    WEIGHTS_ENV_VAR,
    FIDWeightsMissing,
    build_fid_inception,
    cache_root,
    cached_real_statistics,
    compute_fid,
    find_inception_weights,
    frechet_distance,
    inception_features,
    load_inception,
    statistics,
)


# ----------------------------------------------------------------------------
# the Fréchet distance
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("method", sorted(FRECHET_METHODS))
def test_identical_statistics_give_zero(method):
    rng = np.random.default_rng(0)
    mu, sigma = statistics(rng.normal(size=(50, 8)))
    assert frechet_distance(mu, sigma, mu, sigma, method=method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", sorted(FRECHET_METHODS))
@pytest.mark.parametrize("m1, s1, m2, s2", [(1.0, 4.0, 3.0, 9.0), (0.0, 1.0, 0.0, 2.0), (-2.5, 0.3, 1.5, 0.3)])
def test_one_dimensional_gaussians_closed_form(method, m1, s1, m2, s2):
    expected = (m1 - m2) ** 2 + s1 + s2 - 2 * math.sqrt(s1 * s2)
    got = frechet_distance(np.array([m1]), np.array([[s1]]), np.array([m2]), np.array([[s2]]), method=method)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # scalars are accepted as D = 1 too
    assert frechet_distance(m1, s1, m2, s2, method=method) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("method", sorted(FRECHET_METHODS))
def test_diagonal_covariances_sum_per_dimension(method):
    mu1, mu2 = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 1.0, 0.0, 0.0])
    var1, var2 = np.array([1.0, 2.0, 0.5, 3.0]), np.array([4.0, 2.0, 0.1, 1.0])
    expected = float(np.sum((mu1 - mu2) ** 2 + var1 + var2 - 2 * np.sqrt(var1 * var2)))
    got = frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2), method=method)
    assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("samples", [200, 20])  # full-rank and singular (20 samples, 64 dims) covariances
def test_eigh_method_agrees_with_pytorch_fid(samples):
    rng = np.random.default_rng(1)
    mu1, s1 = statistics(rng.normal(size=(samples, 64)))
    mu2, s2 = statistics(rng.normal(size=(samples, 64)) * 1.3 + 0.2)
    reference = frechet_distance(mu1, s1, mu2, s2, method="pytorch-fid")
    assert reference > 1.0
    assert frechet_distance(mu1, s1, mu2, s2, method="eigh") == pytest.approx(reference, rel=1e-6)


def test_pytorch_fid_method_gives_pytorch_fids_own_number():
    """Where the installed SciPy still takes `disp`, pytorch-fid's function itself is the reference."""
    import warnings

    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(2)
    mu1, s1 = statistics(rng.normal(size=(300, 16)))
    mu2, s2 = statistics(rng.normal(size=(300, 16)) * 0.7 + 0.3)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            reference = calculate_frechet_distance(mu1, s1, mu2, s2)
    except TypeError as error:  # a SciPy that rejects disp: nothing to compare with
        pytest.skip(f"pytorch-fid does not run on this SciPy ({error})")
    assert frechet_distance(mu1, s1, mu2, s2, method="pytorch-fid") == pytest.approx(reference, rel=1e-12)


def test_frechet_distance_never_passes_disp_to_sqrtm(monkeypatch):
    """SciPy > 1.17 has no `sqrtm(disp=...)`: every Frechet distance must still work (pytorch-fid 0.3.0's
    own function, which passes disp=False, would raise TypeError here)."""
    import scipy.linalg

    real_sqrtm = scipy.linalg.sqrtm
    calls = []

    def sqrtm_without_disp(matrix, **kwargs):
        if "disp" in kwargs:
            raise TypeError("sqrtm() got an unexpected keyword argument 'disp'")
        calls.append(matrix.shape)
        return real_sqrtm(matrix, **kwargs)

    monkeypatch.setattr(scipy.linalg, "sqrtm", sqrtm_without_disp)
    rng = np.random.default_rng(3)
    mu1, s1 = statistics(rng.normal(size=(100, 6)))
    mu2, s2 = statistics(rng.normal(size=(100, 6)) + 0.5)
    values = {method: frechet_distance(mu1, s1, mu2, s2, method=method) for method in FRECHET_METHODS}
    assert calls, "the pytorch-fid method no longer goes through scipy's sqrtm"
    assert values["pytorch-fid"] == pytest.approx(values["eigh"], rel=1e-9) and values["eigh"] > 1.0
    # the closed forms, one-dimensional and diagonal, through every method
    for method in FRECHET_METHODS:
        assert frechet_distance(1.0, 4.0, 3.0, 9.0, method=method) == pytest.approx(4 + 4 + 9 - 12, rel=1e-9)
        assert frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.ones(2), np.diag([4.0, 1.0]),
                                method=method) == pytest.approx(2 + 2 * (1 + 4 - 4), rel=1e-9)
    # the label says whose code computed it: not pytorch-fid's function itself
    assert "re-implemented in colorbook" in FRECHET_METHODS["pytorch-fid"]

    # the digit classifier's distance (not FID) goes through the same function, with its default method
    from colorbook.metrics.digits import DigitClassifier, classifier_frechet_distance

    torch.manual_seed(0)
    classifier = DigitClassifier().eval()
    real = torch.rand(40, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    fake = torch.rand(40, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 0.5
    calls.clear()
    distance = classifier_frechet_distance(real, fake, classifier)
    assert calls and math.isfinite(distance) and distance > 0


def test_frechet_distance_rejects_bad_input():
    with pytest.raises(ValueError, match="one D"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="method"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="magic")
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.array([np.nan, 0]), np.eye(2), np.zeros(2), np.eye(2))


def test_statistics_are_mean_and_sample_covariance():
    features = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    mu, sigma = statistics(torch.from_numpy(features))
    np.testing.assert_allclose(mu, [2.0, 2.0])
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False))
    with pytest.raises(ValueError, match="N >= 2"):
        statistics(np.zeros((1, 4)))


# ----------------------------------------------------------------------------
# weights lookup: never download, fail at once with a how-to
# ----------------------------------------------------------------------------
@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """A torch hub folder without weights, and no weights environment variable."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.delenv(WEIGHTS_ENV_VAR, raising=False)
    return tmp_path / "hub" / "checkpoints" / FID_WEIGHTS_FILE


def test_missing_weights_message_says_how_to_get_them(empty_hub):
    with pytest.raises(FIDWeightsMissing) as caught:
        find_inception_weights()
    message = str(caught.value)
    assert FID_WEIGHTS_URL in message
    assert str(empty_hub) in message
    assert WEIGHTS_ENV_VAR in message
    assert "weights=" in message


def test_weights_found_in_hub_env_and_argument(empty_hub, tmp_path, monkeypatch):
    empty_hub.parent.mkdir(parents=True)
    empty_hub.write_bytes(b"x")
    assert find_inception_weights() == empty_hub
    elsewhere = tmp_path / "mine.pth"
    elsewhere.write_bytes(b"y")
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(elsewhere))
    assert find_inception_weights() == elsewhere
    assert find_inception_weights(empty_hub) == empty_hub
    with pytest.raises(FIDWeightsMissing, match="weights= argument"):
        find_inception_weights(tmp_path / "nope.pth")


def test_compute_fid_fails_before_touching_any_image(empty_hub):
    def exploding():
        raise AssertionError("compute_fid read images before checking the weights")
        yield  # pragma: no cover

    with pytest.raises(FIDWeightsMissing):
        compute_fid(exploding(), exploding())


def test_load_inception_rejects_a_file_that_is_not_the_fid_network(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a state dict of pytorch-fid's FID Inception"):
        load_inception(path, "cpu")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="Could not read"):
        load_inception(garbage, "cpu")


# ----------------------------------------------------------------------------
# cache of real statistics
# ----------------------------------------------------------------------------
def test_cached_real_statistics_computes_once_per_key(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.random.default_rng(len(calls)).normal(size=(10, 3))

    mu, sigma = cached_real_statistics("mnist test n=10", compute, tmp_path)
    again_mu, again_sigma = cached_real_statistics("mnist test n=10", compute, tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(mu, again_mu)
    np.testing.assert_array_equal(sigma, again_sigma)
    cached_real_statistics("mnist test n=20", compute, tmp_path)
    assert len(calls) == 2
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_cache_root_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv(CACHE_ENV_VAR)
    assert cache_root().parts[-2:] == (".cache", "colorbook")


# ----------------------------------------------------------------------------
# the feature pipeline with a random stand-in network
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stand_in_weights(tmp_path_factory):
    """A randomly initialised FID-Inception state dict on disk (He-initialised
    convolutions, so that the 2048 features neither vanish nor explode)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = build_fid_inception()
        for module in network.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("fid") / "stand_in_inception.pth"
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def stand_in_model(stand_in_weights):
    return load_inception(stand_in_weights, "cpu")


def test_loaded_network_matches_pytorch_fid_inceptionv3(stand_in_weights, stand_in_model):
    import pytorch_fid.inception as reference_module

    # pytorch-fid's own InceptionV3, with its download replaced by our local file
    with mock.patch.object(
        reference_module, "load_state_dict_from_url",
        lambda *args, **kwargs: torch.load(stand_in_weights, weights_only=True),
    ):
        reference = reference_module.InceptionV3([3]).eval()
    images = torch.rand(2, 3, 40, 28, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference(images)[0].flatten(1)
        got = stand_in_model(images)
    assert got.shape == (2, 2048)
    torch.testing.assert_close(got, expected)


def test_inception_features_accepts_tensors_and_loader_like_iterables(stand_in_model):
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    from_tensor = inception_features(images, stand_in_model, batch_size=2, progress=False)
    # single images and (images, labels) pairs, re-batched to batch_size
    items = [images[0], (images[1:], torch.tensor([1]))]
    from_iterable = inception_features(iter(items), stand_in_model, batch_size=2, progress=False)
    assert from_tensor.shape == (2, 2048) and from_tensor.dtype == np.float32
    assert np.isfinite(from_tensor).all() and from_tensor.std() > 0
    np.testing.assert_allclose(from_iterable, from_tensor, rtol=1e-4, atol=1e-5)
    assert inception_features(images, stand_in_model, progress=False, limit=1).shape == (1, 2048)


def test_inception_features_rejects_wrong_range_and_shape(stand_in_model):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        inception_features(torch.rand(2, 3, 32, 32) * 2 - 1, stand_in_model, progress=False)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        inception_features(torch.rand(2, 1, 32, 32), stand_in_model, progress=False)


def test_compute_fid_end_to_end_with_stand_in_weights(stand_in_weights, stand_in_model, tmp_path):
    generator = torch.Generator().manual_seed(5)
    real = torch.rand(6, 3, 32, 32, generator=generator)
    fake = torch.rand(6, 3, 32, 32, generator=generator) * 0.5
    # The 2048-d distance uses the eigh method here: scipy's sqrtm on 2048-d takes
    # 10-100 s on two shared cores (the two methods agree, see above).
    # 1) identical sets, loading the network from the weights file; caches the real statistics
    with pytest.warns(UserWarning, match="fewer than n=10000"):
        same = compute_fid(real, real.clone(), weights=stand_in_weights, device="cpu", real_key="unit-test",
                               cache_dir=tmp_path, progress=False, method="eigh")
    assert same["n_real"] == 6 and same["n_fake"] == 6
    assert same["implementation"].startswith("pytorch-fid ") and "pool3" in same["implementation"]
    assert same["resize"] == "bilinear to 299x299 via F.interpolate, align_corners=False"
    assert same["feature_dim"] == 2048
    assert same["weights_are_official"] is False  # the stand-in is not the real file
    assert same["real_statistics_cache"] is not None

    # 2) different sets; the real statistics come from the cache (the real images are never read)
    def exploding():
        raise AssertionError("real images were read although their statistics are cached")
        yield  # pragma: no cover

    with pytest.warns(UserWarning, match="fewer than n=10000"):
        different = compute_fid(exploding(), fake, weights=stand_in_weights, real_key="unit-test",
                                    cache_dir=tmp_path, progress=False, method="eigh", model=stand_in_model)
    assert different["real_statistics_cache"] == same["real_statistics_cache"]
    assert different["n_real"] == 6
    assert math.isfinite(different["fid"]) and different["fid"] > 0
    assert abs(same["fid"]) < 1e-6 * different["fid"]  # identical sets: zero up to round-off


class _FirstFeatures(torch.nn.Module):
    """Keeps the first few pool3 features: scipy's sqrtm on all 2048 takes minutes on two shared cores."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def forward(self, features):
        return features[:, : self.count]


def test_compute_fid_default_method_runs_where_sqrtm_rejects_disp(stand_in_weights, stand_in_model, monkeypatch):
    import scipy.linalg

    real_sqrtm = scipy.linalg.sqrtm

    def sqrtm_without_disp(matrix, **kwargs):
        if "disp" in kwargs:
            raise TypeError("sqrtm() got an unexpected keyword argument 'disp'")
        return real_sqrtm(matrix, **kwargs)

    monkeypatch.setattr(scipy.linalg, "sqrtm", sqrtm_without_disp)
    generator = torch.Generator().manual_seed(6)
    real = torch.rand(24, 3, 32, 32, generator=generator)
    fake = torch.rand(24, 3, 32, 32, generator=generator) * 0.5
    model = torch.nn.Sequential(stand_in_model, _FirstFeatures(8))  # the stand-in network, 8 of its features
    result = compute_fid(real, fake, weights=stand_in_weights, n=None, progress=False, model=model)
    assert result["feature_dim"] == 8 and math.isfinite(result["fid"]) and result["fid"] > 0
    assert result["frechet"] == FRECHET_METHODS["pytorch-fid"] and "re-implemented" in result["frechet"]
    eigh = compute_fid(real, fake, weights=stand_in_weights, n=None, progress=False, model=model, method="eigh")
    assert result["fid"] == pytest.approx(eigh["fid"], rel=1e-6)


def test_a_corrupt_statistics_cache_is_named(tmp_path):
    compute = lambda: np.random.default_rng(0).normal(size=(10, 3))  # noqa: E731
    cached_real_statistics("corrupt me", compute, tmp_path)
    [cache_file] = tmp_path.glob("*.npz")
    cache_file.write_bytes(b"PK\x03\x04 not a zip any more")
    with pytest.raises(ValueError, match="delete it") as caught:
        cached_real_statistics("corrupt me", compute, tmp_path)
    assert str(cache_file) in str(caught.value)
