"""The affine colour head: MKL base, region blending, grid slicing, identity at alpha 0."""

from __future__ import annotations

import pytest
import torch

from photostyle.models.affine import (
    AffineHead,
    apply_coeffs,
    brightness_bins,
    feature_moments,
    mkl_map,
    region_colour_grid,
    slice_grid,
)
from photostyle.upsample import identity_coeffs


def _cov(x: torch.Tensor) -> torch.Tensor:
    xc = x - x.mean(1, keepdim=True)
    return xc @ xc.T / x.shape[1]


def test_mkl_map_carries_mean_and_covariance_to_the_style() -> None:
    g = torch.Generator().manual_seed(0)
    c = torch.rand(3, 500, generator=g, dtype=torch.float64) * 0.5
    s = torch.rand(3, 3, dtype=torch.float64, generator=g) @ torch.rand(
        3, 400, generator=g, dtype=torch.float64
    )
    t = mkl_map(c, s, eps=0.0)
    out = t[:, :3] @ c + t[:, 3:]
    assert torch.allclose(out.mean(1), s.mean(1), atol=1e-9)
    assert torch.allclose(_cov(out), _cov(s), atol=1e-8)
    assert torch.allclose(t[:, :3], t[:, :3].T, atol=1e-9)  # the MKL map is symmetric


def test_mkl_map_of_identical_distributions_is_the_identity() -> None:
    x = torch.rand(3, 300, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = mkl_map(x, x, eps=0.0)
    assert torch.allclose(
        t,
        torch.cat([torch.eye(3, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64)], 1),
        atol=1e-7,
    )


def test_mkl_map_rejects_non_rgb_pixels() -> None:
    with pytest.raises(ValueError, match=r"\(3, N\)"):
        mkl_map(torch.rand(4, 10), torch.rand(3, 10))


def test_region_grid_without_labels_holds_the_global_map_everywhere() -> None:
    c, s = torch.rand(1, 3, 20, 24), torch.rand(1, 3, 16, 16)
    grid = region_colour_grid(c, s, (3, 4))
    want = mkl_map(c[0].reshape(3, -1), s[0].reshape(3, -1)).float()
    assert grid.shape == (1, 12, 3, 4)
    a = grid[0, :9, 1, 2].reshape(3, 3)
    assert torch.allclose(a, want[:, :3], atol=1e-5)
    assert torch.allclose(grid[0, 9:, 1, 2], want[:, 3], atol=1e-5)
    assert torch.allclose(grid, grid[:, :, :1, :1].expand_as(grid))


def test_region_grid_gives_each_region_its_own_map_away_from_the_border() -> None:
    # Top half red-ish, bottom half blue-ish, in content and style; labels 0 (top) / 1 (bottom).
    g = torch.Generator().manual_seed(2)
    c = torch.rand(1, 3, 64, 64, generator=g) * 0.2 + 0.4
    s = torch.rand(1, 3, 64, 64, generator=g) * 0.2
    s[:, 0, :32] += 0.7  # style top is red
    s[:, 2, 32:] += 0.7  # style bottom is blue
    labels = (torch.arange(64)[:, None] >= 32).long().expand(64, 64)[None]
    grid = region_colour_grid(
        c, s, (16, 16), content_labels=labels, style_labels=labels, feather=1.0
    )
    out = apply_coeffs(torch.nn.functional.interpolate(grid, size=(64, 64), mode="bilinear"), c)
    top, bottom = out[0, :, 2:10].mean((1, 2)), out[0, :, 54:62].mean((1, 2))
    assert top[0] > 0.7 and top[2] < 0.2
    assert bottom[2] > 0.7 and bottom[0] < 0.2


def test_slice_grid_interpolates_linearly_in_the_guide() -> None:
    # Channel value = bin index: sliced value = guide * (bins - 1).
    bins = 5
    grid = (
        torch.arange(bins, dtype=torch.float64).reshape(1, 1, bins, 1, 1).expand(1, 1, bins, 3, 3)
    )
    guide = torch.rand(1, 1, 7, 9, dtype=torch.float64)
    out = slice_grid(grid.contiguous(), guide)
    assert torch.allclose(out, guide * (bins - 1), atol=1e-9)


def test_slice_grid_gradcheck() -> None:
    grid = torch.rand(1, 2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    guide = torch.rand(1, 1, 4, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: slice_grid(t, guide), (grid,))


def test_apply_coeffs_matches_a_hand_computed_pixel() -> None:
    coeffs = identity_coeffs(1, (1, 1), torch.zeros(1, dtype=torch.float64)).clone()
    coeffs[0, 1] = 0.5  # A[0, 1]
    coeffs[0, 9] = 0.1  # b[0]
    px = torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64).reshape(1, 3, 1, 1)
    out = apply_coeffs(coeffs, px)
    assert torch.allclose(
        out.flatten(), torch.tensor([0.2 + 0.5 * 0.4 + 0.1, 0.4, 0.6], dtype=torch.float64)
    )


@pytest.fixture
def head_and_inputs(make_encoder, tiny_cfg):  # type: ignore[no-untyped-def]
    enc = make_encoder()
    head = AffineHead(tiny_cfg.widths, bins=4, hidden=8)
    g = torch.Generator().manual_seed(3)
    c, s = torch.rand(2, 3, 32, 40, generator=g), torch.rand(2, 3, 24, 24, generator=g)
    return head, enc, c, s


def test_untrained_head_returns_the_base_and_alpha_zero_the_content(head_and_inputs) -> None:  # type: ignore[no-untyped-def]
    head, enc, c, s = head_and_inputs
    out = head(c, s, enc(c), enc(s))
    assert out.coeffs.shape == (2, 12, 32, 40) and out.image.shape == c.shape
    assert out.residual.shape == (2, 12, 4, 4, 5)
    base = region_colour_grid(c, s, head.grid_size(32, 40))
    want = apply_coeffs(
        slice_grid(base[:, :, None].expand(-1, -1, 4, -1, -1), c.mean(1, keepdim=True)), c
    )
    assert torch.allclose(out.image, want, atol=1e-5)
    zero = head(c, s, enc(c), enc(s), alpha=0.0)
    assert torch.allclose(zero.image, c, atol=1e-6)


def test_head_output_is_linear_in_alpha(head_and_inputs) -> None:  # type: ignore[no-untyped-def]
    head, enc, c, s = head_and_inputs
    torch.nn.init.normal_(head.out.weight, std=0.1)  # a non-trivial residual
    full = head(c, s, enc(c), enc(s)).image
    half = head(c, s, enc(c), enc(s), alpha=0.5).image
    assert torch.allclose(half, c + 0.5 * (full - c), atol=1e-5)


def test_head_rejects_bad_alpha(head_and_inputs) -> None:  # type: ignore[no-untyped-def]
    head, enc, c, s = head_and_inputs
    with pytest.raises(ValueError, match="alpha"):
        head(c, s, enc(c), enc(s), alpha=1.5)


def test_brightness_bins_share_pixels_between_the_two_nearest_bins() -> None:
    # Two grey pixels with 4 bins at 0, 1/3, 2/3, 1: luma 0 (all in bin 0) and luma 0.25, 3/4 of
    # the way from bin 0 to bin 1 (a weight of 1/4 in bin 0 and 3/4 in bin 1).
    img = torch.tensor([0.0, 0.25], dtype=torch.float64).reshape(1, 1, 1, 2).expand(1, 3, 1, 2)
    stats = brightness_bins(img, 4)  # (1, 16)
    share, mean = stats[0, :4], stats[0, 4:].reshape(4, 3)
    assert torch.allclose(share, torch.tensor([0.625, 0.375, 0, 0], dtype=torch.float64))
    assert torch.allclose(mean[0], torch.full((3,), 0.25 * 0.25 / 1.25, dtype=torch.float64))
    assert torch.allclose(mean[1], torch.full((3,), 0.25, dtype=torch.float64))
    assert torch.allclose(mean[2:], torch.zeros(2, 3, dtype=torch.float64))  # empty bins


def test_feature_moments_are_channel_mean_and_std() -> None:
    t = torch.tensor([1.0, 3.0, 5.0, 7.0]).reshape(1, 1, 2, 2)
    m = feature_moments([t], 0.5)
    assert torch.allclose(m, torch.tensor([[2.0, 5**0.5 / 2]]), atol=1e-4)  # 0.5 * (4, sqrt(5))


@pytest.fixture
def curves_head(make_encoder, tiny_cfg):  # type: ignore[no-untyped-def]
    enc = make_encoder()
    head = AffineHead(tiny_cfg.widths, bins=4, hidden=8, residual="curves")
    g = torch.Generator().manual_seed(5)
    c, s = torch.rand(2, 3, 32, 40, generator=g), torch.rand(2, 3, 24, 24, generator=g)
    return head, enc, c, s


def test_untrained_curves_head_returns_the_base(curves_head, head_and_inputs) -> None:  # type: ignore[no-untyped-def]
    head, enc, c, s = curves_head
    spatial = head_and_inputs[0]  # also untrained: the base alone
    out = head(c, s, enc(c), enc(s))
    assert out.residual.shape == (2, 12, 4, 1, 1)  # one grade per image
    assert torch.allclose(out.image, spatial(c, s, enc(c), enc(s)).image, atol=1e-6)


def test_curves_residual_is_the_same_everywhere_and_linear_in_alpha(curves_head) -> None:  # type: ignore[no-untyped-def]
    head, enc, c, s = curves_head
    torch.nn.init.normal_(head.curves[-1].weight, std=0.1)
    full = head(c, s, enc(c), enc(s))
    half = head(c, s, enc(c), enc(s), alpha=0.5)
    assert torch.allclose(half.image, c + 0.5 * (full.image - c), atol=1e-5)
    # Two pixels of equal colour get the same colour, wherever they are (no masks: the base is
    # global too): the grade has no spatial freedom.
    flat = torch.full((1, 3, 32, 40), 0.3)
    flat[..., 5:9, 7:12] = 0.7
    out = head(flat, s[:1], enc(flat), enc(s[:1])).image
    assert torch.allclose(out[..., 0, 0], out[..., 31, 39], atol=1e-6)
    assert torch.allclose(out[..., 5, 7], out[..., 8, 11], atol=1e-6)


def test_only_the_curves_residual_takes_a_learned_step(tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    assert AffineHead(tiny_cfg.widths, residual="curves", steer_hidden=4).steer is not None
    assert AffineHead(tiny_cfg.widths, residual="curves").steer is None
    with pytest.raises(ValueError, match="curves residual"):
        AffineHead(tiny_cfg.widths, residual="spatial", steer_hidden=4)
    with pytest.raises(ValueError, match="steer_hidden must be >= 0"):
        AffineHead(tiny_cfg.widths, residual="curves", steer_hidden=-1)


def test_head_rejects_an_unknown_residual(tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="residual"):
        AffineHead(tiny_cfg.widths, residual="pixels")  # type: ignore[arg-type]
