"""Differentiable forms of the evaluation's two axes, for training along the frontier.

- :func:`gram_log_ratio`: ``log(G(out, style) / G(content, style))`` with ``G`` the Gram distance
  of :mod:`photostyle.eval.metrics` (VGG relu1_1..relu4_1). Its mean over a batch is the log of the
  geometric-mean Gram ratio on which methods are compared; in log form every pair weighs alike,
  whatever the scale of its Gram matrices.
- :func:`ssim_luma`: SSIM on luma with the Gaussian window (sigma 1.5, 11 taps) and constants of
  scikit-image's ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``,
  the metric's reference implementation (borders are handled by replicate padding here).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from photostyle.losses.losses import gram_distance_to, gram_matrix
from photostyle.models.affine import luma


def gram_log_ratio(
    out: Sequence[torch.Tensor], content: Sequence[torch.Tensor], style: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Per-sample log Gram ratio; < 0 when the output's style is closer than the content's.

    Args:
        out: VGG feature maps of the outputs, each (B, C_i, H_i, W_i).
        content: those of the contents (the denominator, detached).
        style: those of the styles.

    Returns:
        (B,) log ratios.
    """
    return gram_log_ratio_to(out, *gram_target(content, style))


def gram_target(
    content: Sequence[torch.Tensor], style: Sequence[torch.Tensor]
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """What :func:`gram_log_ratio` compares outputs with: the style's Gram matrices and the log of
    the content's Gram distance to them (detached). Both stay fixed while one photo's output is
    optimised, so a loop computes them once (:func:`gram_log_ratio_to`).

    Shape: feature maps per layer (B, C_i, H_i, W_i) -> Gram matrices (B, C_i, C_i) and (B,).
    """
    grams = [gram_matrix(t) for t in style]
    den = gram_distance_to([t.detach() for t in content], [g.detach() for g in grams])
    return grams, torch.log(den.clamp_min(1e-12))


def gram_log_ratio_to(
    out: Sequence[torch.Tensor], style_grams: Sequence[torch.Tensor], log_den: torch.Tensor
) -> torch.Tensor:
    """:func:`gram_log_ratio` against a :func:`gram_target`. Shape: as there -> (B,)."""
    return torch.log(gram_distance_to(out, style_grams).clamp_min(1e-12)) - log_den


def _gaussian_window(dtype: torch.dtype, device: torch.device, sigma: float = 1.5) -> torch.Tensor:
    t = torch.arange(-5, 6, dtype=dtype, device=device)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_luma(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of the luma of two RGB batches in [0, 1].

    Shape: a, b (B, 3, H, W) -> (B,).
    """
    if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3:
        raise ValueError(
            f"expected equal (B, 3, H, W) batches, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    x, y = luma(a), luma(b)  # (B, 1, H, W)
    g = _gaussian_window(a.dtype, a.device)

    def blur(t: torch.Tensor) -> torch.Tensor:
        t = F.pad(t, (5, 5, 5, 5), mode="replicate")
        t = F.conv2d(t, g.view(1, 1, 1, -1))
        return F.conv2d(t, g.view(1, 1, -1, 1))

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


__all__ = ["gram_log_ratio", "gram_log_ratio_to", "gram_target", "ssim_luma"]
