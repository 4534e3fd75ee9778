"""Uploads to tensors, the alpha blend, and results to image bytes for the web server.

Uploaded bytes are decoded by :func:`photostyle.io.load_image` / :func:`~photostyle.io.load_mask`
(so the server gives the CLI's one-line messages) from files in a per-request
:class:`tempfile.TemporaryDirectory` under fixed names; the name a client sends never reaches
the filesystem, and the folder is removed when decoding ends, also on errors.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import torch

from photostyle.io import ImageError, load_image, load_mask, tensor_to_image
from photostyle.utils import resize_image

__all__ = [
    "OUTPUT_FORMATS",
    "DecodedInputs",
    "OutputFormat",
    "blend",
    "decode_inputs",
    "encode_image",
    "preview",
]


@dataclass(frozen=True)
class OutputFormat:
    """How a result is encoded for a response."""

    pillow: str  # Pillow's format name
    media_type: str  # the response's Content-Type
    suffix: str  # file-name suffix of a download
    quality: int | None  # lossy quality (None for lossless formats)


# Response formats, by the name a client passes as ``format``.
OUTPUT_FORMATS: Final[dict[str, OutputFormat]] = {
    "png": OutputFormat("PNG", "image/png", ".png", None),
    "jpeg": OutputFormat("JPEG", "image/jpeg", ".jpg", 95),
    "webp": OutputFormat("WEBP", "image/webp", ".webp", 95),
}


@dataclass(frozen=True)
class DecodedInputs:
    """A request's photos and optional semantic masks, decoded."""

    content: torch.Tensor  # (3, H, W) RGB in [0, 1], EXIF orientation applied
    style: torch.Tensor  # (3, Hs, Ws) RGB in [0, 1]
    content_mask: torch.Tensor | None  # (H, W) int64 DPST labels, or None
    style_mask: torch.Tensor | None  # (Hs, Ws) int64 DPST labels; given iff content_mask is


def _field_error(err: ImageError, path: Path, field: str) -> ImageError:
    """The decoder's one-line message with the temporary path replaced by the form field."""
    return ImageError(str(err).replace(str(path), field))


def decode_inputs(
    uploads: dict[str, bytes], *, max_pixels: int, temp_dir: str | Path | None = None
) -> DecodedInputs:
    """Decodes the uploaded photos (and masks) of one request.

    Args:
        uploads: bytes by form field: ``content`` and ``style``, optionally ``content_mask`` and
            ``style_mask`` (both or neither).
        max_pixels: largest accepted width * height of a photo, checked from the header.
        temp_dir: parent of the request's temporary folder; None = the system's.

    Returns:
        The decoded inputs; masks are aligned with their photos.

    Raises:
        ImageError: one line naming the form field: empty, not an image, truncated or corrupt,
            too small or too large, a mask that does not fit its photo.
        ValueError: a missing photo, or one mask without the other.
    """
    for name in ("content", "style"):
        if name not in uploads:
            raise ValueError(f"{name}: missing; upload a {name} photo")
    if ("content_mask" in uploads) != ("style_mask" in uploads):
        raise ValueError("give both content_mask and style_mask, or neither")
    with tempfile.TemporaryDirectory(prefix="photostyle-serve-", dir=temp_dir) as tmp:
        paths = {}
        for field, data in uploads.items():
            path = Path(tmp) / field  # a fixed name: nothing the client sent
            path.write_bytes(data)
            paths[field] = path

        def photo(field: str) -> torch.Tensor:
            try:
                return load_image(paths[field], max_pixels=max_pixels)
            except ImageError as err:
                raise _field_error(err, paths[field], field) from err

        def mask(field: str, size: tuple[int, int]) -> torch.Tensor:
            try:
                return load_mask(paths[field], size)
            except ImageError as err:
                raise _field_error(err, paths[field], field) from err

        content, style = photo("content"), photo("style")
        content_mask = style_mask = None
        if "content_mask" in paths:
            content_mask = mask("content_mask", (content.shape[1], content.shape[2]))
            style_mask = mask("style_mask", (style.shape[1], style.shape[2]))
    return DecodedInputs(content, style, content_mask, style_mask)


def blend(content: torch.Tensor, stylized: torch.Tensor, alpha: float) -> torch.Tensor:
    """The result at strength ``alpha``: ``content + alpha * (stylized - content)``.

    The one place where the server applies alpha: ``POST /v1/stylize``, the page's slider
    previews and its full-resolution download all call it on a stylization made at alpha = 1,
    so a download equals the API's answer for the same inputs and alpha. For a stylizer whose
    network output is linear in alpha (the default model) this is the network's own alpha: the
    ``guided`` and ``change`` upsamplers carry the change linearly, and only the clamp to
    [0, 1] comes before the blend instead of after it. ``torch.lerp`` keeps the ends exact:
    alpha 0 returns the content and alpha 1 the stylization, bit for bit.

    Args:
        content: RGB in [0, 1].
        stylized: the stylization at alpha = 1, same shape.
        alpha: strength in [0, 1].

    Returns:
        A new tensor in [0, 1].
        Shape: (3, H, W) like the inputs.

    Raises:
        ValueError: shapes differ or alpha is outside [0, 1].
    """
    if content.shape != stylized.shape or content.ndim != 3 or content.shape[0] != 3:
        raise ValueError(
            f"expected two (3, H, W) tensors of one shape, got {tuple(content.shape)} and "
            f"{tuple(stylized.shape)}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return torch.lerp(content, stylized, alpha).clamp_(0.0, 1.0)


def preview(image: torch.Tensor, max_side: int) -> torch.Tensor:
    """A copy no larger than ``max_side`` on its longest side (area averaging).

    Resizing is linear, so ``blend`` of two previews equals the preview of their ``blend`` up
    to float rounding: the page's slider only blends small images.

    Shape: (3, H, W) -> (3, h, w) with max(h, w) <= max_side.
    """
    h, w = image.shape[-2:]
    scale = min(1.0, max_side / max(h, w))
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return resize_image(image[None], size)[0].clone()


def encode_image(image: torch.Tensor, fmt: str) -> bytes:
    """Encodes an RGB tensor as 8-bit image bytes, with no metadata (no EXIF, no GPS).

    Args:
        image: RGB in [0, 1] (clamped).
            Shape: (3, H, W).
        fmt: a key of :data:`OUTPUT_FORMATS`.

    Returns:
        The encoded file's bytes.

    Raises:
        ValueError: unknown format.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"format: unknown {fmt!r}; choose from {', '.join(OUTPUT_FORMATS)}")
    spec = OUTPUT_FORMATS[fmt]
    img = tensor_to_image(image)  # a new image: nothing of the upload's metadata comes along
    buffer = io.BytesIO()
    if spec.quality is None:
        img.save(buffer, format=spec.pillow)
    else:
        img.save(buffer, format=spec.pillow, quality=spec.quality)
    return buffer.getvalue()
