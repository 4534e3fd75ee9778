"""Tests of the Feature Aggregation layers (paper Sec. III-B, Eq. (1)) and their variants."""

from __future__ import annotations

import math

import pytest
import torch

from photostyle.models.layers import (
    FA_VARIANTS,
    FeatureAggregation,
    feature_aggregation,
    resize_labels,
)

EPS = 1e-5


def _halves(h: int, w: int) -> torch.Tensor:
    """Label map (1, h, w): 0 on the left half, 1 on the right half."""
    labels = torch.zeros(1, h, w, dtype=torch.long)
    labels[..., w // 2 :] = 1
    return labels


def _channel_means(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-channel mean of (1, C, H, W) over the (H, W) mask. Shape: (C,)."""
    return t[0][:, mask].mean(dim=1)


# --- Eq. (1), the "paper" variant ------------------------------------------------------------


def test_paper_variant_is_twice_the_content():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6)
    y1 = torch.randn(2, 3, 4, 7) * 3 + 1
    y2 = torch.rand(2, 3, 5, 6) * 10 - 4
    z1 = feature_aggregation(x, y1, "paper")
    z2 = feature_aggregation(x, y2, "paper")
    torch.testing.assert_close(z1, 2 * x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(z1, z2, atol=1e-5, rtol=1e-5)


def test_paper_variant_matches_eq1_written_out():
    """Eq. (1) evaluated term by term with explicit loops over m and j."""
    torch.manual_seed(1)
    x = torch.randn(1, 2, 2, 3, dtype=torch.float64)
    y = torch.randn(1, 2, 3, 2, dtype=torch.float64)
    xs, ys = x[0].reshape(2, -1), y[0].reshape(2, -1)
    mu_g = ys.mean(dim=1)
    hw = ys.shape[1]
    z = torch.empty_like(xs)
    for m in range(xs.shape[1]):
        acc = torch.zeros(2, dtype=torch.float64)
        for j in range(hw):
            acc += xs[:, m] - (ys[:, j] - mu_g)
        z[:, m] = xs[:, m] + acc / hw
    out = feature_aggregation(x, y, "paper")
    torch.testing.assert_close(out[0].reshape(2, -1), z)


# --- mean_std ----------------------------------------------------------------------------------


def test_mean_std_hand_computed():
    x = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 1, 3)
    y = torch.tensor([10.0, 20.0, 30.0, 40.0]).view(1, 1, 2, 2)
    # Population moments: mean 2, var 2/3 (content); mean 25, var 125 (style); eps inside the sqrt.
    sd_x = math.sqrt(2 / 3 + EPS)
    sd_y = math.sqrt(125 + EPS)
    expected = [(v - 2.0) / sd_x * sd_y + 25.0 for v in (1.0, 2.0, 3.0)]
    # e.g. the first value is 25 - sqrt(125)/sqrt(2/3) = 25 - 13.693 = 11.307 (up to eps).
    assert expected[0] == pytest.approx(11.3068, abs=1e-3)
    out = feature_aggregation(x, y, "mean_std").flatten().tolist()
    assert out == pytest.approx(expected, rel=1e-6)


def test_mean_std_matches_style_moments():
    torch.manual_seed(2)
    x = torch.randn(2, 4, 6, 5) * 2 + 3
    y = torch.randn(2, 4, 7, 3) * 0.5 - 1
    z = feature_aggregation(x, y, "mean_std")
    torch.testing.assert_close(z.mean(dim=(2, 3)), y.mean(dim=(2, 3)), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        z.std(dim=(2, 3), unbiased=False), y.std(dim=(2, 3), unbiased=False), atol=1e-3, rtol=1e-3
    )


# --- wct ---------------------------------------------------------------------------------------


def test_wct_output_covariance_and_mean_are_the_styles():
    torch.manual_seed(3)
    mix_x = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [-0.3, 0.2, 1.5]])
    mix_y = torch.tensor([[2.0, 0.0, 0.0], [-1.0, 0.7, 0.0], [0.5, 0.4, 0.3]])
    x = (mix_x @ torch.randn(3, 200) + torch.tensor([[1.0], [-2.0], [0.5]])).view(1, 3, 10, 20)
    y = (mix_y @ torch.randn(3, 150) + torch.tensor([[4.0], [3.0], [-1.0]])).view(1, 3, 10, 15)
    z = feature_aggregation(x, y, "wct")
    zf, yf = z[0].reshape(3, -1), y[0].reshape(3, -1)
    torch.testing.assert_close(zf.mean(dim=1), yf.mean(dim=1), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.cov(zf), torch.cov(yf), atol=1e-3, rtol=1e-3)
    # The content covariance was different, so this is not trivially true.
    assert not torch.allclose(torch.cov(x[0].reshape(3, -1)), torch.cov(yf), atol=0.1)


# --- none ----------------------------------------------------------------------------------------


def test_none_returns_the_content_exactly_and_ignores_the_style():
    torch.manual_seed(20)
    x = torch.randn(2, 3, 5, 6, requires_grad=True)
    y = torch.randn(2, 3, 4, 7) * 3 + 1
    for alpha in (1.0, 0.3):
        z = feature_aggregation(x, y, "none", alpha=alpha)
        assert torch.equal(z, x)
    labels = feature_aggregation(x, y, "none", x_labels=_halves(5, 6), y_labels=_halves(4, 7))
    assert torch.equal(labels, x)
    assert torch.equal(FeatureAggregation("none")(x, y * 5), x)
    labels.sum().backward()  # gradient of the identity
    assert x.grad is not None and torch.equal(x.grad, torch.ones_like(x))
    assert "none" in FA_VARIANTS


# --- quantile ----------------------------------------------------------------------------------


def test_quantile_hand_computed_equal_sizes():
    # Channel 0: content ranks [1, 0, 3, 2]; style sorted [1, 4, 7, 9] -> [4, 1, 9, 7].
    # Channel 1: content ranks [3, 2, 1, 0]; style sorted [-5, 0, 2, 8] -> [8, 2, 0, -5].
    x = torch.tensor([[0.3, -1.0, 2.0, 0.5], [4.0, 3.0, 2.0, 1.0]]).view(1, 2, 2, 2)
    y = torch.tensor([[7.0, 1.0, 4.0, 9.0], [0.0, 8.0, -5.0, 2.0]]).view(1, 2, 1, 4)
    z = feature_aggregation(x, y, "quantile").view(2, 4)
    expected = torch.tensor([[4.0, 1.0, 9.0, 7.0], [8.0, 2.0, 0.0, -5.0]])
    torch.testing.assert_close(z, expected)


def test_quantile_output_has_the_style_distribution():
    torch.manual_seed(4)
    x = torch.randn(2, 3, 4, 6)
    y = torch.rand(2, 3, 3, 8) * 5 + 2  # N == M == 24
    z = feature_aggregation(x, y, "quantile")
    zs = z.flatten(2).sort(dim=2).values
    ys = y.flatten(2).sort(dim=2).values
    torch.testing.assert_close(zs, ys)
    # The content's order is kept: ranks of z equal ranks of x.
    assert torch.equal(z.flatten(2).argsort(dim=2), x.flatten(2).argsort(dim=2))


def test_quantile_unequal_sizes_is_monotone_within_style_range():
    torch.manual_seed(5)
    x = torch.randn(1, 2, 5, 7)  # N = 35
    y = torch.randn(1, 2, 3, 4) * 2 + 1  # M = 12
    z = feature_aggregation(x, y, "quantile")[0].flatten(1)
    yf = y[0].flatten(1)
    assert bool((z >= yf.min(dim=1, keepdim=True).values - 1e-6).all())
    assert bool((z <= yf.max(dim=1, keepdim=True).values + 1e-6).all())
    order = x[0].flatten(1).argsort(dim=1)
    assert bool((z.gather(1, order).diff(dim=1) >= -1e-6).all())


def test_quantile_gradient_is_mean_std_gradient():
    torch.manual_seed(6)
    x = torch.randn(1, 3, 4, 5)
    y = torch.randn(1, 3, 5, 3)
    w = torch.randn(1, 3, 4, 5)
    grads = {}
    for variant in ("quantile", "mean_std"):
        xv = x.clone().requires_grad_(True)
        yv = y.clone().requires_grad_(True)
        (feature_aggregation(xv, yv, variant) * w).sum().backward()
        grads[variant] = (xv.grad, yv.grad)
    torch.testing.assert_close(grads["quantile"][0], grads["mean_std"][0])
    torch.testing.assert_close(grads["quantile"][1], grads["mean_std"][1])
    assert float(grads["quantile"][0].abs().sum()) > 0


# --- gradients ---------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["mean_std", "paper"])
def test_gradcheck(variant):
    torch.manual_seed(7)
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(1, 2, 2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: feature_aggregation(a, b, variant), (x, y), eps=1e-6, atol=1e-5
    )


# --- alpha, shapes and batches ----------------------------------------------------------------


@pytest.mark.parametrize("variant", FA_VARIANTS)
def test_alpha(variant):
    torch.manual_seed(8)
    x = torch.randn(2, 3, 4, 4)
    y = torch.randn(2, 3, 5, 3) * 2 + 1
    full = feature_aggregation(x, y, variant, alpha=1.0)
    torch.testing.assert_close(feature_aggregation(x, y, variant, alpha=0.0), x)
    torch.testing.assert_close(feature_aggregation(x, y, variant, alpha=0.5), (x + full) / 2)
    assert torch.allclose(full, x) == (variant == "none")  # "none" ignores the style


@pytest.mark.parametrize("variant", FA_VARIANTS)
def test_different_spatial_sizes_and_per_item_styles(variant):
    torch.manual_seed(9)
    x = torch.randn(2, 3, 5, 7)
    y = torch.randn(2, 3, 9, 4) * torch.tensor([1.0, 3.0]).view(2, 1, 1, 1)
    z = feature_aggregation(x, y, variant)
    assert z.shape == x.shape
    assert torch.isfinite(z).all()
    # Each batch item is aggregated with its own style only.
    z1 = feature_aggregation(x[1:], y[1:], variant)
    torch.testing.assert_close(z[1:], z1)


@pytest.mark.parametrize("alpha", [-0.1, 1.01, float("nan")])
def test_invalid_alpha(alpha):
    with pytest.raises(ValueError):
        feature_aggregation(torch.rand(1, 2, 3, 3), torch.rand(1, 2, 3, 3), alpha=alpha)


def test_only_one_label_map():
    x, y = torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4)
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError):
        feature_aggregation(x, y, x_labels=labels)
    with pytest.raises(ValueError):
        feature_aggregation(x, y, y_labels=labels)


@pytest.mark.parametrize(
    ("xs", "ys"),
    [((1, 2, 4, 4), (1, 3, 4, 4)), ((2, 2, 4, 4), (1, 2, 4, 4)), ((2, 4, 4), (2, 4, 4))],
)
def test_rejects_mismatched_shapes(xs, ys):
    with pytest.raises(ValueError):
        feature_aggregation(torch.rand(*xs), torch.rand(*ys))


# --- semantic label maps -----------------------------------------------------------------------


def test_masks_transfer_region_to_region():
    torch.manual_seed(10)
    x = torch.randn(1, 3, 4, 8)
    y = torch.randn(1, 3, 6, 6)
    y[..., :3] += torch.tensor([5.0, -5.0, 1.0]).view(1, 3, 1, 1)  # label-0 region statistics
    y[..., 3:] = y[..., 3:] * 3 - 7.0  # label-1 region statistics
    xl, yl = _halves(4, 8), _halves(6, 6)
    z = feature_aggregation(x, y, "mean_std", x_labels=xl, y_labels=yl)
    for label in (0, 1):
        torch.testing.assert_close(
            _channel_means(z, xl[0] == label), _channel_means(y, yl[0] == label), atol=1e-4, rtol=0
        )
        z_std = z[0][:, xl[0] == label].std(dim=1, unbiased=False)
        y_std = y[0][:, yl[0] == label].std(dim=1, unbiased=False)
        torch.testing.assert_close(z_std, y_std, atol=1e-3, rtol=1e-3)


def test_masks_at_image_resolution_are_resized():
    torch.manual_seed(11)
    x = torch.randn(1, 2, 4, 8)
    y = torch.randn(1, 2, 6, 6)
    y[..., 3:] += 10.0
    small = feature_aggregation(x, y, "mean_std", x_labels=_halves(4, 8), y_labels=_halves(6, 6))
    big = feature_aggregation(x, y, "mean_std", x_labels=_halves(16, 32), y_labels=_halves(12, 12))
    torch.testing.assert_close(small, big)


def test_resize_labels_nearest():
    labels = _halves(8, 8)
    small = resize_labels(labels, (2, 4))
    assert small.dtype == torch.int64
    assert small.tolist() == [[[0, 0, 1, 1], [0, 0, 1, 1]]]
    assert resize_labels(labels, (8, 8)) is labels


@pytest.mark.parametrize("missing", [2, -1])
def test_label_missing_from_style_uses_whole_style(missing):
    torch.manual_seed(12)
    x = torch.randn(1, 2, 4, 8)
    y = torch.randn(1, 2, 6, 6)
    y[..., 3:] += 8.0
    xl = _halves(4, 8)
    xl[..., 6:] = missing  # the two right-most columns: label absent from the style (or unlabelled)
    yl = _halves(6, 6)
    z = feature_aggregation(x, y, "mean_std", x_labels=xl, y_labels=yl)
    whole = y[0].flatten(1).mean(dim=1)
    torch.testing.assert_close(_channel_means(z, xl[0] == missing), whole, atol=1e-4, rtol=0)
    torch.testing.assert_close(
        _channel_means(z, xl[0] == 0), _channel_means(y, yl[0] == 0), atol=1e-4, rtol=0
    )
    # Label-1 content pixels still use only the label-1 style region, not the whole style.
    torch.testing.assert_close(
        _channel_means(z, xl[0] == 1), _channel_means(y, yl[0] == 1), atol=1e-4, rtol=0
    )


def test_style_region_below_min_pixels_uses_whole_style():
    torch.manual_seed(13)
    x = torch.randn(1, 1, 4, 4)
    y = torch.randn(1, 1, 4, 4)
    y[0, 0, 0, :3] += 20.0
    yl = torch.zeros(1, 4, 4, dtype=torch.long)
    yl[0, 0, :3] = 1  # 3 style pixels of label 1 < min_pixels = 4
    xl = torch.ones(1, 4, 4, dtype=torch.long)
    z = feature_aggregation(x, y, "mean_std", x_labels=xl, y_labels=yl)
    assert float(z.mean()) == pytest.approx(float(y.mean()), abs=1e-4)
    z3 = feature_aggregation(x, y, "mean_std", x_labels=xl, y_labels=yl, min_pixels=3)
    assert float(z3.mean()) == pytest.approx(float(y[0, 0, 0, :3].mean()), abs=1e-4)


@pytest.mark.parametrize("variant", FA_VARIANTS)
def test_masks_work_for_every_variant(variant):
    torch.manual_seed(14)
    x = torch.randn(2, 3, 4, 8, requires_grad=True)
    y = torch.randn(2, 3, 6, 6)
    z = feature_aggregation(
        x,
        y,
        variant,
        x_labels=_halves(4, 8).repeat(2, 1, 1),
        y_labels=_halves(6, 6).repeat(2, 1, 1),
    )
    assert z.shape == x.shape and torch.isfinite(z).all()
    z.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# --- the module --------------------------------------------------------------------------------


def test_module_rejects_unknown_variant():
    with pytest.raises(ValueError):
        FeatureAggregation("adain")  # type: ignore[arg-type]


def test_module_has_no_parameters_and_variant_override():
    torch.manual_seed(15)
    layer = FeatureAggregation("paper")
    assert list(layer.parameters()) == []
    assert "paper" in repr(layer)
    x, y = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 4, 4) + 3
    torch.testing.assert_close(layer(x, y), 2 * x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer(x, y, variant="mean_std"), feature_aggregation(x, y))
    torch.testing.assert_close(layer(x, y, alpha=0.0), x)
