"""Tests of the ablation study: variant specs, a tiny two-variant study, resume, the CLI.

Training runs the real Trainer on the tiny VGG layout, registered as arch "tiny" (monkeypatched into
``VGG_CONFIGS``) with seeded random weights in a safetensors file, as in tests/train.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from photostyle.cli import main
from photostyle.data.sampler import SamplingConfig
from photostyle.eval import quality
from photostyle.eval.ablate import (
    TRAIN_RECORD,
    AblationConfig,
    AblationProgress,
    Variant,
    ablation_json,
    ablation_markdown,
    parse_variant,
    parse_variants,
    run_ablation,
    variant_config,
)
from photostyle.models.encoder import VGGEncoder
from photostyle.models.stylizer import ModelConfig
from photostyle.models.weights import load_checkpoint
from photostyle.train.config import TrainConfig
from photostyle.utils import sha256_file

ON = {"use_scp": True, "use_restyle": True, "use_perceptual": True}


@pytest.mark.parametrize(
    ("spec", "name", "changes"),
    [
        ("full", "full", {}),
        ("no_scp", "no_scp", {"use_scp": False}),
        ("no_restyle", "no_restyle", {"use_restyle": False}),
        ("no_perceptual", "no_perceptual", {"use_perceptual": False}),
        ("t1=0.44", "t1=0.44", {"sampling": SamplingConfig(t1=0.44)}),
        ("t2=0.06", "t2=0.06", {"sampling": SamplingConfig(t2=0.06)}),
        (
            " T1=0.440 + no_scp ",
            "no_scp+t1=0.44",
            {"use_scp": False, "sampling": SamplingConfig(0.44)},
        ),
        (
            "t2=0.12+no_restyle+t1=1",
            "no_restyle+t1=1+t2=0.12",
            {"use_restyle": False, "sampling": SamplingConfig(t1=1.0, t2=0.12)},
        ),
    ],
)
def test_spec_to_overrides(spec: str, name: str, changes: dict[str, Any]):
    variant = parse_variant(spec)
    assert variant.name == name
    assert dict(variant.overrides) == {**ON, "sampling": SamplingConfig(), **changes}


def test_labels_follow_the_paper():
    assert parse_variant("full").label == "Ours (All components)"
    assert parse_variant("no_scp").label == "Ours without SCP losses"
    assert parse_variant("no_restyle").label == "Ours without re-stylization"
    assert parse_variant("t1=0.44").label == "Ours (T1: top 44% inside, T2: top 10% outside)"
    assert parse_variant("no_perceptual+t2=0.06").label == (
        "Ours without perceptual losses (T1: top 50% inside, T2: top 6% outside)"
    )


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ("foo", "unknown ablation variant 'foo'"),
        ("no_scp+bar", "unknown ablation variant 'bar'"),
        ("t1", "unknown ablation variant 't1'"),
        ("no_scp=1", "unknown ablation variant 'no_scp=1'"),
        ("t1=0", "t1 must be a fraction in"),
        ("t2=1.5", "t2 must be a fraction in"),
        ("t1=abc", "t1 must be a fraction in"),
        ("t1=nan", "t1 must be a fraction in"),
        ("full+no_scp", "'full' does not combine"),
        ("no_scp+no_scp", "repeats 'no_scp'"),
        ("t1=0.4+t1=0.5", "repeats 't1'"),
        ("no_scp+no_perceptual", "drops both"),
        ("no_scp++t1=0.5", "empty term"),
        (" , ", "no ablation variant given"),
        ("full,no_scp,full", "'full' is given twice"),
        ("t1=0.5,t1=0.50", "'t1=0.5' is given twice"),
    ],
)
def test_bad_specs_raise_one_line(specs: str, message: str):
    with pytest.raises(ValueError, match=message) as info:
        parse_variants(specs)
    assert "\n" not in str(info.value)


def test_variant_config_starts_from_the_full_method(tmp_path: Path):
    base = TrainConfig(data="d", steps=7, use_restyle=False, sampling=SamplingConfig(0.3, 0.3))
    full = variant_config(base, parse_variant("full"), tmp_path)
    assert (full.use_scp, full.use_restyle, full.use_perceptual) == (True, True, True)
    assert full.sampling == SamplingConfig() and full.steps == 7 and full.data == "d"
    assert full.out_dir == str(tmp_path / "full")
    cfg = variant_config(base, parse_variant("no_scp+t2=0.08"), tmp_path)
    assert (cfg.use_scp, cfg.use_restyle, cfg.sampling) == (False, True, SamplingConfig(t2=0.08))
    assert cfg.out_dir == str(tmp_path / "no_scp+t2=0.08")
    assert base.use_restyle is False  # the base is not modified


# --- a tiny study -------------------------------------------------------------------------------


@pytest.fixture
def pairs_dir(tmp_path: Path, write_png: Callable[..., Path]) -> Path:
    """A DPST-layout folder with 2 small pairs."""
    root = tmp_path / "pairs"
    for k, name in enumerate(("in1", "in2")):
        write_png(root / "content" / f"{name}.png", 24 + k, 32, seed=100 + k)
        write_png(root / "style" / f"{name}.png", 28, 20 + k, seed=110 + k)
    return root


@pytest.fixture
def base(data_dir: Path, tiny_weights: Path) -> TrainConfig:
    return TrainConfig(
        data=str(data_dir),
        model=ModelConfig.for_arch("tiny", residual=True),
        encoder_weights=str(tiny_weights),
        crop=16,
        batch_size=2,
        steps=2,
        lr=1e-3,
        index_size=16,
        device="cpu",
        workers=0,
        log_every=1,
        image_every=100,
        ckpt_every=100,
    )


def test_tiny_study_trains_scores_and_resumes_without_retraining(
    base: TrainConfig, pairs_dir: Path, tmp_path: Path, tiny_encoder: VGGEncoder
):
    out = tmp_path / "study"
    config = AblationConfig(
        pairs=str(pairs_dir), out_dir=str(out), variants=("full", "no_restyle"), fid_size=32
    )

    def extractor(x: torch.Tensor) -> torch.Tensor:
        return tiny_encoder(x).taps[-1].mean(dim=(2, 3))

    phases: list[tuple[str, str]] = []
    steps: list[int] = []
    pairs_done: list[int] = []
    progress = AblationProgress(
        on_variant=lambda v, phase: phases.append((v.name, phase)),
        on_step=lambda step, _: steps.append(step),
        on_pair=lambda: pairs_done.append(1),
    )

    def study() -> list:
        return run_ablation(
            config, base, encoder=tiny_encoder, fid_extractor=extractor, progress=progress
        )

    rows = study()
    assert [r.variant for r in rows] == ["full", "no_restyle"]
    assert phases == [(v, p) for v in ("full", "no_restyle") for p in ("train", "eval")]
    assert steps == [1, 2, 1, 2] and len(pairs_done) == 4
    for r in rows:
        assert r.steps == r.target_steps == 2 and r.pairs == 2
        for value in (r.final_loss, r.train_seconds, r.ssim, r.gram_ratio, r.fid_vgg):
            assert value is not None and math.isfinite(value)
        assert -1 <= r.ssim <= 1 and r.gram_ratio > 0 and r.train_seconds > 0
        assert 0 < r.gram_ratio_geomean <= r.gram_ratio  # AM-GM
        assert 0 < r.photorealism_p10 <= r.photorealism < 100
        assert sorted(p.name for p in (Path(r.run_dir) / "outputs").iterdir()) == [
            "in1.png",
            "in2.png",
        ]
    assert rows[1].label == "Ours without re-stylization"

    checkpoints = {v: out / v / "checkpoint.safetensors" for v in ("full", "no_restyle")}
    metas = {v: load_checkpoint(p)[1] for v, p in checkpoints.items()}
    assert json.loads(metas["no_restyle"]["train_config"])["use_restyle"] is False
    assert json.loads(metas["full"]["train_config"])["use_restyle"] is True
    assert metas["full"]["step"] == metas["no_restyle"]["step"] == "2"
    record = json.loads((out / "full" / TRAIN_RECORD).read_text())
    assert record["step"] == 2 and record["final_loss"] == pytest.approx(rows[0].final_loss)

    before = {v: (p.stat().st_mtime_ns, sha256_file(p)) for v, p in checkpoints.items()}
    phases.clear()
    steps.clear()
    again = study()
    assert steps == []  # nothing retrained
    assert phases == [(v, p) for v in ("full", "no_restyle") for p in ("done", "eval")]
    assert {v: (p.stat().st_mtime_ns, sha256_file(p)) for v, p in checkpoints.items()} == before
    for old, new in zip(rows, again, strict=True):
        assert new.steps == 2
        assert new.final_loss == pytest.approx(old.final_loss)
        assert new.train_seconds == pytest.approx(old.train_seconds)
        assert new.ssim == pytest.approx(old.ssim) and new.gram_ratio == pytest.approx(
            old.gram_ratio
        )

    table = ablation_markdown(rows)
    lines = table.strip().splitlines()
    assert len(lines) == 4 and "FID-VGG" in lines[0] and "photorealism dB p10" in lines[0]
    assert lines[2].startswith("| full | Ours (All components) | 2 |")
    assert lines[3].startswith("| no_restyle | Ours without re-stylization | 2 |")
    data = ablation_json(rows, config, base)
    text = json.dumps(data, allow_nan=False)
    assert [r["variant"] for r in json.loads(text)["rows"]] == ["full", "no_restyle"]

    # A run folder trained with other settings is refused, not silently resumed.
    with pytest.raises(ValueError, match=r"other settings \(crop\)"):
        run_ablation(
            config, TrainConfig.from_dict({**base.to_dict(), "crop": 24}), encoder=tiny_encoder
        )


def test_one_pair_has_no_fid_and_unfinished_runs_show_progress(
    base: TrainConfig, pairs_dir: Path, tmp_path: Path, tiny_encoder: VGGEncoder
):
    config = AblationConfig(
        pairs=str(pairs_dir), out_dir=str(tmp_path / "s"), variants=("no_scp",), limit_pairs=1
    )
    limited = TrainConfig.from_dict({**base.to_dict(), "steps": 50, "time_limit_s": 1e-9})
    (row,) = run_ablation(config, limited, encoder=tiny_encoder)
    assert row.fid_vgg is None and row.pairs == 1 and row.steps == 1 and row.target_steps == 50
    line = ablation_markdown([row]).strip().splitlines()[-1]
    assert "| 1/50 |" in line and "| n/a |" in line
    assert (Path(row.run_dir) / "checkpoint.safetensors").is_file()  # resumable


def test_bad_ablation_settings_raise(base: TrainConfig, pairs_dir: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="limit_pairs"):
        AblationConfig(pairs=str(pairs_dir), out_dir="x", limit_pairs=0)
    no_data = TrainConfig.from_dict({**base.to_dict(), "data": ""})
    with pytest.raises(ValueError, match="training data"):
        run_ablation(AblationConfig(pairs=str(pairs_dir), out_dir=str(tmp_path / "o")), no_data)
    bad = AblationConfig(pairs=str(pairs_dir), out_dir=str(tmp_path / "o"), variants=("nope",))
    with pytest.raises(ValueError, match="unknown ablation variant"):
        run_ablation(bad, base)
    assert not (tmp_path / "o").exists()


# --- CLI ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        ["--variants", "full,bogus"],
        ["--variants", "no_scp+no_perceptual"],
        ["--limit-pairs", "0"],
        ["--steps", "-1"],
        ["--crop", "8"],
        ["--arch", "vgg99"],
        ["--steps", "two"],
    ],
)
def test_cli_bad_input_exits_2(
    extra: list[str], data_dir: Path, pairs_dir: Path, tmp_path: Path, capsys
):
    out = tmp_path / "study"
    argv = ["ablate", "--data", str(data_dir), "--pairs", str(pairs_dir), "--out-dir", str(out)]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err
    assert not out.exists()


def test_cli_missing_arguments_exit_2(pairs_dir: Path, tmp_path: Path, capsys):
    assert main(["ablate", "--pairs", str(pairs_dir), "--out-dir", str(tmp_path / "o")]) == 2
    assert "--data" in capsys.readouterr().err
    missing = ["ablate", "--data", str(tmp_path / "nope"), "--pairs", str(pairs_dir)]
    assert main([*missing, "--out-dir", str(tmp_path / "o"), "--device", "cpu"]) == 2


def test_cli_runs_a_study_and_writes_json(
    base: TrainConfig,
    pairs_dir: Path,
    tmp_path: Path,
    tiny_encoder: VGGEncoder,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
):
    monkeypatch.setattr(quality, "metric_encoder", lambda device="cpu": tiny_encoder)
    report = tmp_path / "res" / "ablation.json"
    argv = ["ablate", "--data", base.data, "--pairs", str(pairs_dir)]
    argv += ["--out-dir", str(tmp_path / "study"), "--variants", "t1=0.44", "--steps", "2"]
    argv += ["--crop", "16", "--batch-size", "2", "--arch", "tiny", "--device", "cpu"]
    argv += ["--encoder-weights", str(base.encoder_weights), "--no-fid", "--json", str(report)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "| t1=0.44 | Ours (T1: top 44% inside, T2: top 10% outside) | 2 |" in stdout
    data = json.loads(report.read_text())
    (row,) = data["rows"]
    assert row["variant"] == "t1=0.44" and row["fid_vgg"] is None and row["steps"] == 2
    assert data["settings"]["train"]["steps"] == 2
    assert not [p for p in report.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_variant_is_a_plain_value():
    assert parse_variant("no_scp") == Variant(
        "no_scp", {**ON, "use_scp": False, "sampling": SamplingConfig()}
    )
