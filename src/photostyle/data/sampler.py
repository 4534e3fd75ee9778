"""Automatic content / style / similar-content sampling (paper Sec. III-F, Eqs. (10)-(11)).

Given perceptual distances ``A`` (Eq. (9)) and class labels, each content image ``I_c`` gets:

- ``T1^c``: the distance that keeps the ``t1`` most similar fraction of ``I_c``'s own class
  ("top 50% inside"); ``{I_w^c}`` = same class, ``A <= T1^c`` (Eq. (10)). The similar-content image
  ``I_t`` is drawn from it.
- ``T2^c``: the distance that keeps the ``t2`` most similar fraction of the other classes
  ("top 10% outside"); ``{I_gamma^c}`` = same class with ``A > T1^c``, plus other classes with
  ``A <= T2^c`` (Eq. (11)). The style image ``I_s`` is drawn from it.

Degenerate cases never crash: a class with a single image has an empty ``{I_w^c}`` and uses ``I_c``
itself as ``I_t``; an empty ``{I_gamma^c}`` falls back to every other image (or ``I_c`` if M = 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass(frozen=True)
class SamplingConfig:
    """Thresholds of the automatic sampling, as fractions (paper Table IV)."""

    t1: float = 0.5  # T1: top fraction of same-class images (most similar) forming {I_w^c}
    t2: float = 0.1  # T2: top fraction of other-class images (most similar) added to {I_gamma^c}

    def __post_init__(self) -> None:
        if not (0.0 < self.t1 <= 1.0 and 0.0 < self.t2 <= 1.0):
            raise ValueError(f"t1 and t2 must be in (0, 1], got {self.t1}, {self.t2}")


class Sampler(Protocol):
    """What the training data needs from a sampler: ``draw`` (row triplets) and ``len``."""

    def __len__(self) -> int: ...

    def draw(self, generator: torch.Generator) -> tuple[int, int, int]: ...


def kth_smallest_threshold(values: torch.Tensor, fraction: float) -> torch.Tensor:
    """Distance of the ``ceil(fraction * n)``-th most similar value; -inf for an empty set.

    Shape: (n,) -> scalar.
    """
    n = values.numel()
    if n == 0:
        return values.new_tensor(float("-inf"))
    k = max(1, math.ceil(fraction * n))
    return values.kthvalue(k).values


def thresholds(
    distances: torch.Tensor, labels: torch.Tensor, config: SamplingConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image thresholds T1^c and T2^c (Eqs. (10)-(11)) from a full distance matrix.

    Args:
        distances: (M, M) perceptual distances A (Eq. (9)).
        labels: (M,) int64 class labels.
        config: the fractions t1, t2.

    Returns:
        (T1, T2), each (M,); -inf where the defining set is empty.
    """
    m = distances.shape[0]
    if distances.shape != (m, m) or labels.shape != (m,):
        raise ValueError(f"distances {tuple(distances.shape)} / labels {tuple(labels.shape)}")
    t1 = torch.empty(m, dtype=distances.dtype)
    t2 = torch.empty(m, dtype=distances.dtype)
    for c in range(m):
        same = labels == labels[c]
        same[c] = False
        t1[c] = kth_smallest_threshold(distances[c][same], config.t1)
        t2[c] = kth_smallest_threshold(distances[c][labels != labels[c]], config.t2)
    return t1, t2


class TripletSampler:
    """Draw (I_c, I_s, I_t) index triplets following Eqs. (10)-(11).

    Args:
        distances: (M, M) perceptual distances A (Eq. (9)); symmetric, any float dtype (kept
            in float64 if given so, else float32).
        labels: (M,) int64 class labels.
        config: sampling thresholds.
    """

    def __init__(
        self, distances: torch.Tensor, labels: torch.Tensor, config: SamplingConfig | None = None
    ) -> None:
        # float64 stays float64 (exact integer distances of the embedding index); others -> float32
        self.distances = distances if distances.dtype == torch.float64 else distances.float()
        self.labels = labels.long()
        self.config = config or SamplingConfig()
        self.t1, self.t2 = thresholds(self.distances, self.labels, self.config)

    def __len__(self) -> int:
        return self.labels.numel()

    def similar_set(self, c: int) -> torch.Tensor:
        """Indices of {I_w^c} (Eq. (10)), excluding c. Shape: (k,) int64."""
        row = self.distances[c]
        mask = (self.labels == self.labels[c]) & (row <= self.t1[c])
        mask[c] = False
        return mask.nonzero().flatten()

    def style_set(self, c: int) -> torch.Tensor:
        """Indices of {I_gamma^c} (Eq. (11)). Shape: (k,) int64."""
        row = self.distances[c]
        same = self.labels == self.labels[c]
        mask = (same & (row > self.t1[c])) | (~same & (row <= self.t2[c]))
        mask[c] = False
        return mask.nonzero().flatten()

    def draw(self, generator: torch.Generator) -> tuple[int, int, int]:
        """One triplet (content, style, similar content) of dataset indices."""
        m = len(self)
        c = int(torch.randint(0, m, (), generator=generator))
        similar = self.similar_set(c)
        styles = self.style_set(c)
        if styles.numel() == 0:  # tiny or single-class data: any other image
            styles = torch.tensor([i for i in range(m) if i != c] or [c])
        t = c if similar.numel() == 0 else int(similar[_randint(similar.numel(), generator)])
        s = int(styles[_randint(styles.numel(), generator)])
        return c, s, t


def _randint(n: int, generator: torch.Generator) -> int:
    return int(torch.randint(0, n, (), generator=generator))
