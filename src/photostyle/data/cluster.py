"""Seeded k-means (k-means++ start, Lloyd iterations) for classes of unlabelled photos.

Eqs. (10)-(11) need a class per image; for a folder without classes the classes are clusters of the
perceptual embeddings, whose squared distances approximate Eq. (9) (:mod:`photostyle.data.embed`).
Points are processed in chunks, so memory is O(chunk * k + n) beyond the points themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class KMeansResult:
    """Cluster of every point and the centroids."""

    labels: torch.Tensor  # (N,) int64 cluster of each point
    centroids: torch.Tensor  # (k, D) float64
    inertia: float  # sum of squared distances of the points to their centroids
    iterations: int  # Lloyd iterations run


def _nearest(
    points: torch.Tensor, centroids: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of each point and the squared distance to it.

    Shape: (N, D), (k, D) -> (N,), (N,).
    """
    labels, dists = [], []
    cn = (centroids * centroids).sum(1)  # (k,)
    for start in range(0, points.shape[0], chunk):
        x = points[start : start + chunk].double()  # (b, D)
        d = (x * x).sum(1, keepdim=True) + cn[None] - 2.0 * (x @ centroids.T)  # (b, k)
        best = d.min(1)
        labels.append(best.indices)
        dists.append(best.values.clamp_min(0))
    return torch.cat(labels), torch.cat(dists)


@torch.inference_mode()
def kmeans(
    points: torch.Tensor,
    k: int,
    *,
    seed: int = 0,
    iters: int = 100,
    chunk: int = 16384,
) -> KMeansResult:
    """Cluster ``points`` into ``k`` groups.

    k-means++ seeding with a seeded generator, then Lloyd iterations until no label changes (or
    ``iters``). An emptied cluster is moved to the point farthest from its centroid. Deterministic
    for a given seed.

    Args:
        points: (N, D) points, any real dtype (int16 embeddings are fine).
        k: number of clusters, 1 <= k <= N.
        seed: seed of the k-means++ draws.
        iters: maximum number of Lloyd iterations.
        chunk: points per distance block.
    """
    n = points.shape[0]
    if points.ndim != 2 or not 1 <= k <= n:
        raise ValueError(f"need (N, D) points and 1 <= k <= N, got {tuple(points.shape)}, k={k}")
    g = torch.Generator().manual_seed(seed)
    first = int(torch.randint(0, n, (), generator=g))
    centroids = points[first : first + 1].double()  # (1, D)
    _, d2 = _nearest(points, centroids, chunk)
    for _ in range(1, k):  # k-means++: next centre with probability proportional to d^2
        total = float(d2.sum())
        nxt = int(torch.multinomial(d2 / total, 1, generator=g)) if total > 0 else len(centroids)
        centroids = torch.cat([centroids, points[nxt : nxt + 1].double()])
        _, d_new = _nearest(points, centroids[-1:], chunk)
        d2 = torch.minimum(d2, d_new)
    labels = torch.full((n,), -1, dtype=torch.long)
    iterations = 0
    while iterations < iters:
        iterations += 1
        new_labels, d2 = _nearest(points, centroids, chunk)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
        sums = torch.zeros_like(centroids)
        for start in range(0, n, chunk):
            part = points[start : start + chunk].double()  # (b, D)
            sums.index_add_(0, labels[start : start + chunk], part)
        counts = torch.bincount(labels, minlength=k)
        for empty in (counts == 0).nonzero().flatten().tolist():
            far = int(d2.argmax())  # the worst-served point founds the empty cluster
            sums[empty], counts[empty], d2[far] = points[far].double(), 1, 0.0
        centroids = sums / counts[:, None].double()
    labels, d2 = _nearest(points, centroids, chunk)
    return KMeansResult(labels, centroids, float(d2.sum()), iterations)


__all__ = ["KMeansResult", "kmeans"]
