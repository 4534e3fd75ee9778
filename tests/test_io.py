"""Tests for photostyle.io: every image file is built here, in tmp_path."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import photostyle.io as photostyle_io
from photostyle.io import (
    DPST_PALETTE,
    MAX_PIXELS,
    MIN_SIDE,
    ImageError,
    demo_files,
    draft_size,
    image_to_tensor,
    load_image,
    load_mask,
    mask_from_image,
    save_image,
    tensor_to_image,
)

LABEL = {name: k for k, (name, _) in enumerate(DPST_PALETTE)}
COLOUR = dict(DPST_PALETTE)


def _rgb_array(h: int = 20, w: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _smooth_array(h: int = 32, w: int = 32) -> np.ndarray:
    """A smooth gradient, which JPEG/WebP reproduce closely."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 100)], -1).astype(
        np.uint8
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG (grey, grey+alpha, RGB or RGBA) of a (H, W, C) uint16 array."""
    h, w, c = arr.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG claiming a w x h RGB image, with only a few bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(100))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)


def _tiff16_rgb(arr: np.ndarray) -> bytes:
    """An uncompressed little-endian 16-bit RGB TIFF of a (H, W, 3) uint16 array."""
    h, w, _ = arr.shape
    pixels = arr.astype("<u2").tobytes()
    n = 10
    bps_at = 8 + 2 + n * 12 + 4
    data_at = bps_at + 6

    def short(tag: int, value: int) -> bytes:
        return struct.pack("<HHIHH", tag, 3, 1, value, 0)

    def long(tag: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, 4, 1, value)

    entries = [
        long(256, w),
        long(257, h),
        struct.pack("<HHII", 258, 3, 3, bps_at),
        short(259, 1),  # no compression
        short(262, 2),  # RGB
        long(273, data_at),
        short(277, 3),
        long(278, h),
        long(279, len(pixels)),
        short(284, 1),  # chunky
    ]
    ifd = struct.pack("<H", n) + b"".join(entries) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<HHH", 16, 16, 16) + pixels


def _expected(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.astype(np.float32) / 255.0).permute(2, 0, 1)


# --------------------------------------------------------------------------------------------
# load_image / image_to_tensor: modes
# --------------------------------------------------------------------------------------------


def test_rgb_png_loads_exactly(tmp_path: Path) -> None:
    arr = _rgb_array()
    path = tmp_path / "a.png"
    Image.fromarray(arr).save(path)
    t = load_image(path)
    assert t.shape == (3, 20, 24)
    assert t.dtype == torch.float32
    assert torch.equal(t, _expected(arr))


def test_mode_l_is_replicated_to_three_channels(tmp_path: Path) -> None:
    gray = _rgb_array()[..., 0]
    path = tmp_path / "l.png"
    Image.fromarray(gray).save(path)
    t = load_image(path)
    assert t.shape == (3, 20, 24)
    for c in range(3):
        assert torch.equal(t[c], torch.from_numpy(gray.astype(np.float32) / 255.0))


def test_mode_la_composites_over_white(tmp_path: Path) -> None:
    la = np.zeros((16, 16, 2), dtype=np.uint8)
    la[..., 0] = 100
    la[:8, :, 1] = 255  # opaque top half
    la[8:, :, 1] = 0  # transparent bottom half
    path = tmp_path / "la.png"
    Image.frombytes("LA", (16, 16), la.tobytes()).save(path)
    t = load_image(path)
    assert torch.allclose(t[:, :8], torch.full((3, 8, 16), 100 / 255))
    assert torch.allclose(t[:, 8:], torch.ones(3, 8, 16))


def test_mode_rgba_composites_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[...] = (255, 0, 0, 255)
    rgba[0, 0] = (0, 0, 0, 0)  # fully transparent black -> white
    rgba[0, 1] = (0, 0, 255, 102)  # 40 % blue over white
    path = tmp_path / "rgba.png"
    Image.frombytes("RGBA", (16, 16), rgba.tobytes()).save(path)
    t = load_image(path)
    assert torch.allclose(t[:, 0, 0], torch.ones(3))
    a = 102 / 255
    assert torch.allclose(t[:, 0, 1], torch.tensor([1 - a, 1 - a, 1.0]), atol=1e-6)
    assert torch.allclose(t[:, 5, 5], torch.tensor([1.0, 0.0, 0.0]))


def _palette_image(transparent: bool, path: Path) -> None:
    img = Image.new("P", (16, 16), 0)
    img.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    img.paste(1, (0, 0, 16, 8))  # top half index 1
    if transparent:
        img.save(path, transparency=0)
    else:
        img.save(path)


def test_mode_p_without_transparency(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    _palette_image(False, path)
    t = load_image(path)
    assert torch.allclose(t[:, 0, 0], torch.tensor([200, 100, 50]) / 255)
    assert torch.allclose(t[:, 15, 0], torch.tensor([10, 20, 30]) / 255)


def test_mode_p_with_transparency_is_white(tmp_path: Path) -> None:
    path = tmp_path / "pt.png"
    _palette_image(True, path)
    with Image.open(path) as img:
        assert img.mode == "P" and img.info.get("transparency") == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's "convert to RGBA" palette warning must not fire
        t = load_image(path)
    assert torch.allclose(t[:, 0, 0], torch.tensor([200, 100, 50]) / 255)
    assert torch.allclose(t[:, 15, 0], torch.ones(3))


def test_mode_cmyk_tiff(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.tif"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path)  # pure red
    with Image.open(path) as img:
        assert img.mode == "CMYK"
    t = load_image(path)
    assert torch.allclose(t, torch.tensor([1.0, 0.0, 0.0])[:, None, None].expand(3, 16, 16))


def test_mode_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)
    with Image.open(path) as img:
        assert img.mode == "CMYK"  # Adobe-marker CMYK JPEG, inverted on read by Pillow
    t = load_image(path)
    assert (t - torch.tensor([1.0, 0.0, 0.0])[:, None, None]).abs().max() < 4 / 255


def test_mode_i16_grayscale_png(tmp_path: Path) -> None:
    values = np.array([0, 1, 256, 1000, 32768, 65534, 65535, 12345], dtype=np.uint16)
    arr = np.tile(values, (16, 2))  # (16, 16)
    path = tmp_path / "g16.png"
    path.write_bytes(_png16(arr[..., None]))
    with Image.open(path) as img:
        assert img.mode == "I;16"
    t = load_image(path)
    expected = torch.from_numpy(arr.astype(np.float32) / 65535.0)
    for c in range(3):
        assert torch.allclose(t[c], expected, atol=1e-7)


def test_mode_i16_big_endian() -> None:
    arr = np.array([[0, 1000, 65535]], dtype=">u2")
    img = Image.frombytes("I;16B", (3, 1), arr.tobytes())
    t = image_to_tensor(img)
    assert torch.allclose(t[0, 0], torch.tensor([0.0, 1000 / 65535, 1.0]))


@pytest.mark.parametrize("container", ["png", "tiff"])
def test_16bit_rgb_within_one_level(tmp_path: Path, container: str) -> None:
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 65536, (16, 20, 3), dtype=np.uint16)
    arr[0, 0] = (0, 65535, 32768)
    arr[0, 1] = (255, 256, 65280)  # where truncating to the high byte errs most
    path = tmp_path / f"rgb16.{container}"
    path.write_bytes(_png16(arr) if container == "png" else _tiff16_rgb(arr))
    with Image.open(path) as img:
        assert img.size == (20, 16)
        assert img.mode == "RGB"  # Pillow 13 reduces 16-bit RGB to 8 bits (keeps the high byte)
    t = load_image(path)
    expected = torch.from_numpy(arr.astype(np.float32) / 65535.0).permute(2, 0, 1)
    assert (t - expected).abs().max() <= 1 / 255
    assert torch.allclose(t[:, 0, 0], torch.tensor([0.0, 1.0, 128 / 255]))


def test_mode_i_32bit_is_scaled_by_65535_and_clipped(tmp_path: Path) -> None:
    arr = np.zeros((16, 16), dtype=np.int32)
    arr[0, :4] = (-5, 0, 32768, 70000)
    path = tmp_path / "i32.tif"
    Image.fromarray(arr).save(path)
    with Image.open(path) as img:
        assert img.mode == "I"
    t = load_image(path)
    assert torch.allclose(t[0, 0, :4], torch.tensor([0.0, 0.0, 32768 / 65535, 1.0]))


def test_mode_f_is_clipped(tmp_path: Path) -> None:
    arr = np.full((16, 16), 0.25, dtype=np.float32)
    arr[0, :4] = (-1.0, 0.5, 1.5, np.nan)
    path = tmp_path / "f.tif"
    Image.fromarray(arr).save(path)
    with Image.open(path) as img:
        assert img.mode == "F"
    t = load_image(path)
    assert torch.equal(t[1, 0, :5], torch.tensor([0.0, 0.5, 1.0, 0.0, 0.25]))


def test_mode_1_bilevel(tmp_path: Path) -> None:
    img = Image.new("1", (16, 16), 0)
    img.paste(1, (0, 0, 8, 16))
    path = tmp_path / "b.png"
    img.save(path)
    t = load_image(path)
    assert torch.equal(t[:, :, :8], torch.ones(3, 16, 8))
    assert torch.equal(t[:, :, 8:], torch.zeros(3, 16, 8))


@pytest.mark.parametrize("mode", sorted(Image.MODES))
def test_image_to_tensor_any_mode(mode: str) -> None:
    t = image_to_tensor(Image.new(mode, (5, 4)))
    assert t.shape == (3, 4, 5)
    assert t.dtype == torch.float32
    assert t.is_contiguous()
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0


def test_exif_orientation_6_rotates(tmp_path: Path) -> None:
    arr = np.zeros((16, 32, 3), dtype=np.uint8)
    arr[...] = (0, 0, 255)
    arr[:8, :8] = (255, 0, 0)  # red block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    path = tmp_path / "rot.jpg"
    Image.fromarray(arr).save(path, quality=95, exif=exif.tobytes())
    t = load_image(path)
    assert t.shape == (3, 32, 16)  # H and W swapped
    top_right = t[:, 1, 14]
    assert top_right[0] > 0.9 and top_right[2] < 0.1  # red moved to the top-right corner
    top_left = t[:, 1, 1]
    assert top_left[2] > 0.9 and top_left[0] < 0.1


# --------------------------------------------------------------------------------------------
# load_image: bad files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["text", "empty", "missing", "directory"])
def test_unreadable_file_raises_image_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bad.png"
    if kind == "text":
        path.write_text("this is not an image\n" * 10)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    with pytest.raises(ImageError) as info:
        load_image(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_truncated_image_raises(tmp_path: Path, fmt: str) -> None:
    full = io.BytesIO()
    Image.fromarray(_rgb_array(64, 64)).save(full, "PNG" if fmt == "png" else "JPEG")
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt image") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_too_small_image_raises_with_size(tmp_path: Path) -> None:
    path = tmp_path / "tiny.png"
    Image.new("RGB", (40, MIN_SIDE - 1)).save(path)
    with pytest.raises(ImageError, match=rf"40x{MIN_SIDE - 1}"):
        load_image(path)
    assert load_image(path, min_side=8).shape == (3, MIN_SIDE - 1, 40)


def test_too_many_pixels_checked_from_header_before_decoding(tmp_path: Path) -> None:
    # 20000 x 20000 = 400 M pixels, above MAX_PIXELS and above Pillow's own error limit; the
    # file has almost no pixel data, so an attempt to decode it would fail as "truncated".
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(20_000, 20_000))
    assert MAX_PIXELS < 20_000 * 20_000
    with pytest.raises(ImageError, match="more than the limit") as info:
        load_image(path)
    assert "20000x20000" in str(info.value)

    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(small)
    with pytest.raises(ImageError, match="more than the limit"):
        load_image(small, max_pixels=1000)


def test_decoding_memory_checked_from_header_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 20000 x 10000 = 200 M pixels, below MAX_PIXELS; about 4 GB to decode, 2 GB available.
    path = tmp_path / "200mp.png"
    path.write_bytes(_png_header_only(20_000, 10_000))
    assert MAX_PIXELS > 20_000 * 10_000
    monkeypatch.setattr(photostyle_io, "available_memory_bytes", lambda: 2_000_000_000)
    with pytest.raises(ImageError) as info:
        load_image(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "20000x10000" in message
    assert "4.0 GB" in message and "2.0 GB is available" in message
    assert "downscale the file to at most 100 megapixels" in message and "--max-size" in message

    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(small)
    assert load_image(small).shape == (3, 30, 40)  # 24 kB fit
    monkeypatch.setattr(photostyle_io, "available_memory_bytes", lambda: 40 * 30 * 19)
    with pytest.raises(ImageError, match="downscale"):
        load_image(small)
    monkeypatch.setattr(photostyle_io, "available_memory_bytes", lambda: None)  # unknown: no check
    assert load_image(small).shape == (3, 30, 40)


def test_cli_refuses_a_photo_too_big_to_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from photostyle.cli import main

    content = tmp_path / "200mp.png"
    content.write_bytes(_png_header_only(20_000, 10_000))
    style = tmp_path / "style.png"
    Image.new("RGB", (40, 30)).save(style)
    monkeypatch.setattr(photostyle_io, "available_memory_bytes", lambda: 2_000_000_000)
    out = tmp_path / "out.png"
    assert main(["stylize", str(content), str(style), "-o", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "downscale" in err and "Traceback" not in err
    assert not out.exists()


def test_pillow_bomb_warning_does_not_leak(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_png_header_only(12_000, 10_000))  # in Pillow's warning range
    assert Image.MAX_IMAGE_PIXELS is not None
    assert Image.MAX_IMAGE_PIXELS < 12_000 * 10_000 < 2 * Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError, match="more than the limit"):
            load_image(path, max_pixels=100_000_000)


def test_pillow_global_limit_is_not_relied_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arr = _rgb_array(32, 32)
    path = tmp_path / "ok.png"
    Image.fromarray(arr).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 32*32 > 2*100: Pillow would refuse
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(load_image(path), _expected(arr))
        with pytest.raises(ImageError, match="more than the limit"):
            load_image(path, max_pixels=1000)


# --------------------------------------------------------------------------------------------
# tensor_to_image / save_image
# --------------------------------------------------------------------------------------------


def test_tensor_to_image_clamps_and_rounds() -> None:
    t = torch.tensor([[[-0.5, 0.0, 0.5, 1.0, 2.0, float("nan")]]]).expand(1, 3, 1, 6)
    img = tensor_to_image(t)
    assert img.mode == "RGB" and img.size == (6, 1)
    assert np.asarray(img)[0, :, 0].tolist() == [0, 0, 128, 255, 255, 0]
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        tensor_to_image(torch.zeros(4, 5, 5))
    with pytest.raises(ValueError, match="floating"):
        tensor_to_image(torch.zeros(3, 5, 5, dtype=torch.uint8))


def test_save_png_round_trip_is_exact(tmp_path: Path) -> None:
    arr = _rgb_array()
    out = save_image(_expected(arr), tmp_path / "out.png")
    assert out == tmp_path / "out.png"
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), arr)
    assert torch.equal(load_image(out), _expected(arr))
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


@pytest.mark.parametrize(
    ("suffix", "fmt", "tol"),
    [
        (".jpg", "JPEG", 12),
        (".JPEG", "JPEG", 12),
        (".webp", "WEBP", 12),
        (".tif", "TIFF", 0),
        (".tiff", "TIFF", 0),
        (".bmp", "BMP", 0),
    ],
)
def test_save_formats(tmp_path: Path, suffix: str, fmt: str, tol: int) -> None:
    arr = _smooth_array()
    out = save_image(_expected(arr)[None], tmp_path / f"out{suffix}")
    with Image.open(out) as img:
        assert img.format == fmt
        got = np.asarray(img.convert("RGB")).astype(int)
    assert np.abs(got - arr.astype(int)).max() <= tol


def test_save_unknown_suffix_raises(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="unsupported output format"):
        save_image(torch.zeros(3, 4, 4), tmp_path / "sub" / "out.gifx")
    assert os.listdir(tmp_path) == []


def test_save_creates_parent_directories(tmp_path: Path) -> None:
    out = save_image(torch.zeros(3, 4, 4), tmp_path / "a" / "b" / "out.png")
    assert out.is_file()


def test_save_file_mode_follows_umask(tmp_path: Path) -> None:
    reference = tmp_path / "ref"
    reference.write_bytes(b"")
    out = save_image(torch.zeros(3, 4, 4), tmp_path / "out.png")
    assert out.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


@pytest.mark.parametrize("existing", [False, True])
def test_save_failure_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    target = tmp_path / "out.png"
    if existing:
        target.write_bytes(b"previous")

    def failing_save(self: Image.Image, fp: Any, *args: Any, **kwargs: Any) -> None:
        fp.write(b"\x89PNG partial data")
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(ImageError, match="No space left") as info:
        save_image(torch.zeros(3, 8, 8), target)
    assert str(target) in str(info.value)
    assert os.listdir(tmp_path) == (["out.png"] if existing else [])
    if existing:
        assert target.read_bytes() == b"previous"


def test_save_interrupt_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted_save(self: Image.Image, fp: Any, *args: Any, **kwargs: Any) -> None:
        fp.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_image(torch.zeros(3, 8, 8), tmp_path / "out.png")
    assert os.listdir(tmp_path) == []


def test_save_refuses_protected_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arr = _rgb_array()
    src = tmp_path / "in.png"
    Image.fromarray(arr).save(src)
    before = src.read_bytes()
    monkeypatch.chdir(tmp_path)
    targets: list[str | Path] = [src, "in.png", tmp_path / "sub" / ".." / "in.png"]
    for target in targets:
        with pytest.raises(ImageError, match="refusing to overwrite"):
            save_image(torch.zeros(3, 4, 4), target, protect=[str(src)])
    link = tmp_path / "link.png"
    link.symlink_to(src)
    with pytest.raises(ImageError, match="refusing to overwrite"):
        save_image(torch.zeros(3, 4, 4), link, protect=[src])
    assert src.read_bytes() == before
    save_image(torch.zeros(3, 4, 4), tmp_path / "other.png", protect=[src])


def test_save_onto_directory_raises(tmp_path: Path) -> None:
    (tmp_path / "d.png").mkdir()
    with pytest.raises(ImageError, match="directory"):
        save_image(torch.zeros(3, 4, 4), tmp_path / "d.png")
    assert os.listdir(tmp_path) == ["d.png"]


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------


def test_mask_every_palette_colour() -> None:
    colours = np.array([c for _, c in DPST_PALETTE], dtype=np.uint8)[None]  # (1, 9, 3)
    labels = mask_from_image(Image.fromarray(colours))
    assert labels.dtype == torch.int64
    assert labels.tolist() == [list(range(len(DPST_PALETTE)))]
    off = np.clip(colours.astype(int) + np.array([40, -40, 40]), 0, 255).astype(np.uint8)
    assert mask_from_image(Image.fromarray(off)).tolist() == [list(range(len(DPST_PALETTE)))]
    assert mask_from_image(Image.fromarray(off), tolerance=30).min() == -1


def test_mask_antialiased_edge(tmp_path: Path) -> None:
    # Red on the left, blue on the right, a linear blend over columns 8..12 (like anti-aliasing).
    w = 21
    red_weight = np.clip((12 - np.arange(w)) / 4, 0.0, 1.0)  # 1 up to col 8, 0 from col 12
    red = np.array(COLOUR["red"], dtype=float)
    blue = np.array(COLOUR["blue"], dtype=float)
    row = red_weight[:, None] * red + (1 - red_weight[:, None]) * blue
    arr = np.rint(np.repeat(row[None], 16, axis=0)).astype(np.uint8)
    path = tmp_path / "mask.png"
    Image.fromarray(arr).save(path)
    labels = load_mask(path, (16, w))
    assert labels.shape == (16, w)
    assert (labels[:, :9] == LABEL["red"]).all()
    assert (labels[:, 12:] == LABEL["blue"]).all()
    assert (labels[:, 10] == -1).all()  # the 50/50 pixel matches neither colour
    blend = labels[:, 9:12]
    assert torch.isin(blend, torch.tensor([-1, LABEL["red"], LABEL["blue"]])).all()


def test_mask_mode_l_uses_grey_levels(tmp_path: Path) -> None:
    gray = np.zeros((16, 16), dtype=np.uint8)
    gray[:, 4:8] = 255
    gray[:, 8:12] = 128
    gray[:, 12:14] = 140  # near grey
    gray[:, 14:] = 64  # between black and grey: no colour
    path = tmp_path / "l.png"
    Image.fromarray(gray).save(path)
    labels = load_mask(path, (16, 16))
    row = labels[0].tolist()
    assert row[:4] == [LABEL["black"]] * 4
    assert row[4:8] == [LABEL["white"]] * 4
    assert row[8:14] == [LABEL["grey"]] * 6
    assert row[14:] == [-1, -1]


def test_mask_single_colour_rgba_and_palette(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (16, 16), (*COLOUR["yellow"], 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # transparent: unlabelled
    assert (mask_from_image(rgba)[1:] == LABEL["yellow"]).all()
    assert int(mask_from_image(rgba)[0, 0]) == -1

    pal = Image.new("P", (16, 16), 1)
    pal.putpalette([*COLOUR["green"], *COLOUR["purple"]] + [0] * (254 * 3))
    path = tmp_path / "p.png"
    pal.save(path)
    assert (load_mask(path, (16, 16)) == LABEL["purple"]).all()


def test_load_mask_one_pixel_short_is_resized(tmp_path: Path) -> None:
    arr = np.zeros((59, 40, 3), dtype=np.uint8)
    arr[:, :20] = COLOUR["green"]
    arr[:, 20:] = COLOUR["white"]
    path = tmp_path / "short.png"
    Image.fromarray(arr).save(path)
    labels = load_mask(path, (60, 40))
    assert labels.shape == (60, 40)
    assert (labels[:, :20] == LABEL["green"]).all()
    assert (labels[:, 20:] == LABEL["white"]).all()


def test_load_mask_half_size_raises_with_both_sizes(tmp_path: Path) -> None:
    path = tmp_path / "half.png"
    Image.new("RGB", (20, 30), COLOUR["red"]).save(path)
    with pytest.raises(ImageError) as info:
        load_mask(path, (60, 40))
    message = str(info.value)
    assert str(path) in message and "20x30" in message and "40x60" in message


def test_mask_rejects_bad_tolerance() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        mask_from_image(Image.new("RGB", (4, 4)), tolerance=300)


# ---------------------------------------------------------------------------------------------
# Reduced JPEG decoding (draft mode) for photos needed at a working size only
# ---------------------------------------------------------------------------------------------


def test_draft_size_keeps_the_longest_side() -> None:
    assert draft_size(640, 480, 400) is None  # no power-of-two reduction keeps 400 px
    assert draft_size(4000, 3000, 1024) == (1024, 768)
    with pytest.raises(ValueError):
        draft_size(10, 10, 0)


@pytest.mark.parametrize(
    ("reduce_to", "size"), [(None, (640, 480)), (150, (160, 120)), (80, (80, 60))]
)
def test_jpeg_is_decoded_at_reduced_scale_keeping_the_working_size(
    tmp_path: Path, reduce_to: int | None, size: tuple[int, int]
) -> None:
    rng = np.random.default_rng(0)
    pixels = np.repeat(np.repeat(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), 8, 0), 8, 1)
    path = tmp_path / "p.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    x = load_image(path, reduce_to=reduce_to)
    assert (x.shape[2], x.shape[1]) == size
    full = load_image(path)
    small = torch.nn.functional.avg_pool2d(full[None], 640 // size[0])[0]
    # the same picture, averaged in the DCT domain (random 8 px blocks differ by ~0.3)
    assert float((x - small).abs().mean()) < 0.05


def test_reduced_decoding_leaves_png_and_exif_orientation_alone(tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    Image.new("RGB", (640, 480), (10, 20, 30)).save(png)
    assert load_image(png, reduce_to=100).shape == (3, 480, 640)
    jpg = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.new("RGB", (640, 480), (10, 20, 30)).save(jpg, exif=exif)
    assert load_image(jpg, reduce_to=100).shape == (3, 160, 120)  # upright, reduced 4x


def test_the_demo_pair_is_bundled() -> None:
    content, style = demo_files()
    assert load_image(content).shape[0] == load_image(style).shape[0] == 3
    assert content != style
