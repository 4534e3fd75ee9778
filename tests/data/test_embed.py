"""Tests of the JL embeddings of Eq. (9) and their exact integer distances."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from photostyle.data.embed import (
    CALIBRATED_MAX,
    INT16_MAX,
    MAX_DIM,
    JLEmbedder,
    calibrate_scale,
    encoder_fingerprint,
    exact_sq_distances,
    gaussian_projection,
    pair_sq_distance,
    project_taps,
    quantize,
    rows_sq_distances,
    tap_dims,
)
from photostyle.data.index import pairwise_sq_distances, perceptual_features
from photostyle.io import load_image
from photostyle.models.encoder import VGGEncoder

SIZE = 16


def test_tap_dims_of_the_tiny_layout(tiny_encoder: VGGEncoder):
    # widths (4, 8, 8, 16) at 16, 8, 4, 2 px; 20 px floors like max-pooling: 20, 10, 5, 2
    assert tap_dims(tiny_encoder, 16) == [4 * 256, 8 * 64, 8 * 16, 16 * 4]
    assert tap_dims(tiny_encoder, 20) == [4 * 400, 8 * 100, 8 * 25, 16 * 4]


def test_projection_is_seeded_and_scaled():
    a = gaussian_projection([5, 7], 3, seed=1)
    assert [tuple(b.shape) for b in a] == [(5, 3), (7, 3)]
    b = gaussian_projection([5, 7], 3, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], gaussian_projection([5, 7], 3, seed=2)[0])
    assert not torch.equal(a[0][:3], a[1][:3])  # each layer has its own block
    # entries N(0, 1/k): over many entries the variance is 1/k
    big = gaussian_projection([20000], 8, seed=0)[0]
    assert float(big.var()) == pytest.approx(1 / 8, rel=0.03)


def test_projection_preserves_squared_norms_in_expectation():
    g = torch.Generator().manual_seed(0)
    x = [torch.randn(1, 30, generator=g), torch.randn(1, 12, generator=g)]
    norm = sum(float((v * v).sum()) for v in x)
    k = 16
    ratios = []
    for seed in range(400):
        blocks = gaussian_projection([30, 12], k, seed)
        y = sum(v @ b for v, b in zip(x, blocks, strict=True))
        assert isinstance(y, torch.Tensor)
        ratios.append(float((y * y).sum()) / norm)
    # ratio ~ chi2_k / k: mean 1, variance 2/k; the mean of 400 has std 0.0177
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.06)
    assert np.var(ratios) == pytest.approx(2 / k, rel=0.25)


def test_project_taps_equals_concatenated_features_times_stacked_blocks():
    g = torch.Generator().manual_seed(0)
    taps = [torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 5, 2, 2, generator=g)]
    blocks = gaussian_projection([48, 20], 6, seed=0)
    flat = torch.cat([t.flatten(1) / math.sqrt(t[0].numel()) for t in taps], 1)  # Eq. (9) scaling
    torch.testing.assert_close(project_taps(taps, blocks), flat @ torch.cat(blocks))
    with pytest.raises(ValueError, match="taps"):
        project_taps(taps[:1], blocks)
    with pytest.raises(ValueError, match="elements"):
        project_taps(taps[::-1], blocks)


def test_embedder_distances_approximate_exact_eq9(
    tmp_path: Path, tiny_encoder: VGGEncoder, write_png: Callable[..., Path]
):
    paths = [write_png(tmp_path / f"{i}.png", 20 + 4 * i, 24, seed=i) for i in range(5)]
    feats, _ = perceptual_features(paths, tiny_encoder, size=SIZE)
    exact = pairwise_sq_distances(feats).double()
    x = torch.cat(
        [
            F.interpolate(load_image(p)[None], (SIZE, SIZE), mode="bilinear", antialias=True)
            for p in paths
        ]
    )
    off = ~torch.eye(5, dtype=torch.bool)
    for k, tolerance in ((4096, 0.15), (64, 0.6)):  # relative std sqrt(2/k): 2.2%, 18%
        y = JLEmbedder(tiny_encoder, SIZE, k, seed=0)(x)
        assert y.shape == (5, k)
        approx = pairwise_sq_distances(y).double()
        rel = (approx[off] / exact[off] - 1).abs()
        assert float(rel.max()) < tolerance
    # inputs of another size are resized first, as the index does
    y_small = JLEmbedder(tiny_encoder, SIZE, 32, seed=0)(x)
    y_big = JLEmbedder(tiny_encoder, SIZE, 32, seed=0)(
        F.interpolate(x, (SIZE, SIZE), mode="bilinear", antialias=True)
    )
    torch.testing.assert_close(y_small, y_big)


def test_embedder_rejects_bad_dims(tiny_encoder: VGGEncoder):
    with pytest.raises(ValueError, match="dim"):
        JLEmbedder(tiny_encoder, SIZE, 0, seed=0)
    with pytest.raises(ValueError, match="dim"):
        JLEmbedder(tiny_encoder, SIZE, MAX_DIM + 1, seed=0)


def test_calibrate_scale():
    y = torch.tensor([[0.3, -5.0], [1.0, 2.0]])
    scale = calibrate_scale(y)
    assert math.log2(scale) == round(math.log2(scale))  # a power of two
    assert CALIBRATED_MAX / 2 < 5.0 / scale <= CALIBRATED_MAX
    assert calibrate_scale(torch.zeros(2, 3)) == 1.0
    assert calibrate_scale(y * 2.0**-60) == scale * 2.0**-60  # any magnitude, same units
    with pytest.raises(ValueError, match="non-finite"):
        calibrate_scale(torch.tensor([[float("nan")]]))


def test_quantize_rounds_and_saturates():
    y = torch.tensor([[0.26, -0.74, 1e6, -1e6, 0.5]])
    q, clipped = quantize(y, 0.5)
    assert q.dtype == torch.int16
    assert q.tolist() == [[1, -1, INT16_MAX, -INT16_MAX, 1]]
    assert clipped == 2


def test_exact_distances_equal_int64_brute_force_at_the_extremes():
    g = torch.Generator().manual_seed(0)
    q = torch.randint(-INT16_MAX, INT16_MAX + 1, (6, MAX_DIM), generator=g).to(torch.int16)
    q[0] = INT16_MAX
    q[1] = -INT16_MAX  # the largest possible distance: (2 * 32767)^2 * 8192 ~ 2^45
    brute = torch.tensor(
        [[pair_sq_distance(a.numpy(), b.numpy()) for b in q] for a in q], dtype=torch.float64
    )
    d = exact_sq_distances(q, q)
    assert d.dtype == torch.float64
    assert torch.equal(d, brute)
    assert d[0, 1] == (2 * INT16_MAX) ** 2 * MAX_DIM
    # any blocking gives bit-identical values (no order-dependent rounding)
    assert torch.equal(exact_sq_distances(q[2:3], q[3:]), brute[2:3, 3:])
    assert torch.equal(
        torch.from_numpy(rows_sq_distances(q[4].numpy(), q.numpy())).double(), brute[4]
    )


def test_exact_distances_check_shapes():
    with pytest.raises(ValueError, match="expected"):
        exact_sq_distances(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="exact"):
        exact_sq_distances(torch.zeros(1, MAX_DIM + 1), torch.zeros(1, MAX_DIM + 1))


def test_encoder_fingerprint(make_encoder: Callable[..., VGGEncoder]):
    a = encoder_fingerprint(make_encoder(0))
    assert a == encoder_fingerprint(make_encoder(0))
    assert len(a) == 64
    assert a != encoder_fingerprint(make_encoder(1))  # other weights
    assert a != encoder_fingerprint(make_encoder(0, convention="caffe_bgr255"))
