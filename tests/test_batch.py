"""Tests of photostyle.batch, Stylizer.stylize_many and the photographers' commands
(stylize PHOTOS... --style/--lut, lut, stylize-video --lut) on a tiny stylizer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from photostyle import cli
from photostyle.api import StylizeOptions, Stylizer
from photostyle.batch import BatchOptions, collect_photos, pair_files, plan_batch, stylize_pairs
from photostyle.data.pairs import find_pairs
from photostyle.io import load_image
from photostyle.lut import Lut3D, apply_lut, identity_lut, read_cube, write_cube

Capsys = pytest.CaptureFixture[str]


@pytest.fixture
def model_args(tiny_stylizer_files: tuple[Path, Path]) -> list[str]:
    weights, encoder = tiny_stylizer_files
    return ["--weights", str(weights), "--encoder-weights", str(encoder), "--device", "cpu"]


@pytest.fixture
def shoot(tmp_path: Path, write_png: Callable[..., Path]) -> Path:
    """A folder of 3 photos, one in a sub-folder, plus a non-photo file."""
    root = tmp_path / "shoot"
    write_png(root / "a.png", 30, 40, seed=1)
    Image.fromarray(np.full((24, 36, 3), 90, np.uint8)).save(root / "b.jpg")
    write_png(root / "day2" / "c.png", 20, 28, seed=3)
    (root / "notes.txt").write_text("not a photo")
    return root


def _warm(tmp_path: Path) -> Path:
    x = identity_lut(9).table
    lut = Lut3D(torch.stack([x[..., 0] ** 0.7, x[..., 1], x[..., 2] ** 1.4], -1), title="warm")
    return write_cube(lut, tmp_path / "warm.cube")


def test_stylize_many_equals_stylize(tiny_stylizer_files: tuple[Path, Path]) -> None:
    weights, encoder = tiny_stylizer_files
    stylizer = Stylizer(weights, encoder_weights=encoder, device="cpu")
    g = torch.Generator().manual_seed(0)
    photos = [torch.rand(3, 30, 40, generator=g), torch.rand(3, 64, 20, generator=g)]
    style = torch.rand(3, 24, 24, generator=g)
    opts = StylizeOptions(max_size=32, alpha=0.7)
    many = list(stylizer.stylize_many(iter(photos), style, options=opts))
    assert len(many) == 2
    for photo, out in zip(photos, many, strict=True):
        assert out.shape == photo.shape
        assert torch.allclose(out, stylizer.stylize(photo, style, options=opts), atol=1e-6)


def test_collect_files_folders_globs(shoot: Path) -> None:
    names = [p.name for p, _ in collect_photos([shoot])]
    assert names == ["a.png", "b.jpg"]
    rec = collect_photos([shoot], recursive=True)
    assert [p.name for p, _ in rec] == ["a.png", "b.jpg", "c.png"]
    assert [p.name for p, _ in collect_photos([str(shoot / "*.png"), shoot / "a.png"])] == ["a.png"]
    with pytest.raises(ValueError, match="no file matches"):
        collect_photos([str(shoot / "*.tif")])
    with pytest.raises(ValueError, match="no such file"):
        collect_photos([shoot / "missing.jpg"])


def test_plan_refuses_collisions_and_inputs(shoot: Path, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "other" / "a.png")
    photos = collect_photos([shoot / "a.png", tmp_path / "other" / "a.png"])
    with pytest.raises(ValueError, match="both be written"):
        plan_batch(photos, BatchOptions(out_dir=tmp_path / "out"))
    with pytest.raises(ValueError, match="overwrite an input"):
        plan_batch(collect_photos([shoot]), BatchOptions(out_dir=shoot))
    plan = plan_batch(collect_photos([shoot]), BatchOptions(out_dir=shoot, suffix="_look"))
    assert [o.name for _, o in plan.jobs] == ["a_look.png", "b_look.jpg"]


def test_batch_with_style_resumes_and_reports_bad_files(
    shoot: Path, tmp_path: Path, model_args: list[str], capsys: Capsys
) -> None:
    (shoot / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    style = tmp_path / "look.png"
    Image.fromarray(np.full((20, 20, 3), (200, 120, 40), np.uint8)).save(style)
    out = tmp_path / "out"
    argv = ["stylize", str(shoot), "--recursive", "--style", str(style), "--out-dir", str(out)]
    assert cli.main([*argv, *model_args, "--max-size", "32", "--format", "png"]) == 1
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err and "stylized 3 of 4 photos" in captured.out
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "a.png",
        "b.png",
        "day2/c.png",
    ]
    assert load_image(out / "day2" / "c.png").shape == (3, 20, 28)
    before = (out / "a.png").stat().st_mtime_ns
    (shoot / "broken.jpg").unlink()
    assert cli.main([*argv, *model_args, "--max-size", "32", "--format", "png"]) == 0
    assert "all 3 outputs exist" in capsys.readouterr().out
    assert (out / "a.png").stat().st_mtime_ns == before
    assert cli.main([*argv, *model_args, "--max-size", "32", "--format", "png", "--overwrite"]) == 0
    assert "stylized 3 of 3" in capsys.readouterr().out


def test_batch_with_lut_matches_apply(shoot: Path, tmp_path: Path, capsys: Capsys) -> None:
    cube = _warm(tmp_path)
    out = tmp_path / "graded"
    argv = ["stylize", str(shoot / "a.png"), "--lut", str(cube), "--out-dir", str(out)]
    assert cli.main([*argv, "--suffix", "_warm", "--format", "tif", "--strip-metadata"]) == 0
    want = apply_lut(load_image(shoot / "a.png"), read_cube(cube))
    got = load_image(out / "a_warm.tif")
    assert (got - want).abs().max() <= 1 / 255 + 1e-6
    assert "stylized 1 of 1" in capsys.readouterr().out


def test_single_photo_form_with_o(shoot: Path, tmp_path: Path, capsys: Capsys) -> None:
    cube = _warm(tmp_path)
    dst = tmp_path / "one.jpg"
    assert cli.main(["stylize", str(shoot / "a.png"), "--lut", str(cube), "-o", str(dst)]) == 0
    assert dst.is_file()
    bad = tmp_path / "corrupt.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(bad, icc_profile=b"garbage" * 30)
    capsys.readouterr()
    assert cli.main(["stylize", str(bad), "--lut", str(cube), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corrupt.png" in err and "ICC" in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["stylize", "a.png", "--style", "s.png"],  # no --out-dir
        ["stylize", "a.png", "--style", "s.png", "--lut", "l.cube", "--out-dir", "o"],
        ["stylize", "a.png", "b.png", "--style", "s.png", "-o", "x.png"],
        ["stylize", "--style", "s.png", "--out-dir", "o"],  # no photos
        ["stylize", "a.png", "--pairs", "d", "--out-dir", "o"],
    ],
)
def test_batch_usage_errors(tmp_path: Path, argv: list[str], capsys: Capsys) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_not_a_lut_is_one_line(shoot: Path, tmp_path: Path, capsys: Capsys) -> None:
    fake = tmp_path / "fake.cube"
    fake.write_text("this is not a LUT\n")
    out = tmp_path / "out"
    assert cli.main(["stylize", str(shoot), "--lut", str(fake), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fake.cube" in err
    assert not out.exists()


def test_lut_command_pair_and_style_alone(
    tmp_path: Path, write_png: Callable[..., Path], model_args: list[str], capsys: Capsys
) -> None:
    content = write_png(tmp_path / "c.png", 40, 48, seed=1)
    style = write_png(tmp_path / "s.png", 32, 32, seed=2)
    cube = tmp_path / "look.cube"
    args = [*model_args, "--max-size", "48", "--size", "9"]
    assert cli.main(["lut", str(content), str(style), "-o", str(cube), *args]) == 0
    lut = read_cube(cube)
    assert lut.size == 9 and lut.title == "photostyle s"
    # the LUT reproduces the global part: closer to photostyle's result than the content is
    stylizer = Stylizer(model_args[1], encoder_weights=model_args[3], device="cpu")
    c = load_image(content)
    result = stylizer.stylize(c, load_image(style), options=StylizeOptions(max_size=48))
    assert (apply_lut(c, lut) - result).pow(2).mean() < 0.5 * (c - result).pow(2).mean()
    alone = tmp_path / "alone.cube"
    assert cli.main(["lut", str(style), "-o", str(alone), *args]) == 0
    assert read_cube(alone).size == 9
    assert cli.main(["lut", str(style), "-o", str(tmp_path / "x.png"), *args]) == 2
    assert ".cube" in capsys.readouterr().err.splitlines()[-1]


def test_lut_pairs_reports_psnr(
    tmp_path: Path, write_png: Callable[..., Path], model_args: list[str], capsys: Capsys
) -> None:
    root = tmp_path / "pairs"
    for name, seed in (("in1", 1), ("in2", 2)):
        write_png(root / "content" / f"{name}.png", 30, 36, seed=seed)
        write_png(root / "style" / f"{name}.png", 24, 24, seed=seed + 10)
    js = tmp_path / "rows.json"
    argv = ["lut", "--pairs", str(root), "--json", str(js), "--size", "9", *model_args]
    assert cli.main([*argv, "--max-size", "36"]) == 0
    out = capsys.readouterr().out
    assert "| in1 |" in out and "**mean**" in out and js.is_file()


def test_video_with_lut_is_steady(tmp_path: Path, capsys: Capsys) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    for i in range(3):
        Image.fromarray(np.roll(base, i, axis=1)).save(frames / f"{i:03d}.png")
    cube = _warm(tmp_path)
    out = tmp_path / "graded"
    assert cli.main(["stylize-video", str(frames), str(out), "--lut", str(cube)]) == 0
    lut = read_cube(cube)
    for i in range(3):
        want = apply_lut(load_image(frames / f"{i:03d}.png"), lut)
        assert (load_image(out / f"{i:03d}.png") - want).abs().max() <= 1 / 255 + 1e-6
    assert "3 frames" in capsys.readouterr().out
    assert cli.main(["stylize-video", str(frames), str(tmp_path / "o2")]) == 2


def test_stylize_pairs_reports_a_bad_pair_and_goes_on(
    tmp_path: Path, write_png: Callable[..., Path], tiny_stylizer_files: tuple[Path, Path]
) -> None:
    root = tmp_path / "pairs"
    for i, name in enumerate(("a", "b", "c")):
        write_png(root / "content" / f"{name}.png", 24, 32, seed=i)
        write_png(root / "style" / f"{name}.png", 32, 24, seed=10 + i)
    (root / "style" / "b.png").write_bytes(b"not an image")
    pairs = find_pairs(root)
    assert set(pair_files(pairs)) == {
        root / d / f"{n}.png" for d in ("content", "style") for n in "abc"
    }
    weights, encoder = tiny_stylizer_files
    stylizer = Stylizer(weights, encoder_weights=encoder, device="cpu")
    out = tmp_path / "out"
    results = list(stylize_pairs(stylizer, pairs, out, options=StylizeOptions(max_size=32)))
    assert [(r.pair.name, r.output) for r in results] == [
        ("a", out / "a.png"),
        ("b", None),
        ("c", out / "c.png"),
    ]
    assert "b.png" in results[1].error and "\n" not in results[1].error
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    assert load_image(out / "a.png").shape == (3, 24, 32)
