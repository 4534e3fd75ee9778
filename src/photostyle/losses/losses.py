"""SCP loss (Eq. (2)), perceptual losses (Eqs. (3)-(7)) and the total loss (Eq. (8)).

Squared L2 norms are implemented as means over elements (``F.mse_loss``) so that terms at different
scales and image sizes are comparable; this rescales each term by a constant and leaves the paper's
relative weighting (beta) meaningful across resolutions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def perceptual_loss(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over relu1_1..relu4_1 of the mean squared feature difference; Eqs. (3)-(7), (9).

    Args:
        a: feature maps phi_i(I_a), each (B, C_i, H_i, W_i).
        b: feature maps phi_i(I_b) of the same shapes.

    Returns:
        Scalar loss.
    """
    if len(a) != len(b):
        raise ValueError(f"got {len(a)} and {len(b)} feature maps")
    total = a[0].new_zeros(())
    for fa, fb in zip(a, b, strict=True):
        if fa.shape != fb.shape:
            raise ValueError(f"feature shapes differ: {tuple(fa.shape)} vs {tuple(fb.shape)}")
        total = total + F.mse_loss(fa, fb)  # ||phi_i(a) - phi_i(b)||_2^2
    return total


def scp_loss(
    q: Sequence[torch.Tensor], p: Sequence[torch.Tensor], convs: Sequence[nn.Module]
) -> torch.Tensor:
    """Spatially coherent Content-style Preserving loss summed over the three pooling scales.

    Args:
        q: Q^1..Q^3, inputs of the decoder's Unpool layers, each (B, C_i, H_i, W_i).
        p: P^1..P^3, outputs of the encoder's Max-Pool layers (content), same shapes.
        convs: W_r^1..W_r^3, 3x3 convolutions C_i -> C_i.

    Returns:
        Scalar: sum_i L_r^i.
    """
    total = q[0].new_zeros(())
    for qi, pi, conv in zip(q, p, convs, strict=True):
        if qi.shape != pi.shape:
            raise ValueError(f"Q and P shapes differ: {tuple(qi.shape)} vs {tuple(pi.shape)}")
        total = total + F.mse_loss(conv(qi), pi)  # Eq. (2): ||W_r^i * Q^i - P^i||_2^2
    return total


class SCPHead(nn.Module):
    """The three 3x3 convolutions W_r^i of the SCP loss for one stylizer (training only).

    Args:
        widths: channels of P^1..P^3, e.g. (64, 128, 256) for VGG.
    """

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(w, w, 3, padding=1, padding_mode="reflect") for w in widths
        )
        for conv in self.convs:  # start at the identity: L_r^i begins as ||Q^i - P^i||^2
            nn.init.dirac_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, q: Sequence[torch.Tensor], p: Sequence[torch.Tensor]) -> torch.Tensor:
        """Shape: Q^i, P^i (B, C_i, H_i, W_i) for i = 1..3 -> scalar."""
        return scp_loss(q, p, self.convs)
