"""Tests of the evaluation figures and the ``--plot`` options of eval, bench and ablate."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photostyle import cli, utils
from photostyle.eval.ablate import AblationRow
from photostyle.eval.bench import BenchRow
from photostyle.eval.plots import plot_ablation, plot_bench, plot_quality
from photostyle.eval.quality import MethodResult


def _colours(path: Path) -> int:
    """Distinct colours of a PNG (a blank or single-colour figure has very few)."""
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    return len(np.unique(pixels, axis=0))


def _quality_rows(methods: int) -> list[MethodResult]:
    return [
        MethodResult(f"in{p}", f"m{m}", 0.5 + 0.1 * m, 1.0, 0.9 - 0.1 * m + 0.01 * p, 0.1)
        for p in range(3)
        for m in range(methods)
    ]


def test_plot_quality_draws_each_method_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    one = plot_quality(_quality_rows(1), tmp_path / "one.png")
    three = plot_quality(_quality_rows(3), tmp_path / "three.png")
    assert Image.open(three).format == "PNG" and Image.open(three).size[0] > 400
    assert _colours(three) > _colours(one)  # more methods, more colours drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png", "three.png"]
    with pytest.raises(ValueError, match="no results"):
        plot_quality([], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def _bench_row(method: str, w: int, h: int, seconds: float) -> BenchRow:
    return BenchRow(
        method,
        f"{w}x{h}",
        h,
        w,
        "cpu",
        3,
        seconds,
        0.1 * seconds,
        0.9 * seconds,
        1.1 * seconds,
        100.0 * seconds,
        "rss_statm",
    )


def test_plot_bench_and_ablation_write_pngs(tmp_path: Path) -> None:
    rows = [
        _bench_row(m, w, w // 2, k * w / 512)
        for k, m in enumerate(("photostyle", "reinhard"), 1)
        for w in (512, 1024, 2048)
    ]
    path = plot_bench(rows, tmp_path / "bench.png")
    assert Image.open(path).size == (1210, 495)  # two panels at 110 dpi
    ablation = [
        AblationRow("full", "Ours", 10, 10, 0.1, 5.0, 0.7, 0.8, 120.0, 2, "r/full", 0.7, 45.0),
        AblationRow("no_scp", "w/o SCP", 10, 10, 0.2, 5.0, 0.6, 0.9, None, 2, "r/no_scp"),
        AblationRow("no_restyle", "w/o V", 5, 10, math.nan, 2.0, 0.65, 0.85, 99.0, 2, "r/nr"),
    ]
    bars = plot_ablation(ablation, tmp_path / "ablation.png")
    assert Image.open(bars).size == (1320, 363)  # height grows with the variants: 0.5 in each
    assert _colours(bars) > 20
    with pytest.raises(ValueError):
        plot_bench([], tmp_path / "x.png")
    with pytest.raises(ValueError):
        plot_ablation([], tmp_path / "x.png")


@pytest.fixture
def pairs_dir(tmp_path: Path, write_png: Callable[..., Path]) -> Path:
    root = tmp_path / "pairs"
    for k, name in enumerate(("in1", "in2")):
        write_png(root / "content" / f"{name}.png", 24, 32, seed=k)
        write_png(root / "style" / f"{name}.png", 28, 20, seed=10 + k)
    return root


def _eval_argv(pairs: Path, *extra: str) -> list[str]:
    return ["eval", "--pairs", str(pairs), "--method", "reinhard", "--method", "identity", *extra]


def test_cli_eval_writes_the_tradeoff_plot(pairs_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    assert cli.main(_eval_argv(pairs_dir, "--out-dir", str(out))) == 0
    assert Image.open(out / "tradeoff.png").format == "PNG"
    assert f"plot: {out / 'tradeoff.png'}" in capsys.readouterr().out
    explicit = tmp_path / "figs" / "q.png"
    assert cli.main(_eval_argv(pairs_dir, "--plot", str(explicit))) == 0
    assert explicit.is_file()


def test_cli_plot_errors_are_one_line_and_checked_before_work(
    pairs_dir: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    scores = tmp_path / "scores.json"
    argv = _eval_argv(pairs_dir, "--plot", str(tmp_path), "--json", str(scores))
    assert cli.main(argv) == 2  # a directory
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a directory" in err and not scores.exists()

    def missing() -> None:
        raise utils.PlotUnavailable("plots need matplotlib: pip install 'photostyle[train]'")

    monkeypatch.setattr(utils, "pyplot", missing)
    argv = _eval_argv(pairs_dir, "--plot", str(tmp_path / "q.png"), "--json", str(scores))
    assert cli.main(argv) == 2  # asked for, but matplotlib is missing: nothing is run
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "plots need matplotlib" in err
    assert not scores.exists()
    out = tmp_path / "eval"
    assert cli.main(_eval_argv(pairs_dir, "--out-dir", str(out))) == 0  # the default is dropped
    assert "no plot" in capsys.readouterr().err
    assert (out / "sheet.png").is_file() and not (out / "tradeoff.png").exists()


def test_plot_quality_draws_each_methods_frontier(tmp_path: Path) -> None:
    def rows(alphas: tuple[float, ...]) -> list[MethodResult]:
        return [
            MethodResult(
                f"in{p}",
                f"m{m}",
                1 - 0.3 * a + 0.01 * p,
                1.0,
                1 - (0.3 + 0.2 * m) * a,
                0.1,
                photorealism=45.0,
                alpha=a,
            )
            for p in range(3)
            for m in range(2)
            for a in alphas
        ]

    points = plot_quality(rows((1.0,)), tmp_path / "points.png")
    curves = plot_quality(rows((0.0, 0.5, 1.0)), tmp_path / "curves.png")
    assert _colours(curves) > _colours(points)  # the curves add lines in each method's colour
