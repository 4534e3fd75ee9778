"""The export-format registry behind ``photostyle export --format``."""

from __future__ import annotations

import sys

import pytest

from photostyle.cli import main
from photostyle.deploy.formats import (
    DEFAULT_EXPORT_FORMAT,
    EXPORT_FORMATS,
    ExportRequest,
    check_export_modules,
    export_format,
)


def test_formats_and_their_files():
    assert list(EXPORT_FORMATS) == ["onnx", "pt2"] and DEFAULT_EXPORT_FORMAT == "onnx"
    assert export_format("onnx").suffix == ".onnx" and export_format("pt2").suffix == ".pt2"
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_format("tflite")


def test_export_help_lists_the_registered_formats(capsys: pytest.CaptureFixture[str]):
    assert main(["export", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--format {onnx,pt2}" in out and "output .onnx or .pt2 file" in out


def test_a_missing_package_is_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
):
    check_export_modules("pt2")  # needs nothing beyond photostyle's requirements
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    with pytest.raises(ValueError, match=r"ONNX export needs the deploy extra"):
        check_export_modules("onnx")
    assert main(["export", "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'photostyle[deploy]'" in err
    assert not (tmp_path / "m.onnx").exists()


def test_each_format_checks_its_own_request(tmp_path):
    for name in EXPORT_FORMATS:
        fmt = export_format(name)
        fmt.check(ExportRequest(tmp_path / f"m{fmt.suffix}"))  # its own suffix passes
        with pytest.raises(ValueError, match=rf"must be a \{fmt.suffix} file"):
            fmt.check(ExportRequest(tmp_path / "m.bin"))
    weights = tmp_path / "w.onnx"
    weights.touch()
    with pytest.raises(ValueError, match="refusing to overwrite an input file"):
        export_format("onnx").check(ExportRequest(weights, inputs=(weights,)))
    with pytest.raises(ValueError, match="opset must be"):
        export_format("onnx").check(ExportRequest(tmp_path / "m.onnx", opset=9))
