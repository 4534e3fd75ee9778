"""Fixtures of the training tests: a tiny VGG registered as arch "tiny", photos, run configs.

The Trainer runs its real encoder-loading path on the tiny layout: the layout is registered in
``VGG_CONFIGS`` (monkeypatched, so it disappears after each test) and its seeded random weights are
written to a safetensors file, which ``TrainConfig.encoder_weights`` points at.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from photostyle.models.encoder import VGG_CONFIGS, VGGConfig, VGGEncoder
from photostyle.models.weights import save_checkpoint
from photostyle.train.config import TrainConfig

BATCH = 2  # triplets per step of make_config's runs


@pytest.fixture
def write_encoder_weights() -> Callable[..., Path]:
    """Factory writing seeded random encoder weights of a VGG layout; returns the path."""

    def write(path: Path, cfg: VGGConfig, seed: int = 0) -> Path:
        torch.manual_seed(seed)
        encoder = VGGEncoder(cfg, "torch_rgb")
        save_checkpoint(path, dict(encoder.convs.state_dict()), {"input_convention": "torch_rgb"})
        return path

    return write


@pytest.fixture
def tiny_weights(
    tmp_path: Path,
    tiny_cfg: VGGConfig,
    monkeypatch: pytest.MonkeyPatch,
    write_encoder_weights: Callable[..., Path],
) -> Path:
    """Registers the tiny layout as arch "tiny" and writes seeded random weights for it."""
    monkeypatch.setitem(VGG_CONFIGS, "tiny", tiny_cfg)
    return write_encoder_weights(tmp_path / "tiny_vgg.safetensors", tiny_cfg)


@pytest.fixture
def data_dir(tmp_path: Path, write_png: Callable[..., Path]) -> Path:
    """An ImageFolder tree: 2 classes x 3 random 40 px photos."""
    root = tmp_path / "photos"
    for c, name in enumerate(("beach", "city")):
        for i in range(3):
            write_png(root / name / f"{i}.png", 40, 40, seed=10 * c + i)
    return root


@pytest.fixture
def make_config(data_dir: Path, tiny_weights: Path, tmp_path: Path) -> Callable[..., TrainConfig]:
    """A tiny, deterministic run configuration; keyword arguments override fields."""

    def make(out: str = "run", **overrides: Any) -> TrainConfig:
        fields: dict[str, Any] = {
            "data": str(data_dir),
            "out_dir": str(tmp_path / out),
            "arch": "tiny",
            "encoder_weights": str(tiny_weights),
            "crop": 16,
            "batch_size": BATCH,
            "steps": 4,
            "lr": 1e-3,
            "index_size": 16,
            "device": "cpu",
            "workers": 0,
            "log_every": 1,
            "image_every": 2,
            "ckpt_every": 2,
        }
        return TrainConfig(**{**fields, **overrides})

    return make
