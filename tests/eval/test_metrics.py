"""Tests of the quality metrics and the classical baselines against hand-computed cases."""

from __future__ import annotations

import pytest
import torch
from skimage.color import rgb2lab

from photostyle.eval.baselines import BASELINES, histogram, identity, reinhard
from photostyle.eval.metrics import (
    PairScorer,
    gram_distance,
    gram_matrix,
    luma,
    score_pair,
    ssim,
)


def _smooth_image(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, max(2, h // 4), max(2, w // 4), generator=g)
    return torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear")[0]


def test_luma_weights():
    img = torch.zeros(3, 2, 2)
    img[0] = 1.0
    assert torch.allclose(luma(img), torch.full((2, 2), 0.299))
    with pytest.raises(ValueError):
        luma(torch.zeros(1, 2, 2))


def test_ssim_of_image_with_itself_is_one():
    img = _smooth_image(32, 40, 0)
    assert ssim(img, img) == pytest.approx(1.0)


def test_ssim_drops_with_noise_and_rejects_size_mismatch():
    img = _smooth_image(32, 32, 1)
    noisy = (img + 0.2 * torch.randn(img.shape, generator=torch.Generator().manual_seed(2))).clamp(
        0, 1
    )
    assert ssim(img, noisy) < 0.9
    with pytest.raises(ValueError, match="equal sizes"):
        ssim(img, img[:, :16])


def test_gram_matrix_hand_computed():
    # Two channels, two locations: f = [[1, 2], [3, 4]] -> G = f f^T / 2.
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    expected = torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 2
    assert torch.allclose(gram_matrix(f)[0], expected)


def test_gram_distance_zero_for_same_and_hand_computed():
    a = [torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)]
    assert float(gram_distance(a, a)[0]) == 0.0
    b = [torch.zeros(1, 2, 1, 2)]
    # mean over the 4 Gram entries of G_a^2: (2.5^2 + 5.5^2 + 5.5^2 + 12.5^2) / 4
    assert float(gram_distance(a, b)[0]) == pytest.approx((6.25 + 30.25 * 2 + 156.25) / 4)
    with pytest.raises(ValueError):
        gram_distance(a, a + a)


def test_score_pair_identity_and_style(tiny_encoder):
    content, style = _smooth_image(32, 32, 3), _smooth_image(24, 40, 4)
    same = score_pair(content, content, style, tiny_encoder)
    assert same.ssim == pytest.approx(1.0)
    assert same.gram_ratio == pytest.approx(1.0)  # no transfer
    resized_style = torch.nn.functional.interpolate(style[None], size=(32, 32), mode="area")[0]
    styled = score_pair(resized_style, content, style, tiny_encoder)
    assert styled.gram_ratio < same.gram_ratio
    assert same.photorealism > styled.photorealism  # the style's pixels are not the content's


def test_pair_scorer_encodes_content_and_style_once(tiny_encoder):
    content, style = _smooth_image(32, 32, 3), _smooth_image(24, 40, 4)
    calls: list[int] = []
    hook = tiny_encoder.register_forward_hook(lambda *_: calls.append(1))
    scorer = PairScorer(content, style, tiny_encoder)
    outputs = [content * 0.9, content.flip(-1)]
    scores = [scorer(out) for out in outputs]
    assert len(calls) == 2 + len(outputs)  # content and style once, then one per output
    hook.remove()
    assert scores == [score_pair(out, content, style, tiny_encoder) for out in outputs]


def test_reinhard_matches_style_lab_mean_and_std():
    content, style = _smooth_image(32, 32, 5) * 0.6 + 0.2, _smooth_image(24, 28, 6) * 0.5 + 0.3
    out = reinhard(content, style)
    assert out.shape == content.shape
    lab_o = rgb2lab(out.permute(1, 2, 0).double().numpy())
    lab_s = rgb2lab(style.permute(1, 2, 0).double().numpy())
    assert lab_o.mean(axis=(0, 1)) == pytest.approx(lab_s.mean(axis=(0, 1)), abs=0.5)
    assert lab_o.std(axis=(0, 1)) == pytest.approx(lab_s.std(axis=(0, 1)), rel=0.05, abs=0.3)


def test_histogram_matching_takes_style_values():
    content = torch.linspace(0, 1, 64).reshape(1, 8, 8).repeat(3, 1, 1)
    style = torch.full((3, 4, 4), 0.25)
    style[:, :2] = 0.75
    out = histogram(content, style)
    flat = out[0].flatten()
    # the output spans the style's range and keeps the content's order
    assert float(flat.min()) == pytest.approx(0.25) and float(flat.max()) == pytest.approx(0.75)
    assert bool((flat[1:] >= flat[:-1]).all())
    assert float(flat[:32].max()) == pytest.approx(0.25)  # darker half -> the darker style value
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_identity_and_shape_checks():
    content, style = torch.rand(3, 8, 9), torch.rand(3, 5, 5)
    assert torch.equal(identity(content, style), content)
    for fn in BASELINES.values():
        with pytest.raises(ValueError):
            fn(torch.rand(8, 9), style)
