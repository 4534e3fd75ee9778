"""Tests of photostyle.eval.speed on a tiny random stylizer (timings are not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from photostyle.cli import main
from photostyle.eval import speed as speed_module
from photostyle.eval.speed import count_flops, run_speed, speed_table_markdown
from photostyle.models.stylizer import ModelConfig, PhotoStylizer


@pytest.fixture
def model() -> PhotoStylizer:
    torch.manual_seed(0)
    config = ModelConfig(arch="custom", widths=(4, 8, 8, 16), depths=(1, 1, 2, 1), residual=True)
    return PhotoStylizer(config).eval()


@pytest.fixture
def small_peak(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's matmul peak measured on 64 x 64 matrices: its 2048 x 2048 ones take
    seconds on 2 cores, and the peak's size is not what the command-line tests check."""
    measure = speed_module.matmul_peak

    def small(dtype: torch.dtype = torch.float32, n: int = 2048, **kwargs: object) -> float:
        return measure(dtype, 64, **kwargs)

    monkeypatch.setattr(speed_module, "matmul_peak", small)


def _conv_flops(model: nn.Module, content: torch.Tensor, style: torch.Tensor) -> int:
    """2 * k * k * Cin * Cout * Hout * Wout per convolution, counted by hooks."""
    total = 0

    def hook(conv: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(conv, nn.Conv2d)
        k = conv.kernel_size[0] * conv.kernel_size[1]
        total += 2 * k * conv.in_channels * conv.out_channels * out.shape[-2] * out.shape[-1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(content, style)
    for h in handles:
        h.remove()
    return total


def test_flop_count_matches_the_convolutions(model: PhotoStylizer) -> None:
    content, style = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 24, 24)
    flops = count_flops(model, content, style)
    assert flops == _conv_flops(model, content, style)
    # FLOPs grow with the pixels: twice the content width, about twice the content's share
    wider = count_flops(model, torch.rand(1, 3, 32, 96), style)
    assert wider > 1.5 * flops


def test_knobs_keep_the_picture_and_report_ratios(model: PhotoStylizer) -> None:
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    knobs = ["float32", "inference_mode", "channels_last", "bfloat16", "threads=1", "batch=2"]
    seen = []
    rows = run_speed(
        model, content, style, knobs=knobs, runs=1, warmup=0, peak_n=64, progress=seen.append
    )
    assert [r.knob for r in rows] == knobs and seen == rows
    by = {r.knob: r for r in rows}
    assert by["float32"].ratio == 1.0 and by["float32"].max_abs_diff == 0.0
    for exact in ("inference_mode", "threads=1", "batch=2"):
        assert by[exact].max_abs_diff == 0.0
    assert by["channels_last"].max_abs_diff < 1e-5
    assert 0.0 < by["bfloat16"].max_abs_diff < 0.1  # bf16 has 8 bits of mantissa
    assert all(r.gflop == rows[0].gflop and r.peak_fraction > 0 for r in rows)
    assert all(r.size == "32x32" for r in rows)
    table = speed_table_markdown(rows)
    assert table.count("\n") == len(rows) + 2 and "bfloat16" in table


def test_baseline_runs_first_and_model_is_untouched(model: PhotoStylizer) -> None:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    content, style = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    rows = run_speed(model, content, style, knobs=["bfloat16"], runs=1, warmup=0, peak_n=32)
    assert [r.knob for r in rows] == ["float32", "bfloat16"]
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert next(model.parameters()).dtype == torch.float32


def _nhwc(m: nn.Module) -> bool:
    """Whether the first 3x3 convolution's weight is stored channels_last (and not plain)."""
    w = next(p for p in m.parameters() if p.ndim == 4 and p.shape[1] > 1)
    return w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()


def test_the_baseline_is_contiguous_whatever_the_models_layout(
    model: PhotoStylizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import photostyle.eval.speed as speed

    layouts: dict[str, bool] = {}
    real_prepare = speed._prepare

    def prepare(knob: str, m: PhotoStylizer, c: torch.Tensor, s: torch.Tensor):  # type: ignore[no-untyped-def]
        layouts[knob] = _nhwc(m) or c.is_contiguous(memory_format=torch.channels_last)
        return real_prepare(knob, m, c, s)

    monkeypatch.setattr(speed, "_prepare", prepare)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    assert _nhwc(model)  # as the Stylizer holds it
    content = torch.rand(1, 3, 16, 24).contiguous(memory_format=torch.channels_last)
    style = torch.rand(1, 3, 16, 16)
    speed.run_speed(model, content, style, knobs=["inference_mode"], runs=1, warmup=0, peak_n=32)
    assert layouts == {"float32": False, "inference_mode": False}  # both start from NCHW
    assert _nhwc(model)  # the caller's model is left as it was


def test_bad_arguments(model: PhotoStylizer) -> None:
    c = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="unknown knob"):
        run_speed(model, c, c, knobs=["turbo"], runs=1, peak_n=32)
    with pytest.raises(ValueError, match="content"):
        run_speed(model, c[0], c, runs=1, peak_n=32)
    with pytest.raises(ValueError, match="batch"):
        run_speed(model, c, c, knobs=["batch=0"], runs=1, peak_n=32)
    with pytest.raises(ValueError, match="threads"):
        run_speed(model, c, c, knobs=["threads=x"], runs=1, peak_n=32)


def test_cli_speed(
    tiny_stylizer_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    small_peak: None,
) -> None:
    weights, encoder = tiny_stylizer_files
    report = tmp_path / "speed.json"
    argv = ["speed", "--sizes", "32x16", "--knobs", "float32,channels_last", "--runs", "1"]
    argv += ["--weights", str(weights), "--encoder-weights", str(encoder), "--json", str(report)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| channels_last | 32x16 |" in out
    rows = json.loads(report.read_text())["rows"]
    assert [r["knob"] for r in rows] == ["float32", "channels_last"]
    assert main([*argv[:4], "turbo", "--weights", str(weights)]) == 2
    assert "unknown knob" in capsys.readouterr().err
    assert main(["speed", "--runs", "0"]) == 2
    capsys.readouterr()
    if not torch.cuda.is_available():
        assert main([*argv, "--device", "cuda"]) == 2  # one line, nothing written
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "CUDA" in err
    assert json.loads(report.read_text())["environment"]["device"] == "cpu"


def test_cli_speed_skips_bfloat16_on_a_cpu_without_bfloat16_units(
    tiny_stylizer_files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    small_peak: None,
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    weights, encoder = tiny_stylizer_files
    argv = ["speed", "--sizes", "32x16", "--knobs", "float32,bfloat16", "--runs", "1"]
    assert main([*argv, "--weights", str(weights), "--encoder-weights", str(encoder)]) == 0
    captured = capsys.readouterr()
    assert "| float32 | 32x16 |" in captured.out and "bfloat16" not in captured.out
    assert "skipping bfloat16" in captured.err


@pytest.mark.parametrize("residual", ["curves", "spatial"])
def test_flop_count_of_the_affine_head(residual: str) -> None:
    """The 0.3 default's pass: the encoder's convolutions on content and style dominate; the
    head's own matmuls (MLP, colour statistics, the colour model's einsum) are counted too."""
    torch.manual_seed(0)
    config = ModelConfig(
        arch="custom",
        widths=(4, 8, 8, 16),
        depths=(1, 1, 2, 1),
        head="affine",
        grid_residual=residual,  # type: ignore[arg-type]
        grid_bins=4,
        grid_hidden=8,
    )
    model = PhotoStylizer(config).eval()
    content, style = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 24, 24)
    flops, convs = count_flops(model, content, style), _conv_flops(model, content, style)
    assert convs < flops < 1.15 * convs
