"""Tests of the FA variant registry: a new variant is one registration."""

from __future__ import annotations

import pytest
import torch

from photostyle.models import layers
from photostyle.models.decoder import Decoder
from photostyle.models.encoder import VGGConfig
from photostyle.models.layers import (
    FA_VARIANTS,
    FASpec,
    FeatureAggregation,
    fa_mean_std,
    fa_names,
    fa_variant,
    feature_aggregation,
    register_fa,
)
from photostyle.models.stylizer import ModelConfig


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the registry for this test: its registrations end with it."""
    monkeypatch.setattr(layers.FA_REGISTRY, "_specs", dict(layers.FA_REGISTRY._specs))


def _mean_shift(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Toy FA: each channel moved to the style's mean. Shape: x (C, N), y (C, M) -> (C, N)."""
    return x - x.mean(dim=1, keepdim=True) + y.mean(dim=1, keepdim=True)


def test_a_registered_variant_is_listed_and_aggregates(registry: None, tiny_cfg: VGGConfig):
    register_fa(
        FASpec("mean", _mean_shift, "mean", exportable=True, image_level=True, amp_safe=True)
    )

    assert "mean" in FA_VARIANTS and FA_VARIANTS[-1] == "mean"
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 6, 6) + 2
    z = feature_aggregation(x, y, "mean")
    torch.testing.assert_close(z.mean(dim=(2, 3)), y.mean(dim=(2, 3)))  # the style's means
    torch.testing.assert_close(
        z - y.mean(dim=(2, 3), keepdim=True), x - x.mean(dim=(2, 3), keepdim=True)
    )
    torch.testing.assert_close(feature_aggregation(x, y, "mean", alpha=0.5), (x + z) / 2)
    assert torch.equal(FeatureAggregation("mean")(x, y), z)
    # Callers ask for its capabilities: an image-level form makes a residual decoder's base.
    content, style = torch.rand(1, 3, 8, 8) * 0.5, torch.rand(1, 3, 8, 8) * 0.5
    base = Decoder(tiny_cfg, "mean", residual=True).image_base(content, style)
    torch.testing.assert_close(base, feature_aggregation(content, style, "mean").clamp(0, 1))
    assert ModelConfig.from_dict({"fa": "mean"}).fa == "mean"


def test_unknown_and_duplicate_names_are_refused(registry: None) -> None:
    with pytest.raises(ValueError, match=r"unknown FA variant 'adain'; choose from \('paper'"):
        fa_variant("adain")
    with pytest.raises(ValueError, match="unknown FA variant 'adain'"):
        feature_aggregation(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2), "adain")
    with pytest.raises(ValueError, match="'mean_std' is registered already"):
        register_fa(fa_variant("mean_std"))


def test_names_follow_capabilities() -> None:
    assert tuple(FA_VARIANTS) == ("paper", "mean_std", "wct", "quantile", "none")
    assert repr(FA_VARIANTS) == repr(("paper", "mean_std", "wct", "quantile", "none"))
    assert tuple(fa_names(lambda spec: spec.exportable)) == ("paper", "mean_std", "none")
    assert tuple(fa_names(lambda spec: not spec.amp_safe)) == ("quantile",)
    assert fa_variant("mean_std").transform is fa_mean_std
    assert not fa_variant("paper").image_level and fa_variant("wct").image_level
