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

from photostyle.train.config import TrainConfig

BATCH = 2  # triplets per step of make_config's runs


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
        return TrainConfig.from_dict({**fields, **overrides}, strict=True)

    return make
