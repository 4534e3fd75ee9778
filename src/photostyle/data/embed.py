"""Compact per-image embeddings whose squared distances approximate Eq. (9) (Johnson-Lindenstrauss).

Eq. (9) at a fixed size S is ``A(I_j, I_k) = ||f_j - f_k||^2`` where ``f`` concatenates relu1_1..
relu4_1, each map flattened and divided by ``sqrt(numel)`` (see :mod:`photostyle.data.index`): about
123k dimensions per image at S = 32 with VGG16, so all pairs of 83k images (7e9 pairs) cannot be
computed from stored features. Here each image gets a ``k``-dimensional embedding

    y = sum_i R_i^T f_i,    R_i in R^{D_i x k} with i.i.d. N(0, 1/k) entries (fixed seed),

one Gaussian block per VGG layer, all projecting into the same ``k`` dimensions (which is one
Gaussian projection of the concatenated ``f``; it beats concatenating per-layer projections of
``k / 4`` dimensions whenever the layers' shares of the distance differ). For any pair,
``E ||y_j - y_k||^2 = A(I_j, I_k)`` and ``||y_j - y_k||^2 / A ~ chi^2_k / k``: the relative error
of a distance has standard deviation ``sqrt(2 / k)`` (8.8% at k = 256, 6.3% at k = 512) and
``P(|ratio - 1| > eps) <= 2 exp(-k (eps^2 / 2 - eps^3 / 3) / 2)`` (Dasgupta & Gupta, 2003),
whatever D is. The sampler only uses the order of distances within a row; ``photostyle
index-bench`` measures rank correlation and subset agreement against exact Eq. (9) on real photos.

Embeddings are stored as int16: ``q = round(y / scale)`` with one power-of-two ``scale`` per index
(calibrated once so the largest value of a sample of images is about 4096, 8x below the int16
limit). Distances in these integer units, ``||q_j - q_k||^2 = A / scale^2``, are then computed
*exactly* (every product < 2^30 and every sum < 2^53 in float64 for k <= 8192), in any order, on any
device: the chunked thresholds and the per-draw membership test of the sampler see bit-identical
values, so the sampled subsets are exactly those of a brute-force sampler on the same embeddings.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from photostyle.models.encoder import VGGEncoder

INT16_MAX = 32767
CALIBRATED_MAX = 4096  # the calibration sample's largest |y| lands at or below this many units
MAX_DIM = 8192  # largest k for which float64 distances of int16 embeddings are exact


@torch.inference_mode()
def tap_dims(encoder: VGGEncoder, size: int) -> list[int]:
    """Number of elements of relu1_1..relu4_1 for one ``size x size`` image."""
    probe = torch.zeros(1, 3, size, size, device=next(encoder.parameters()).device)
    return [t[0].numel() for t in encoder.taps(probe)]


def gaussian_projection(dims: Sequence[int], k: int, seed: int) -> list[torch.Tensor]:
    """Seeded Gaussian JL blocks, entries N(0, 1/k), so that ``E||R^T x||^2 = ||x||^2``.

    Generated on the CPU with one generator per block, so every device and process gets the same
    matrices.

    Shape: one (D_i, k) float32 tensor per entry of ``dims``.
    """
    blocks = []
    for i, d in enumerate(dims):
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        blocks.append(torch.randn(d, k, generator=g) / math.sqrt(k))
    return blocks


def project_taps(taps: Sequence[torch.Tensor], blocks: Sequence[torch.Tensor]) -> torch.Tensor:
    """JL embedding of VGG taps: ``sum_i (tap_i / sqrt(numel_i)) @ R_i``.

    Shape: taps (B, C_i, H_i, W_i), blocks (C_i * H_i * W_i, k) -> (B, k) float32.
    """
    if len(taps) != len(blocks):
        raise ValueError(f"{len(taps)} taps but {len(blocks)} projection blocks")
    y = None
    for tap, block in zip(taps, blocks, strict=True):
        flat = tap.flatten(1).float() / math.sqrt(tap[0].numel())  # (B, D_i), Eq. (9) mean scaling
        if flat.shape[1] != block.shape[0]:
            raise ValueError(f"tap of {flat.shape[1]} elements, projection block {block.shape[0]}")
        part = flat @ block  # (B, k)
        y = part if y is None else y + part
    assert y is not None
    return y


class JLEmbedder(nn.Module):
    """Resize, encode and project images: the float JL embedding of Eq. (9) at ``size``.

    Args:
        encoder: the fixed VGG encoder.
        size: side every image is resized to (aspect ratio ignored, as in the exact index).
        dim: k, the embedding dimensions.
        seed: seed of the projection.
    """

    def __init__(self, encoder: VGGEncoder, size: int, dim: int, seed: int) -> None:
        super().__init__()
        if not 1 <= dim <= MAX_DIM:
            raise ValueError(f"embedding dim must be in [1, {MAX_DIM}], got {dim}")
        self.encoder = encoder
        self.size = size
        self.dim = dim
        blocks = gaussian_projection(tap_dims(encoder, size), dim, seed)
        for i, block in enumerate(blocks):
            self.register_buffer(f"block{i}", block, persistent=False)

    def blocks(self) -> list[torch.Tensor]:
        return [getattr(self, f"block{i}") for i in range(4)]

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: (B, 3, H, W) RGB in [0, 1] -> (B, dim) float32."""
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, (self.size, self.size), mode="bilinear", antialias=True)
        return project_taps(self.encoder.taps(x), self.blocks())


def calibrate_scale(y: torch.Tensor) -> float:
    """Power-of-two quantisation step so that ``max|y|`` is at most ``CALIBRATED_MAX`` units.

    Shape: (B, k) -> float.
    """
    peak = float(y.abs().max()) if y.numel() else 0.0
    if not math.isfinite(peak):
        raise ValueError("non-finite embedding values: check the encoder weights")
    if peak == 0.0:
        return 1.0
    return 2.0 ** math.ceil(math.log2(peak / CALIBRATED_MAX))


def quantize(y: torch.Tensor, scale: float) -> tuple[torch.Tensor, int]:
    """int16 embedding ``round(y / scale)`` saturated at +-32767, and the count of saturated values.

    Shape: (B, k) -> (B, k) int16.
    """
    q = torch.round(y.float() / scale)
    clipped = int((q.abs() > INT16_MAX).sum())
    return q.clamp(-INT16_MAX, INT16_MAX).to(torch.int16), clipped


def exact_sq_distances(
    qa: torch.Tensor, qb: torch.Tensor, nb: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared L2 distances between int16 embeddings, exact, in integer units (Eq. (9) / scale^2).

    float64 holds every intermediate value exactly (products < 2^30, sums < 2^44 for k <= 8192),
    so the result does not depend on the summation order, the blocking or the device.

    Args:
        qa: (B, k) integer-valued embeddings (int16, or float64 already converted).
        qb: (N, k) the same.
        nb: (N,) float64 squared norms of ``qb``, when the caller computed them once.

    Shape: (B, k), (N, k) integer-valued -> (B, N) float64.
    """
    if qa.ndim != 2 or qb.ndim != 2 or qa.shape[1] != qb.shape[1]:
        raise ValueError(f"expected (B, k) and (N, k), got {tuple(qa.shape)}, {tuple(qb.shape)}")
    if qa.shape[1] > MAX_DIM:
        raise ValueError(f"k = {qa.shape[1]} > {MAX_DIM}: float64 distances would not be exact")
    a, b = qa.double(), qb.double()  # no copy when already float64
    na = (a * a).sum(1)  # (B,)
    if nb is None:
        nb = (b * b).sum(1)  # (N,)
    return na[:, None] + nb[None, :] - 2.0 * (a @ b.T)


def pair_sq_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Squared distance of two int16 embeddings in int64 (equals :func:`exact_sq_distances`)."""
    diff = a.astype(np.int64) - b.astype(np.int64)
    return int(diff @ diff)


def rows_sq_distances(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Squared distances of one int16 embedding to many, int64, exact.

    Shape: (k,), (n, k) -> (n,).
    """
    diff = rows.astype(np.int64) - a.astype(np.int64)[None, :]
    return np.einsum("nk,nk->n", diff, diff)


def encoder_fingerprint(encoder: VGGEncoder) -> str:
    """sha256 of the encoder's layout, convention, padding and weights (index compatibility)."""
    digest = hashlib.sha256()
    cfg = encoder.config
    conv = encoder.convs[next(iter(encoder.convs))]
    assert isinstance(conv, nn.Conv2d)
    digest.update(f"{cfg.widths}{cfg.depths}{encoder.convention}{conv.padding_mode}".encode())
    for name, tensor in sorted(encoder.convs.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


__all__ = [
    "JLEmbedder",
    "calibrate_scale",
    "encoder_fingerprint",
    "exact_sq_distances",
    "gaussian_projection",
    "pair_sq_distance",
    "project_taps",
    "quantize",
    "rows_sq_distances",
    "tap_dims",
]
