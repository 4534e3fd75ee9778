"""Tests of the end-to-end benchmark and the per-stage profile (`photostyle bench --end-to-end`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from refusals import cli_refusals, config_refusals

from photostyle.api import STAGES, Stylizer
from photostyle.cli import build_parser, main
from photostyle.eval import end_to_end as e2e
from photostyle.eval.bench import parse_sizes
from photostyle.eval.end_to_end import (
    PREVIOUS,
    PROFILE_STAGES,
    EndToEndConfig,
    EndToEndRow,
    add_speedups,
    copy_bandwidth,
    cpu_model,
    end_to_end_json,
    end_to_end_markdown,
    make_photos,
    method_names,
    profile_markdown,
    run_end_to_end,
    run_profile,
)
from photostyle.models.weights import stylizer_file

SMALL = parse_sizes("48x32,64x40")


def _config(files: tuple[Path, Path], **kw: object) -> EndToEndConfig:
    weights, encoder = files
    settings: dict[str, object] = {
        "sizes": SMALL,
        "methods": ("photostyle", "previous", "reinhard"),
        "runs": 2,
        "warmup": 1,
        "device": "cpu",
        "weights": str(weights),
        "previous_weights": str(weights),
        "encoder_weights": str(encoder),
    }
    settings.update(kw)
    return EndToEndConfig(**settings)  # type: ignore[arg-type]


test_config_rejects_bad_settings = config_refusals(
    EndToEndConfig,
    [
        {"sizes": ()},
        {"sizes": ((8, 32),)},
        {"methods": ("bogus",)},
        {"methods": ("reinhard", "reinhard")},
        {"runs": 0},
        {"dtypes": ("float16",)},
        {"quality": 0},
    ],
)


def test_defaults_are_the_issue_sizes_and_peers() -> None:
    config = EndToEndConfig()
    assert config.sizes == parse_sizes("1024x512,4000x3000,6000x4000")
    assert config.methods == ("photostyle", "previous", "reinhard", "mkl")
    assert stylizer_file(config.previous_weights)[0].name == "photostyle_vgg16.safetensors"
    assert {"reinhard", "mkl", "histogram"} <= set(method_names())


def test_make_photos_writes_grainy_jpegs_of_each_size(tmp_path: Path) -> None:
    photos = make_photos(tmp_path, SMALL)
    for photo, (h, w) in zip(photos, SMALL, strict=True):
        for path in (photo.content, photo.style):
            with Image.open(path) as img:
                assert (img.format, img.size) == ("JPEG", (w, h))
        assert photo.content_mib > 0
    again = make_photos(tmp_path, SMALL[:1])  # reused, not rewritten
    assert again[0].content.stat().st_mtime_ns == photos[0].content.stat().st_mtime_ns


def test_run_end_to_end_times_every_method_file_to_file(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path
) -> None:
    config = _config(tiny_stylizer_files)
    seen: list[EndToEndRow] = []
    rows = run_end_to_end(config, tmp_path, progress=seen.append)
    assert [(r.size, r.method) for r in rows] == [
        (size, m) for size in ("48x32", "64x40") for m in ("photostyle", "previous", "reinhard")
    ]
    assert [r.method for r in seen] == [r.method for r in rows]
    for r in rows:
        assert 0 < r.min_s <= r.median_s <= r.max_s and r.runs == 2
        # content, style (full size: the working size is larger) and result, float32 RGB
        assert r.decoded_mib == pytest.approx(3 * 3 * 4 * r.height * r.width / 2**20)
        ref = next(p for p in rows if p.method == PREVIOUS and p.size == r.size)
        assert r.speedup == pytest.approx(ref.median_s / r.median_s)
    with Image.open(tmp_path / "out_64x40.jpg") as out:  # the last job's result file
        assert out.size == (64, 40)
    table = end_to_end_markdown(rows)
    assert "| previous | 48x32 | cpu | float32 |" in table and table.endswith("|\n")
    payload = json.loads(json.dumps(end_to_end_json(rows, config)))
    assert payload["environment"]["cpu_model"] == cpu_model() != ""
    assert payload["config"]["sizes"] == ["48x32", "64x40"]


def test_speedups_need_a_previous_row() -> None:
    row = EndToEndRow("photostyle", "8x8", 8, 8, "cpu", "float32", 1, 2.0, 0, 2, 2, 1, 1, "x")
    assert add_speedups([row])[0].speedup is None
    prev = EndToEndRow(PREVIOUS, "8x8", 8, 8, "cpu", "float32", 1, 6.0, 0, 6, 6, 1, 1, "x")
    assert [r.speedup for r in add_speedups([row, prev])] == [3.0, 1.0]


def test_a_second_dtype_gets_its_own_row(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dtypes: list[torch.dtype] = []
    original = Stylizer.__init__

    def spy(self: Stylizer, *args: object, **kw: object) -> None:
        dtypes.append(kw["dtype"])  # type: ignore[arg-type]
        original(self, *args, **{**kw, "dtype": torch.float32})  # type: ignore[arg-type]

    monkeypatch.setattr(Stylizer, "__init__", spy)
    config = _config(
        tiny_stylizer_files,
        sizes=SMALL[:1],
        methods=("photostyle",),
        dtypes=("float32", "bfloat16"),
        runs=1,
        warmup=0,
    )
    rows = run_end_to_end(config, tmp_path)
    assert [(r.method, r.dtype) for r in rows] == [
        ("photostyle", "float32"),
        ("photostyle (bfloat16)", "bfloat16"),
    ]
    assert dtypes == [torch.float32, torch.bfloat16]


def test_the_style_is_decoded_at_reduced_scale_only_with_draft(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int | None] = []
    original = e2e.read_photo

    def spy(path: Path, **kw: object) -> object:
        calls.append(kw.get("reduce_to"))  # type: ignore[arg-type]
        return original(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(e2e, "read_photo", spy)
    for draft in (True, False):
        config = _config(
            tiny_stylizer_files,
            sizes=SMALL[:1],
            methods=("photostyle", "reinhard"),
            runs=1,
            warmup=0,
            max_size=24,
            draft=draft,
        )
        run_end_to_end(config, tmp_path)
    # content in full, style reduced to the working size; the colour transfer reads both in full
    assert calls == [None, 24, None, None, None, None, None, None]


def test_profile_splits_the_job_into_stages_that_add_up(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path
) -> None:
    config = _config(tiny_stylizer_files, max_size=32, runs=1, warmup=0)
    rows = run_profile(config, tmp_path, bandwidth_gbps=10.0)
    assert [(r.method, r.size) for r in rows] == [
        (m, s) for m in ("photostyle", "previous") for s in ("48x32", "64x40")
    ]  # the colour transfer has no stages
    for r in rows:
        assert list(r.stages) == list(PROFILE_STAGES)
        for stage in ("decode", "resize", "style_encoding", "network", "encode"):
            assert r.stages[stage] > 0, stage
        assert sum(r.stages.values()) == pytest.approx(r.total_s)
        if r.method == PREVIOUS:  # works at 1024: nothing upsampled, no bandwidth figure
            assert r.full_res_gbps is None and r.bandwidth_fraction is None
            continue
        # larger than the working size (32): upsampled, so a bandwidth figure
        full = r.stages["full_resolution"]
        assert r.full_res_gbps == pytest.approx(24 * r_pixels(r) / full / 1e9)
        assert r.bandwidth_fraction == pytest.approx(r.full_res_gbps / 10.0)
    table = profile_markdown(rows, 10.0)
    assert "| style_encoding |" in table and "10.0 GB/s" in table


def r_pixels(row: e2e.ProfileRow) -> int:
    width, height = (int(v) for v in row.size.split("x"))
    return width * height


def test_profile_gives_no_bandwidth_when_nothing_is_upsampled(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path
) -> None:
    config = _config(tiny_stylizer_files, methods=("previous",), runs=1, warmup=0)
    rows = run_profile(config, tmp_path, bandwidth_gbps=10.0)
    assert all(r.full_res_gbps is None and r.bandwidth_fraction is None for r in rows)
    assert "| - | - |" in profile_markdown(rows, 10.0)


def test_shipped_times_the_bundled_default_beside_a_candidate(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[tuple[object, object]] = []
    real = e2e.Stylizer

    def recorded(weights, **kw):  # type: ignore[no-untyped-def]
        built.append((weights, kw["encoder_weights"]))
        return real(weights, **kw)

    monkeypatch.setattr(e2e, "Stylizer", recorded)
    config = _config(tiny_stylizer_files, sizes=SMALL[:1], methods=("photostyle", "shipped"))
    rows = run_end_to_end(config, tmp_path, progress=None)
    assert [r.method for r in rows] == ["photostyle", "shipped"]
    weights, encoder = (str(f) for f in tiny_stylizer_files)
    assert built == [(weights, encoder), (None, None)]  # the candidate, then the bundled default


def test_copy_bandwidth_is_positive() -> None:
    assert copy_bandwidth("cpu", nbytes=1 << 20, runs=2) > 0


def test_stage_names_are_the_stylizers_plus_file_io() -> None:
    assert ("decode", *STAGES, "encode") == PROFILE_STAGES


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _argv(files: tuple[Path, Path], tmp_path: Path) -> list[str]:
    weights, encoder = files
    argv = ["bench", "--sizes", "48x32", "--runs", "1", "--warmup", "0", "--device", "cpu"]
    argv += ["--weights", str(weights), "--previous-weights", str(weights)]
    argv += ["--encoder-weights", str(encoder), "--workdir", str(tmp_path / "work")]
    return argv


def test_cli_end_to_end_writes_table_json_and_plot(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    out, plot = tmp_path / "e2e.json", tmp_path / "e2e.png"
    argv = _argv(tiny_stylizer_files, tmp_path)
    argv += ["--end-to-end", "--method", "photostyle", "previous", "reinhard"]
    assert main([*argv, "--json", str(out), "--plot", str(plot)]) == 0
    stdout = capsys.readouterr().out
    assert "CPU: " in stdout and "| photostyle | 48x32 | cpu | float32 |" in stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["method"] for r in rows] == ["photostyle", "previous", "reinhard"]
    assert plot.stat().st_size > 0


def test_cli_profile_prints_the_stages(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "profile.json"
    argv = [*_argv(tiny_stylizer_files, tmp_path), "--profile", "--method", "photostyle"]
    assert main([*argv, "--json", str(out)]) == 0
    assert "| photostyle | 48x32 |" in capsys.readouterr().out
    payload = json.loads(out.read_text())
    assert payload["copy_bandwidth_gbps"] > 0
    assert list(payload["rows"][0]["stages"]) == list(PROFILE_STAGES)


test_cli_bad_end_to_end_arguments_exit_2_with_one_line = cli_refusals(
    ["bench", "--device", "cpu"],
    [
        ["--end-to-end", "--profile"],
        ["--end-to-end", "--dtypes", "float16"],
        ["--end-to-end", "--method", "photostyle-onnxruntime"],
        ["--end-to-end", "--previous-weights", "missing.safetensors"],
        ["--profile", "--plot", "p.png"],
    ],
)


def test_cli_plain_bench_still_caps_at_1024(monkeypatch: pytest.MonkeyPatch) -> None:
    from photostyle.eval import bench

    configs: list[bench.BenchConfig] = []
    monkeypatch.setattr(bench, "run_bench", lambda config, progress: configs.append(config) or [])
    assert main(["bench", "--device", "cpu", "--method", "identity"]) == 0
    assert configs[0].max_size == 1024
    assert configs[0].sizes == bench.PAPER_SIZES
    assert build_parser().parse_args(["bench", "--end-to-end"]).max_size is None


@pytest.mark.cuda
def test_cuda_end_to_end_rows_measure_cuda_memory(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path
) -> None:
    config = _config(
        tiny_stylizer_files,
        sizes=SMALL[:1],
        methods=("photostyle", "reinhard"),
        device="cuda",
        dtypes=("float32", "bfloat16"),
        runs=1,
        warmup=1,
    )
    rows = run_end_to_end(config, tmp_path)
    assert [(r.method, r.device.split(":")[0], r.memory) for r in rows] == [
        ("photostyle", "cuda", "cuda_allocated"),
        ("photostyle (bfloat16)", "cuda", "cuda_allocated"),
        ("reinhard", "cpu", "rss_statm"),
    ]
    profile = run_profile(config, tmp_path, bandwidth_gbps=copy_bandwidth("cuda", 1 << 24))
    assert profile[0].stages["network"] > 0
