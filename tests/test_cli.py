"""Tests of the command line (``photostyle.cli.main``) on a tiny stylizer built in conftest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from photostyle import cli
from photostyle.api import StylizeOptions, Stylizer
from photostyle.data.pairs import find_pairs
from photostyle.io import load_image
from photostyle.models.weights import load_checkpoint, save_checkpoint

Capsys = pytest.CaptureFixture[str]


@pytest.fixture
def model_args(tiny_stylizer_files: tuple[Path, Path]) -> list[str]:
    weights, encoder = tiny_stylizer_files
    return ["--weights", str(weights), "--encoder-weights", str(encoder), "--device", "cpu"]


@pytest.fixture
def photos(tmp_path: Path, write_png: Callable[..., Path]) -> tuple[Path, Path]:
    return write_png(tmp_path / "c.png", 30, 41, seed=1), write_png(tmp_path / "s.png", 24, 20, 2)


def _one_line_error(capsys: Capsys) -> str:
    """The captured stderr, checked to be a single line without a traceback."""
    err = capsys.readouterr().err
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------
# Usage
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["stylize", "--alpha", "strong"],
        ["stylize", "--fa", "bogus"],
        ["stylize"],
        ["stylize", "a.png", "b.png"],  # no -o
        ["stylize", "--pairs", "d"],  # no --out-dir
        ["stylize", "a.png", "--pairs", "d", "--out-dir", "o"],
    ],
)
def test_usage_errors(capsys: Capsys, argv: list[str]) -> None:
    assert cli.main(argv) == 2
    assert "error" in _one_line_error(capsys)


def test_help_returns_zero(capsys: Capsys) -> None:
    assert cli.main(["stylize", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--encoder-weights" in out and "--pairs" in out


# ---------------------------------------------------------------------------------------------
# One photo
# ---------------------------------------------------------------------------------------------


def test_stylize_happy_path(
    tmp_path: Path, photos: tuple[Path, Path], model_args: list[str], capsys: Capsys
) -> None:
    content, style = photos
    out = tmp_path / "out" / "r.png"
    argv = ["stylize", str(content), str(style), "-o", str(out), *model_args]
    assert cli.main([*argv, "--alpha", "0.7", "--max-size", "20", "--fa", "wct"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"wrote {out}"
    assert load_image(out).shape == (3, 30, 41)
    assert _files(out.parent) == ["r.png"]


@pytest.mark.parametrize("upsample", ["guided", "change", "bicubic"])
def test_stylize_upsample_option_reaches_the_api(
    tmp_path: Path,
    photos: tuple[Path, Path],
    model_args: list[str],
    tiny_stylizer_files: tuple[Path, Path],
    upsample: str,
) -> None:
    content, style = photos
    out = tmp_path / f"{upsample}.png"
    argv = ["stylize", str(content), str(style), "-o", str(out), "--max-size", "20"]
    assert cli.main([*argv, "--upsample", upsample, *model_args]) == 0
    weights, encoder = tiny_stylizer_files
    stylizer = Stylizer(weights, encoder_weights=encoder, device="cpu")
    options = StylizeOptions(max_size=20, upsample=upsample)  # type: ignore[arg-type]
    expected = stylizer.stylize(load_image(content), load_image(style), options=options)
    assert (load_image(out) - expected).abs().max() <= 1 / 255 + 1e-6  # 8-bit PNG rounding
    others = {"guided", "change", "bicubic"} - {upsample}
    for other in others:  # the three really differ at this size, so the option was applied
        alt = stylizer.stylize(
            load_image(content),
            load_image(style),
            options=StylizeOptions(max_size=20, upsample=other),  # type: ignore[arg-type]
        )
        assert (alt - expected).abs().max() > 2 / 255


def test_missing_input(
    tmp_path: Path, photos: tuple[Path, Path], model_args: list[str], capsys: Capsys
) -> None:
    content, _ = photos
    out = tmp_path / "r.png"
    argv = ["stylize", str(content), str(tmp_path / "nope.png"), "-o", str(out), *model_args]
    assert cli.main(argv) == 2
    assert "nope.png: no such file" in _one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty"])
def test_bad_image_file(
    tmp_path: Path, photos: tuple[Path, Path], model_args: list[str], capsys: Capsys, kind: str
) -> None:
    content, style = photos
    bad = tmp_path / "bad.png"
    data = content.read_bytes()
    bad.write_bytes(
        {"truncated": data[: len(data) // 2], "garbage": b"\x89PNG junk" * 20}.get(kind, b"")
    )
    out = tmp_path / "r.png"
    assert cli.main(["stylize", str(bad), str(style), "-o", str(out), *model_args]) == 2
    assert "bad.png" in _one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("which", ["content", "style"])
def test_output_equal_to_an_input(
    photos: tuple[Path, Path], model_args: list[str], capsys: Capsys, which: str
) -> None:
    content, style = photos
    target = content if which == "content" else style
    before = target.read_bytes()
    assert cli.main(["stylize", str(content), str(style), "-o", str(target), *model_args]) == 2
    assert "refusing to overwrite" in _one_line_error(capsys)
    assert target.read_bytes() == before


def test_unsupported_output_format(
    tmp_path: Path, photos: tuple[Path, Path], model_args: list[str], capsys: Capsys
) -> None:
    content, style = photos
    out = tmp_path / "r.gif"
    assert cli.main(["stylize", str(content), str(style), "-o", str(out), *model_args]) == 2
    assert "unsupported output format" in _one_line_error(capsys)
    assert not out.exists()


def test_one_mask_without_the_other(
    tmp_path: Path, photos: tuple[Path, Path], model_args: list[str], capsys: Capsys
) -> None:
    content, style = photos
    mask = tmp_path / "m.png"
    Image.new("RGB", (41, 30), (0, 0, 255)).save(mask)
    out = tmp_path / "r.png"
    argv = ["stylize", str(content), str(style), "-o", str(out), "--content-mask", str(mask)]
    assert cli.main([*argv, *model_args]) == 2
    assert "mask" in _one_line_error(capsys)
    assert not out.exists()


def test_masks(tmp_path: Path, photos: tuple[Path, Path], model_args: list[str]) -> None:
    content, style = photos
    cm, sm = tmp_path / "cm.png", tmp_path / "sm.png"
    Image.new("RGB", (41, 30), (0, 0, 255)).save(cm)
    Image.new("RGB", (20, 24), (0, 0, 255)).save(sm)
    out = tmp_path / "r.png"
    argv = ["stylize", str(content), str(style), "-o", str(out)]
    assert cli.main([*argv, "--content-mask", str(cm), "--style-mask", str(sm), *model_args]) == 0
    assert out.is_file()


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--alpha", "1.5"), ("--alpha", "-1"), ("--max-size", "8"), ("--refine", "-1")],
)
def test_bad_option_values(
    tmp_path: Path,
    photos: tuple[Path, Path],
    model_args: list[str],
    capsys: Capsys,
    flag: str,
    value: str,
) -> None:
    content, style = photos
    out = tmp_path / "r.png"
    argv = ["stylize", str(content), str(style), "-o", str(out), flag, value, *model_args]
    assert cli.main(argv) == 2
    assert f"error: {flag} must" in _one_line_error(capsys)  # the flag, not the field name
    assert not out.exists()


def test_refine_with_a_model_without_the_curves_head(
    tmp_path: Path, photos: tuple[Path, Path], model_args: list[str], capsys: Capsys
) -> None:
    content, style = photos
    out = tmp_path / "r.png"
    argv = ["stylize", str(content), str(style), "-o", str(out), "--refine", "2", *model_args]
    assert cli.main(argv) == 2
    assert "refine needs a model with the affine head's curves residual" in _one_line_error(capsys)
    assert not out.exists()


def test_weights_of_another_architecture(
    tmp_path: Path,
    photos: tuple[Path, Path],
    tiny_stylizer_files: tuple[Path, Path],
    capsys: Capsys,
) -> None:
    weights, encoder = tiny_stylizer_files
    tensors, meta = load_checkpoint(weights)
    config = json.loads(meta["model_config"])
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, tensors, {**meta, "model_config": {**config, "widths": [8, 8, 8, 16]}})
    content, style = photos
    out = tmp_path / "r.png"
    argv = ["stylize", str(content), str(style), "-o", str(out), "--weights", str(other)]
    assert cli.main([*argv, "--encoder-weights", str(encoder), "--device", "cpu"]) == 2
    assert "other.safetensors" in _one_line_error(capsys)
    assert not out.exists()


def test_not_a_stylizer_and_missing_weights(
    tmp_path: Path,
    photos: tuple[Path, Path],
    tiny_stylizer_files: tuple[Path, Path],
    capsys: Capsys,
) -> None:
    _, encoder = tiny_stylizer_files
    content, style = photos
    out = tmp_path / "r.png"
    for weights in (encoder, tmp_path / "missing.safetensors"):
        argv = ["stylize", str(content), str(style), "-o", str(out), "--weights", str(weights)]
        assert cli.main([*argv, "--device", "cpu"]) == 2
        assert str(weights) in _one_line_error(capsys)
    assert not out.exists()


def test_interrupt(
    tmp_path: Path,
    photos: tuple[Path, Path],
    model_args: list[str],
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from photostyle.inference import TorchBackend

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(TorchBackend, "run", interrupted)  # stylize and stylize_many
    content, style = photos
    out = tmp_path / "r.png"
    assert cli.main(["stylize", str(content), str(style), "-o", str(out), *model_args]) == 130
    assert "interrupted" in _one_line_error(capsys)
    assert not out.exists()


def test_demo(tmp_path: Path, model_args: list[str], capsys: Capsys) -> None:
    assert cli.main(["demo", "--out-dir", str(tmp_path), "--max-size", "64", *model_args]) == 0
    assert "demo_stylized.png" in capsys.readouterr().out
    assert load_image(tmp_path / "demo_stylized.png").shape == (3, 400, 600)


# ---------------------------------------------------------------------------------------------
# Folders of pairs
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def pairs_dir(tmp_path: Path, write_png: Callable[..., Path]) -> Path:
    """DPST layout with pairs a, b, c; b's style file is truncated; a has masks."""
    root = tmp_path / "pairs"
    for k, name in enumerate("abc"):
        write_png(root / "content" / f"{name}.png", 20 + k, 24, seed=k)
        write_png(root / "style" / f"{name}.png", 18, 22 + k, seed=10 + k)
    bad = root / "style" / "b.png"
    bad.write_bytes(bad.read_bytes()[:60])
    (root / "content_mask").mkdir()
    (root / "style_mask").mkdir()
    Image.new("RGB", (24, 20), (0, 255, 0)).save(root / "content_mask" / "a.png")
    Image.new("RGB", (22, 18), (0, 255, 0)).save(root / "style_mask" / "a.png")
    (root / "content" / ".DS_Store").write_bytes(b"\x00")  # hidden files are skipped
    return root


def test_pairs_with_a_bad_pair(
    tmp_path: Path, pairs_dir: Path, model_args: list[str], capsys: Capsys
) -> None:
    out_dir = tmp_path / "out"
    argv = ["stylize", "--pairs", str(pairs_dir), "--out-dir", str(out_dir), *model_args]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert _files(out_dir) == ["a.png", "c.png"]
    assert "stylized 2 of 3 pairs" in captured.out and "1 failed" in captured.out
    assert "photostyle: b: " in captured.err and "Traceback" not in captured.err
    assert load_image(out_dir / "c.png").shape == (3, 22, 24)


def test_pairs_with_sheet(
    tmp_path: Path, pairs_dir: Path, model_args: list[str], capsys: Capsys
) -> None:
    (pairs_dir / "style" / "b.png").unlink()
    (pairs_dir / "content" / "b.png").unlink()
    sheet = tmp_path / "sheet.png"
    argv = ["stylize", "--pairs", str(pairs_dir), "--out-dir", str(tmp_path / "out")]
    assert cli.main([*argv, "--sheet", str(sheet), "--no-masks", *model_args]) == 0
    assert f"contact sheet: {sheet}" in capsys.readouterr().out
    with Image.open(sheet) as img:
        assert img.format == "PNG"
        assert img.height > 2 * 160 and img.width > 3 * 160  # 2 rows of content | style | result


def test_pairs_sheet_onto_an_input(
    tmp_path: Path, pairs_dir: Path, model_args: list[str], capsys: Capsys
) -> None:
    target = pairs_dir / "content" / "a.png"
    before = target.read_bytes()
    argv = ["stylize", "--pairs", str(pairs_dir), "--out-dir", str(tmp_path / "out")]
    assert cli.main([*argv, "--sheet", str(target), *model_args]) == 2
    assert "refusing to overwrite" in _one_line_error(capsys)
    assert target.read_bytes() == before
    assert not (tmp_path / "out").exists()


def test_pairs_without_content_folder(
    tmp_path: Path, model_args: list[str], capsys: Capsys
) -> None:
    (tmp_path / "style").mkdir()
    out_dir = tmp_path / "out"
    argv = ["stylize", "--pairs", str(tmp_path), "--out-dir", str(out_dir), *model_args]
    assert cli.main(argv) == 2
    assert "content/" in _one_line_error(capsys)
    assert not out_dir.exists()


def test_find_pairs(pairs_dir: Path) -> None:
    pairs = find_pairs(pairs_dir)
    assert [p.name for p in pairs] == ["a", "b", "c"]
    assert pairs[0].style == pairs_dir / "style" / "a.png"
    assert pairs[0].content_mask == pairs_dir / "content_mask" / "a.png"
    assert pairs[0].style_mask == pairs_dir / "style_mask" / "a.png"
    assert pairs[2].content_mask is None and pairs[2].style_mask is None
    assert all(p.content_mask is None for p in find_pairs(pairs_dir, use_masks=False))


def test_pairs_with_clashing_names(
    tmp_path: Path, pairs_dir: Path, model_args: list[str], capsys: Capsys
) -> None:
    (pairs_dir / "content" / "a.jpg").write_bytes(b"")
    argv = ["stylize", "--pairs", str(pairs_dir), "--out-dir", str(tmp_path / "out"), *model_args]
    assert cli.main(argv) == 2
    assert "a.jpg and a.png share the name" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fast", [False, True])
def test_bfloat16_is_refused_on_a_cpu_without_bfloat16_units(
    tmp_path: Path,
    photos: tuple[Path, Path],
    model_args: list[str],
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
    fast: bool,
) -> None:
    import torch

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: fast)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    content, style = photos
    out = tmp_path / "bf16.png"
    argv = ["stylize", str(content), str(style), "-o", str(out), "--dtype", "bfloat16"]
    code = cli.main([*argv, *model_args])
    if fast:
        assert code == 0 and out.is_file()
    else:
        assert code == 2 and not out.exists()
        assert "no bfloat16 units" in _one_line_error(capsys)
        train = ["train", "--data", str(tmp_path), "--out-dir", str(tmp_path / "run"), "--amp"]
        assert cli.main([*train, "--device", "cpu"]) == 2
        assert "--amp (bfloat16)" in _one_line_error(capsys)
        assert not (tmp_path / "run").exists()


def _commands_with(flag: str) -> list[str]:
    """The subcommands that take ``flag``, read from the parser itself."""
    import argparse

    actions = cli.build_parser()._actions
    sub = next(a for a in actions if isinstance(a, argparse._SubParsersAction))
    return sorted(name for name, p in sub.choices.items() if flag in p._option_string_actions)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "meta"])
def test_unknown_device_is_one_line_naming_the_flag(capsys: Capsys, device: str) -> None:
    commands = _commands_with("--device")
    assert {"stylize", "train", "bench", "speed", "stylize-video"} <= set(commands)
    for command in commands:
        assert cli.main([command, "--device", device]) == 2, command
        err = _one_line_error(capsys)
        assert "argument --device" in err and repr(device) in err, (command, err)


def _outputs_under_a_file(c: Path, s: Path, blocker: Path) -> dict[str, list[str]]:
    """For every command that writes files: argv whose output lies under ``blocker`` (a file)."""
    d, out = str(blocker.parent), str(blocker)
    return {
        "stylize": ["stylize", str(c), str(s), "-o", f"{out}/o.png"],
        "stylize --pairs": ["stylize", "--pairs", d, "--out-dir", out],
        "stylize --style": ["stylize", str(c), "--style", str(s), "--out-dir", out],
        "lut": ["lut", str(s), "-o", f"{out}/look.cube"],
        "lut --pairs": ["lut", "--pairs", d, "--json", f"{out}/rows.json"],
        "demo": ["demo", "--out-dir", out],
        "eval --json": ["eval", "--pairs", d, "--json", f"{out}/scores.json"],
        "eval --out-dir": ["eval", "--pairs", d, "--out-dir", out],
        "eval --plot": ["eval", "--pairs", d, "--plot", f"{out}/p.png"],
        "train": ["train", "--data", d, "--out-dir", out],
        "bench": ["bench", "--json", f"{out}/t.json"],
        "speed": ["speed", "--json", f"{out}/t.json"],
        "export onnx": ["export", "--out", f"{out}/m.onnx"],
        "export pt2": ["export", "--format", "pt2", "--out", f"{out}/m.pt2"],
        "fid": ["fid", d, d, "--json", f"{out}/fid.json"],
        "ablate": ["ablate", "--data", d, "--pairs", d, "--out-dir", out],
        "index": ["index", "--data", d, "--out", out],
        "index-bench": ["index-bench", "--data", d, "--json", f"{out}/r.json"],
        "stylize-video": ["stylize-video", d, f"{out}/v.mp4", "--style", str(s)],
        "stylize-video frames": ["stylize-video", d, f"{out}/frames", "--style", str(s)],
    }


def test_output_under_a_file_is_refused_before_any_work(
    photos: tuple[Path, Path], tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the output was checked")

    for target in (
        "photostyle.api.Stylizer.__init__",
        "photostyle.train.trainer.Trainer.__init__",
        "photostyle.eval.fid.fid",
        "photostyle.data.pairs.find_pairs",
    ):
        monkeypatch.setattr(target, no_work)
    content, style = photos
    frames = tmp_path / "frames"
    frames.mkdir()
    content.rename(frames / "0001.png")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    cases = _outputs_under_a_file(frames / "0001.png", style, blocker)
    cases["stylize-video"][1] = cases["stylize-video frames"][1] = str(frames)
    for name, argv in cases.items():
        assert cli.main(argv) == 2, name
        err = _one_line_error(capsys)
        assert str(blocker) in err and ("not a folder" in err or "file" in err), (name, err)


def test_bench_option_errors_name_the_flag(capsys: Capsys) -> None:
    assert cli.main(["bench", "--runs", "0"]) == 2
    assert "error: --runs must be at least 1" in _one_line_error(capsys)
