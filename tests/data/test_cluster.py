"""Tests of the seeded k-means that gives unlabelled photos their classes."""

from __future__ import annotations

import pytest
import torch

from photostyle.data.cluster import kmeans


def _blobs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three well separated Gaussian blobs of 30, 20 and 10 points in 8-D, shuffled."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0] * 8, [50.0] * 8, [-50.0] + [0.0] * 7])
    truth = torch.cat([torch.full((n,), c) for c, n in enumerate((30, 20, 10))])
    perm = torch.randperm(60, generator=g)
    truth = truth[perm]
    return centres[truth] + torch.randn(60, 8, generator=g), truth


def _same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to renaming the clusters."""
    return bool(((a[:, None] == a[None]) == (b[:, None] == b[None])).all())


def test_recovers_separated_clusters():
    points, truth = _blobs()
    result = kmeans(points, 3, seed=0, chunk=7)
    assert result.labels.shape == (60,) and result.labels.dtype == torch.int64
    assert _same_partition(result.labels, truth)
    assert result.centroids.shape == (3, 8)
    for c in range(3):  # each centroid is its cluster's mean
        torch.testing.assert_close(result.centroids[c], points[result.labels == c].double().mean(0))
    within = sum(
        float(((points[result.labels == c].double() - result.centroids[c]) ** 2).sum())
        for c in range(3)
    )
    assert result.inertia == pytest.approx(within)


def test_int16_points_and_determinism():
    points, truth = _blobs(1)
    q = (points * 100).round().to(torch.int16)
    a, b = kmeans(q, 3, seed=5), kmeans(q, 3, seed=5)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.centroids, b.centroids)
    assert _same_partition(a.labels, truth)


def test_k_equal_to_one_and_to_n():
    points, _ = _blobs()
    one = kmeans(points, 1)
    assert (one.labels == 0).all()
    torch.testing.assert_close(one.centroids[0], points.double().mean(0))
    each = kmeans(points[:5], 5)
    assert sorted(each.labels.tolist()) == [0, 1, 2, 3, 4]
    assert each.inertia == pytest.approx(0.0, abs=1e-9)


def test_duplicate_points_leave_no_cluster_empty_when_avoidable():
    points = torch.tensor([[0.0, 0.0]] * 4 + [[10.0, 0.0]] * 3 + [[0.0, 10.0]])
    result = kmeans(points, 3, seed=0)
    assert _same_partition(result.labels, torch.tensor([0] * 4 + [1] * 3 + [2]))


def test_rejects_bad_k():
    with pytest.raises(ValueError, match="k"):
        kmeans(torch.zeros(3, 2), 4)
    with pytest.raises(ValueError, match="k"):
        kmeans(torch.zeros(3, 2), 0)
    with pytest.raises(ValueError, match="points"):
        kmeans(torch.zeros(3), 1)
