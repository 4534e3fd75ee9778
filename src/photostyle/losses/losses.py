"""SCP loss (Eq. (2)), perceptual losses (Eqs. (3)-(7)) and the total loss (Eq. (8)).

Squared L2 norms are implemented as means over elements (``F.mse_loss``) so that terms at different
scales and image sizes are comparable; this rescales each term by a constant and leaves the paper's
relative weighting (beta) meaningful across resolutions.

Two documented departures are available as options (photostyle's training recipe turns both on):

- ``relative=True`` divides each layer's squared error by the mean energy of its target (detached).
  With caffe-scale VGG features the raw errors of relu3_1 are ~100x those of relu1_1, so the
  literal sum ignores colour and fine detail; relative errors weigh the four layers alike and do
  not depend on the encoder's input convention.
- :func:`statistics_loss` compares channel means and standard deviations instead of aligned
  features. Eqs. (4) and (6) compare the output with a *different* photo (style, similar content);
  an aligned feature difference there pulls the output towards a pixel blend of two photos, while
  channel statistics are what the style photo should lend (Huang & Belongie's style loss).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _energy(target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean squared value of a target, detached: the normaliser of a relative error."""
    return target.detach().pow(2).mean().clamp_min(eps)


def perceptual_loss(
    a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], *, relative: bool = False
) -> torch.Tensor:
    """Sum over relu1_1..relu4_1 of the mean squared feature difference; Eqs. (3)-(7), (9).

    Args:
        a: feature maps phi_i(I_a) of the reference image, each (B, C_i, H_i, W_i).
        b: feature maps phi_i(I_b) of the same shapes.
        relative: divide each layer's error by the mean energy of ``a``'s features.

    Returns:
        Scalar loss.
    """
    if len(a) != len(b):
        raise ValueError(f"got {len(a)} and {len(b)} feature maps")
    total = a[0].new_zeros(())
    for fa, fb in zip(a, b, strict=True):
        if fa.shape != fb.shape:
            raise ValueError(f"feature shapes differ: {tuple(fa.shape)} vs {tuple(fb.shape)}")
        err = F.mse_loss(fa, fb)  # ||phi_i(a) - phi_i(b)||_2^2
        total = total + (err / _energy(fa) if relative else err)
    return total


def channel_stats(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation. Shape: (B, C, H, W) -> (B, C), (B, C)."""
    mu = features.mean(dim=(2, 3))
    sd = (features.var(dim=(2, 3), unbiased=False) + eps).sqrt()
    return mu, sd


def statistics_loss(
    a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], *, relative: bool = False
) -> torch.Tensor:
    """Sum over layers of the squared differences of channel means and standard deviations.

    The style-side form of Eqs. (4) and (6): ``a`` and ``b`` may show different scenes and sizes.

    Args:
        a: feature maps of the reference (style or similar-content) image, each (B, C_i, H_i, W_i).
        b: feature maps of the output, each (B, C_i, H'_i, W'_i) with the same B and C_i.
        relative: divide each layer's error by the mean energy of ``a``'s features.

    Returns:
        Scalar loss.
    """
    if len(a) != len(b):
        raise ValueError(f"got {len(a)} and {len(b)} feature maps")
    total = a[0].new_zeros(())
    for fa, fb in zip(a, b, strict=True):
        if fa.shape[:2] != fb.shape[:2]:
            raise ValueError(f"batch/channels differ: {tuple(fa.shape)} vs {tuple(fb.shape)}")
        mu_a, sd_a = channel_stats(fa)
        mu_b, sd_b = channel_stats(fb)
        err = F.mse_loss(mu_b, mu_a) + F.mse_loss(sd_b, sd_a)
        total = total + (err / _energy(fa) if relative else err)
    return total


def scp_loss(
    q: Sequence[torch.Tensor],
    p: Sequence[torch.Tensor],
    convs: Iterable[nn.Module],
    *,
    relative: bool = False,
) -> torch.Tensor:
    """Spatially coherent Content-style Preserving loss summed over the three pooling scales.

    Args:
        q: Q^1..Q^3, inputs of the decoder's Unpool layers, each (B, C_i, H_i, W_i).
        p: P^1..P^3, outputs of the encoder's Max-Pool layers (content), same shapes.
        convs: W_r^1..W_r^3, 3x3 convolutions C_i -> C_i.
        relative: divide each scale's error by the mean energy of P^i.

    Returns:
        Scalar: sum_i L_r^i.
    """
    total = q[0].new_zeros(())
    for qi, pi, conv in zip(q, p, convs, strict=True):
        if qi.shape != pi.shape:
            raise ValueError(f"Q and P shapes differ: {tuple(qi.shape)} vs {tuple(pi.shape)}")
        err = F.mse_loss(conv(qi), pi)  # Eq. (2): ||W_r^i * Q^i - P^i||_2^2
        total = total + (err / _energy(pi) if relative else err)
    return total


class SCPHead(nn.Module):
    """The three 3x3 convolutions W_r^i of the SCP loss for one stylizer (training only).

    Args:
        widths: channels of P^1..P^3, e.g. (64, 128, 256) for VGG.
    """

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        convs = [nn.Conv2d(w, w, 3, padding=1, padding_mode="reflect") for w in widths]
        for conv in convs:  # start at the identity: L_r^i begins as ||Q^i - P^i||^2
            assert conv.bias is not None  # bias=True above
            nn.init.dirac_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.convs = nn.ModuleList(convs)

    def forward(
        self, q: Sequence[torch.Tensor], p: Sequence[torch.Tensor], *, relative: bool = False
    ) -> torch.Tensor:
        """Shape: Q^i, P^i (B, C_i, H_i, W_i) for i = 1..3 -> scalar."""
        return scp_loss(q, p, self.convs, relative=relative)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel Gram matrix over the number of locations. Shape: (B, C, H, W) -> (B, C, C)."""
    if features.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) features, got {tuple(features.shape)}")
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def gram_distance(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the mean squared difference of Gram matrices.

    Args:
        a: feature maps of one image per layer, each (B, C_i, H_i, W_i).
        b: feature maps of the other image, same channels (sizes may differ).

    Returns:
        (B,) distances; 0 when the Gram matrices agree.
    """
    if len(a) != len(b):
        raise ValueError(f"got {len(a)} and {len(b)} feature maps")
    return gram_distance_to(a, [gram_matrix(fb) for fb in b])


def gram_distance_to(a: Sequence[torch.Tensor], grams: Sequence[torch.Tensor]) -> torch.Tensor:
    """:func:`gram_distance` to Gram matrices computed once (a style scored against many images).

    Shape: a per layer (B, C_i, H_i, W_i), grams per layer (B, C_i, C_i) -> (B,).
    """
    if len(a) != len(grams):
        raise ValueError(f"got {len(a)} feature maps and {len(grams)} Gram matrices")
    total = a[0].new_zeros(a[0].shape[0])
    for fa, gb in zip(a, grams, strict=True):
        diff = gram_matrix(fa) - gb  # (B, C, C)
        total = total + diff.pow(2).mean(dim=(1, 2))
    return total
