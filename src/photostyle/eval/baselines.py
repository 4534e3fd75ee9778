"""Classical colour-transfer baselines a user would pick instead of a network.

- ``identity``: the content unchanged (the "no transfer" reference).
- ``reinhard``: Reinhard et al. 2001, per-channel mean/std matching in CIE Lab.
- ``histogram``: per-channel histogram matching in RGB (scikit-image ``match_histograms``).

Each baseline is a pure function ``(content (3, H, W), style (3, Hs, Ws)) -> (3, H, W)`` in [0, 1].
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch

Baseline = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check(content: torch.Tensor, style: torch.Tensor) -> None:
    for name, t in (("content", content), ("style", style)):
        if t.ndim != 3 or t.shape[0] != 3:
            raise ValueError(f"{name} must be (3, H, W) RGB, got {tuple(t.shape)}")


def _to_hwc(image: torch.Tensor) -> np.ndarray:
    return image.detach().double().cpu().permute(1, 2, 0).numpy()


def _from_hwc(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
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
