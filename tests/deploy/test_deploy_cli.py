"""Tests of ``photostyle export`` and ``photostyle stylize --backend onnxruntime`` (exit codes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from PIL import Image

from photostyle import cli
from photostyle.io import load_image
from photostyle.models.weights import PREVIOUS_STYLIZER

Capsys = pytest.CaptureFixture[str]


@pytest.fixture
def model_args(tiny_stylizer_files: tuple[Path, Path]) -> list[str]:
    weights, encoder = tiny_stylizer_files
    return ["--weights", str(weights), "--encoder-weights", str(encoder)]


@pytest.fixture
def photos(tmp_path: Path, write_png: Callable[..., Path]) -> tuple[Path, Path]:
    return write_png(tmp_path / "c.png", 30, 41, seed=1), write_png(tmp_path / "s.png", 24, 20, 2)


def _one_line_error(capsys: Capsys) -> str:
    """The captured stderr, checked to be a single line without a traceback."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    return err


# ---------------------------------------------------------------------------------------------
# photostyle export
# ---------------------------------------------------------------------------------------------


def test_export_writes_a_photostyle_onnx_file(
    tmp_path: Path, model_args: list[str], capsys: Capsys
) -> None:
    out = tmp_path / "models" / "tiny.onnx"
    assert cli.main(["export", "--out", str(out), *model_args, "--fa", "paper"]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith(f"wrote {out} (ONNX opset 17, FA paper;")
    assert "onnxruntime vs PyTorch at 50x37: max abs diff" in stdout
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["photostyle.fa"] == "paper"
    assert json.loads(meta["photostyle.model_config"])["fa"] == "paper"
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.onnx"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "m.onx"], "m.onx: the output must be a .onnx file"),
        (["--out", "m.onnx", "--fa", "wct"], "'wct' cannot be exported to ONNX"),
        (["--out", "m.onnx", "--opset", "9"], "opset must be 13 to 20, got 9"),
        (["--out", "m.onnx", "--format", "tflite"], "invalid choice: 'tflite'"),
        (["--out", "m.onnx", "--weights", "nope.safetensors"], "no such weights file"),
        ([], "the following arguments are required: --out"),
    ],
)
def test_export_errors_exit_2_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Capsys,
    extra: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export", *extra]) == 2
    assert message in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# photostyle stylize --backend onnxruntime
# ---------------------------------------------------------------------------------------------


def test_stylize_with_onnxruntime(
    tmp_path: Path,
    photos: tuple[Path, Path],
    model_args: list[str],
    tiny_onnx: Path,
    capsys: Capsys,
) -> None:
    content, style = photos
    argv = ["stylize", str(content), str(style), *model_args, "--max-size", "20"]
    out_onnx, out_torch = tmp_path / "onnx.png", tmp_path / "torch.png"
    backend = ["--backend", "onnxruntime", "--onnx", str(tiny_onnx)]
    assert cli.main([*argv, "-o", str(out_onnx), *backend]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out_onnx}"
    assert cli.main([*argv, "-o", str(out_torch)]) == 0
    got, expected = load_image(out_onnx), load_image(out_torch)
    assert got.shape == (3, 30, 41)
    assert float((got - expected).abs().max()) <= 1 / 255  # equal up to 8-bit rounding


def test_demo_with_onnxruntime(
    tmp_path: Path, model_args: list[str], tiny_onnx: Path, capsys: Capsys
) -> None:
    argv = ["demo", "--out-dir", str(tmp_path), *model_args, "--max-size", "32"]
    assert cli.main([*argv, "--backend", "onnxruntime", "--onnx", str(tiny_onnx)]) == 0
    assert (tmp_path / "demo_stylized.png").is_file()


def test_stylize_with_onnxruntime_refuses_masks(
    tmp_path: Path,
    photos: tuple[Path, Path],
    model_args: list[str],
    tiny_onnx: Path,
    capsys: Capsys,
) -> None:
    content, style = photos
    mask = tmp_path / "m.png"
    Image.new("RGB", (41, 30), (0, 0, 255)).save(mask)
    out = tmp_path / "r.png"
    argv = ["stylize", str(content), str(style), "-o", str(out), *model_args]
    argv += ["--content-mask", str(mask), "--style-mask", str(mask)]
    assert cli.main([*argv, "--backend", "onnxruntime", "--onnx", str(tiny_onnx)]) == 2
    assert "--backend onnxruntime does not support masks" in _one_line_error(capsys)
    assert not out.exists()


def test_stylize_pairs_with_masks_and_onnxruntime(
    tmp_path: Path,
    write_png: Callable[..., Path],
    model_args: list[str],
    tiny_onnx: Path,
    capsys: Capsys,
) -> None:
    root = tmp_path / "pairs"
    for folder in ("content", "style"):
        write_png(root / folder / "a.png", 20, 24)
    (root / "content_mask").mkdir()
    (root / "style_mask").mkdir()
    Image.new("RGB", (24, 20), (0, 255, 0)).save(root / "content_mask" / "a.png")
    Image.new("RGB", (24, 20), (0, 255, 0)).save(root / "style_mask" / "a.png")
    out_dir = tmp_path / "out"
    argv = ["stylize", "--pairs", str(root), "--out-dir", str(out_dir), *model_args]
    argv += ["--backend", "onnxruntime", "--onnx", str(tiny_onnx)]
    assert cli.main(argv) == 2
    assert "pass --no-masks" in _one_line_error(capsys)
    assert not out_dir.exists()
    assert cli.main([*argv, "--no-masks"]) == 0
    assert (out_dir / "a.png").is_file()


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("foreign", "not a photostyle ONNX export"),
        ("garbage", "not a readable ONNX model"),
        ("missing", "no such ONNX file"),
    ],
)
def test_stylize_with_a_wrong_onnx_file(
    tmp_path: Path,
    photos: tuple[Path, Path],
    model_args: list[str],
    capsys: Capsys,
    which: str,
    message: str,
) -> None:
    content, style = photos
    bad = tmp_path / "bad.onnx"
    if which == "garbage":
        bad.write_bytes(b"\x08\x07junk" * 30)
    elif which == "foreign":
        value = onnx.helper.make_tensor_value_info
        node = onnx.helper.make_node("Identity", ["x"], ["y"])
        graph = onnx.helper.make_graph([node], "g", [value("x", 1, [1])], [value("y", 1, [1])])
        onnx.save(onnx.helper.make_model(graph), str(bad))
    out = tmp_path / "r.png"
    argv = ["stylize", str(content), str(style), "-o", str(out), *model_args]
    assert cli.main([*argv, "--backend", "onnxruntime", "--onnx", str(bad)]) == 2
    err = _one_line_error(capsys)
    assert err.startswith("photostyle: error: ") and message in err
    assert not out.exists()


def test_stylize_onnx_of_other_weights(
    tmp_path: Path, photos: tuple[Path, Path], tiny_onnx: Path, capsys: Capsys
) -> None:
    content, style = photos
    out = tmp_path / "r.png"
    argv = ["stylize", str(content), str(style), "-o", str(out), "--device", "cpu"]
    argv += ["--weights", PREVIOUS_STYLIZER]  # the previous release's pixel decoder
    assert cli.main([*argv, "--backend", "onnxruntime", "--onnx", str(tiny_onnx)]) == 2
    assert "exported from other weights" in _one_line_error(capsys)


def test_onnxruntime_refuses_the_affine_head(
    tmp_path: Path, photos: tuple[Path, Path], capsys: Capsys
) -> None:
    content, style = photos
    out = tmp_path / "r.png"
    argv = ["stylize", str(content), str(style), "-o", str(out), "--device", "cpu"]
    assert cli.main([*argv, "--backend", "onnxruntime"]) == 2
    assert "pixel-decoder stylizers only" in _one_line_error(capsys)
    assert not out.exists()


def test_onnx_file_needs_the_onnxruntime_backend(
    tmp_path: Path, photos: tuple[Path, Path], model_args: list[str], capsys: Capsys
) -> None:
    content, style = photos
    argv = ["stylize", str(content), str(style), "-o", str(tmp_path / "r.png"), *model_args]
    assert cli.main([*argv, "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "--onnx needs --backend onnxruntime" in _one_line_error(capsys)
    assert cli.main([*argv, "--backend", "tensorrt"]) == 2
    assert "invalid choice: 'tensorrt'" in _one_line_error(capsys)


def test_bench_with_onnxruntime(
    tiny_stylizer_files: tuple[Path, Path], tiny_onnx: Path, capsys: Capsys
) -> None:
    weights, encoder = tiny_stylizer_files
    argv = ["bench", "--sizes", "32x16", "--runs", "2", "--device", "cpu"]
    argv += ["--weights", str(weights), "--encoder-weights", str(encoder)]
    argv += ["--method", "photostyle", "photostyle-onnxruntime", "--onnx", str(tiny_onnx)]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("| max abs diff |")
    assert lines[3].startswith("| photostyle-onnxruntime | 32x16 | cpu |")


def test_export_of_the_affine_default_is_refused_in_one_line(
    tmp_path: Path, capsys: Capsys
) -> None:
    out = tmp_path / "m.onnx"
    assert cli.main(["export", "--out", str(out)]) == 2
    assert "pixel-decoder stylizers only" in _one_line_error(capsys)
    assert not out.exists()
