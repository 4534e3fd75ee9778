"""Tests of the automatic content / style / similar-content sampling (paper Eqs. (10)-(11))."""

from __future__ import annotations

import math

import pytest
import torch

from photostyle.data.sampler import (
    SamplingConfig,
    TripletSampler,
    kth_smallest_threshold,
    thresholds,
)

# Six images, two classes (0, 1, 2 | 3, 4, 5), all off-diagonal distances distinct.
A6 = torch.tensor(
    [
        [0.0, 1.0, 4.0, 7.0, 3.0, 9.0],
        [1.0, 0.0, 2.0, 5.0, 8.0, 6.0],
        [4.0, 2.0, 0.0, 10.0, 11.0, 12.0],
        [7.0, 5.0, 10.0, 0.0, 13.0, 14.0],
        [3.0, 8.0, 11.0, 13.0, 0.0, 15.0],
        [9.0, 6.0, 12.0, 14.0, 15.0, 0.0],
    ]
)
L6 = torch.tensor([0, 0, 0, 1, 1, 1])


def _random_problem(sizes: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric random distances (zero diagonal) and labels for classes of the given sizes."""
    g = torch.Generator().manual_seed(seed)
    m = sum(sizes)
    a = torch.rand(m, m, generator=g)
    a = a + a.T
    a.fill_diagonal_(0)
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(sizes)])
    return a, labels


def _brute_sets(
    a: torch.Tensor, labels: torch.Tensor, t1: float, t2: float
) -> tuple[list[set[int]], list[set[int]]]:
    """{I_w^c} and {I_gamma^c} of every c, written out with sorted lists (no kthvalue)."""
    m = len(labels)
    similar, style = [], []
    for c in range(m):
        same = [j for j in range(m) if j != c and labels[j] == labels[c]]
        other = [j for j in range(m) if labels[j] != labels[c]]
        same_d = sorted(float(a[c, j]) for j in same)
        other_d = sorted(float(a[c, j]) for j in other)
        thr1 = same_d[max(1, math.ceil(t1 * len(same_d))) - 1] if same_d else -math.inf
        thr2 = other_d[max(1, math.ceil(t2 * len(other_d))) - 1] if other_d else -math.inf
        similar.append({j for j in same if a[c, j] <= thr1})
        style.append({j for j in same if a[c, j] > thr1} | {j for j in other if a[c, j] <= thr2})
    return similar, style


# --- thresholds ------------------------------------------------------------------------------


def test_kth_smallest_threshold():
    v = torch.tensor([5.0, 1.0, 3.0, 2.0])
    assert kth_smallest_threshold(v, 0.5).item() == 2.0  # ceil(0.5 * 4) = 2nd smallest
    assert kth_smallest_threshold(v, 0.6).item() == 3.0  # ceil(2.4) = 3rd
    assert kth_smallest_threshold(v, 0.01).item() == 1.0  # at least one value is kept
    assert kth_smallest_threshold(v, 1.0).item() == 5.0
    assert kth_smallest_threshold(torch.empty(0), 0.5).item() == -math.inf


def test_thresholds_hand_computed():
    # t1 = 0.5 of 2 same-class images keeps ceil(1) = 1; t2 = 0.5 of 3 others keeps ceil(1.5) = 2.
    t1, t2 = thresholds(A6, L6, SamplingConfig(t1=0.5, t2=0.5))
    assert t1.tolist() == [1.0, 1.0, 2.0, 13.0, 13.0, 14.0]
    assert t2.tolist() == [7.0, 6.0, 11.0, 7.0, 8.0, 9.0]
    # t2 = 0.1 keeps only the nearest other-class image; t1 = 1.0 keeps the whole class.
    t1, t2 = thresholds(A6, L6, SamplingConfig(t1=1.0, t2=0.1))
    assert t1.tolist() == [4.0, 2.0, 4.0, 14.0, 15.0, 15.0]
    assert t2.tolist() == [3.0, 5.0, 10.0, 5.0, 3.0, 6.0]


def test_sets_hand_computed():
    sampler = TripletSampler(A6, L6, SamplingConfig(t1=0.5, t2=0.5))
    similar = [set(sampler.similar_set(c).tolist()) for c in range(6)]
    style = [set(sampler.style_set(c).tolist()) for c in range(6)]
    assert similar == [{1}, {0}, {1}, {4}, {3}, {3}]
    assert style == [{2, 3, 4}, {2, 3, 5}, {0, 3, 4}, {5, 0, 1}, {5, 0, 1}, {4, 0, 1}]


def test_sets_match_brute_force_on_random_data():
    a, labels = _random_problem([5, 1, 7, 4], seed=3)
    for t1, t2 in [(0.5, 0.1), (0.3, 0.4), (1.0, 1.0), (0.01, 0.01)]:
        sampler = TripletSampler(a, labels, SamplingConfig(t1=t1, t2=t2))
        similar, style = _brute_sets(a, labels, t1, t2)
        for c in range(len(labels)):
            assert set(sampler.similar_set(c).tolist()) == similar[c]
            assert set(sampler.style_set(c).tolist()) == style[c]
            assert c not in similar[c] | style[c]
            n_same = int((labels == labels[c]).sum()) - 1
            if n_same:  # the fraction t1 of the own class is similar content, the rest style
                assert len(similar[c]) == max(1, math.ceil(t1 * n_same))


def test_thresholds_reject_bad_shapes():
    with pytest.raises(ValueError):
        thresholds(A6, L6[:5], SamplingConfig())
    with pytest.raises(ValueError):
        thresholds(A6[:, :5], L6, SamplingConfig())


@pytest.mark.parametrize(("t1", "t2"), [(0.0, 0.1), (0.5, 0.0), (1.5, 0.1), (0.5, -0.1)])
def test_config_rejects_fractions_outside_0_1(t1: float, t2: float):
    with pytest.raises(ValueError, match="t1 and t2"):
        SamplingConfig(t1=t1, t2=t2)


# --- draws -----------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [SamplingConfig(0.5, 0.5), SamplingConfig(0.5, 0.1)])
def test_draws_follow_eqs_10_11_and_cover_every_allowed_member(config: SamplingConfig):
    sampler = TripletSampler(A6, L6, config)
    similar, style = _brute_sets(A6, L6, config.t1, config.t2)
    g = torch.Generator().manual_seed(0)
    seen_t, seen_s = set(), set()
    for _ in range(1500):
        c, s, t = sampler.draw(g)
        assert t in similar[c]
        assert s in style[c]
        seen_t.add((c, t))
        seen_s.add((c, s))
    assert seen_t == {(c, t) for c in range(6) for t in similar[c]}
    assert seen_s == {(c, s) for c in range(6) for s in style[c]}


def test_single_image_class_uses_content_as_similar_image():
    a, labels = _random_problem([3, 1], seed=1)  # image 3 is alone in its class
    sampler = TripletSampler(a, labels)
    assert sampler.t1[3].item() == -math.inf
    assert sampler.similar_set(3).numel() == 0
    assert set(sampler.style_set(3).tolist()) <= {0, 1, 2}
    g = torch.Generator().manual_seed(0)
    drawn = [sampler.draw(g) for _ in range(200)]
    alone = [(c, s, t) for c, s, t in drawn if c == 3]
    assert alone  # the single image was drawn as content
    for c, s, t in alone:
        assert t == c
        assert s in {0, 1, 2}


def test_single_class_falls_back_to_every_other_image():
    # One class of two images: {I_w} = the other image, {I_gamma} empty -> any other image.
    a = torch.tensor([[0.0, 2.0], [2.0, 0.0]])
    sampler = TripletSampler(a, torch.tensor([0, 0]))
    assert sampler.style_set(0).numel() == 0
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        c, s, t = sampler.draw(g)
        assert s == t == 1 - c


def test_one_image_dataset():
    sampler = TripletSampler(torch.zeros(1, 1), torch.tensor([0]))
    assert len(sampler) == 1
    assert sampler.draw(torch.Generator().manual_seed(0)) == (0, 0, 0)


def test_draws_are_deterministic_given_the_seed():
    a, labels = _random_problem([4, 5, 3], seed=2)
    sampler = TripletSampler(a, labels)

    def stream(seed: int) -> list[tuple[int, int, int]]:
        g = torch.Generator().manual_seed(seed)
        return [sampler.draw(g) for _ in range(30)]

    assert stream(7) == stream(7)
    assert stream(7) != stream(8)
    # A second sampler built from the same data draws the same stream.
    assert (
        TripletSampler(a.clone(), labels.clone()).draw(torch.Generator().manual_seed(7))
        == (stream(7)[0])
    )


def test_half_precision_distances_give_the_same_sets():
    sampler32 = TripletSampler(A6, L6, SamplingConfig(0.5, 0.5))
    sampler16 = TripletSampler(A6.half(), L6.int(), SamplingConfig(0.5, 0.5))
    assert sampler16.distances.dtype == torch.float32
    for c in range(6):
        assert sampler16.similar_set(c).tolist() == sampler32.similar_set(c).tolist()
        assert sampler16.style_set(c).tolist() == sampler32.style_set(c).tolist()
