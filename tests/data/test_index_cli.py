"""``photostyle index``, ``photostyle index-bench`` and training from a prebuilt index.

The commands run their real encoder-loading path on the tiny VGG layout, registered as arch "tiny"
(monkeypatched) with seeded random weights in a safetensors file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from photostyle.cli import main
from photostyle.data.embed_index import EmbeddingIndex
from photostyle.data.index_bench import (
    AccuracyRow,
    IndexBench,
    SizeRow,
    accuracy,
    bench_markdown,
    fit_cost,
    project,
)
from photostyle.data.sampler import SamplingConfig
from photostyle.train.config import TrainConfig
from photostyle.train.trainer import Trainer


@pytest.fixture
def photos(tmp_path: Path, write_png: Callable[..., Path]) -> Path:
    """ImageFolder: 2 classes x 4 random 32 px photos, and one unreadable file."""
    root = tmp_path / "photos"
    for c, name in enumerate(("beach", "city")):
        for i in range(4):
            write_png(root / name / f"{i}.png", 32, 32, seed=10 * c + i)
    (root / "city" / "bad.jpg").write_bytes(b"garbage")
    return root


def _index_args(photos: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return [
        "index", "--data", str(photos), "--out", str(out), "--arch", "tiny",
        "--encoder-weights", str(weights), "--size", "16", "--dim", "32",
        "--batch-size", "4", "--device", "cpu", *extra,
    ]  # fmt: skip


def test_index_command_builds_and_resumes(
    tmp_path: Path, photos: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "index"
    assert main(_index_args(photos, out, tiny_weights, "--shard", "0/2")) == 0
    assert "shard 0/2 done; 5 images pending in other shards" in capsys.readouterr().out
    assert main(_index_args(photos, out, tiny_weights, "--shard", "1/2")) == 0
    text = capsys.readouterr().out
    assert "9 images (1 unreadable, skipped), 2 classes, k=32" in text
    assert "thresholds t1=0.5, t2=0.1 cached" in text
    index = EmbeddingIndex.open(out)
    assert index.complete and index.manifest["unreadable"] == ["city/bad.jpg"]
    assert (out / "thresholds-t1=0.5-t2=0.1.safetensors").is_file()
    # running again with the same settings is a no-op; other settings are refused
    assert main(_index_args(photos, out, tiny_weights)) == 0
    capsys.readouterr()
    assert main(_index_args(photos, out, tiny_weights, "--seed", "1")) == 2
    err = capsys.readouterr().err
    assert err.startswith("photostyle: error: ") and "other config" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shard", "2/2"], "--shard I/N needs 0 <= I < N"),
        (["--shard", "x"], "--shard must be I/N"),
        (["--dim", "0"], "dim"),
        (["--size", "8"], "size"),
        (["--t1", "0"], "t1 and t2"),
        (["--coco", "missing.json"], "missing.json"),
        (["--unlabelled", "--coco", "a.json"], "exclude each other"),
        (["--arch", "vgg11"], "unknown --arch"),
        (["--clusters", "0"], "must be >= 1"),
    ],
)
def test_index_command_rejects_bad_input(
    tmp_path: Path,
    photos: Path,
    tiny_weights: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
):
    out = tmp_path / "index"
    assert main(_index_args(photos, out, tiny_weights, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (out / "manifest.json").exists()


def test_index_command_on_a_missing_folder(
    tmp_path: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]
):
    assert main(_index_args(tmp_path / "nope", tmp_path / "index", tiny_weights)) == 2
    assert "not a directory" in capsys.readouterr().err


def test_index_bench_command(
    tmp_path: Path, photos: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]
):
    args = _index_args(photos, tmp_path / "unused", tiny_weights)
    args[0] = "index-bench"
    out_at = args.index("--out")
    del args[out_at : out_at + 2]
    report = tmp_path / "bench.json"
    args += ["--sizes", "4,8", "--threshold-sizes", "30", "--accuracy-images", "6"]
    args += ["--dims", "8,64", "--runs", "1", "--json", str(report)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "| 4 |" in text and "| 8 |" in text and "| 30 (random) |" in text
    assert "| 82,783 |" in text and "| 1,000,000 |" in text
    assert "JL vs exact Eq. (9) on 6 images" in text
    data = json.loads(report.read_text())
    assert [r["images"] for r in data["sizes"]] == [4, 8, 30]
    assert [a["dim"] for a in data["accuracy"]] == [8, 64]
    assert data["sizes"][1]["bytes"] > data["sizes"][0]["bytes"]
    args[args.index("--sizes") + 1] = "4,x"
    assert main(args) == 2
    assert "--sizes must be comma-separated integers" in capsys.readouterr().err


def test_train_from_a_prebuilt_index(
    tmp_path: Path, photos: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]
):
    index_dir = tmp_path / "index"
    assert main(_index_args(photos, index_dir, tiny_weights, "--t2", "0.5")) == 0
    config = TrainConfig.from_dict(dict(
        index=str(index_dir), out_dir=str(tmp_path / "run"), arch="tiny",
        encoder_weights=str(tiny_weights), crop=16, batch_size=2, steps=2, index_size=16,
        device="cpu", workers=0, sampling=SamplingConfig(0.5, 0.5),
    ))  # fmt: skip
    trainer = Trainer(config)
    index = EmbeddingIndex.open(index_dir)
    assert [str(p) for p in trainer.images.paths] == [str(p) for p in index.image_list().paths]
    assert not (tmp_path / "run" / "index.safetensors").exists()  # no exact index was built
    assert (index_dir / "thresholds-t1=0.5-t2=0.5.safetensors").is_file()  # cached in the index
    assert trainer.sampler is not None and len(trainer.sampler) == 8
    bad = index.manifest["paths"].index("city/bad.jpg")
    g = torch.Generator().manual_seed(0)
    assert all(bad not in trainer.sampler.draw(g) for _ in range(200))
    with pytest.raises(ValueError, match="max_images"):
        Trainer(TrainConfig.from_dict({**config.to_dict(), "max_images": 2}))
    # the CLI trains from --index without --data
    settings = tmp_path / "tiny.json"
    settings.write_text(json.dumps({"arch": "tiny", "encoder_weights": str(tiny_weights)}))
    args = ["train", "--config", str(settings), "--index", str(index_dir), "--steps", "1"]
    args += ["--out-dir", str(tmp_path / "run2"), "--crop", "16", "--batch-size", "2"]
    args += ["--device", "cpu", "--workers", "0"]
    assert main(args) == 0
    assert (tmp_path / "run2" / "stylizer.safetensors").is_file()


def test_trainer_builds_the_embedding_index_for_large_data(
    tmp_path: Path, photos: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("photostyle.train.trainer.EXACT_INDEX_MAX_IMAGES", 4)
    config = TrainConfig.from_dict(dict(
        data=str(photos), out_dir=str(tmp_path / "run"), arch="tiny",
        encoder_weights=str(tiny_weights), crop=16, batch_size=2, steps=1, index_size=16,
        device="cpu", workers=0,
    ))  # fmt: skip
    done: list[int] = []
    trainer = Trainer(config, on_index_batch=done.append)
    assert isinstance(trainer.index, EmbeddingIndex) and trainer.index.complete
    assert (tmp_path / "run" / "index" / "manifest.json").is_file()
    assert sum(done) >= 9  # embedding progress (and thresholds rows) reported
    assert trainer.index.manifest["config"]["size"] == 16
    again = Trainer(config)  # reused, not rebuilt
    assert np.array_equal(np.asarray(again.index.embeddings), np.asarray(trainer.index.embeddings))


# --- benchmark arithmetic -------------------------------------------------------------------------


def test_fit_cost_recovers_linear_and_quadratic_terms():
    ms = [1000, 2000, 4000]
    a, b = fit_cost(ms, [2e-4 * m + 3e-8 * m * m for m in ms])
    assert a == pytest.approx(2e-4) and b == pytest.approx(3e-8)
    a, b = fit_cost(ms, [5e-8 * m * m for m in ms])
    assert a == pytest.approx(0, abs=1e-12) and b == pytest.approx(5e-8)
    # a fit that would need a negative term keeps the other one alone
    a, b = fit_cost([100, 200], [1.0, 0.5])
    assert a >= 0 and b >= 0


def test_project_extrapolates_the_measurements():
    rows = [
        SizeRow(100, thresholds_s=0.01, embed_s=2.0, images_per_s=50.0, bytes=1000 + 600 * 100),
        SizeRow(200, thresholds_s=0.04, embed_s=3.0, images_per_s=66.0, bytes=1000 + 600 * 200),
        SizeRow(400, thresholds_s=0.16),  # random embeddings: thresholds only
    ]
    coco, million = project(rows, targets=(82_783, 1_000_000))
    assert coco["embed_s"] == pytest.approx(82_783 / 66.0)
    assert coco["bytes"] == pytest.approx(1000 + 600 * 82_783)
    assert million["thresholds_s"] == pytest.approx(1e-6 * 1e12, rel=1e-6)  # 0.01 s at 100 ~ M^2
    assert project([]) == []
    text = bench_markdown(IndexBench(rows, [], 0, [coco]))
    assert "| 400 (random) | - | - | 0.160 |" in text and "| 82,783 |" in text


def test_accuracy_is_near_perfect_with_many_dimensions():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 40, generator=g) * 3
    labels = torch.arange(30) % 3
    feats = centres[labels] + torch.randn(30, 40, generator=g)
    rows = accuracy(feats, labels, (4, 2048), (10, 10, 10, 10), SamplingConfig(0.5, 0.2))
    assert [r.dim for r in rows] == [4, 2048]
    coarse, fine = rows
    assert isinstance(fine, AccuracyRow)
    assert fine.rel_err_median < 0.05 and fine.spearman_mean > 0.98
    assert fine.similar_jaccard > 0.85
    assert coarse.rel_err_median > fine.rel_err_median
    assert coarse.spearman_mean < fine.spearman_mean
