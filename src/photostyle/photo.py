"""Photo files as photographers have them: colour-managed, with metadata, 8 or 16 bits.

:func:`read_photo` returns the pixels in sRGB (what the network was trained on) together with a
:class:`PhotoInfo`: the embedded ICC profile, the EXIF block (orientation reset to 1, since the
pixels are already upright) and the bit depth. :func:`write_photo` writes a result back either in
sRGB with an sRGB profile, or converted into the input's own profile (``profile="same"``), with
the EXIF kept (or stripped) and a ``Software`` tag, at 8 or 16 bits.

Colour conversion: matrix/TRC RGB profiles (sRGB, Display P3, Adobe RGB, ProPhoto, most camera
exports) are converted in float from their tags (colorants and tone curves, through the ICC
profile connection space), so 16-bit data keeps its precision and a round trip returns the input;
other RGB profiles (lookup-table based) go through LittleCMS (Pillow's ImageCms) in 8 bits.
Colours outside the sRGB gamut are clipped for the network (the network sees sRGB).

16-bit RGB files, which Pillow reads as 8 bits, are decoded by tifffile (TIFF) or PyAV (PNG).
Pillow has no 16-bit RGB mode and tifffile writes no EXIF sub-IFDs, so 16-bit PNGs are written by
a small PNG encoder here and 16-bit TIFFs by a small TIFF encoder whose tags (EXIF with its Exif
and GPS sub-IFDs, ICC profile) Pillow's TIFF directory serialiser writes.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, ImageCms, TiffImagePlugin, TiffTags

from photostyle.io import (
    MAX_PIXELS,
    MIN_SIDE,
    ImageError,
    _read_image,
    check_output_path,
    image_to_tensor,
)
from photostyle.utils import atomic_path

__all__ = [
    "OUTPUT_FORMATS",
    "OUTPUT_PROFILES",
    "OutputOptions",
    "PhotoInfo",
    "read_photo",
    "srgb_profile",
    "write_photo",
]

OutputProfile = Literal["same", "srgb"]
OUTPUT_PROFILES: tuple[str, ...] = get_args(OutputProfile)
# Output suffix -> (Pillow format, bit depths the format holds here).
OUTPUT_FORMATS: Final[dict[str, tuple[str, tuple[int, ...]]]] = {
    ".jpg": ("JPEG", (8,)),
    ".jpeg": ("JPEG", (8,)),
    ".png": ("PNG", (8, 16)),
    ".tif": ("TIFF", (8, 16)),
    ".tiff": ("TIFF", (8, 16)),
    ".webp": ("WEBP", (8,)),
}
_ORIENTATION, _SOFTWARE = 0x0112, 0x0131  # EXIF tags
# TIFF tags that describe how a file stores its pixels (size, samples, compression, strips, tiles,
# palette, subfiles, profile): EXIF read from a TIFF carries them; outputs write their own.
_LAYOUT_TAGS: Final = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 277, 278, 279, 280, 281, 284}
    | {288, 289, 290, 291, 317, 320, 322, 323, 324, 325, 330, 338, 339, 340, 341, 347, 34675}
    | {512, 513, 514, 515, 517, 518, 519, 520, 521, 529, 530, 531, 532}
)
_TIFF_STRIP_BYTES: Final = 1 << 20  # uncompressed bytes per strip of a written 16-bit TIFF
_CURVE_POINTS: Final = 16384  # samples of each tone curve (inverse by interpolation)
_CONVERT_PIXELS: Final = 1 << 20  # pixels per block of a colour conversion
_QUANTIZE_PIXELS: Final = 1 << 16  # pixels per block of the float -> integer conversion
_TRANSPOSE_NUMPY: Final = {  # EXIF orientation -> upright, as ImageOps.exif_transpose does
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, 3),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def software_tag() -> str:
    """What the ``Software`` tag of written photos says."""
    from photostyle.version import __version__

    return f"photostyle {__version__}"


# --------------------------------------------------------------------------------------------
# ICC profiles
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MatrixProfile:
    """The colour model of a matrix/TRC RGB profile: tone curves and colorants."""

    to_xyz: npt.NDArray[np.float64]  # (3, 3) linear RGB -> PCS XYZ (D50)
    curves: npt.NDArray[np.float64]  # (3, _CURVE_POINTS) decoded (linear) values on a [0, 1] grid

    def decode(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Encoded -> linear RGB. Shape: (..., 3) -> (..., 3)."""
        grid = np.linspace(0.0, 1.0, _CURVE_POINTS)
        return np.stack([np.interp(x[..., c], grid, self.curves[c]) for c in range(3)], -1)

    def encode(self, y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Linear -> encoded RGB (clipped to [0, 1]). Shape: (..., 3) -> (..., 3)."""
        grid = np.linspace(0.0, 1.0, _CURVE_POINTS)
        return np.stack([np.interp(y[..., c], self.curves[c], grid) for c in range(3)], -1)


def _s15(data: bytes, offset: int, count: int) -> list[float]:
    return [v / 65536.0 for v in struct.unpack_from(f">{count}i", data, offset)]


def _curve(data: bytes, offset: int) -> npt.NDArray[np.float64]:
    """Samples an ICC ``curv`` or ``para`` tone curve on the [0, 1] grid (made monotonic)."""
    x = np.linspace(0.0, 1.0, _CURVE_POINTS)
    kind = data[offset : offset + 4]
    if kind == b"curv":
        (count,) = struct.unpack_from(">I", data, offset + 8)
        if count == 0:
            y = x
        elif count == 1:
            y = x ** (struct.unpack_from(">H", data, offset + 12)[0] / 256.0)
        else:
            table = np.frombuffer(data, ">u2", count, offset + 12) / 65535.0
            y = np.interp(x, np.linspace(0.0, 1.0, count), table)
    elif kind == b"para":
        (function,) = struct.unpack_from(">H", data, offset + 8)
        n = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(function)
        if n is None:
            raise ValueError(f"unknown parametric curve type {function}")
        g, a, b, c, d, e, f = [*_s15(data, offset + 12, n), 0, 0, 0, 0, 0, 0][:7]
        if function == 0:
            y = x**g
        elif function in (1, 2):
            # Y = (aX + b)^g (+ c) for X >= -b/a, else (0 or) c
            lin = np.clip(a * x + b, 0.0, None)
            y = np.where(x >= -b / a, lin**g, 0.0) + (c if function == 2 else 0.0)
        else:  # 3: (aX + b)^g for X >= d, else cX; 4 adds e and f
            lin = np.clip(a * x + b, 0.0, None)
            y = np.where(x >= d, lin**g + e, c * x + f)
    else:
        raise ValueError(f"unsupported tone curve type {kind!r}")
    return np.maximum.accumulate(np.clip(y, 0.0, None))


def _matrix_profile(icc: bytes) -> _MatrixProfile | None:
    """The matrix/TRC model of an RGB profile; None for a lookup-table-only profile."""
    (count,) = struct.unpack_from(">I", icc, 128)
    tags = {}
    for i in range(count):
        sig, offset, _ = struct.unpack_from(">4sII", icc, 132 + 12 * i)
        tags[sig] = offset
    needed = (b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC")
    if icc[20:24] != b"XYZ " or not all(t in tags for t in needed):
        return None
    columns = [_s15(icc, tags[t] + 8, 3) for t in (b"rXYZ", b"gXYZ", b"bXYZ")]
    curves = np.stack([_curve(icc, tags[t]) for t in (b"rTRC", b"gTRC", b"bTRC")])
    return _MatrixProfile(np.array(columns, dtype=np.float64).T, curves)


def srgb_profile() -> bytes:
    """The sRGB ICC profile (LittleCMS's built-in one) that outputs are tagged with."""
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


@dataclass(frozen=True)
class _Profile:
    """A checked RGB input profile."""

    icc: bytes  # the profile's bytes
    name: str  # its description
    cms: ImageCms.ImageCmsProfile  # LittleCMS's view of it
    matrix: _MatrixProfile | None  # float model when matrix/TRC; None = LittleCMS in 8 bits


def _check_profile(icc: bytes, path: Path) -> _Profile:
    try:
        cms = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = cms.profile.xcolor_space.strip()
        name = cms.profile.profile_description or "unnamed"
    except (OSError, ImageCms.PyCMSError, TypeError, ValueError) as err:
        raise ImageError(f"{path}: corrupt embedded ICC profile ({err})") from err
    if space != "RGB":
        raise ImageError(
            f"{path}: embedded ICC profile {name!r} is {space}, not RGB; export the photo as RGB"
        )
    try:
        matrix = _matrix_profile(icc)
    except (struct.error, ValueError, ZeroDivisionError) as err:
        raise ImageError(f"{path}: corrupt embedded ICC profile ({err})") from err
    return _Profile(icc, name, cms, matrix)


def _convert(x: npt.NDArray[np.floating], src: _MatrixProfile, dst: _MatrixProfile) -> np.ndarray:
    """Encoded RGB in ``src`` -> encoded RGB in ``dst`` (relative colorimetric, through PCS).

    Computed in float64 over blocks of rows (bounded memory at any photo size).

    Shape: (H, W, 3) -> (H, W, 3) float32.
    """
    m = (np.linalg.inv(dst.to_xyz) @ src.to_xyz).T
    out = np.empty(x.shape, dtype=np.float32)
    rows = max(1, _CONVERT_PIXELS // max(1, x.shape[1]))
    for top in range(0, x.shape[0], rows):
        block = x[top : top + rows].astype(np.float64)
        out[top : top + rows] = dst.encode(src.decode(block) @ m)
    return out


def _srgb_matrix() -> _MatrixProfile:
    model = _matrix_profile(srgb_profile())
    if model is None:  # LittleCMS's built-in sRGB is matrix/TRC
        raise RuntimeError("the built-in sRGB profile has no matrix/TRC tags")
    return model


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoInfo:
    """What :func:`write_photo` needs to give a result its input's profile and metadata."""

    path: Path  # the file the photo was read from
    icc: bytes | None  # embedded RGB ICC profile; None = none (taken as sRGB)
    profile_name: str  # the profile's description ("sRGB" when none was embedded)
    exif: bytes | None  # EXIF block with orientation 1 (pixels are upright); None = none
    bit_depth: int  # bits per sample of the file: 8 or 16


def _png_bit_depth(path: Path) -> int:
    with path.open("rb") as fh:
        head = fh.read(26)
    return head[24] if len(head) == 26 and head[12:16] == b"IHDR" else 8


def _decode_16bit(path: Path, fmt: str) -> npt.NDArray[np.uint16]:
    """Full-precision samples of a 16-bit RGB(A) PNG or TIFF, (H, W, 3 or 4), as stored."""
    if fmt == "TIFF":
        import tifffile

        arr = np.asarray(tifffile.imread(path))
    else:
        try:
            import av
        except ImportError as err:
            raise ImageError(
                f"{path}: reading 16-bit PNG needs PyAV: pip install 'photostyle[video]'"
            ) from err
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            has_alpha = "a" in frame.format.name
            arr = frame.to_ndarray(format="rgba64le" if has_alpha else "rgb48le")
    if arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageError(f"{path}: unsupported 16-bit layout {arr.dtype} {arr.shape}")
    return arr


def _pixels_16bit(path: Path, fmt: str, orientation: int) -> torch.Tensor:
    arr = _decode_16bit(path, fmt)
    arr = _TRANSPOSE_NUMPY.get(orientation, lambda a: a)(arr)
    x = arr.astype(np.float32) / 65535.0
    if x.shape[2] == 4:  # composite over white, as io.load_image does
        x = x[..., :3] * x[..., 3:] + (1.0 - x[..., 3:])
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).contiguous()


def read_photo(
    path: str | Path,
    *,
    min_side: int = MIN_SIDE,
    max_pixels: int = MAX_PIXELS,
    reduce_to: int | None = None,
) -> tuple[torch.Tensor, PhotoInfo]:
    """Loads a photo in sRGB, with its profile, EXIF and bit depth.

    Args:
        path: the image file (checks and mode handling of :func:`photostyle.io.load_image`).
        min_side: smallest accepted width and height (of the file, before any reduction).
        max_pixels: largest accepted width * height.
        reduce_to: for a photo that is only needed at a working size (a style): an 8-bit JPEG
            is decoded at 1/2, 1/4 or 1/8 scale (Pillow's draft mode, in the DCT domain) where
            its longest side stays at least this many pixels; other files are read in full.

    Returns:
        The upright photo as float32 sRGB in [0, 1], and its :class:`PhotoInfo`.

    Raises:
        ImageError: unreadable file (see :func:`~photostyle.io.load_image`), corrupt or non-RGB
            (e.g. CMYK) embedded ICC profile (one line naming the file).

    Shape:
        returns (3, H, W), H and W after EXIF orientation.
    """
    p = Path(path)
    # upright, EXIF checked
    img = _read_image(p, min_side=min_side, max_pixels=max_pixels, reduce_to=reduce_to)
    fmt = img.format or ""
    depth = 8
    if img.mode.startswith("I;16"):
        depth = 16
    elif img.mode in ("RGB", "RGBA") and fmt == "PNG":
        depth = _png_bit_depth(p)
    elif img.mode in ("RGB", "RGBA") and fmt == "TIFF":
        depth = max(img.tag_v2.get(258, (8,)))  # type: ignore[attr-defined]
    depth = 16 if depth > 8 else 8
    icc = img.info.get("icc_profile") or None
    grey = img.mode in ("1", "L", "LA", "I", "F") or img.mode.startswith("I;16")
    profile = _check_profile(icc, p) if icc is not None and not grey else None  # grey: as sRGB
    exif = img.getexif()
    if _ORIENTATION in exif:
        exif[_ORIENTATION] = 1
    exif_bytes = exif.tobytes() if len(exif) else None
    if depth == 16 and img.mode in ("RGB", "RGBA"):
        try:
            with Image.open(p) as header:  # the orientation _read_image applied (and removed)
                orientation = int(header.getexif().get(_ORIENTATION, 1))
            x = _pixels_16bit(p, fmt, orientation)
        except ImageError:
            raise
        except (OSError, ValueError, RuntimeError, StopIteration) as err:
            raise ImageError(f"{p}: unreadable 16-bit image ({err})") from err
    else:
        try:
            x = image_to_tensor(img)
        except ImageError as err:
            raise ImageError(f"{p}: {err}") from err
    if profile is not None:
        x = _to_srgb(x, img, profile)
    info = PhotoInfo(
        path=p,
        icc=profile.icc if profile is not None else None,
        profile_name=profile.name if profile is not None else "sRGB",
        exif=exif_bytes,
        bit_depth=depth,
    )
    return x, info


def _to_srgb(x: torch.Tensor, img: Image.Image, profile: _Profile) -> torch.Tensor:
    if profile.matrix is not None:
        out = _convert(x.permute(1, 2, 0).numpy(), profile.matrix, _srgb_matrix())
        return torch.from_numpy(out).permute(2, 0, 1).contiguous()
    rgb = img.convert("RGB")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    converted = ImageCms.profileToProfile(rgb, profile.cms, srgb, outputMode="RGB")
    assert converted is not None  # inPlace=False returns the image
    return image_to_tensor(converted)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputOptions:
    """How :func:`write_photo` writes a result."""

    profile: OutputProfile = "same"  # "same": the input's colour profile; "srgb": sRGB
    bit_depth: int | None = None  # 8 or 16; None = the input's where the format holds it, else 8
    quality: int = 95  # JPEG / WebP quality, 1..100
    strip_metadata: bool = False  # drop the input's EXIF (camera, date, GPS); Software is kept

    def __post_init__(self) -> None:
        if self.profile not in OUTPUT_PROFILES:
            raise ValueError(
                f"output profile must be one of {OUTPUT_PROFILES}, got {self.profile!r}"
            )
        if self.bit_depth not in (None, 8, 16):
            raise ValueError(f"bit depth must be 8 or 16, got {self.bit_depth}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {self.quality}")


def check_output(
    path: str | Path, options: OutputOptions, *, protect: Iterable[str | Path] = ()
) -> tuple[str, Path]:
    """Checks that ``path`` can take a photo written with ``options``; returns (format, path).

    Raises:
        ImageError: unsupported suffix, a directory, an input; or 16 bits asked of an 8-bit format.
    """
    target = check_output_path(path, protect=protect)
    suffix = target.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ImageError(
            f"{target}: photos are written as {' '.join(OUTPUT_FORMATS)}, not {suffix!r}"
        )
    fmt, depths = OUTPUT_FORMATS[suffix]
    if options.bit_depth is not None and options.bit_depth not in depths:
        raise ImageError(f"{target}: {fmt} holds {depths[-1]}-bit samples, not {options.bit_depth}")
    return fmt, target


def write_photo(
    image: torch.Tensor,
    path: str | Path,
    info: PhotoInfo | None = None,
    *,
    options: OutputOptions | None = None,
    protect: Iterable[str | Path] = (),
) -> Path:
    """Writes an sRGB result with the input's profile and metadata, atomically.

    Args:
        image: float sRGB in [0, 1] (clamped).
        path: ``.jpg``, ``.png``, ``.tif``/``.tiff`` or ``.webp``.
        info: the input's :class:`PhotoInfo`; None = an sRGB photo without metadata.
        options: profile, bit depth, quality, metadata.
        protect: paths that must not be overwritten (the inputs).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ImageError: unsupported or protected output, or the file cannot be written.

    Shape:
        image (3, H, W).
    """
    opts = options or OutputOptions()
    if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
        raise ValueError(f"image must be a float (3, H, W) tensor, got {tuple(image.shape)}")
    fmt, target = check_output(path, opts, protect=protect)
    depths = OUTPUT_FORMATS[target.suffix.lower()][1]
    depth = opts.bit_depth or (
        info.bit_depth if info is not None and info.bit_depth in depths else 8
    )
    chw = image.detach().float().cpu()
    converted = None
    icc = srgb_profile()
    lut_profile = None
    if opts.profile == "same" and info is not None and info.icc is not None:
        icc = info.icc  # replaced below for a lookup-table profile at 16 bits
        model = _matrix_profile(info.icc)
        if model is not None:
            hwc = torch.nan_to_num(chw, nan=0.0).clamp(0, 1).permute(1, 2, 0)
            converted = _convert(hwc.numpy(), _srgb_matrix(), model)
        elif depth == 8:  # LittleCMS converts 8-bit images only
            lut_profile = info.icc
        else:  # a lookup-table profile at 16 bits: written in sRGB, tagged as such
            icc = srgb_profile()
    exif = Image.Exif()
    if info is not None and info.exif is not None and not opts.strip_metadata:
        exif.load(info.exif)
        for tag in _LAYOUT_TAGS & set(exif):
            del exif[tag]
    exif[_ORIENTATION] = 1
    exif[_SOFTWARE] = software_tag()
    exif_bytes = exif.tobytes()
    if converted is None:
        samples = _quantize(chw, depth)
    else:
        scale = 65535.0 if depth == 16 else 255.0
        samples = np.rint(np.clip(converted, 0.0, 1.0) * scale)
        samples = samples.astype(np.uint16 if depth == 16 else np.uint8)
    try:
        with atomic_path(target) as tmp:
            if depth == 16 and fmt == "PNG":
                tmp.write_bytes(_png16(samples, icc, exif_bytes))
            elif depth == 16:
                with tmp.open("wb") as fh:
                    _write_tiff16(fh, samples, icc, exif)
            else:
                img = Image.fromarray(samples)
                if lut_profile is not None:
                    src = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
                    dst = ImageCms.ImageCmsProfile(io.BytesIO(lut_profile))
                    img = ImageCms.profileToProfile(img, src, dst, outputMode="RGB") or img
                kwargs: dict[str, object] = {"icc_profile": icc, "exif": exif_bytes}
                if fmt in ("JPEG", "WEBP"):
                    kwargs["quality"] = opts.quality
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    img.save(tmp, format=fmt, **kwargs)
    except (OSError, ValueError) as err:
        raise ImageError(f"{target}: cannot write image ({err})") from err
    return target


def _quantize(image: torch.Tensor, depth: int) -> np.ndarray:
    """Float samples to integers: ``rint(clip(x, 0, 1) * (2**depth - 1))``, NaN as 0.

    One pass over the photo in blocks of rows that stay in cache (instead of a full-size
    temporary per step), with the same float32 arithmetic and round-half-to-even.

    Shape: (3, H, W) float32 -> (H, W, 3) uint8 (depth 8) or uint16 (depth 16).
    """
    _, h, w = image.shape
    scale = 65535.0 if depth == 16 else 255.0
    out = np.empty((h, w, 3), dtype=np.uint8 if depth == 8 else np.int32)
    target = torch.from_numpy(out)
    rows = max(1, _QUANTIZE_PIXELS // max(1, w))
    for top in range(0, h, rows):
        block = torch.nan_to_num(image[:, top : top + rows], nan=0.0)
        block.clamp_(0, 1).mul_(scale).round_()  # whole numbers: the cast below is exact
        target[top : top + rows].copy_(block.permute(1, 2, 0))
    return out if depth == 8 else out.astype(np.uint16)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16(samples: npt.NDArray[np.uint16], icc: bytes, exif: bytes) -> bytes:
    """A 16-bit RGB PNG with iCCP, eXIf and Software chunks (rows filtered with 'Up').

    Shape: samples (H, W, 3) uint16.
    """
    h, w, _ = samples.shape
    rows = np.ascontiguousarray(samples, dtype=">u2").view(np.uint8).reshape(h, w * 6)
    up = rows.copy()
    up[1:] -= rows[:-1]  # filter type 2 (Up), modulo 256
    raw = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1).tobytes()
    tiff_exif = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)),
            _chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)),
            _chunk(b"eXIf", tiff_exif),
            _chunk(b"tEXt", b"Software\x00" + software_tag().encode("latin-1")),
            _chunk(b"IDAT", zlib.compress(raw, 6)),
            _chunk(b"IEND", b""),
        ]
    )


def _write_tiff16(
    fh: io.BufferedWriter, samples: npt.NDArray[np.uint16], icc: bytes, exif: Image.Exif
) -> None:
    """A 16-bit RGB TIFF with the EXIF tags (Exif and GPS sub-IFDs included) and an ICC profile.

    Deflate with the horizontal predictor, strips of about 1 MiB, little-endian; the tags are
    serialised by Pillow, which places the strips after the directory.

    Shape: samples (H, W, 3) uint16.
    """
    h, w, _ = samples.shape
    rows = max(1, _TIFF_STRIP_BYTES // (6 * w))
    strips = []
    for top in range(0, h, rows):
        block = samples[top : top + rows].astype("<u2")  # a copy
        block[:, 1:] = np.diff(block, axis=1)  # predictor 2: differences modulo 2^16
        strips.append(zlib.compress(block.tobytes(), 6))
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    for tag in exif:  # as Pillow's own TIFF writer copies ``exif=``: sub-IFDs as dictionaries
        ifd[tag] = exif.get_ifd(tag) if tag in TiffTags.TAGS_V2_GROUPS else exif[tag]
    ifd[256], ifd[257], ifd[277], ifd[258] = w, h, 3, (16, 16, 16)  # size, samples, bits
    ifd[259], ifd[317], ifd[262], ifd[284] = 8, 2, 2, 1  # Deflate, predictor, RGB, interleaved
    ifd[278] = rows  # rows per strip
    # strip offsets counted from the end of the directory: the serialiser adds its length
    ifd[273] = tuple(int(o) for o in np.cumsum([0] + [len(s) for s in strips[:-1]]))
    ifd[279] = tuple(len(s) for s in strips)
    ifd[34675] = icc
    ifd.save(fh)
    for strip in strips:
        fh.write(strip)
