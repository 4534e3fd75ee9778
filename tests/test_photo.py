"""Tests of photostyle.photo: colour management (Display P3, Adobe RGB), EXIF, 16-bit files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from icc_profiles import ADOBE_RGB, adobe_rgb, display_p3, make_profile
from photostyle.io import ImageError
from photostyle.photo import OutputOptions, read_photo, write_photo

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
PROFILES = {"display_p3": display_p3, "adobe_rgb": adobe_rgb}


def _in_gamut_pixels(icc: bytes, h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    """8-bit pixels in the profile's space whose colours lie inside sRGB (LittleCMS-converted)."""
    rng = np.random.default_rng(seed)
    srgb = Image.fromarray(rng.integers(8, 248, (h, w, 3), dtype=np.uint8))
    dst = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return np.asarray(ImageCms.profileToProfile(srgb, SRGB, dst, outputMode="RGB"))


def _is_srgb(icc: bytes | None) -> bool:
    """The profile is LittleCMS's sRGB (compared by name: its header holds a creation time)."""
    return (
        icc is not None
        and ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
        == ImageCms.getProfileDescription(SRGB).strip()
    )


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).astype(int)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_wide_gamut_photo_is_converted_like_littlecms(tmp_path: Path, name: str) -> None:
    icc = PROFILES[name]()
    pixels = _in_gamut_pixels(icc)
    path = tmp_path / "in.png"
    Image.fromarray(pixels).save(path, icc_profile=icc)
    x, info = read_photo(path)
    assert info.icc == icc and "test" in info.profile_name and info.bit_depth == 8
    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    want = np.asarray(
        ImageCms.profileToProfile(Image.fromarray(pixels), src, SRGB, outputMode="RGB")
    ).astype(int)
    got = np.rint(x.permute(1, 2, 0).numpy() * 255).astype(int)
    assert np.abs(got - want).max() <= 1
    # written back in its own profile: the very pixels; in sRGB: LittleCMS's conversion
    same = write_photo(x, tmp_path / "same.png", info)
    assert np.abs(_pixels(same) - pixels).max() <= 1
    with Image.open(same) as img:
        assert img.info["icc_profile"] == icc
    srgb = write_photo(x, tmp_path / "srgb.tif", info, options=OutputOptions(profile="srgb"))
    with Image.open(srgb) as img:
        assert _is_srgb(img.info["icc_profile"])
    assert np.abs(_pixels(srgb) - want).max() <= 1


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_alpha_zero_returns_the_photo_unchanged(tmp_path: Path, name: str) -> None:
    """A photo stylized with alpha 0 by the shipped model comes back as it went in."""
    from photostyle.api import StylizeOptions, Stylizer

    icc = PROFILES[name]()
    pixels = _in_gamut_pixels(icc, 40, 56, seed=3)
    path = tmp_path / "in.png"
    Image.fromarray(pixels).save(path, icc_profile=icc)
    x, info = read_photo(path)
    style = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    stylizer = Stylizer(device="cpu")
    (out,) = stylizer.stylize_many([x], style, options=StylizeOptions(alpha=0.0))
    result = write_photo(out, tmp_path / "out.png", info)
    assert np.abs(_pixels(result) - pixels).max() <= 1


def _png16_bytes(pixels: np.ndarray, icc: bytes | None = None) -> bytes:
    """An independent 16-bit RGB PNG writer (filter 0), for inputs."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)
    iccp = [chunk(b"iCCP", b"p\x00\x00" + zlib.compress(icc))] if icc else []
    head = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))]
    return b"".join([*head, *iccp, chunk(b"IDAT", zlib.compress(raw)), chunk(b"IEND", b"")])


def _read16(path: Path) -> np.ndarray:
    """16-bit samples read back by an independent decoder (tifffile or FFmpeg)."""
    if path.suffix == ".tif":
        import tifffile

        return np.asarray(tifffile.imread(path)).astype(int)
    av = pytest.importorskip("av")
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb48le").astype(int)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_in_16_bit_out(tmp_path: Path, suffix: str) -> None:
    pytest.importorskip("av")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65536, (20, 30, 3)).astype(np.uint16)
    path = tmp_path / f"in{suffix}"
    if suffix == ".png":
        path.write_bytes(_png16_bytes(pixels))
    else:
        import tifffile

        tifffile.imwrite(path, pixels, photometric="rgb")
    x, info = read_photo(path)
    assert info.bit_depth == 16
    assert np.abs(np.rint(x.permute(1, 2, 0).numpy() * 65535) - pixels).max() <= 1
    for out_suffix in (".png", ".tif"):
        out = write_photo(x, tmp_path / f"out{out_suffix}", info)
        assert np.abs(_read16(out) - pixels).max() <= 1
        with Image.open(out) as img:
            assert _is_srgb(img.info.get("icc_profile"))
    eight = write_photo(x, tmp_path / "eight.png", info, options=OutputOptions(bit_depth=8))
    with Image.open(eight) as img:
        assert img.mode == "RGB"
    assert np.abs(_pixels(eight) - (pixels.astype(int) + 128) // 257).max() <= 1
    with pytest.raises(ImageError, match="8-bit"):
        write_photo(x, tmp_path / "x.jpg", info, options=OutputOptions(bit_depth=16))


def test_16_bit_display_p3_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("av")
    icc = display_p3()
    pixels = (_in_gamut_pixels(icc).astype(np.uint16) * 257) + 77  # fine 16-bit steps
    path = tmp_path / "p3.png"
    path.write_bytes(_png16_bytes(pixels, icc))
    x, info = read_photo(path)
    assert info.icc == icc and info.bit_depth == 16
    out = write_photo(x, tmp_path / "out.png", info)
    assert np.abs(_read16(out) - pixels).max() <= 8  # within 8 of 65535 (0.03 of an 8-bit step)


def _exif_jpeg(path: Path, orientation: int) -> None:
    img = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    img.putpixel((0, 0), (255, 0, 0))
    exif = img.getexif()
    exif[0x0112] = orientation
    exif[0x010F] = "CameraMaker"
    exif[0x0110] = "CameraModel"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal
    exif.get_ifd(0x8825)[2] = (52.0, 31.0, 12.0)  # GPSLatitude
    img.save(path, exif=exif.tobytes(), quality=95)


def test_exif_kept_upright_with_software_tag(tmp_path: Path) -> None:
    path = tmp_path / "rot.jpg"
    _exif_jpeg(path, 6)  # rotate 90 degrees clockwise for display
    x, info = read_photo(path)
    assert x.shape == (3, 40, 20)
    out = write_photo(x, tmp_path / "out.jpg", info)
    with Image.open(out) as img:
        exif = img.getexif()
        assert img.size == (20, 40)
        assert exif[0x0112] == 1 and exif[0x010F] == "CameraMaker"
        assert exif[0x0131].startswith("photostyle")
        assert exif.get_ifd(0x8825)
    stripped = write_photo(
        x, tmp_path / "stripped.png", info, options=OutputOptions(strip_metadata=True)
    )
    with Image.open(stripped) as img:
        exif = img.getexif()
        assert 0x010F not in exif and not exif.get_ifd(0x8825)
        assert exif[0x0131].startswith("photostyle")


def test_16_bit_tiff_keeps_exif(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EXIF of a 16-bit TIFF output, read back by tifffile (independent) and by Pillow."""
    import tifffile

    import photostyle.photo

    monkeypatch.setattr(photostyle.photo, "_TIFF_STRIP_BYTES", 1000)  # strips of 8 rows
    path = tmp_path / "rot.jpg"
    _exif_jpeg(path, 6)
    x, info = read_photo(path)
    out = write_photo(x, tmp_path / "out.tif", info, options=OutputOptions(bit_depth=16))
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        tags = {tag.name: tag.value for tag in page.tags}
        pixels = page.asarray()
    assert pixels.dtype == np.uint16 and pixels.shape == (40, 20, 3)
    assert len(tags["StripOffsets"]) == 5 and tags["Predictor"] == 2
    assert np.array_equal(pixels, np.rint(x.permute(1, 2, 0).numpy() * 65535))
    assert tags["Make"] == "CameraMaker" and tags["Model"] == "CameraModel"
    assert tags["Orientation"] == 1 and tags["Software"].startswith("photostyle")
    assert tags["ExifTag"]["DateTimeOriginal"] == "2024:05:06 07:08:09"
    assert tags["GPSTag"]["GPSLatitude"] == (52, 1, 31, 1, 12, 1)
    with Image.open(out) as img:
        exif = img.getexif()
        assert exif[0x010F] == "CameraMaker" and exif[0x0110] == "CameraModel"
        assert exif[0x0112] == 1 and exif[0x0131].startswith("photostyle")
        assert exif.get_ifd(0x8825) and _is_srgb(img.info.get("icc_profile"))
    again, again_info = read_photo(out)  # its layout tags are not carried into the next file
    assert again_info.bit_depth == 16
    assert np.abs(np.rint(again.permute(1, 2, 0).numpy() * 65535) - pixels).max() <= 1
    jpeg = write_photo(again, tmp_path / "again.jpg", again_info)
    with Image.open(jpeg) as img:
        exif = img.getexif()
        assert exif[0x010F] == "CameraMaker" and not {256, 257, 273, 279, 34675} & set(exif)
    stripped = write_photo(
        x, tmp_path / "stripped.tif", info, options=OutputOptions(bit_depth=16, strip_metadata=True)
    )
    with tifffile.TiffFile(stripped) as tif:
        tags = {tag.name: tag.value for tag in tif.pages[0].tags}
    assert "Make" not in tags and "GPSTag" not in tags and "ExifTag" not in tags
    assert tags["Software"].startswith("photostyle") and tags["Orientation"] == 1


def test_16_bit_exif_orientation_is_applied(tmp_path: Path) -> None:
    import tifffile

    pixels = np.arange(4 * 6 * 3, dtype=np.uint16).reshape(4, 6, 3) * 500
    path = tmp_path / "rot.tif"
    tifffile.imwrite(path, pixels, photometric="rgb")
    for orientation in range(1, 9):  # compare with Pillow's own transpose of the 8-bit copy
        with Image.open(path) as img:
            img.load()
            exif = img.getexif()
            exif[0x0112] = orientation
            eight = Image.fromarray((pixels // 257).astype(np.uint8))
            eight.info["exif"] = exif.tobytes()
            from PIL import ImageOps

            want = np.asarray(ImageOps.exif_transpose(eight)).astype(int)
        from photostyle.photo import _TRANSPOSE_NUMPY

        got = _TRANSPOSE_NUMPY.get(orientation, lambda a: a)(pixels) // 257
        assert got.shape == want.shape and np.array_equal(got, want), orientation


def test_corrupt_and_cmyk_profiles_are_refused(tmp_path: Path) -> None:
    img = Image.fromarray(np.zeros((20, 20, 3), np.uint8))
    corrupt = tmp_path / "corrupt.png"
    img.save(corrupt, icc_profile=b"not an icc profile at all" * 8)
    with pytest.raises(ImageError, match="corrupt embedded ICC profile") as err:
        read_photo(corrupt)
    assert str(corrupt) in str(err.value)
    cmyk = tmp_path / "cmyk.jpg"
    img.save(cmyk, icc_profile=make_profile("CMYK (test)", ADOBE_RGB, (2.2,), space=b"CMYK"))
    with pytest.raises(ImageError, match="is CMYK, not RGB") as err:
        read_photo(cmyk)
    assert str(cmyk) in str(err.value)


def test_profiles_without_matrix_go_through_littlecms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lookup-table profiles (no colorant/TRC tags) are converted by LittleCMS in 8 bits."""
    import photostyle.photo

    icc = display_p3()
    pixels = _in_gamut_pixels(icc, seed=5)
    path = tmp_path / "p3.png"
    Image.fromarray(pixels).save(path, icc_profile=icc)
    monkeypatch.setattr(photostyle.photo, "_matrix_profile", lambda _icc: None)
    x, info = read_photo(path)
    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    want = np.asarray(
        ImageCms.profileToProfile(Image.fromarray(pixels), src, SRGB, outputMode="RGB")
    ).astype(int)
    assert np.array_equal(np.rint(x.permute(1, 2, 0).numpy() * 255).astype(int), want)
    out = write_photo(x, tmp_path / "out.png", info)
    with Image.open(out) as img:
        assert img.info["icc_profile"] == icc
    assert np.abs(_pixels(out) - pixels).max() <= 3  # two 8-bit conversions
    sixteen = write_photo(x, tmp_path / "out.tif", info, options=OutputOptions(bit_depth=16))
    assert sixteen.is_file()  # written in sRGB, tagged sRGB


def test_read_photo_reduces_a_jpeg_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "style.jpg"
    Image.new("RGB", (640, 480), (200, 100, 50)).save(path, quality=95)
    assert read_photo(path)[0].shape == (3, 480, 640)
    x, info = read_photo(path, reduce_to=100)
    assert x.shape == (3, 120, 160) and info.bit_depth == 8


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("size", [(1, 1), (7, 5), (130, 1021)])  # blocks of 64 rows at 1021
def test_quantize_equals_the_numpy_expression(depth: int, size: tuple[int, int]) -> None:
    from photostyle.photo import _quantize

    gen = torch.Generator().manual_seed(depth)
    image = torch.rand(3, *size, generator=gen) * 1.4 - 0.2  # values outside [0, 1] too
    scale = 65535.0 if depth == 16 else 255.0
    flat = image.view(-1)
    flat[::7] = (torch.randint(0, int(scale), flat[::7].shape, generator=gen) + 0.5) / scale
    flat[:3] = torch.tensor([float("nan"), float("inf"), -float("inf")])[: flat.numel()]
    x = np.nan_to_num(image.permute(1, 2, 0).numpy(), nan=0.0)
    ref = np.rint(np.clip(x, 0.0, 1.0) * scale).astype(np.uint16 if depth == 16 else np.uint8)
    out = _quantize(image, depth)
    assert out.dtype == ref.dtype and out.shape == (*size, 3)
    np.testing.assert_array_equal(out, ref)
    assert torch.isnan(image.view(-1)[0])  # the input is left as it was
