"""Tests of the upsampler registry: a new way back to full size is one registration."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from photostyle import upsample
from photostyle.api import StylizeOptions
from photostyle.upsample import (
    UPSAMPLE_METHODS,
    UpsamplerSpec,
    register_upsampler,
    upsample_stylized,
    upsampler,
)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the registry for this test: its registrations end with it."""
    monkeypatch.setattr(
        upsample.UPSAMPLER_REGISTRY, "_specs", dict(upsample.UPSAMPLER_REGISTRY._specs)
    )


def _nearest(
    content: torch.Tensor,
    content_small: torch.Tensor,
    stylized_small: torch.Tensor,
    *,
    radius: int,
    eps: float,
    strip_rows: int,
) -> torch.Tensor:
    """Toy upsampler: nearest-neighbour upsampling of the output."""
    return F.interpolate(stylized_small, size=content.shape[-2:], mode="nearest")


def test_a_registered_upsampler_is_listed_and_used(registry: None) -> None:
    register_upsampler(
        UpsamplerSpec("nearest", _nearest, content_detail=False, edge_aware=False, strips=False)
    )

    assert UPSAMPLE_METHODS[-1] == "nearest"
    assert StylizeOptions(upsample="nearest").upsample == "nearest"  # the API accepts it
    small, full = torch.rand(1, 3, 4, 5), torch.rand(1, 3, 8, 10)
    out = upsample_stylized(full, small, small * 0.5, "nearest")
    torch.testing.assert_close(out, (small * 0.5).repeat_interleave(2, 2).repeat_interleave(2, 3))


def test_builtin_upsamplers_and_their_capabilities() -> None:
    assert tuple(UPSAMPLE_METHODS) == ("guided", "change", "bicubic")
    assert repr(UPSAMPLE_METHODS) == "('guided', 'change', 'bicubic')"
    assert [name for name in UPSAMPLE_METHODS if upsampler(name).content_detail] == [
        "guided",
        "change",
    ]
    assert upsampler("guided").edge_aware and not upsampler("change").edge_aware
    with pytest.raises(ValueError, match=r"unknown upsampling 'nearest'; choose from \('guided'"):
        upsampler("nearest")
    with pytest.raises(ValueError, match="'guided' is registered already"):
        register_upsampler(upsampler("guided"))
