"""Eqs. (10)-(11) at scale: chunked per-image thresholds and a sampler that never holds M x M.

Works on int16 JL embeddings (:mod:`photostyle.data.embed`), whose squared distances are computed
exactly; the subsets are defined as in :mod:`photostyle.data.sampler` (same ``ceil(fraction * n)``
rule, same ties, same degenerate cases) on those distances, and only valid (readable) rows take
part.

Thresholds (:func:`chunked_thresholds`): rows are grouped by class; a block of ``b`` rows of one
class gets its distances to all N valid rows, ``(b, N)`` float64 computed in column chunks; T1^c is
a ``kthvalue`` over the block's own-class columns (self excluded), T2^c one over the other columns.
Cost: O(N^2 k) multiply-adds and O(N^2) selection work, exact; memory O(b N + N k), with ``b``
chosen so a block stays within ``max_bytes``. The set sizes |{I_w^c}|, |same-class part of
{I_gamma^c}| and |other-class part of {I_gamma^c}| are counted on the way.

Draws (:class:`IndexSampler`): I_c uniform over valid rows; I_t and I_s by rejection: a uniform
candidate of the right class range (same class without I_c, or the other classes), its distance to
I_c computed from the two embeddings, accepted if it is in the set. The set sizes are known, so the
acceptance rate p is known; after ``ceil(tries_factor / p)`` rejections (probability about
``exp(-tries_factor)``) the draw falls back to a scan in chunks that picks the r-th member for a
uniform r. Either way the draw is uniform over the exact set, with O(1) memory per draw (O(chunk) in
the fallback). The sampler itself holds O(M) integers (class order, thresholds, set sizes) and reads
embeddings from a memory map.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from photostyle.data.embed import exact_sq_distances, pair_sq_distance, rows_sq_distances
from photostyle.data.sampler import SamplingConfig

NO_SET = float("-inf")  # threshold of an empty defining set (as kth_smallest_threshold)


@dataclass
class Thresholds:
    """Per-row thresholds of Eqs. (10)-(11) and the sizes of the sets they define (all (M,))."""

    t1: torch.Tensor  # float64 T1^c in embedding units; -inf: no other image in the class / invalid
    t2: torch.Tensor  # float64 T2^c; -inf: no image in other classes / invalid row
    n_similar: torch.Tensor  # int64 |{I_w^c}| (Eq. (10))
    n_style_same: torch.Tensor  # int64 same-class members of {I_gamma^c} (A > T1^c)
    n_style_other: torch.Tensor  # int64 other-class members of {I_gamma^c} (A <= T2^c)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            "t1": self.t1,
            "t2": self.t2,
            "n_similar": self.n_similar,
            "n_style_same": self.n_style_same,
            "n_style_other": self.n_style_other,
        }


Ranges = dict[int, tuple[int, int]]  # label -> [start, end) of its rows in the class order


def class_order(labels: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, Ranges]:
    """Valid rows sorted by (label, row), and each label's ``[start, end)`` range in that order."""
    rows = np.flatnonzero(valid)
    rows = rows[np.argsort(labels[rows], kind="stable")]
    ranges: Ranges = {}
    sorted_labels = labels[rows]
    for lab in np.unique(sorted_labels):
        lo = int(np.searchsorted(sorted_labels, lab, "left"))
        hi = int(np.searchsorted(sorted_labels, lab, "right"))
        ranges[int(lab)] = (lo, hi)
    return rows, ranges


def _kth(values: torch.Tensor, fraction: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``ceil(fraction * n)``-th smallest value and the count of values <= it.

    Columns beyond the ``n`` real values of a row must hold +inf (they are never selected).

    Shape: (b, >= n) -> (b,), (b,); -inf and 0 when n = 0.
    """
    b = values.shape[0]
    if n == 0:
        return values.new_full((b,), NO_SET), values.new_zeros(b, dtype=torch.long)
    k = max(1, math.ceil(fraction * n))  # as kth_smallest_threshold
    kth = values.kthvalue(k, dim=1).values  # (b,)
    return kth, (values <= kth[:, None]).sum(1)


@torch.inference_mode()
def chunked_thresholds(
    embeddings: np.ndarray | torch.Tensor,
    labels: np.ndarray,
    valid: np.ndarray,
    config: SamplingConfig,
    *,
    device: torch.device | str = "cpu",
    max_bytes: int = 512 * 2**20,
    on_rows: Callable[[int], None] | None = None,
) -> Thresholds:
    """T1^c, T2^c of Eqs. (10)-(11) for every valid row, exact, without an M x M matrix.

    Args:
        embeddings: (M, k) int16 embeddings (a memory map is fine: rows are read once).
        labels: (M,) int64 class labels.
        valid: (M,) bool, rows that take part (readable images).
        config: the fractions t1, t2.
        device: where the distances are computed.
        max_bytes: memory for one block of distances (sets the number of rows per block); the
            float64 copy of the embeddings takes another 8 N k bytes (about 4 GiB for a million
            images at k = 512).
        on_rows: called with the number of rows done after each block (progress bars).

    Returns:
        The thresholds in embedding units (Eq. (9) / scale^2) and the set sizes.
    """
    m = len(labels)
    if embeddings.ndim != 2 or embeddings.shape[0] != m or valid.shape != (m,):
        shapes = f"embeddings {tuple(embeddings.shape)}, labels ({m},), valid {valid.shape}"
        raise ValueError(f"shapes do not match: {shapes}")
    out = Thresholds(
        t1=torch.full((m,), NO_SET, dtype=torch.float64),
        t2=torch.full((m,), NO_SET, dtype=torch.float64),
        n_similar=torch.zeros(m, dtype=torch.long),
        n_style_same=torch.zeros(m, dtype=torch.long),
        n_style_other=torch.zeros(m, dtype=torch.long),
    )
    rows, ranges = class_order(labels, valid)
    n = len(rows)
    if n == 0:
        return out
    ascending = np.sort(rows)  # read the (memory-mapped) rows once, in file order
    emb16 = torch.as_tensor(np.asarray(embeddings[ascending]))  # (N, k) int16
    order = torch.as_tensor(np.searchsorted(ascending, rows))
    # One float64 copy (8 N k bytes) and its norms, converted once: converting every column for
    # every block would cost as much as the distances themselves once blocks shrink (large N).
    emb = emb16[order].to(device).double()  # (N, k), class order, exact integers
    del emb16
    norms = (emb * emb).sum(1)  # (N,)
    block_rows = max(1, max_bytes // (3 * 8 * n))  # distances, own-class copy, other-class copy
    rows_t = torch.as_tensor(rows)
    for lo, hi in ranges.values():
        for start in range(lo, hi, block_rows):
            stop = min(hi, start + block_rows)
            dist = exact_sq_distances(emb[start:stop], emb, norms)  # (b, N), Eq. (9) / scale^2
            same = dist[:, lo:hi].clone()  # (b, n_c)
            same[torch.arange(stop - start), torch.arange(start - lo, stop - lo)] = math.inf
            t1, n_sim = _kth(same, config.t1, hi - lo - 1)  # Eq. (10), own class without I_c
            other = torch.cat([dist[:, :lo], dist[:, hi:]], dim=1)  # (b, N - n_c)
            t2, n_oth = _kth(other, config.t2, n - (hi - lo))  # Eq. (11), other classes
            idx = rows_t[start:stop]
            out.t1[idx] = t1.cpu()
            out.t2[idx] = t2.cpu()
            out.n_similar[idx] = n_sim.cpu()
            out.n_style_same[idx] = (hi - lo - 1) - n_sim.cpu()
            out.n_style_other[idx] = n_oth.cpu()
            if on_rows is not None:
                on_rows(stop - start)
    return out


def _randint(n: int, generator: torch.Generator) -> int:
    return int(torch.randint(0, n, (), generator=generator))


class IndexSampler:
    """Draw (I_c, I_s, I_t) row triplets by Eqs. (10)-(11) from embeddings and their thresholds.

    Same interface as :class:`~photostyle.data.sampler.TripletSampler` (``draw``, ``similar_set``,
    ``style_set``); rows that are not valid are never drawn.

    Args:
        embeddings: (M, k) int16 embeddings; a ``np.memmap`` is pickled as its file name, so
            DataLoader workers reopen it instead of copying it.
        labels: (M,) int64 class labels.
        valid: (M,) bool, rows that take part.
        thresholds: from :func:`chunked_thresholds` on the same embeddings, labels and rows.
        tries_factor: rejection tries before the exact fallback, in units of the expected number
            of tries (the fallback runs with probability about ``exp(-tries_factor)``).
        chunk: rows per step of the fallback scan.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        labels: np.ndarray,
        valid: np.ndarray,
        thresholds: Thresholds,
        *,
        tries_factor: float = 32.0,
        chunk: int = 65536,
    ) -> None:
        m = embeddings.shape[0]
        if embeddings.ndim != 2 or labels.shape != (m,) or valid.shape != (m,):
            shapes = f"embeddings {embeddings.shape}, labels {labels.shape}, valid {valid.shape}"
            raise ValueError(f"shapes do not match: {shapes}")
        self.embeddings = embeddings
        self.labels = np.asarray(labels, dtype=np.int64)
        self.valid = np.asarray(valid, dtype=bool)
        self.rows, ranges = class_order(self.labels, self.valid)  # (N,) valid rows, class order
        self.position = np.full(len(self.labels), -1, dtype=np.int64)  # row -> place in self.rows
        self.position[self.rows] = np.arange(len(self.rows))
        self.ranges = ranges
        self.t1 = thresholds.t1.numpy()
        self.t2 = thresholds.t2.numpy()
        self.n_similar = thresholds.n_similar.numpy()
        self.n_style_same = thresholds.n_style_same.numpy()
        self.n_style_other = thresholds.n_style_other.numpy()
        self.tries_factor = tries_factor
        self.chunk = chunk

    def __len__(self) -> int:
        """Number of rows that can be drawn."""
        return len(self.rows)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if isinstance(self.embeddings, np.memmap) and self.embeddings.filename is not None:
            state["embeddings"] = Path(self.embeddings.filename)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["embeddings"], Path):
            state["embeddings"] = np.load(state["embeddings"], mmap_mode="r")
        self.__dict__.update(state)

    # --- candidate ranges: (number of candidates, map from candidate number to row) --------------

    def _same(self, c: int) -> tuple[int, Callable[[int], int]]:
        lo, hi = self.ranges[int(self.labels[c])]
        skip = int(self.position[c])  # I_c itself is not a candidate

        def row(j: int) -> int:
            p = lo + j
            return int(self.rows[p + 1 if p >= skip else p])

        return hi - lo - 1, row

    def _other(self, c: int) -> tuple[int, Callable[[int], int]]:
        lo, hi = self.ranges[int(self.labels[c])]

        def row(j: int) -> int:
            return int(self.rows[j if j < lo else j + hi - lo])

        return len(self.rows) - (hi - lo), row

    def _accept_similar(self, c: int, d: np.ndarray) -> np.ndarray:
        return d <= self.t1[c]  # Eq. (10)

    def _accept_style_same(self, c: int, d: np.ndarray) -> np.ndarray:
        return d > self.t1[c]  # Eq. (11), same class

    def _accept_style_other(self, c: int, d: np.ndarray) -> np.ndarray:
        return d <= self.t2[c]  # Eq. (11), other classes

    def _scan(self, c: int, part: str) -> Iterator[np.ndarray]:
        """Members of one part of a set, chunk by chunk, in class order. Memory: O(chunk)."""
        lo, hi = self.ranges[int(self.labels[c])]
        segments = [self.rows[:lo], self.rows[hi:]] if part == "style_other" else [self.rows[lo:hi]]
        accept = getattr(self, f"_accept_{part}")
        emb_c = self.embeddings[c]
        for segment in segments:
            for start in range(0, len(segment), self.chunk):
                cand = segment[start : start + self.chunk]
                cand = cand[cand != c]
                yield cand[accept(c, rows_sq_distances(emb_c, self.embeddings[cand]))]

    def _members(self, c: int, part: str) -> np.ndarray:
        """All members of one part of a set. Shape: (n,) int64."""
        return np.concatenate([np.zeros(0, np.int64), *self._scan(c, part)])

    def _pick(self, c: int, part: str, count: int, generator: torch.Generator) -> int:
        """A uniform member of one part of a set of known size ``count`` > 0."""
        n, row = self._same(c) if part != "style_other" else self._other(c)
        accept = getattr(self, f"_accept_{part}")
        emb_c = self.embeddings[c]
        for _ in range(math.ceil(self.tries_factor * n / count)):  # rejection sampling
            k = row(_randint(n, generator))
            if accept(c, np.int64(pair_sq_distance(emb_c, self.embeddings[k]))):
                return k
        r = _randint(count, generator)  # exact fallback: the r-th member of a scan
        for members in self._scan(c, part):
            if r < len(members):
                return int(members[r])
            r -= len(members)
        raise RuntimeError(f"row {c}: fewer {part} members than counted (stale thresholds?)")

    # --- the sets and the draw --------------------------------------------------------------------

    def similar_set(self, c: int) -> torch.Tensor:
        """Rows of {I_w^c} (Eq. (10)), excluding c, by a scan. Shape: (k,) int64."""
        if not self.valid[c]:
            return torch.zeros(0, dtype=torch.long)
        return torch.as_tensor(np.sort(self._members(c, "similar")))

    def style_set(self, c: int) -> torch.Tensor:
        """Rows of {I_gamma^c} (Eq. (11)), by a scan. Shape: (k,) int64."""
        if not self.valid[c]:
            return torch.zeros(0, dtype=torch.long)
        parts = [self._members(c, "style_same"), self._members(c, "style_other")]
        return torch.as_tensor(np.sort(np.concatenate(parts)))

    def draw(self, generator: torch.Generator) -> tuple[int, int, int]:
        """One triplet (content, style, similar content) of row indices.

        A class of one image uses I_c as I_t; an empty {I_gamma^c} falls back to any other valid
        row (or I_c when it is the only one), as the brute-force sampler does.
        """
        if len(self.rows) == 0:
            raise ValueError("no valid image to sample from")
        c = int(self.rows[_randint(len(self.rows), generator)])
        n_sim = int(self.n_similar[c])
        t = c if n_sim == 0 else self._pick(c, "similar", n_sim, generator)
        n_same, n_other = int(self.n_style_same[c]), int(self.n_style_other[c])
        if n_same + n_other == 0:  # tiny or single-class data: any other image
            if len(self.rows) == 1:
                return c, c, t
            j = _randint(len(self.rows) - 1, generator)
            s = int(self.rows[j + 1 if j >= self.position[c] else j])
        elif _randint(n_same + n_other, generator) < n_same:
            s = self._pick(c, "style_same", n_same, generator)
        else:
            s = self._pick(c, "style_other", n_other, generator)
        return c, s, t


__all__ = ["IndexSampler", "Thresholds", "chunked_thresholds", "class_order"]
