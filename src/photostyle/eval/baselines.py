"""Classical colour-transfer baselines a user would pick instead of a network.

- ``identity``: the content unchanged (the "no transfer" reference).
- ``reinhard``: Reinhard et al. 2001, per-channel mean/std matching in CIE Lab.
- ``histogram``: per-channel histogram matching in RGB (scikit-image ``match_histograms``).

The *peers*, the colour transfers users pick from PyPI (the ``peers`` extra, see :data:`PEERS`):

- ``mkl``: the Monge-Kantorovich linear colour mapping (Pitié & Kokaram 2007): the affine RGB map
  that takes the content's colour mean and covariance to the style's with the least change
  (``color-matcher``'s ``mkl``).
- ``hm-mvgd-hm``: histogram matching, a multivariate Gaussian (mean/covariance) transfer, histogram
  matching again (``color-matcher``'s ``hm-mvgd-hm``, its author's recommended compound).
- ``pdf_regrain``: Pitié et al. 2007's iterative N-dimensional PDF transfer along 6 fixed
  ("optimal") rotations of RGB, then the grain-preserving regrain that restores the content's
  gradients (``python-color-transfer``'s ``pdf_transfer(..., regrain=True)``). Deterministic: for
  3 channels the package uses Pitié's fixed rotations, not random ones.

Each baseline is a pure function ``(content (3, H, W), style (3, Hs, Ws)) -> (3, H, W)`` in [0, 1].
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import torch

Baseline = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class PeerUnavailable(ImportError):
    """A peer's PyPI package is not installed (the message says how to install it)."""


def _check(content: torch.Tensor, style: torch.Tensor) -> None:
    for name, t in (("content", content), ("style", style)):
        if t.ndim != 3 or t.shape[0] != 3:
            raise ValueError(f"{name} must be (3, H, W) RGB, got {tuple(t.shape)}")


def _to_hwc(image: torch.Tensor) -> np.ndarray:
    return image.detach().double().cpu().permute(1, 2, 0).numpy()


def _from_hwc(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    if np.iscomplexobj(array):
        # color-matcher's MKL takes eigenvectors with np.linalg.eig, which returns a complex
        # dtype on some BLAS builds (seen on in38 of the dev pairs: every imaginary part 0.0).
        # The map is real; only round-off may be left in the imaginary parts.
        imag = float(np.abs(array.imag).max()) if array.size else 0.0
        if imag > 1e-6:
            raise ValueError(f"a colour transfer returned complex values (|imag| up to {imag:.3g})")
        array = array.real
    out = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    return out.clamp(0, 1).to(like.dtype)


def identity(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The content itself. Shape: (3, H, W), (3, Hs, Ws) -> (3, H, W)."""
    _check(content, style)
    return content.clone()


def reinhard(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Reinhard colour transfer: match each CIE Lab channel's mean and std to the style's.

    Shape: (3, H, W), (3, Hs, Ws) -> (3, H, W).
    """
    from skimage.color import lab2rgb, rgb2lab

    _check(content, style)
    lab_c = rgb2lab(_to_hwc(content))  # (H, W, 3)
    lab_s = rgb2lab(_to_hwc(style))
    mu_c, sd_c = lab_c.mean(axis=(0, 1)), lab_c.std(axis=(0, 1))
    mu_s, sd_s = lab_s.mean(axis=(0, 1)), lab_s.std(axis=(0, 1))
    lab = (lab_c - mu_c) / (sd_c + eps) * sd_s + mu_s
    with warnings.catch_warnings():  # out-of-gamut Lab values are clipped, as the warning says
        warnings.filterwarnings("ignore", message="Conversion from CIE-LAB", category=UserWarning)
        rgb = lab2rgb(lab)
    return _from_hwc(rgb, content)


def histogram(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Per-channel RGB histogram matching. Shape: (3, H, W), (3, Hs, Ws) -> (3, H, W)."""
    from skimage.exposure import match_histograms

    _check(content, style)
    matched = match_histograms(_to_hwc(content), _to_hwc(style), channel_axis=-1)
    return _from_hwc(matched, content)


BASELINES: dict[str, Baseline] = {
    "identity": identity,
    "reinhard": reinhard,
    "histogram": histogram,
}


@dataclass(frozen=True)
class Peer:
    """A colour transfer from a PyPI package that photostyle does not require."""

    transfer: Baseline  # (content, style) -> output, as the baselines
    package: str  # the PyPI package it comes from
    module: str  # the module to import from it
    install: str  # how to install that package (one shell line)


_PEERS_EXTRA = "pip install 'photostyle[peers]'"
# python-color-transfer 0.1.2a0 declares numpy<2 and opencv-python but runs on numpy 2 with the
# headless OpenCV of the extra, so it is installed without its declared dependencies.
_NO_DEPS = f"{_PEERS_EXTRA} && pip install --no-deps python-color-transfer==0.1.2a0"


def _peer_module(name: str) -> ModuleType:
    peer = PEERS[name]
    try:
        return importlib.import_module(peer.module)
    except ImportError as err:  # missing, or a dependency of it missing or broken
        raise PeerUnavailable(f"{name} needs {peer.package} ({err}): {peer.install}") from err


def require_peer(name: str) -> None:
    """Check that a peer's package is installed.

    Raises:
        KeyError: ``name`` is not a peer.
        PeerUnavailable: its package is missing (one line naming the pip command).
    """
    _peer_module(name)


def _color_matcher(content: torch.Tensor, style: torch.Tensor, method: str) -> torch.Tensor:
    _check(content, style)
    matcher = _peer_module(method).ColorMatcher()
    out = matcher.transfer(src=_to_hwc(content), ref=_to_hwc(style), method=method)
    return _from_hwc(out, content)


def mkl(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Monge-Kantorovich linear colour mapping (``color-matcher``'s ``mkl``).

    Shape: (3, H, W), (3, Hs, Ws) -> (3, H, W).

    Raises:
        PeerUnavailable: ``color-matcher`` is not installed.
    """
    return _color_matcher(content, style, "mkl")


def hm_mvgd_hm(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Histogram, Gaussian, histogram matching (``color-matcher``'s ``hm-mvgd-hm``).

    Shape: (3, H, W), (3, Hs, Ws) -> (3, H, W).

    Raises:
        PeerUnavailable: ``color-matcher`` is not installed.
    """
    return _color_matcher(content, style, "hm-mvgd-hm")


def _to_bgr8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) RGB in [0, 1] -> (H, W, 3) BGR uint8, the package's cv2 convention."""
    rgb = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    return np.ascontiguousarray(rgb.permute(1, 2, 0).numpy()[..., ::-1])


def pdf_regrain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Pitié et al. 2007: PDF transfer and grain preservation (``python-color-transfer``).

    Shape: (3, H, W), (3, Hs, Ws) -> (3, H, W).

    Raises:
        PeerUnavailable: ``python-color-transfer`` (or OpenCV) is not installed.
    """
    _check(content, style)
    package = _peer_module("pdf_regrain")
    out = package.ColorTransfer().pdf_transfer(
        img_arr_in=_to_bgr8(content), img_arr_ref=_to_bgr8(style), regrain=True
    )  # (H, W, 3) BGR uint8
    rgb = torch.from_numpy(np.ascontiguousarray(out[..., ::-1])).permute(2, 0, 1)
    return (rgb.float() / 255).to(content.dtype)


PEERS: dict[str, Peer] = {
    "mkl": Peer(mkl, "color-matcher", "color_matcher", _PEERS_EXTRA),
    "hm-mvgd-hm": Peer(hm_mvgd_hm, "color-matcher", "color_matcher", _PEERS_EXTRA),
    "pdf_regrain": Peer(
        pdf_regrain, "python-color-transfer", "python_color_transfer.color_transfer", _NO_DEPS
    ),
}
