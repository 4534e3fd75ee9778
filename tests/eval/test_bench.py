"""Tests of the speed/memory benchmark (paper Table I) and `photostyle bench`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from refusals import cli_refusals, config_refusals

from photostyle.api import StylizeOptions, Stylizer
from photostyle.cli import main
from photostyle.eval import bench
from photostyle.eval.bench import (
    BENCH_METHODS,
    BenchConfig,
    BenchRow,
    add_ratios,
    bench_json,
    bench_table_markdown,
    format_size,
    parse_size,
    parse_sizes,
    run_bench,
    time_call,
)

MIB = 1 << 20


# ---------------------------------------------------------------------------------------------
# Sizes and settings
# ---------------------------------------------------------------------------------------------


def test_sizes_are_width_first_and_come_back_as_height_width() -> None:
    assert parse_size("512x256") == (256, 512)
    assert parse_size(" 768X384 ") == (384, 768)
    assert parse_sizes("512x256,768x384,1024x512") == ((256, 512), (384, 768), (512, 1024))
    assert format_size((256, 512)) == "512x256"
    assert BenchConfig().sizes == parse_sizes("512x256,768x384,1024x512")


@pytest.mark.parametrize("text", ["12x", "x", "", " ", "512*256", "512x256x3", "-5x20", "a,b"])
def test_bad_sizes_raise_one_line_errors(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_sizes(text)
    assert "\n" not in str(info.value)


test_config_rejects_bad_settings = config_refusals(
    BenchConfig,
    [
        {"sizes": ((8, 32),)},  # a side under 16 px
        {"sizes": ((16, 32), (16, 32))},
        {"sizes": ()},
        {"methods": ("photostyle", "bogus")},
        {"methods": ("identity", "identity")},
        {"runs": 0},
        {"warmup": -1},
        {"fa": "bogus"},
    ],
)


# ---------------------------------------------------------------------------------------------
# time_call
# ---------------------------------------------------------------------------------------------


def _fake_clock(durations: list[float], log: list[str]) -> Callable[[], float]:
    """A clock whose consecutive (start, stop) readings are ``durations`` apart."""
    readings: Iterator[float] = iter(
        [v for k, d in enumerate(durations) for v in (10.0 * k, 10.0 * k + d)]
    )

    def clock() -> float:
        log.append("tick")
        return next(readings)

    return clock


def test_time_call_times_only_the_runs_after_the_warmup() -> None:
    log: list[str] = []
    timing = time_call(
        lambda: log.append("call"), runs=5, warmup=2, clock=_fake_clock([3, 1, 4, 1, 5], log)
    )
    assert log == ["call", "call"] + ["tick", "call", "tick"] * 5
    assert timing.times == (3, 1, 4, 1, 5)
    assert (timing.median, timing.min, timing.max) == (3, 1, 5)
    assert timing.spread == pytest.approx(4 - 1)  # sorted 1 1 3 4 5: q1 = 1, q3 = 4
    assert timing.peak_bytes is None and timing.memory is None


def test_time_call_spread_interpolates_quartiles() -> None:
    log: list[str] = []
    timing = time_call(lambda: None, runs=4, warmup=0, clock=_fake_clock([4, 1, 3, 2], log))
    assert log == ["tick"] * 8
    assert timing.median == pytest.approx(2.5)
    assert timing.spread == pytest.approx(3.25 - 1.75)


def test_time_call_rejects_zero_runs() -> None:
    with pytest.raises(ValueError):
        time_call(lambda: None, runs=0)


def test_time_call_synchronizes_cuda_around_each_timed_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[str] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("sync"))
    time_call(lambda: log.append("call"), runs=2, warmup=1, device="cuda", clock=lambda: 0.0)
    assert log == ["call", "sync"] + ["sync", "call", "sync"] * 2


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc/self/statm")
def test_cpu_peak_memory_sees_a_64_mib_array() -> None:
    def allocate() -> None:
        block = np.ones(64 * MIB // 8)  # written, so resident
        time.sleep(0.1)  # outlive many sampling intervals, even on a loaded machine
        del block

    idle = time_call(lambda: time.sleep(0.03), runs=1, warmup=0, measure_memory=True)
    busy = time_call(allocate, runs=1, warmup=0, measure_memory=True)
    assert busy.memory == idle.memory == "rss_statm"
    assert idle.peak_bytes is not None and busy.peak_bytes is not None
    assert busy.peak_bytes >= 48 * MIB
    assert idle.peak_bytes < 16 * MIB


# ---------------------------------------------------------------------------------------------
# Rows, table, JSON
# ---------------------------------------------------------------------------------------------


def _row(method: str, size: str, median: float) -> BenchRow:
    w, h = (int(v) for v in size.split("x"))
    return BenchRow(method, size, h, w, "cpu", 3, median, 0.1, median, median, 1.0, "rss_statm")


def test_ratio_is_the_median_over_photostyles_at_the_same_size() -> None:
    rows = add_ratios(
        [
            _row("photostyle", "32x16", 2.0),
            _row("reinhard", "32x16", 0.5),
            _row("photostyle", "48x32", 4.0),
            _row("histogram", "48x32", 6.0),
        ]
    )
    assert [r.ratio for r in rows] == [1.0, 0.25, 1.0, 1.5]
    assert add_ratios([_row("identity", "32x16", 1.0)])[0].ratio is None
    table = bench_table_markdown(rows)
    assert table.count("\n") == 2 + 4
    assert "| reinhard | 32x16 | cpu | 0.5 |" in table and "| 0.25 |" in table


# ---------------------------------------------------------------------------------------------
# End to end, on the tiny stylizer
# ---------------------------------------------------------------------------------------------


def test_run_bench_times_every_method_at_every_size(
    tiny_stylizer_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    weights, encoder = tiny_stylizer_files
    calls: list[tuple[tuple[int, ...], int]] = []
    original = Stylizer.stylize

    def spy(self: Stylizer, content: torch.Tensor, style: torch.Tensor, **kw: object) -> object:
        options = kw["options"]
        assert isinstance(options, StylizeOptions)
        calls.append((tuple(content.shape), options.max_size))
        return original(self, content, style, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Stylizer, "stylize", spy)
    config = BenchConfig(
        sizes=parse_sizes("32x16,48x32"),
        runs=2,
        warmup=1,
        device="cpu",
        weights=str(weights),
        encoder_weights=str(encoder),
    )
    seen: list[BenchRow] = []
    rows = run_bench(config, progress=seen.append)

    assert [(r.size, r.method) for r in rows] == [
        (size, method) for size in ("32x16", "48x32") for method in BENCH_METHODS
    ]
    assert [(r.size, r.method) for r in seen] == [(r.size, r.method) for r in rows]
    # 1 warm-up + 2 timed calls per size, at the benchmarked size and working size
    assert calls == [((3, 16, 32), 32)] * 3 + [((3, 32, 48), 48)] * 3
    for r in rows:
        assert (r.device, r.runs, r.memory) == ("cpu", 2, bench.RssSampler().kind)
        assert 0 < r.min_s <= r.median_s <= r.max_s
        assert r.peak_mib >= 0
        ref = next(p for p in rows if p.method == "photostyle" and p.size == r.size)
        assert r.ratio == pytest.approx(r.median_s / ref.median_s)
    payload = json.loads(json.dumps(bench_json(rows, config)))
    assert payload["config"]["sizes"] == ["32x16", "48x32"]
    assert len(payload["rows"]) == len(rows)


def test_run_bench_caps_the_working_size_and_upsamples(
    tiny_stylizer_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    weights, encoder = tiny_stylizer_files
    calls: list[tuple[int, str, tuple[int, ...]]] = []
    original = Stylizer.stylize

    def spy(self: Stylizer, content: torch.Tensor, style: torch.Tensor, **kw: object) -> object:
        options = kw["options"]
        assert isinstance(options, StylizeOptions)
        out = original(self, content, style, **kw)  # type: ignore[arg-type]
        calls.append((options.max_size, options.upsample, tuple(out.shape)))  # type: ignore[union-attr]
        return out

    monkeypatch.setattr(Stylizer, "stylize", spy)
    config = BenchConfig(
        sizes=parse_sizes("24x16,96x64"),
        methods=("photostyle",),
        runs=1,
        warmup=0,
        device="cpu",
        weights=str(weights),
        encoder_weights=str(encoder),
        max_size=32,
        upsample="bicubic",
    )
    run_bench(config)
    # below the cap the network runs at full size; above it at 32 px, brought up to 96x64
    assert calls == [(24, "bicubic", (3, 16, 24)), (32, "bicubic", (3, 64, 96))]
    # that the CLI caps like stylize: test_end_to_end.py, test_cli_plain_bench_still_caps_at_1024


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli_bench_writes_one_json_row_per_method(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights, encoder = tiny_stylizer_files
    out = tmp_path / "bench" / "table1.json"
    argv = ["bench", "--sizes", "32x16", "--runs", "2", "--weights", str(weights)]
    argv += ["--encoder-weights", str(encoder), "--device", "cpu", "--json", str(out)]
    assert main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["method"] for r in rows] == list(BENCH_METHODS)
    assert {r["size"] for r in rows} == {"32x16"}
    stdout = capsys.readouterr().out
    assert "| photostyle | 32x16 | cpu |" in stdout
    assert list(out.parent.iterdir()) == [out]  # no temporary file left


test_cli_bench_bad_arguments_exit_2_with_one_line = cli_refusals(
    ["bench", "--device", "cpu"],
    [["--sizes", "12x"], ["--sizes", "8x8"], ["--method", "bogus"], ["--runs", "0"]],
)
