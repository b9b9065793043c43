"""Fréchet Inception Distance (FID) exactly as the DTU report computed it.

The DTU report measured FID with pytorch-fid (Seitzer) between 10,000 real and
10,000 generated images. This module reproduces that pipeline:

* the network is pytorch-fid's *FID Inception* (TensorFlow's 2015 InceptionV3
  ported to PyTorch, with pytorch-fid's patched ``FIDInceptionA/C/E`` blocks);
  the features are its 2048-d ``pool3`` activations;
* the input is RGB ``(B, 3, H, W)`` in ``[0, 1]``, resized bilinearly to
  299x299 with ``F.interpolate(..., align_corners=False)`` and scaled to
  ``[-1, 1]`` -- what ``pytorch_fid.inception.InceptionV3`` does;
* the distance is :func:`pytorch_fid.fid_score.calculate_frechet_distance`'s
  algorithm (scipy ``sqrtm``), on float64 means and covariances (``np.cov``),
  re-implemented in :func:`frechet_distance` because pytorch-fid 0.3.0 passes
  ``sqrtm``'s ``disp`` argument, which newer SciPy rejects.

The Inception weights can **not** be downloaded on machines without network
access, and this module never tries: :func:`find_inception_weights` looks for
the file pytorch-fid itself caches (``<torch hub dir>/checkpoints/`` +
:data:`FID_WEIGHTS_FILE`), or a path given as ``weights=`` or in the environment
variable ``COLORBOOK_FID_WEIGHTS``, and raises :class:`FIDWeightsMissing` with
instructions before any other work when none is there.

Real-image statistics are cached on disk (``npz``) keyed by the data set, the
image count, the resize, the implementation and a fingerprint of the weights
file, in ``$COLORBOOK_CACHE/fid`` (default ``~/.cache/colorbook/fid``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F

# the module, not `sqrtm` by name: looked up at each call, like pytorch-fid does
from scipy import linalg
from torch import Tensor, nn
from tqdm.auto import tqdm

from colorbook.color import convert

__all__ = [
    "FID_WEIGHTS_URL",
    "FID_WEIGHTS_FILE",
    "FID_WEIGHTS_SHA256_PREFIX",
    "WEIGHTS_ENV_VAR",
    "CACHE_ENV_VAR",
    "DEFAULT_N",
    "RESIZE",
    "FIDWeightsMissing",
    "FIDInceptionPool3",
    "cache_root",
    "implementation_name",
    "find_inception_weights",
    "weights_fingerprint",
    "build_fid_inception",
    "load_inception",
    "inception_features",
    "statistics",
    "FRECHET_METHODS",
    "frechet_distance",
    "cached_real_statistics",
    "compute_fid",
]

#: Where pytorch-fid downloads its weights from (for the how-to message only:
#: this module never downloads anything).
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
#: File name under ``torch.hub.get_dir()/checkpoints`` (pytorch-fid's cache).
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
#: torch.hub names files ``<name>-<first 8 hex of sha256>.pth``; a file whose
#: sha256 starts with this is the genuine FID Inception.
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
WEIGHTS_ENV_VAR = "COLORBOOK_FID_WEIGHTS"
CACHE_ENV_VAR = "COLORBOOK_CACHE"
#: The DTU report: 10,000 real against 10,000 generated images.
DEFAULT_N = 10_000
INCEPTION_SIZE = 299
FEATURE_DIM = 2048
RESIZE = "bilinear to 299x299 via F.interpolate, align_corners=False"

ImageSource = Union[Tensor, Iterable]


class FIDWeightsMissing(RuntimeError):
    """The FID Inception weights file is not on this machine (and will not be downloaded)."""


# ----------------------------------------------------------------------------
# paths and names
# ----------------------------------------------------------------------------
def cache_root() -> Path:
    """The colorbook cache folder: ``$COLORBOOK_CACHE``, else ``~/.cache/colorbook``."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "colorbook"


def _pytorch_fid_version() -> str:
    try:
        from pytorch_fid import __version__
    except ImportError:  # pragma: no cover - pytorch-fid is a dependency
        return "unknown"
    return __version__


def implementation_name() -> str:
    """The string stored as ``"implementation"`` in every FID result."""
    return f"pytorch-fid {_pytorch_fid_version()} InceptionV3 pool3 (FID weights)"


def _hub_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE


def _how_to_get_weights() -> str:
    hub_path = _hub_weights_path()
    return (
        "The FID Inception weights are needed and are never downloaded by colorbook.\n"
        "Get them on a machine with internet access:\n"
        f"    {FID_WEIGHTS_URL}\n"
        "(e.g. `wget <URL>`, or run `python -m pytorch_fid` once there), then either\n"
        f"  * put the file at {hub_path} (pytorch-fid's own cache), or\n"
        f"  * set the environment variable {WEIGHTS_ENV_VAR}=/path/to/{FID_WEIGHTS_FILE}, or\n"
        "  * pass weights='/path/to/file.pth' to the FID function."
    )


def find_inception_weights(path: str | os.PathLike | None = None) -> Path:
    """Locate the FID Inception weights without downloading anything.

    Order: ``path`` if given, else ``$COLORBOOK_FID_WEIGHTS``, else pytorch-fid's
    cache ``<torch hub dir>/checkpoints/pt_inception-2015-12-05-6726825d.pth``.
    Raises :class:`FIDWeightsMissing` (with the URL, where to put the file and
    the environment variable) when the chosen file does not exist.
    """
    if path is not None:
        candidate, origin = Path(path).expanduser(), "the weights= argument"
    elif os.environ.get(WEIGHTS_ENV_VAR):
        candidate, origin = (
            Path(os.environ[WEIGHTS_ENV_VAR]).expanduser(),
            f"${WEIGHTS_ENV_VAR}",
        )
    else:
        candidate, origin = _hub_weights_path(), "pytorch-fid's cache"
    if not candidate.is_file():
        raise FIDWeightsMissing(
            f"No FID Inception weights at {candidate} (from {origin}).\n"
            + _how_to_get_weights()
        )
    return candidate


_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def weights_fingerprint(weights_path: str | os.PathLike) -> str:
    """sha256 (hex) of the weights file, memoised per (path, size, mtime).

    It goes into cache keys (so statistics from a stand-in network never pass
    for real ones) and into results (``weights_are_official``).
    """
    path = Path(weights_path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _FINGERPRINTS[key] = digest.hexdigest()
    return _FINGERPRINTS[key]


# ----------------------------------------------------------------------------
# the network
# ----------------------------------------------------------------------------
def build_fid_inception() -> nn.Module:
    """pytorch-fid's FID Inception *architecture* with untrained weights.

    The same construction as ``pytorch_fid.inception.fid_inception_v3`` (a
    torchvision InceptionV3 with 1008 classes, no aux head, and pytorch-fid's
    ``FIDInceptionA/C/E_1/E_2`` blocks), minus its ``load_state_dict_from_url``
    call, which would download.
    """
    from pytorch_fid.inception import (
        FIDInceptionA,
        FIDInceptionC,
        FIDInceptionE_1,
        FIDInceptionE_2,
        _inception_v3,
    )

    inception = _inception_v3(num_classes=1008, aux_logits=False, weights=None)
    inception.Mixed_5b = FIDInceptionA(192, pool_features=32)
    inception.Mixed_5c = FIDInceptionA(256, pool_features=64)
    inception.Mixed_5d = FIDInceptionA(288, pool_features=64)
    inception.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    inception.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    inception.Mixed_7b = FIDInceptionE_1(1280)
    inception.Mixed_7c = FIDInceptionE_2(2048)
    return inception


class FIDInceptionPool3(nn.Module):
    """``(B, 3, H, W)`` RGB in ``[0, 1]`` -> ``(B, 2048)`` pool3 features.

    The forward pass of ``pytorch_fid.inception.InceptionV3`` with its default
    settings (``output_blocks=[3]``, ``resize_input=True``,
    ``normalize_input=True``): bilinear resize to 299x299 (``align_corners=False``),
    scale to ``[-1, 1]``, the four blocks, global average pooling.
    """

    def __init__(self, inception: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            inception.Conv2d_1a_3x3,
            inception.Conv2d_2a_3x3,
            inception.Conv2d_2b_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            inception.Conv2d_3b_1x1,
            inception.Conv2d_4a_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            inception.Mixed_5b,
            inception.Mixed_5c,
            inception.Mixed_5d,
            inception.Mixed_6a,
            inception.Mixed_6b,
            inception.Mixed_6c,
            inception.Mixed_6d,
            inception.Mixed_6e,
            inception.Mixed_7a,
            inception.Mixed_7b,
            inception.Mixed_7c,
            nn.AdaptiveAvgPool2d(output_size=(1, 1)),
        )

    def forward(self, images: Tensor) -> Tensor:
        x = F.interpolate(
            images,
            size=(INCEPTION_SIZE, INCEPTION_SIZE),
            mode="bilinear",
            align_corners=False,
        )
        x = 2 * x - 1
        return self.blocks(x).flatten(1)


def load_inception(
    weights_path: str | os.PathLike, device: torch.device | str | None = None
) -> FIDInceptionPool3:
    """Build the FID Inception and load its weights from a local file (never downloads).

    ``weights_path``: a state dict as pytorch-fid ships it (see
    :func:`find_inception_weights`). Returns an eval-mode
    :class:`FIDInceptionPool3` on ``device`` (default: CUDA if available)
    without gradients.
    """
    path = Path(weights_path)
    if not path.is_file():
        raise FIDWeightsMissing(
            f"No FID Inception weights at {path}.\n" + _how_to_get_weights()
        )
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt or not a torch file: say which file
        raise ValueError(
            f"Could not read {path} as a PyTorch state dict ({type(error).__name__}: {error}). "
            f"Re-download it from {FID_WEIGHTS_URL}."
        ) from error
    inception = build_fid_inception()
    try:
        inception.load_state_dict(state_dict)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{path} is not a state dict of pytorch-fid's FID Inception ({str(error)[:300]}...). "
            f"Expected the file {FID_WEIGHTS_FILE} from {FID_WEIGHTS_URL}."
        ) from error
    model = FIDInceptionPool3(inception).eval().requires_grad_(False)
    return model.to(_resolve_device(device))


def _resolve_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ----------------------------------------------------------------------------
# features and statistics
# ----------------------------------------------------------------------------
def _image_batches(
    images: ImageSource, batch_size: int
) -> tuple[Iterable[Tensor], int | None]:
    """Batches of images from a tensor or an iterable, and the count when known.

    An iterable may yield ``(B, 3, H, W)`` tensors, single ``(3, H, W)`` images,
    or ``(images, labels)`` pairs (a DataLoader or a data set's items).
    """
    if isinstance(images, Tensor):
        if images.dim() == 3:
            images = images.unsqueeze(0)
        return images.split(batch_size), images.shape[0]
    if isinstance(images, (str, bytes, os.PathLike)) or not isinstance(
        images, Iterable
    ):
        raise TypeError(
            "images must be a tensor (N, 3, H, W) or an iterable of such batches (e.g. a DataLoader); "
            f"got {type(images).__name__}."
        )
    # len() of a DataLoader counts batches, not images: the count stays unknown.
    return _rebatch(images, batch_size), None


def _rebatch(source: Iterable, batch_size: int) -> Iterable[Tensor]:
    pending: list[Tensor] = []
    pending_count = 0
    for item in source:
        if isinstance(item, (tuple, list)):
            if not item or not isinstance(item[0], Tensor):
                raise TypeError(
                    "An item of the image iterable is a tuple whose first element is not a tensor."
                )
            item = item[0]
        if not isinstance(item, Tensor):
            raise TypeError(
                f"The image iterable yielded a {type(item).__name__}, not a tensor."
            )
        if item.dim() == 3:
            item = item.unsqueeze(0)
        if item.dim() != 4:
            raise ValueError(
                f"The image iterable yielded a tensor of shape {tuple(item.shape)}; expected images (B, 3, H, W) "
                "or (3, H, W), or (images, labels) pairs."
            )
        pending.append(item)
        pending_count += item.shape[0]
        while pending_count >= batch_size:
            joined = torch.cat(pending)
            yield joined[:batch_size]
            rest = joined[batch_size:]
            pending, pending_count = (
                ([rest], rest.shape[0]) if rest.shape[0] else ([], 0)
            )
    if pending_count:
        yield torch.cat(pending)


def _check_rgb_batch(batch: Tensor) -> None:
    if batch.dim() != 4 or batch.shape[1] != 3:
        raise ValueError(
            f"FID inputs must be RGB batches (B, 3, H, W); got shape {tuple(batch.shape)}. "
            "Gray images: repeat them to 3 channels; Lab images: convert with colorbook.color.convert(x, 'lab', 'rgb') "
            "or pass space='lab'."
        )
    if not batch.is_floating_point():
        raise ValueError(
            f"FID inputs must be float in [0, 1]; got dtype {batch.dtype}. Use x.float() / 255."
        )
    low, high = float(batch.min()), float(batch.max())
    if low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(
            f"FID inputs must be RGB in [0, 1]; got values in [{low:.3f}, {high:.3f}]. "
            "Images in [-1, 1] need (x + 1) / 2; 8-bit images need x / 255."
        )


@torch.no_grad()
def inception_features(
    images: ImageSource,
    model: nn.Module,
    batch_size: int = 50,
    device: torch.device | str | None = None,
    progress: bool = True,
    limit: int | None = None,
    space: str = "rgb",
    desc: str = "FID features",
) -> np.ndarray:
    """Pool3 features of ``images``: ``(N, 2048)`` float32 numpy array.

    ``images``: a tensor ``(N, 3, H, W)`` or an iterable of batches (or of
    ``(images, labels)`` pairs), values in ``[0, 1]`` in colour space
    ``space`` (``"rgb"``; ``"lab"`` is converted to RGB first). ``limit``
    stops after that many images. ``device`` defaults to the model's device.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    batches, known = _image_batches(images, batch_size)
    total = known if limit is None or known is None else min(known, limit)
    features: list[np.ndarray] = []
    seen = 0
    with tqdm(
        total=total if total is not None else limit,
        desc=desc,
        unit="img",
        disable=not progress,
    ) as bar:
        for batch in batches:
            if limit is not None:
                batch = batch[: limit - seen]
            batch = batch.to(device, torch.float32)
            if space != "rgb":
                batch = convert(batch, space, "rgb")
            _check_rgb_batch(batch)
            features.append(model(batch).float().cpu().numpy())
            seen += batch.shape[0]
            bar.update(batch.shape[0])
            if limit is not None and seen >= limit:
                break  # before pulling another batch from a (possibly costly) generator
    if not features:
        raise ValueError(
            "No images were given to inception_features (empty tensor or iterable)."
        )
    return np.concatenate(features)


def statistics(features: np.ndarray | Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (float64, ``np.cov``, ddof 1) of ``(N, D)`` features."""
    if isinstance(features, Tensor):
        features = features.detach().cpu().numpy()
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(
            f"statistics needs features shaped (N, D) with N >= 2; got shape {features.shape}."
        )
    return features.mean(axis=0), np.cov(features, rowvar=False)


FRECHET_METHODS = {
    # pytorch-fid's own function passes scipy's `sqrtm(..., disp=False)`, which SciPy 1.17 deprecates and
    # newer SciPy rejects; its algorithm is therefore re-implemented here, and the label says so.
    "pytorch-fid": "pytorch-fid 0.3.0's calculate_frechet_distance algorithm (scipy sqrtm of S1 S2, "
    "eps retry when singular), re-implemented in colorbook without sqrtm's removed `disp` argument",
    "eigh": "symmetric eigendecompositions (numpy eigh), same quantity as pytorch-fid",
}

#: What pytorch-fid adds to both covariances' diagonals when sqrtm of their product is not finite.
_PYTORCH_FID_EPS = 1e-6


def _trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr((S1 S2)^(1/2))`` for covariances, from symmetric eigendecompositions.

    With ``S1 = V W V^T``, the eigenvalues of ``S1 S2`` are those of the
    symmetric ``R^T S2 R`` where ``R = V W^(1/2)``; columns of zero eigenvalues
    contribute nothing and are dropped, so a rank-``r`` ``S1`` (fewer samples
    than dimensions) needs only an ``r x r`` second problem. Exact, free of the
    complex round-off of a general ``sqrtm``, and much faster.
    """
    values, vectors = np.linalg.eigh(sigma1)
    keep = (
        values
        > max(float(values.max()), 0.0) * values.shape[0] * np.finfo(np.float64).eps
    )
    root = vectors[:, keep] * np.sqrt(values[keep])
    middle = root.T @ sigma2 @ root
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def _trace_sqrt_product_pytorch_fid(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr((S1 S2)^(1/2))`` the way pytorch-fid 0.3.0's ``calculate_frechet_distance`` computes it.

    The same steps and constants (scipy ``sqrtm`` of the product; when that is
    not finite, retry with ``1e-6`` added to both diagonals; fail on an
    imaginary part above ``1e-3`` on the diagonal, else keep the real part), so
    the number is pytorch-fid's. The one difference: ``sqrtm`` is called
    without ``disp``, which SciPy 1.17 deprecates and later versions reject
    (pytorch-fid passes ``disp=False`` and discards the error estimate it buys).
    Its "singular product" notice becomes a ``RuntimeWarning`` instead of a print.
    """
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        # Covariances of fewer samples than dimensions (or of dead features) are singular by
        # construction; scipy says so on every call (older scipy prints it), which is noise here.
        warnings.filterwarnings(
            "ignore", message="Matrix is (singular|ill-conditioned)"
        )
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * _PYTORCH_FID_EPS
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
            retried = True
        else:
            retried = False
    if retried:  # outside the catch_warnings block, so that the caller sees it
        warnings.warn(
            f"pytorch-fid: fid calculation produces singular product; adding {_PYTORCH_FID_EPS} "
            "to diagonal of cov estimates",
            RuntimeWarning,
            stacklevel=3,
        )
    covmean = np.asarray(covmean)
    if np.iscomplexobj(covmean):  # round-off can leave a slight imaginary part
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"Frechet distance: the matrix square root has an imaginary component "
                f"{np.max(np.abs(covmean.imag)):.3g} (the covariances are far from positive semi-definite); "
                "try method='eigh'."
            )
        covmean = covmean.real
    return float(np.trace(covmean))


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    method: str = "pytorch-fid",
) -> float:
    """Fréchet distance ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` between two Gaussians.

    Means ``(D,)``, covariances ``(D, D)``; scalars are taken as ``D = 1``.
    ``method="pytorch-fid"`` (default, what the DTU report used) follows
    ``pytorch_fid.fid_score.calculate_frechet_distance`` step for step (scipy
    ``sqrtm``; 10-30 s for 2048-d on two CPU cores, longer when the covariances
    are singular) but is colorbook's own code: pytorch-fid 0.3.0 passes
    ``sqrtm(..., disp=False)``, which newer SciPy rejects (see
    :func:`_trace_sqrt_product_pytorch_fid`). ``method="eigh"`` computes the
    same number from two symmetric eigendecompositions (agrees to ~1e-9
    relative; several times faster). Neither passes ``disp`` to scipy.
    The result can be a tiny negative number (round-off) for identical inputs.
    """
    if method not in FRECHET_METHODS:
        raise ValueError(
            f"Unknown Fréchet distance method {method!r}; expected one of {sorted(FRECHET_METHODS)}."
        )
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, dtype=np.float64)),
        np.atleast_1d(np.asarray(mu2, dtype=np.float64)),
    )
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    dim = mu1.shape[0]
    if (
        mu1.shape != (dim,)
        or mu2.shape != (dim,)
        or sigma1.shape != (dim, dim)
        or sigma2.shape != (dim, dim)
    ):
        raise ValueError(
            "frechet_distance needs means (D,) and covariances (D, D) of one D; got "
            f"{mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}."
        )
    if not all(np.isfinite(a).all() for a in (mu1, mu2, sigma1, sigma2)):
        raise ValueError(
            "frechet_distance got NaN or infinite statistics (did the features overflow?)."
        )
    if method == "eigh":
        trace_sqrt = _trace_sqrt_product_eigh(sigma1, sigma2)
    else:
        trace_sqrt = _trace_sqrt_product_pytorch_fid(sigma1, sigma2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


# ----------------------------------------------------------------------------
# cached real statistics
# ----------------------------------------------------------------------------
def _cache_file(key: str, cache_dir: Path) -> Path:
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)[:80]
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / f"{readable}-{digest}.npz"


def _load_or_compute_statistics(
    key: str, compute_fn: Callable[[], Any], cache_dir: str | os.PathLike | None
) -> tuple[np.ndarray, np.ndarray, int | None, Path]:
    directory = (
        Path(cache_dir).expanduser() if cache_dir is not None else cache_root() / "fid"
    )
    path = _cache_file(key, directory)
    if path.is_file():
        try:
            with np.load(path) as stored:
                if (
                    str(stored["key"]) == key
                ):  # guards against a (very unlikely) hash clash
                    n = int(stored["n"]) if int(stored["n"]) >= 0 else None
                    return stored["mu"], stored["sigma"], n, path
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            # written atomically, so a broken file was damaged afterwards: say which one, never guess
            raise ValueError(
                f"{path} is not a readable FID statistics cache ({type(error).__name__}: "
                f"{str(error)[:120]}); delete it and it will be recomputed"
            ) from None
    result = compute_fn()
    if isinstance(result, (tuple, list)) and len(result) in (2, 3):
        mu, sigma = (
            np.asarray(result[0], dtype=np.float64),
            np.asarray(result[1], dtype=np.float64),
        )
        n = int(result[2]) if len(result) == 3 and result[2] is not None else None
    else:  # features (N, D)
        features = np.asarray(
            result.detach().cpu() if isinstance(result, Tensor) else result
        )
        mu, sigma = statistics(features)
        n = features.shape[0]
    directory.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(temporary, mu=mu, sigma=sigma, n=-1 if n is None else n, key=np.array(key))
    os.replace(temporary, path)  # atomic: a crash never leaves half a cache file
    return mu, sigma, n, path


def cached_real_statistics(
    key: str, compute_fn: Callable[[], Any], cache_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Real-image statistics ``(mu (D,), sigma (D, D))``, from disk or computed once.

    ``key`` names the data and every option that changes the statistics (the
    file name is a readable prefix plus a hash of the whole key);
    :func:`compute_fid` builds it from the data set key, ``n``, the resize,
    the implementation and the weights' sha256. ``compute_fn()`` returns
    ``(mu, sigma)``, ``(mu, sigma, n)`` or features ``(N, D)``. ``cache_dir``
    defaults to ``$COLORBOOK_CACHE/fid`` (``~/.cache/colorbook/fid``).
    """
    mu, sigma, _, _ = _load_or_compute_statistics(key, compute_fn, cache_dir)
    return mu, sigma


# ----------------------------------------------------------------------------
# FID end to end
# ----------------------------------------------------------------------------
def _is_statistics(value: Any) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) in (2, 3)
        and isinstance(value[0], np.ndarray)
        and isinstance(value[1], np.ndarray)
    )


def compute_fid(
    real: ImageSource | tuple[np.ndarray, np.ndarray],
    fake: ImageSource,
    *,
    weights: str | os.PathLike | None = None,
    n: int | None = DEFAULT_N,
    batch_size: int = 50,
    device: torch.device | str | None = None,
    real_key: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    space: str = "rgb",
    progress: bool = True,
    model: nn.Module | None = None,
    method: str = "pytorch-fid",
) -> dict[str, Any]:
    """FID between real and generated images, pytorch-fid's way (see module docstring).

    ``real``: images (tensor ``(N, 3, H, W)`` or iterable of batches) or
    precomputed statistics ``(mu, sigma)`` / ``(mu, sigma, n)``.
    ``fake``: images. Both in ``[0, 1]`` in ``space`` (``"rgb"`` or ``"lab"``).
    ``n``: how many images of each to use (the first ``n``; DTU: 10,000;
    ``None`` = all); fewer available gives a warning and the true counts.
    ``real_key``: when given, the real statistics are cached on disk under this
    key plus the options. The weights are looked up first, so a missing file
    fails at once, before any image is touched. ``method``: see
    :func:`frechet_distance`. ``model``: an already loaded
    :func:`load_inception` network for ``weights`` (saves reloading it).

    Returns a dict with ``fid`` (float), ``n_real``, ``n_fake``,
    ``implementation``, ``resize``, ``feature_dim``, ``frechet`` (how the
    distance was computed), ``weights`` (path),
    ``weights_sha256``, ``weights_are_official`` (the genuine pytorch-fid file),
    ``real_statistics_cache`` (path or ``None``) and ``seconds``.
    """
    started = time.perf_counter()
    weights_path = find_inception_weights(weights)  # first: fail before any work
    if method not in FRECHET_METHODS:
        raise ValueError(
            f"Unknown Fréchet distance method {method!r}; expected one of {sorted(FRECHET_METHODS)}."
        )
    if n is not None and n < 2:
        raise ValueError(
            f"n must be >= 2 (a covariance needs two samples) or None; got {n}."
        )
    fingerprint = weights_fingerprint(weights_path)
    if model is None:
        model = load_inception(weights_path, device)
    device = next(model.parameters()).device

    def features_of(images: ImageSource, desc: str) -> np.ndarray:
        return inception_features(
            images,
            model,
            batch_size=batch_size,
            device=device,
            progress=progress,
            limit=n,
            space=space,
            desc=desc,
        )

    cache_path: Path | None = None
    if _is_statistics(real):
        mu_real, sigma_real = real[0], real[1]
        n_real = int(real[2]) if len(real) == 3 and real[2] is not None else None
    elif real_key is not None:
        key = json.dumps(
            {
                "data": real_key,
                "n": n,
                "space": space,
                "resize": RESIZE,
                "implementation": implementation_name(),
                "weights_sha256": fingerprint,
            },
            sort_keys=True,
        )
        mu_real, sigma_real, n_real, cache_path = _load_or_compute_statistics(
            key, lambda: features_of(real, "FID real"), cache_dir
        )
    else:
        real_features = features_of(real, "FID real")
        mu_real, sigma_real = statistics(real_features)
        n_real = real_features.shape[0]

    fake_features = features_of(fake, "FID fake")
    mu_fake, sigma_fake = statistics(fake_features)
    n_fake = fake_features.shape[0]
    for name, count in (("real", n_real), ("fake", n_fake)):
        if n is not None and count is not None and count < n:
            warnings.warn(
                f"FID uses {count} {name} images, fewer than n={n}; FID is biased upwards for small N, "
                "so compare only numbers computed with the same N.",
                stacklevel=2,
            )
    distance = frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake, method=method)
    return {
        "fid": distance,
        "n_real": n_real,
        "n_fake": n_fake,
        "implementation": implementation_name(),
        "resize": RESIZE,
        "feature_dim": int(mu_fake.shape[0]),
        "frechet": FRECHET_METHODS[method],
        "weights": str(weights_path),
        "weights_sha256": fingerprint,
        "weights_are_official": fingerprint.startswith(FID_WEIGHTS_SHA256_PREFIX),
        "real_statistics_cache": None if cache_path is None else str(cache_path),
        "seconds": round(time.perf_counter() - started, 2),
    }
