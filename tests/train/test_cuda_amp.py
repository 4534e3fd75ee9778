"""Short mixed-precision training runs on a CUDA GPU (scripts/gpu_check.sh runs them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from photostyle.cli import main

pytestmark = pytest.mark.cuda


def test_affine_head_trains_with_bfloat16_autocast_on_cuda(data_dir: Path, tmp_path: Path) -> None:
    from photostyle.api import Stylizer
    from photostyle.train.affine import AffineTrainConfig, train_affine

    config = AffineTrainConfig(
        data=str(data_dir),
        out_dir=str(tmp_path / "affine"),
        steps=3,
        batch_size=2,
        crop=32,
        device="cuda",
        amp=True,
        log_every=1,
    )
    stylizer = Stylizer(train_affine(config), device="cuda")
    assert stylizer.config.head == "affine"
    lines = (tmp_path / "affine" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines][-1] == 3


def test_cli_train_with_amp_on_cuda(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["train", "--data", str(data_dir), "--out-dir", str(out), "--steps", "2"]
    argv += ["--batch-size", "2", "--crop", "32", "--device", "cuda", "--amp"]
    assert main(argv) == 0
    assert (out / "stylizer.safetensors").is_file()
