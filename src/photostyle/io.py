"""Image and semantic-mask I/O.

Photos are loaded as ``(3, H, W)`` float32 RGB tensors in ``[0, 1]`` with EXIF orientation
applied, whatever their file mode (8/16-bit grey, palette, alpha, CMYK, 32-bit int, float,
bilevel). Every user-facing failure (missing, unreadable, truncated, too small or too large file,
mismatched mask, unwritable output) raises :class:`ImageError` with a one-line message that names
the file. Outputs are written atomically and never overwrite protected paths (the inputs).

DPST-style semantic masks are colour images whose colours come from :data:`DPST_PALETTE`; they
are turned into ``(H, W)`` int64 label maps (index into the palette, ``-1`` for no colour).
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import struct
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Final

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from photostyle.measure import available_memory_bytes
from photostyle.utils import check_writable

__all__ = [
    "DPST_PALETTE",
    "MAX_PIXELS",
    "MIN_SIDE",
    "ImageError",
    "check_output_path",
    "image_to_tensor",
    "load_image",
    "load_mask",
    "mask_from_image",
    "save_image",
    "tensor_to_image",
]


class ImageError(ValueError):
    """A user-facing image problem; ``str(err)`` is a one-line message naming the file."""


# Semantic-mask colours of Deep Photo Style Transfer (Luan et al. 2017), in label order.
DPST_PALETTE: Final[tuple[tuple[str, tuple[int, int, int]], ...]] = (
    ("blue", (0, 0, 255)),
    ("green", (0, 255, 0)),
    ("black", (0, 0, 0)),
    ("white", (255, 255, 255)),
    ("red", (255, 0, 0)),
    ("yellow", (255, 255, 0)),
    ("grey", (128, 128, 128)),
    ("lightblue", (0, 255, 255)),
    ("purple", (255, 0, 255)),
)

MIN_SIDE: Final = 16  # photos with a side shorter than this are rejected
MAX_PIXELS: Final = 250_000_000  # photos with more pixels are rejected before decoding
# Memory one decoded pixel takes at the peak of loading an RGB photo: Pillow's 4-byte pixel, a
# uint8 RGB copy and the float32 tensor (3 x 4 bytes), rounded up. Checked before decoding.
DECODE_BYTES_PER_PIXEL: Final = 20

# Output suffix -> (Pillow format, save options).
_SAVE_FORMATS: Final[dict[str, tuple[str, dict[str, int]]]] = {
    ".png": ("PNG", {}),
    ".jpg": ("JPEG", {"quality": 95}),
    ".jpeg": ("JPEG", {"quality": 95}),
    ".webp": ("WEBP", {"quality": 95}),
    ".tif": ("TIFF", {}),
    ".tiff": ("TIFF", {}),
    ".bmp": ("BMP", {}),
}

# Exceptions Pillow raises for unreadable, truncated or corrupt files.
_DECODE_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    Image.DecompressionBombError,
)

_ALPHA_MODES: Final = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_TRANSPARENCY_MODES: Final = frozenset({"1", "L", "P", "RGB"})  # alpha via info["transparency"]
_UINT16_MODES: Final = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})


# --------------------------------------------------------------------------------------------
# Pixel conversion
# --------------------------------------------------------------------------------------------


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in _ALPHA_MODES or (
        img.mode in _TRANSPARENCY_MODES and "transparency" in img.info
    )


def _to_rgba_uint8(img: Image.Image) -> np.ndarray:
    """Un-composited RGBA of an image with alpha or a transparency key, shape (H, W, 4)."""
    if img.mode == "La":  # Pillow cannot convert premultiplied La straight to RGBA
        img = img.convert("LA")
    return np.asarray(img.convert("RGBA"), dtype=np.uint8)


def _to_rgb_float(img: Image.Image) -> np.ndarray:
    """Any-mode image to float32 RGB in [0, 1]; alpha is composited over white.

    Shape: returns (H, W, 3).
    """
    mode = img.mode
    if _has_alpha(img):
        rgba = _to_rgba_uint8(img).astype(np.float32) / 255.0
        alpha = rgba[..., 3:]
        return rgba[..., :3] * alpha + (1.0 - alpha)
    gray: npt.NDArray[np.float32]
    if mode == "1":
        gray = np.asarray(img, dtype=np.float32)
    elif mode == "L":
        gray = np.asarray(img, dtype=np.float32) / 255.0
    elif mode in _UINT16_MODES:  # 16-bit greyscale PNG/TIFF
        gray = np.asarray(img).astype(np.float32) / 65535.0
    elif mode == "I":  # 32-bit int (e.g. signed 16/32-bit TIFF): assume a 16-bit range, clip
        gray = np.asarray(img).astype(np.float32) / 65535.0
        gray = gray.clip(0.0, 1.0)
    elif mode == "F":
        gray = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0)
        gray = gray.clip(0.0, 1.0)
    else:  # RGB, CMYK, YCbCr, LAB, HSV, RGBX, P without transparency
        try:
            rgb = img.convert("RGB")
        except ValueError as err:
            raise ImageError(f"unsupported image mode {mode!r}") from err
        return np.asarray(rgb, dtype=np.float32) / 255.0
    return np.repeat(gray[..., None], 3, axis=2)


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """Converts a Pillow image of any mode to an RGB float tensor.

    8-bit data is divided by 255, 16-bit greyscale (``I;16*``) and 32-bit int (``I``, clipped)
    by 65535; float (``F``) is clipped to [0, 1]; bilevel is 0/1. Alpha and palette
    transparency are composited over white. CMYK and other colour spaces use Pillow's
    ``convert("RGB")``.

    Args:
        img: The image. It is not modified.

    Returns:
        The RGB image as float32 in [0, 1].
        Shape: (3, H, W).

    Raises:
        ImageError: If Pillow cannot convert the mode to RGB.
    """
    if img.mode == "RGB" or (img.mode in ("CMYK", "YCbCr", "RGBX") and not _has_alpha(img)):
        # The common case, kept to one float buffer (12 bytes per pixel; 288 MB at 24 MP).
        rgb8 = torch.from_numpy(np.array(img.convert("RGB"), dtype=np.uint8))  # (H, W, 3)
        out = torch.empty(3, *rgb8.shape[:2], dtype=torch.float32)
        out.copy_(rgb8.permute(2, 0, 1))
        return out.div_(255.0)
    rgb = _to_rgb_float(img)
    return (
        torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1).contiguous()
    )


def tensor_to_image(t: torch.Tensor) -> Image.Image:
    """Converts an RGB float tensor to an 8-bit RGB Pillow image.

    Values are clamped to [0, 1] (NaN becomes 0) and rounded to the nearest of 256 levels.

    Args:
        t: A floating-point RGB image on any device.
            Shape: (3, H, W) or (1, 3, H, W).

    Returns:
        An RGB image of size (W, H).

    Raises:
        ValueError: If the shape or dtype is not as above.
    """
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) or (1, 3, H, W) tensor, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"expected a floating-point tensor, got {t.dtype}")
    x = t.detach().to(device="cpu", dtype=torch.float32, copy=True)  # one float buffer, in place
    x = torch.nan_to_num_(x, nan=0.0).clamp_(0.0, 1.0).mul_(255.0).round_()
    hwc = torch.empty(*x.shape[1:], 3, dtype=torch.uint8)
    hwc.copy_(x.permute(1, 2, 0))
    del x
    return Image.fromarray(hwc.numpy())


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _open_ignoring_pillow_limit(fh: IO[bytes], path: Path) -> ImageFile.ImageFile:
    """Identifies an image like ``Image.open`` but without Pillow's global pixel limit.

    Only reached when Pillow's ``MAX_IMAGE_PIXELS`` (set process-wide, possibly by other code)
    is lower than the caller's ``max_pixels``; the caller checks the size itself.
    """
    Image.init()
    fh.seek(0)
    prefix = fh.read(16)
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        if accept is not None:
            verdict = accept(prefix)
            if isinstance(verdict, str) or not verdict:
                continue
        fh.seek(0)
        try:
            return factory(fh, "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
    raise ImageError(f"{path}: not a recognised image file")


def _identify(fh: IO[bytes], path: Path) -> ImageFile.ImageFile:
    """Reads the header of an open file; no pixel data is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fh)
    except Image.DecompressionBombError:
        pass  # Pillow's own (global) limit; ours is checked by the caller
    except UnidentifiedImageError as err:
        raise ImageError(f"{path}: not a recognised image file") from err
    except _DECODE_ERRORS as err:
        raise ImageError(f"{path}: unreadable image header ({err})") from err
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _open_ignoring_pillow_limit(fh, path)
    except ImageError:
        raise
    except _DECODE_ERRORS as err:
        raise ImageError(f"{path}: unreadable image header ({err})") from err


def draft_size(width: int, height: int, reduce_to: int) -> tuple[int, int] | None:
    """The size to ask Pillow's JPEG draft mode for so the longest side stays >= ``reduce_to``.

    Draft mode decodes a JPEG at 1/2, 1/4 or 1/8 scale in the DCT domain, choosing the largest
    factor ``s`` with ``s <= min(width // w, height // h)`` for a requested ``(w, h)``; asking for
    the size scaled by ``reduce_to / max(width, height)`` (rounded up) keeps both sides' factor
    at most ``max(width, height) / reduce_to``.

    Returns:
        ``(w, h)`` to pass to ``Image.draft``, or None when the image is not larger than that.
    """
    if reduce_to < 1:
        raise ValueError(f"reduce_to must be positive, got {reduce_to}")
    longest = max(width, height)
    if longest < 2 * reduce_to:  # no power-of-two reduction would keep the side
        return None
    scale = reduce_to / longest
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def _read_image(
    path: str | Path, *, min_side: int, max_pixels: int, reduce_to: int | None = None
) -> Image.Image:
    """Opens, size-checks, fully decodes and EXIF-orients an image file.

    ``reduce_to``: a JPEG may be decoded at reduced scale (draft mode), its longest side still at
    least this many pixels; other formats are decoded at full size.
    """
    p = Path(path)
    if p.is_dir():
        raise ImageError(f"{p}: is a directory, not an image file")
    try:
        fh = p.open("rb")
    except FileNotFoundError as err:
        raise ImageError(f"{p}: no such file") from err
    except OSError as err:
        raise ImageError(f"{p}: cannot open ({err.strerror or err})") from err
    with fh:
        if fh.seek(0, os.SEEK_END) == 0:
            raise ImageError(f"{p}: file is empty")
        fh.seek(0)
        img = _identify(fh, p)
        w, h = img.size
        if w * h > max_pixels:  # checked from the header, before any decoding
            raise ImageError(
                f"{p}: image is {w}x{h} ({w * h:,} pixels), more than the limit of "
                f"{max_pixels:,} pixels"
            )
        if min(w, h) < min_side:
            raise ImageError(
                f"{p}: image is {w}x{h} pixels; both sides must be at least {min_side}"
            )
        if reduce_to is not None:
            request = draft_size(w, h, reduce_to)
            if request is not None:
                img.draft(None, request)  # a no-op for formats other than JPEG
        _check_decode_memory(p, *img.size)  # the size after any reduced (draft) decoding
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img.load()
        except _DECODE_ERRORS as err:
            raise ImageError(f"{p}: truncated or corrupt image ({err})") from err
        try:
            ImageOps.exif_transpose(img, in_place=True)
        except _DECODE_ERRORS as err:
            raise ImageError(f"{p}: corrupt EXIF orientation ({err})") from err
    return img


def _check_decode_memory(path: Path, width: int, height: int) -> None:
    """Refuse to decode an image whose pixels would not fit in the memory available now."""
    need = width * height * DECODE_BYTES_PER_PIXEL
    available = available_memory_bytes()
    if available is None or need <= available:
        return
    fits = available // DECODE_BYTES_PER_PIXEL / 1e6
    raise ImageError(
        f"{path}: decoding this {width}x{height} image needs about {need / 1e9:.1f} GB of memory "
        f"but {available / 1e9:.1f} GB is available; downscale the file to at most "
        f"{fits:.0f} megapixels first (--max-size only sets the working size, after decoding)"
    )


def load_image(
    path: str | Path,
    *,
    min_side: int = MIN_SIDE,
    max_pixels: int = MAX_PIXELS,
    reduce_to: int | None = None,
) -> torch.Tensor:
    """Loads a photo as an RGB float tensor with its EXIF orientation applied.

    The pixel count and the memory decoding needs are checked from the header before decoding
    (independently of Pillow's global ``MAX_IMAGE_PIXELS``), and the file is decoded
    completely: a truncated file is an error, never a partially decoded image (unless other code
    has set Pillow's global ``ImageFile.LOAD_TRUNCATED_IMAGES``). Mode handling is that of
    :func:`image_to_tensor`.

    Args:
        path: The image file (any format Pillow reads).
        min_side: Smallest accepted width and height, in pixels.
        max_pixels: Largest accepted width * height.
        reduce_to: for a photo needed only at a working size (a style): a JPEG is decoded at
            1/2, 1/4 or 1/8 scale (Pillow's draft mode) where its longest side stays at least
            this many pixels; other formats are decoded in full.

    Returns:
        The photo as float32 RGB in [0, 1].
        Shape: (3, H, W), H and W after EXIF orientation.

    Raises:
        ImageError: If the file is missing, a directory, empty, not an image, truncated or
            corrupt, smaller than ``min_side``, larger than ``max_pixels``, or larger than
            the memory available now can decode (:data:`DECODE_BYTES_PER_PIXEL`).
    """
    img = _read_image(path, min_side=min_side, max_pixels=max_pixels, reduce_to=reduce_to)
    try:
        return image_to_tensor(img)
    except ImageError as err:
        raise ImageError(f"{path}: {err}") from err


def _mask_rgb(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Mask colours as int16 RGB (H, W, 3) and, if the mask has alpha, an opaque map (H, W)."""
    if _has_alpha(img):
        rgba = _to_rgba_uint8(img)
        return rgba[..., :3].astype(np.int16), rgba[..., 3] >= 128
    rgb = np.rint(_to_rgb_float(img) * 255.0).astype(np.int16)
    return rgb, None


def mask_from_image(img: Image.Image, *, tolerance: int = 50) -> torch.Tensor:
    """Maps the colours of a DPST semantic mask to labels.

    Each pixel gets the index of the nearest :data:`DPST_PALETTE` colour (L-inf distance over
    the 0..255 RGB channels) if that distance is at most ``tolerance``, else -1. Grey-level masks
    go through the same palette (0 black, 128 grey, 255 white). Pixels with alpha below 128 are
    unlabelled (-1). With the default tolerance at most one palette colour can match, so
    anti-aliased blend pixels become -1 or the colour they are close to.

    Args:
        img: The mask image, any mode.
        tolerance: Largest per-channel difference to a palette colour, 0..255.

    Returns:
        int64 labels in [-1, len(DPST_PALETTE)).
        Shape: (H, W).

    Raises:
        ValueError: If ``tolerance`` is outside 0..255.
        ImageError: If Pillow cannot convert the mode to RGB.
    """
    if not 0 <= tolerance <= 255:
        raise ValueError(f"tolerance must be in 0..255, got {tolerance}")
    rgb, opaque = _mask_rgb(img)
    height, width = rgb.shape[0], rgb.shape[1]
    best: npt.NDArray[np.int16] = np.full((height, width), np.iinfo(np.int16).max, dtype=np.int16)
    index: npt.NDArray[np.int64] = np.zeros((height, width), dtype=np.int64)
    for k, (_, colour) in enumerate(DPST_PALETTE):
        dist = np.abs(rgb - np.asarray(colour, dtype=np.int16)).max(axis=2)
        closer = dist < best
        best[closer] = dist[closer]
        index[closer] = k
    labels: npt.NDArray[np.int64] = np.where(best <= tolerance, index, np.int64(-1))
    if opaque is not None:
        labels[~opaque] = -1
    return torch.from_numpy(labels.astype(np.int64))


def load_mask(
    path: str | Path,
    size: tuple[int, int],
    *,
    tolerance: int = 50,
    max_mismatch: float = 0.02,
) -> torch.Tensor:
    """Loads a DPST semantic mask as labels aligned with its photo.

    EXIF orientation is applied. A mask whose height and width each differ from ``size`` by at
    most ``max_mismatch`` relative (e.g. DPST in7's mask is one pixel shorter than its photo) is
    resized to ``size`` with nearest-neighbour sampling; a larger difference is an error.

    Args:
        path: The mask image file.
        size: (H, W) of the photo the mask belongs to, after EXIF orientation.
        tolerance: Colour tolerance, see :func:`mask_from_image`.
        max_mismatch: Largest accepted relative size difference per side.

    Returns:
        int64 labels into :data:`DPST_PALETTE`, -1 where no palette colour matches.
        Shape: (H, W) == ``size``.

    Raises:
        ImageError: If the file cannot be read (see :func:`load_image`) or its size does not
            match ``size``.
        ValueError: If ``size`` is not positive or ``tolerance`` is outside 0..255.
    """
    height, width = size
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be a positive (H, W), got {size}")
    img = _read_image(path, min_side=1, max_pixels=MAX_PIXELS)
    mask_w, mask_h = img.size
    if (mask_h, mask_w) != (height, width):
        if (
            abs(mask_h - height) > max_mismatch * height
            or abs(mask_w - width) > max_mismatch * width
        ):
            raise ImageError(
                f"{path}: mask is {mask_w}x{mask_h} pixels but its photo is {width}x{height}"
            )
        img = img.resize((width, height), Image.Resampling.NEAREST)
    try:
        return mask_from_image(img, tolerance=tolerance)
    except ImageError as err:
        raise ImageError(f"{path}: {err}") from err


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError, RuntimeError):  # RuntimeError: symlink loop (Python 3.11)
        if a.resolve() == b.resolve():
            return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def check_output_path(path: str | Path, *, protect: Iterable[str | Path] = ()) -> Path:
    """Check that :func:`save_image` may write ``path`` (call it before any long work).

    Args:
        path: the intended output image.
        protect: paths that must not be overwritten (the inputs).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ImageError: unsupported suffix, ``path`` is a directory or one of ``protect``, or its
            folder cannot be written (a parent is a file, permission denied).
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in _SAVE_FORMATS:
        known = " ".join(_SAVE_FORMATS)
        raise ImageError(f"{target}: unsupported output format {suffix or '(none)'!r}; use {known}")
    if any(_same_file(target, Path(p)) for p in protect):
        raise ImageError(f"{target}: refusing to overwrite an input file")
    try:
        check_writable(target)
    except ValueError as err:
        raise ImageError(str(err)) from None
    return target


def save_image(t: torch.Tensor, path: str | Path, *, protect: Iterable[str | Path] = ()) -> Path:
    """Writes an RGB tensor to an image file atomically.

    The format comes from the suffix: ``.png``, ``.jpg``/``.jpeg`` (quality 95), ``.webp``
    (quality 95), ``.tif``/``.tiff``, ``.bmp``. The image is written to a temporary file in the
    target directory and moved into place with ``os.replace``; on any failure neither a partial
    target nor the temporary file remains, and an existing target is left untouched. Missing
    parent directories are created. See :func:`tensor_to_image` for the pixel conversion.

    Args:
        t: Floating-point RGB image, values in [0, 1] (clamped).
            Shape: (3, H, W) or (1, 3, H, W).
        path: Output file.
        protect: Paths that must not be overwritten (e.g. the input photos); compared after
            resolving symlinks and relative parts.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ImageError: If the suffix is unsupported, ``path`` is protected or a directory, or the
            file cannot be written.
        ValueError: If ``t`` has the wrong shape or dtype.
    """
    target = check_output_path(path, protect=protect)
    fmt, options = _SAVE_FORMATS[target.suffix.lower()]
    img = tensor_to_image(t)

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ImageError(f"{target}: cannot create directory ({err.strerror or err})") from err
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)  # 0o666 & ~umask, like a normally created file
    except OSError as err:
        raise ImageError(f"{target}: cannot write ({err.strerror or err})") from err
    done = False
    try:
        with os.fdopen(fd, "wb") as fh:
            img.save(fh, format=fmt, **options)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        done = True
    except (OSError, ValueError) as err:
        raise ImageError(f"{target}: cannot write image ({err})") from err
    finally:
        if not done:  # also on KeyboardInterrupt and unexpected errors
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    return target


def demo_files() -> tuple[Path, Path]:
    """The bundled demo pair: its content and style photo files (``photostyle demo``)."""
    from importlib import resources

    assets = resources.files("photostyle") / "assets"
    return Path(str(assets / "demo_content.jpg")), Path(str(assets / "demo_style.jpg"))
