"""Fréchet Inception Distance (FID) between two folders of images, and the offline FID-VGG.

FID (Heusel et al. 2017) fits a Gaussian to the 2048-d pool3 features of InceptionV3 for each set
of images and returns the Fréchet distance between the two Gaussians:

    FID = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

The network, its weights (pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``, never downloaded
here) and the preprocessing (bilinear resize to 299 x 299 without antialiasing, [-1, 1]) follow
pytorch-fid, so values are comparable with it (see :mod:`photostyle.models.inception`).

Without those weights, ``vgg=True`` computes the same statistic on features of the bundled VGG16
(relu4_1 averaged over space, 512-d, at torchvision feature scale). Its values are on another scale
and are labelled "FID-VGG" everywhere; they compare runs with each other, never with published
FIDs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from photostyle.io import ImageError, load_image
from photostyle.models.inception import (
    FID_INPUT_SIZE,
    INCEPTION_WEIGHTS_ENV,
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    MIN_INPUT_SIZE,
    find_inception_weights,
    load_inception,
)
from photostyle.models.weights import WeightsError
from photostyle.utils import resolve_device

# Suffixes of the files read from a folder (pytorch-fid's list; any case).
IMAGE_SUFFIXES = frozenset(
    {".bmp", ".jpg", ".jpeg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"}
)
VGG_MIN_SIZE = 16  # smallest side the VGG encoder accepts

FloatArray = npt.NDArray[np.float64]
# A feature extractor: (B, 3, S, S) RGB in [0, 1] on its device -> (B, D) features.
Extractor = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ActivationStatistics:
    """Gaussian fitted to the features of a set of images."""

    mu: FloatArray  # (D,) mean feature, float64
    sigma: FloatArray  # (D, D) covariance (unbiased, like np.cov), float64
    count: int  # images whose features went into mu and sigma
    skipped: tuple[Path, ...] = ()  # files that could not be read as images


@dataclass(frozen=True)
class FIDResult:
    """The distance between two folders and how it was obtained."""

    metric: str  # "FID" (InceptionV3 at 299 px), "FID@<size>px" (other sizes) or "FID-VGG"
    value: float  # the Fréchet distance of the two feature Gaussians
    outputs: Path  # first folder
    reference: Path  # second folder
    outputs_count: int  # images of ``outputs`` used
    reference_count: int  # images of ``reference`` used
    outputs_skipped: tuple[Path, ...] = ()  # unreadable files of ``outputs``
    reference_skipped: tuple[Path, ...] = ()  # unreadable files of ``reference``
    size: int = FID_INPUT_SIZE  # side images were resized to
    dims: int = 0  # feature dimensions; with fewer images the covariances are singular
    features: str = ""  # which features were compared
    weights: str = ""  # weights file of the feature network

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable summary (paths as strings, skipped files listed)."""
        return {
            "metric": self.metric,
            "value": self.value,
            "features": self.features,
            "weights": self.weights,
            "size": self.size,
            "dims": self.dims,
            "outputs": {
                "folder": str(self.outputs),
                "images": self.outputs_count,
                "skipped": [str(p) for p in self.outputs_skipped],
            },
            "reference": {
                "folder": str(self.reference),
                "images": self.reference_count,
                "skipped": [str(p) for p in self.reference_skipped],
            },
        }


def frechet_distance(
    mu1: npt.ArrayLike,
    sigma1: npt.ArrayLike,
    mu2: npt.ArrayLike,
    sigma2: npt.ArrayLike,
    eps: float = 1e-6,
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    ``|mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2))``, computed as pytorch-fid does:
    when the product's square root is not finite (a singular product), ``eps`` is added to both
    diagonals (with a warning); an imaginary part left by rounding is discarded when the
    diagonal's is below 1e-3. Where pytorch-fid raises instead (a large imaginary part: rank-
    deficient covariances, e.g. fewer images than feature dimensions, or features of a large
    scale), the trace is taken from the real, symmetric form
    ``Tr sqrtm(sigma1 sigma2) = sum sqrt(eig(sigma1^(1/2) sigma2 sigma1^(1/2)))``, the same
    quantity computed stably.

    Args:
        mu1: (D,) mean of the first Gaussian.
        sigma1: (D, D) covariance of the first Gaussian.
        mu2: (D,) mean of the second Gaussian.
        sigma2: (D, D) covariance of the second Gaussian.
        eps: diagonal offset used for a singular product.

    Returns:
        The distance (>= 0 up to rounding).

    Raises:
        ValueError: shapes differ.
    """
    from scipy import linalg

    m1, m2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if m1.shape != m2.shape or m1.ndim != 1:
        raise ValueError(f"means must be vectors of one length, got {m1.shape} and {m2.shape}")
    if s1.shape != s2.shape or s1.shape != (m1.size, m1.size):
        raise ValueError(f"covariances must be {m1.size}x{m1.size}, got {s1.shape}, {s2.shape}")
    diff = m1 - m2

    def sqrtm(matrix: FloatArray) -> npt.NDArray[Any]:
        with warnings.catch_warnings():  # pytorch-fid's disp=False: judge by the result instead
            warnings.simplefilter("ignore")
            root = linalg.sqrtm(matrix)
        return np.asarray(root[0] if isinstance(root, tuple) else root)

    a, b = s1, s2  # the covariances whose product's square root is taken
    covmean = sqrtm(a @ b)
    if not np.isfinite(covmean).all():
        warnings.warn(
            f"Fréchet distance: singular product; adding {eps} to the covariance diagonals",
            RuntimeWarning,
            stacklevel=2,
        )
        offset = np.eye(s1.shape[0]) * eps
        a, b = s1 + offset, s2 + offset
        covmean = sqrtm(a @ b)
    if not np.iscomplexobj(covmean):
        tr_covmean = float(np.trace(covmean))
    elif np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
        tr_covmean = float(np.trace(covmean.real))  # rounding left a tiny imaginary part
    else:  # pytorch-fid raises here; the symmetric form gives the same trace, real
        tr_covmean = trace_sqrt_product(a, b)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def trace_sqrt_product(sigma1: FloatArray, sigma2: FloatArray) -> float:
    """``Tr sqrtm(sigma1 sigma2)`` of two covariances, real and stable even when they are singular.

    ``sigma1 sigma2`` is similar to the symmetric positive semi-definite
    ``sigma1^(1/2) sigma2 sigma1^(1/2)``, so the trace of its principal square root is the sum of
    the square roots of that matrix's eigenvalues (rounding below zero is clipped).

    Shape: (D, D), (D, D) -> scalar.
    """
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix, any case), sorted by name.

    Raises:
        ImageError: ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def resize_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize to size x size as pytorch-fid does (bilinear, no antialiasing, no aspect kept).

    Shape: (3, H, W) -> (3, size, size).
    """
    batch = image.unsqueeze(0)
    out = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False)
    return out[0]


def activation_statistics(
    paths: Sequence[str | Path],
    extractor: Extractor,
    *,
    size: int = FID_INPUT_SIZE,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> ActivationStatistics:
    """Mean and covariance of the features of images, computed batch by batch.

    Unreadable files are skipped and listed in the result, never fatal. Statistics accumulate in
    float64 around a shift (the first batch's mean), so memory does not grow with the image count.

    Args:
        paths: image files.
        extractor: (B, 3, size, size) RGB in [0, 1] on ``device`` -> (B, D) features.
        size: side every image is resized to (see :func:`resize_square`).
        batch_size: images per extractor call.
        device: where batches are sent.
        on_batch: called with the number of files handled after each batch (progress).

    Returns:
        The statistics; ``sigma`` is the unbiased covariance (as ``np.cov``).

    Raises:
        ValueError: fewer than 2 readable images, or a bad ``size``/``batch_size``.
    """
    if batch_size < 1 or size < 1:
        raise ValueError(f"batch size and size must be positive, got {batch_size} and {size}")
    dev = torch.device(device)
    skipped: list[Path] = []
    count = 0
    shift: FloatArray | None = None
    total: FloatArray | None = None
    outer: FloatArray | None = None
    for start in range(0, len(paths), batch_size):
        chunk = [Path(p) for p in paths[start : start + batch_size]]
        images = []
        for path in chunk:
            try:
                images.append(resize_square(load_image(path), size))
            except ImageError:
                skipped.append(path)
        if images:
            with torch.no_grad():
                feats = extractor(torch.stack(images).to(dev))
            x = feats.detach().to("cpu", torch.float64).numpy()
            if x.ndim != 2 or x.shape[0] != len(images):
                raise ValueError(f"extractor returned {x.shape} for {len(images)} images")
            if shift is None:
                shift = x.mean(axis=0)
                total, outer = np.zeros_like(shift), np.zeros((x.shape[1], x.shape[1]))
            assert total is not None and outer is not None
            centred = x - shift
            total += centred.sum(axis=0)
            outer += centred.T @ centred
            count += x.shape[0]
        if on_batch is not None:
            on_batch(len(chunk))
    if count < 2 or shift is None or total is None or outer is None:
        raise ValueError(
            f"need at least 2 readable images, got {count} ({len(skipped)} unreadable)"
        )
    mean_c = total / count
    sigma = (outer - count * np.outer(mean_c, mean_c)) / (count - 1)
    return ActivationStatistics(shift + mean_c, sigma, count, tuple(skipped))


def inception_extractor(weights: str | Path, device: str | torch.device = "cpu") -> Extractor:
    """pool3 features of pytorch-fid's InceptionV3 (2048-d), weights from ``weights``."""
    model = load_inception(weights, device)
    model.resize_input = False  # the caller resizes each image to the FID size
    return model


def vgg_extractor(device: str | torch.device = "cpu") -> Extractor:
    """relu4_1 of the bundled ImageNet VGG16, averaged over space (512-d), for FID-VGG.

    Features are brought to the scale of torchvision-convention VGG (``FEATURE_SCALE``), so that
    FID-VGG does not depend on the input convention of the weights.
    """
    from photostyle.models.encoder import FEATURE_SCALE, VGG16
    from photostyle.models.weights import build_encoder

    encoder = build_encoder(None, VGG16).to(device)
    scale = FEATURE_SCALE[encoder.convention]

    def extract(x: torch.Tensor) -> torch.Tensor:
        return encoder(x).taps[-1].mean(dim=(2, 3)) * scale  # (B, 512)

    return extract


def missing_weights_message() -> str:
    """One line saying how to get the InceptionV3 weights, and that FID-VGG works offline."""
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return (
        f"InceptionV3 weights not found: get pytorch-fid's {INCEPTION_WEIGHTS_FILE} "
        f"({INCEPTION_WEIGHTS_URL}) and pass --inception-weights FILE, set "
        f"{INCEPTION_WEIGHTS_ENV}=FILE, or put it in {hub}/; or use --vgg to compute FID-VGG "
        "offline with the bundled VGG16 (not comparable with FID)"
    )


def fid(
    outputs: str | Path,
    reference: str | Path,
    *,
    inception_weights: str | Path | None = None,
    vgg: bool = False,
    size: int = FID_INPUT_SIZE,
    batch_size: int = 50,
    device: str | torch.device = "auto",
    on_batch: Callable[[int], None] | None = None,
) -> FIDResult:
    """FID between two folders of images, or FID-VGG when ``vgg`` is asked for.

    Without ``vgg``, the InceptionV3 weights are looked up by
    :func:`photostyle.models.inception.find_inception_weights` (``inception_weights``, the
    ``PHOTOSTYLE_INCEPTION_WEIGHTS`` environment variable, the torch hub cache); nothing is
    downloaded. With ``vgg``, features come from the bundled VGG16 and the metric is "FID-VGG".

    Args:
        outputs: folder of images (e.g. stylized results).
        reference: folder of reference images.
        inception_weights: pytorch-fid's weights file (``.pth`` or ``.safetensors``).
        vgg: compute FID-VGG with the bundled VGG16 instead (cannot be combined with
            ``inception_weights``).
        size: side images are resized to; 299 for standard FID.
        batch_size: images per network call.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        on_batch: progress callback, called with the number of files handled per batch.

    Returns:
        The distance, its metric name and the image counts.

    Raises:
        WeightsError: no InceptionV3 weights without ``vgg`` (one line saying how to get them), or
            a weights file that does not fit.
        ImageError: a folder is missing.
        ValueError: fewer than 2 readable images in a folder, or bad options.
    """
    if vgg and inception_weights is not None:
        raise ValueError("--vgg computes FID-VGG without InceptionV3: drop --inception-weights")
    out_paths, ref_paths = list_images(outputs), list_images(reference)
    min_size = VGG_MIN_SIZE if vgg else MIN_INPUT_SIZE
    if size < min_size:
        raise ValueError(f"--size must be at least {min_size} for this network, got {size}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {batch_size}")
    dev = resolve_device(device)
    if vgg:
        extractor = vgg_extractor(dev)
        metric, features = "FID-VGG", "VGG16 relu4_1 spatial mean (512-d, torchvision scale)"
        weights = "bundled VGG16"
    else:
        found = find_inception_weights(inception_weights)
        if found is None:
            raise WeightsError(missing_weights_message())
        extractor = inception_extractor(found, dev)
        metric = "FID" if size == FID_INPUT_SIZE else f"FID@{size}px"
        features, weights = "InceptionV3 pool3 (2048-d)", str(found)
    stats = []
    for folder, paths in ((outputs, out_paths), (reference, ref_paths)):
        try:
            stats.append(
                activation_statistics(
                    paths,
                    extractor,
                    size=size,
                    batch_size=batch_size,
                    device=dev,
                    on_batch=on_batch,
                )
            )
        except ValueError as err:
            raise ValueError(f"{folder}: {err}") from err
    a, b = stats
    return FIDResult(
        metric=metric,
        value=frechet_distance(a.mu, a.sigma, b.mu, b.sigma),
        outputs=Path(outputs),
        reference=Path(reference),
        outputs_count=a.count,
        reference_count=b.count,
        outputs_skipped=a.skipped,
        reference_skipped=b.skipped,
        size=size,
        dims=int(a.mu.size),
        features=features,
        weights=weights,
    )
