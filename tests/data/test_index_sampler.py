"""Chunked thresholds and the O(1)-memory sampler against the brute-force sampler (Eqs. (10)-(11)).

The brute-force reference is :class:`~photostyle.data.sampler.TripletSampler` on the full M x M
matrix of exact int64 distances between the same embeddings, restricted to the valid rows.
"""

from __future__ import annotations

import math
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from photostyle.data.index_sampler import IndexSampler, Thresholds, chunked_thresholds
from photostyle.data.sampler import SamplingConfig, TripletSampler

CONFIGS = [SamplingConfig(0.5, 0.1), SamplingConfig(0.3, 0.4), SamplingConfig(1.0, 1.0)]


def _problem(
    sizes: list[int], seed: int, k: int = 5, high: int = 200, invalid: tuple[int, ...] = ()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random int16 embeddings, labels of classes of the given sizes (shuffled), a valid mask."""
    rng = np.random.default_rng(seed)
    m = sum(sizes)
    emb = rng.integers(-high, high + 1, (m, k)).astype(np.int16)
    labels = rng.permutation(np.concatenate([np.full(n, c) for c, n in enumerate(sizes)]))
    valid = np.ones(m, dtype=bool)
    valid[list(invalid)] = False
    return emb, labels.astype(np.int64), valid


def _brute(
    emb: np.ndarray, labels: np.ndarray, valid: np.ndarray, config: SamplingConfig
) -> tuple[np.ndarray, TripletSampler]:
    """Valid rows and the brute-force sampler on their exact distance matrix."""
    rows = np.flatnonzero(valid)
    e = emb[rows].astype(np.int64)
    dist = ((e[:, None, :] - e[None, :, :]) ** 2).sum(-1)  # (N, N) int64, exact
    a = torch.tensor(dist, dtype=torch.float64)
    return rows, TripletSampler(a, torch.tensor(labels[rows]), config)


def _index_sampler(emb, labels, valid, config, **kwargs) -> IndexSampler:
    thr = chunked_thresholds(emb, labels, valid, config, max_bytes=kwargs.pop("max_bytes", 2**20))
    return IndexSampler(emb, labels, valid, thr, **kwargs)


# --- thresholds --------------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("max_bytes", [1, 2000, 2**20])  # 1 row per block and 1 column per chunk
def test_chunked_thresholds_equal_brute_force(config: SamplingConfig, max_bytes: int):
    emb, labels, valid = _problem([5, 1, 7, 4], seed=3, invalid=(2, 9))
    thr = chunked_thresholds(emb, labels, valid, config, max_bytes=max_bytes)
    rows, brute = _brute(emb, labels, valid, config)
    assert thr.t1.dtype == thr.t2.dtype == torch.float64
    assert torch.equal(thr.t1[rows], brute.t1)
    assert torch.equal(thr.t2[rows], brute.t2)
    for i, c in enumerate(rows):  # set sizes match the brute-force sets
        similar = brute.similar_set(i)
        style = brute.style_set(i)
        same_style = int((brute.labels[style] == brute.labels[i]).sum())
        assert thr.n_similar[c] == len(similar)
        assert thr.n_style_same[c] == same_style
        assert thr.n_style_other[c] == len(style) - same_style
    invalid = torch.tensor(~valid)
    assert (thr.t1[invalid] == -math.inf).all() and (thr.n_similar[invalid] == 0).all()


def test_thresholds_with_many_ties_equal_brute_force():
    emb, labels, valid = _problem([6, 5, 4], seed=1, k=2, high=1)  # coordinates in {-1, 0, 1}
    for config in CONFIGS:
        thr = chunked_thresholds(emb, labels, valid, config, max_bytes=500)
        rows, brute = _brute(emb, labels, valid, config)
        assert torch.equal(thr.t1[rows], brute.t1)
        assert torch.equal(thr.t2[rows], brute.t2)


def test_thresholds_of_a_singleton_class_and_of_one_class():
    emb, labels, valid = _problem([3, 1], seed=0)
    lone = int(np.flatnonzero(labels == 1)[0])
    thr = chunked_thresholds(emb, labels, valid, SamplingConfig())
    assert thr.t1[lone] == -math.inf and thr.n_similar[lone] == 0
    assert thr.n_style_other[lone] == 1  # ceil(0.1 * 3) = 1 other-class image
    one_class = chunked_thresholds(emb, np.zeros(4, np.int64), valid, SamplingConfig())
    assert (one_class.t2 == -math.inf).all() and (one_class.n_style_other == 0).all()
    none = chunked_thresholds(emb, labels, np.zeros(4, bool), SamplingConfig())
    assert (none.t1 == -math.inf).all()


def test_thresholds_reject_mismatched_shapes():
    emb, labels, valid = _problem([3, 2], seed=0)
    with pytest.raises(ValueError, match="shapes"):
        chunked_thresholds(emb[:4], labels, valid, SamplingConfig())


# --- sampler ------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_subsets_equal_brute_force(config: SamplingConfig):
    emb, labels, valid = _problem([5, 1, 7, 4], seed=3, invalid=(2, 9))
    sampler = _index_sampler(emb, labels, valid, config, chunk=3)
    rows, brute = _brute(emb, labels, valid, config)
    assert len(sampler) == len(rows)
    for i, c in enumerate(rows):
        assert sampler.similar_set(c).tolist() == rows[brute.similar_set(i).numpy()].tolist()
        assert sampler.style_set(c).tolist() == sorted(rows[brute.style_set(i).numpy()].tolist())
    for c in np.flatnonzero(~valid):
        assert sampler.similar_set(c).numel() == sampler.style_set(c).numel() == 0


@pytest.mark.parametrize("tries_factor", [32.0, 0.0])  # rejection sampling, exact fallback scan
def test_draws_follow_the_sets_and_cover_them(tries_factor: float):
    emb, labels, valid = _problem([4, 1, 5, 3], seed=7, invalid=(0,))
    config = SamplingConfig(0.5, 0.3)
    sampler = _index_sampler(emb, labels, valid, config, tries_factor=tries_factor, chunk=2)
    similar = {c: set(sampler.similar_set(c).tolist()) for c in sampler.rows.tolist()}
    style = {c: set(sampler.style_set(c).tolist()) for c in sampler.rows.tolist()}
    g = torch.Generator().manual_seed(0)
    seen_t, seen_s = set(), set()
    for _ in range(3000):
        c, s, t = sampler.draw(g)
        assert valid[c] and valid[s] and valid[t]
        assert t in similar[c] or (t == c and not similar[c])
        assert s in style[c]
        seen_t.add((c, t))
        seen_s.add((c, s))
    assert seen_s == {(c, s) for c in style for s in style[c]}
    assert seen_t == {(c, t) for c in similar for t in similar[c] or {c}}


@pytest.mark.parametrize("tries_factor", [32.0, 0.0])
def test_style_draws_are_uniform_over_the_set(tries_factor: float):
    emb, labels, valid = _problem([6, 6], seed=2)
    config = SamplingConfig(0.4, 0.5)
    sampler = _index_sampler(emb, labels, valid, config, tries_factor=tries_factor)
    c = int(sampler.rows[0])
    members = sampler.style_set(c).tolist()
    counts: Counter[int] = Counter()
    g = torch.Generator().manual_seed(1)
    n_same, n_other = int(sampler.n_style_same[c]), int(sampler.n_style_other[c])
    for _ in range(4000):  # one style draw of c, as IndexSampler.draw makes it
        if int(torch.randint(0, n_same + n_other, (), generator=g)) < n_same:
            counts[sampler._pick(c, "style_same", n_same, g)] += 1
        else:
            counts[sampler._pick(c, "style_other", n_other, g)] += 1
    assert set(counts) == set(members)
    expected = 4000 / len(members)
    assert all(0.8 * expected < n < 1.2 * expected for n in counts.values())


def test_draws_are_deterministic_given_the_seed():
    emb, labels, valid = _problem([4, 5, 3], seed=2)
    sampler = _index_sampler(emb, labels, valid, SamplingConfig())

    def stream(seed: int) -> list[tuple[int, int, int]]:
        g = torch.Generator().manual_seed(seed)
        return [sampler.draw(g) for _ in range(30)]

    assert stream(7) == stream(7)
    assert stream(7) != stream(8)


def test_degenerate_data():
    emb, labels, valid = _problem([3, 1], seed=1)
    sampler = _index_sampler(emb, labels, valid, SamplingConfig())
    lone = int(np.flatnonzero(labels == 1)[0])
    g = torch.Generator().manual_seed(0)
    drawn = [sampler.draw(g) for _ in range(200)]
    alone = [(c, s, t) for c, s, t in drawn if c == lone]
    assert alone and all(t == lone and labels[s] == 0 for _, s, t in alone)
    # one class of two images: {I_w} = the other image, {I_gamma} empty -> any other image
    two = _index_sampler(emb[:2], np.zeros(2, np.int64), np.ones(2, bool), SamplingConfig())
    for _ in range(20):
        c, s, t = two.draw(g)
        assert s == t == 1 - c
    one = _index_sampler(emb[:1], np.zeros(1, np.int64), np.ones(1, bool), SamplingConfig())
    assert one.draw(g) == (0, 0, 0)
    none = _index_sampler(emb[:2], np.zeros(2, np.int64), np.zeros(2, bool), SamplingConfig())
    with pytest.raises(ValueError, match="no valid image"):
        none.draw(g)


def test_sampler_of_a_memmap_pickles_as_its_file(tmp_path: Path):
    emb, labels, valid = _problem([40, 30], seed=0, k=64)
    path = tmp_path / "embeddings.npy"
    np.save(path, emb)
    mm = np.load(path, mmap_mode="r")
    sampler = _index_sampler(mm, labels, valid, SamplingConfig())
    blob = pickle.dumps(sampler)
    assert len(blob) < emb.nbytes  # the embeddings are not copied into the pickle
    back = pickle.loads(blob)
    assert isinstance(back.embeddings, np.memmap)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert [sampler.draw(g1) for _ in range(20)] == [back.draw(g2) for _ in range(20)]


def test_sampler_checks_shapes():
    emb, labels, valid = _problem([3, 2], seed=0)
    thr = chunked_thresholds(emb, labels, valid, SamplingConfig())
    with pytest.raises(ValueError, match="shapes"):
        IndexSampler(emb, labels[:4], valid, thr)
    with pytest.raises(ValueError, match="shapes"):
        IndexSampler(emb, labels, valid[:4], thr)
    assert isinstance(thr, Thresholds)
