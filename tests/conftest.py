"""Shared fixtures: a tiny VGG layout with random weights, so model tests run in milliseconds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from photostyle.models.encoder import InputConvention, VGGConfig, VGGEncoder

# Same structure as VGG (4 blocks up to relu4_1, block 3 has two convs) with tiny widths.
TINY = VGGConfig("tiny", widths=(4, 8, 8, 16), depths=(1, 1, 2, 1), full_depths=(1, 1, 2, 2, 2))


@pytest.fixture
def tiny_cfg() -> VGGConfig:
    """The tiny VGG layout."""
    return TINY


@pytest.fixture
def make_encoder() -> Callable[..., VGGEncoder]:
    """Factory of tiny frozen encoders with seeded random weights."""

    def make(seed: int = 0, convention: InputConvention = "torch_rgb") -> VGGEncoder:
        torch.manual_seed(seed)
        return VGGEncoder(TINY, convention)

    return make


@pytest.fixture
def tiny_encoder(make_encoder: Callable[..., VGGEncoder]) -> VGGEncoder:
    return make_encoder()


@pytest.fixture
def write_png() -> Callable[..., Path]:
    """Factory writing a random RGB PNG of a given size (seeded) and returning its path."""

    def write(path: Path, h: int = 32, w: int = 32, seed: int = 0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        return path

    return write
