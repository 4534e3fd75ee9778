"""scripts/eval_oracle_step.py: eval with the first refinement step replaced by its exact
distillation target (the ceiling of a learned step, docs/quality.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import photostyle.inference
from photostyle.cli import main


@pytest.fixture
def eval_args(
    tmp_path: Path,
    write_png: Callable[..., Path],
    make_affine_weights: Callable[..., Path],
    tiny_stylizer_files: tuple[Path, Path],
) -> list[str]:
    """``photostyle eval`` arguments (no --json, no --refine) for an untrained curves model,
    whose head predicts a zero grade: the base, as the distillation targets start from."""
    pairs = tmp_path / "pairs"
    for k, name in enumerate(("in1", "in2")):
        write_png(pairs / "content" / f"{name}.png", 28, 36, seed=k)
        write_png(pairs / "style" / f"{name}.png", 30, 24, seed=10 + k)
    weights = make_affine_weights(
        tmp_path / "curves.safetensors", grid_residual="curves", base_power=0.0, refine_steps=2
    )
    return [
        "--pairs", str(pairs), "--method", "photostyle-mean_std", "--max-size", "32",
        "--weights", str(weights), "--encoder-weights", str(tiny_stylizer_files[1]),
        "--device", "cpu", "--dtype", "float32",
    ]  # fmt: skip


def _scores(path: Path) -> dict[str, float]:
    """Each pair's SSIM and Gram ratio, as ``{"in1 ssim": .., "in1 gram_ratio": .., ...}``."""
    rows = json.loads(path.read_text())["pairs"]
    return {f"{r['pair']} {key}": r[key] for r in rows for key in ("ssim", "gram_ratio")}


@pytest.fixture
def run_oracle(load_script: Callable[[str], ModuleType]) -> Callable[..., dict[str, float]]:
    """Runs the script with its own ``args`` and eval's; returns the scores it wrote to ``out``."""
    script = load_script("eval_oracle_step")

    def run(args: list[str], eval_args: list[str], out: Path) -> dict[str, float]:
        assert script.main([*args, "--", *eval_args, "--json", str(out)]) == 0
        return _scores(out)

    return run


def test_oracle_of_plain_phases_equals_the_plain_refinement(
    eval_args: list[str], run_oracle: Callable[..., dict[str, float]], tmp_path: Path
) -> None:
    """A target of 1 + 1 plain steps at the model's w_ssim (3), then no more, is where two plain
    steps go: the same scores as eval --refine 2; the eval's own refinement is restored after."""
    plain = tmp_path / "plain.json"
    assert main(["eval", *eval_args, "--refine", "2", "--json", str(plain)]) == 0
    phases = ["--distill-steps", "1", "--distill-extra-steps", "1"]
    oracle = run_oracle(
        [*phases, "--distill-extra-ssim-weight", "3"],
        [*eval_args, "--refine", "1"],
        tmp_path / "oracle.json",
    )
    assert oracle == pytest.approx(_scores(plain), abs=1e-6)
    assert photostyle.inference.refine_grade.__name__ == "refine_grade"
    # Another w_ssim in the second phase, or the style term on other levels, moves the target.
    other_weight = run_oracle(
        [*phases, "--distill-extra-ssim-weight", "0"],
        [*eval_args, "--refine", "1"],
        tmp_path / "w0.json",
    )
    other_levels = run_oracle(
        [*phases, "--distill-extra-ssim-weight", "3", "--teacher-levels", "1"],
        [*eval_args, "--refine", "1"],
        tmp_path / "levels.json",
    )
    for moved in (other_weight, other_levels):
        assert moved.keys() == oracle.keys()
        assert moved != pytest.approx(oracle, abs=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--distill-extra-steps", "2", "2", "--distill-extra-ssim-weight", "1"], "one w_ssim"),
        (["--distill-steps", "0"], "at least 1"),
        (["--teacher-levels", "5"], "--teacher-levels"),
    ],
)
def test_oracle_refuses_bad_phases_naming_the_flag(args, message, load_script, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exit_info:
        load_script("eval_oracle_step").main([*args, "--", "--pairs", "unused"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
