"""Tests of the torch.export (.pt2) export on the tiny stylizers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from photostyle.api import Stylizer
from photostyle.cli import main
from photostyle.deploy.torch_export import check_pt2_path, export_pt2


@pytest.mark.parametrize("residual", [False, True])
def test_pt2_matches_eager_at_other_sizes(
    tiny_stylizer_files: tuple[Path, Path], residual_weights: Path, tmp_path: Path, residual: bool
) -> None:
    weights, encoder = tiny_stylizer_files
    stylizer = Stylizer(residual_weights if residual else weights, encoder_weights=encoder)
    result = export_pt2(stylizer.model, tmp_path / "tiny.pt2")
    assert result.path.is_file() and result.fa == "mean_std" and result.max_abs_diff < 1e-5
    program = torch.export.load(str(result.path)).module()
    for (h, w), (hs, ws), alpha in [((16, 17), (90, 20), 1.0), ((53, 31), (24, 24), 0.3)]:
        content, style = torch.rand(1, 3, h, w), torch.rand(1, 3, hs, ws)
        got = program(content, style, torch.tensor(alpha))
        expected = stylizer.model(content, style, alpha=alpha).image
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert next(stylizer.model.parameters()).dtype == torch.float32


def test_pt2_refusals(tiny_stylizer_files: tuple[Path, Path], tmp_path: Path) -> None:
    weights, encoder = tiny_stylizer_files
    stylizer = Stylizer(weights, encoder_weights=encoder)
    with pytest.raises(ValueError, match=r"must be a \.pt2 file"):
        check_pt2_path(tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="wct"):
        export_pt2(stylizer.model, tmp_path / "x.pt2", fa="wct")
    assert not (tmp_path / "x.pt2").exists()


def test_cli_export_pt2(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights, encoder = tiny_stylizer_files
    out = tmp_path / "net.pt2"
    argv = [
        "export",
        "--format",
        "pt2",
        "--weights",
        str(weights),
        "--encoder-weights",
        str(encoder),
    ]
    assert main([*argv, "--out", str(out)]) == 0
    assert out.is_file() and "torch.export, FA mean_std" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "net.onnx")]) == 2
    assert "must be a .pt2 file" in capsys.readouterr().err


def test_pt2_export_needs_no_onnxruntime_but_onnx_export_says_it_does(
    tiny_stylizer_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fresh interpreter without onnxruntime still imports the pt2 exporter.
    code = "import sys; sys.modules['onnxruntime'] = None; import photostyle.deploy.torch_export"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    weights, encoder = tiny_stylizer_files
    argv = ["export", "--weights", str(weights), "--encoder-weights", str(encoder)]
    assert main([*argv, "--format", "pt2", "--out", str(tmp_path / "a.pt2")]) == 0
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "a.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'photostyle[deploy]'" in err
    assert not (tmp_path / "a.onnx").exists()
