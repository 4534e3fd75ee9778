"""Contact sheets: rows of images side by side, so a person can look rather than read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from photostyle.io import image_to_tensor, load_image, save_image, tensor_to_image


def thumbnail(path: str | Path, height: int = 160) -> torch.Tensor:
    """Load a photo (see :func:`photostyle.io.load_image`) scaled to ``height`` pixels high.

    Keeps contact sheets of many large photos small in memory.

    Args:
        path: the image file.
        height: height of the result in pixels.

    Returns:
        (3, height, W') RGB in [0, 1], aspect ratio kept.

    Raises:
        ImageError: the file cannot be read.
        ValueError: ``height`` is not positive.
    """
    return shrink(load_image(path), height)


def shrink(img: torch.Tensor, height: int = 160) -> torch.Tensor:
    """``img`` scaled to ``height`` pixels high (area averaging; bilinear when growing).

    Shape: (3, H, W) -> (3, height, W'), aspect ratio kept.

    Raises:
        ValueError: ``height`` is not positive.
    """
    if height < 1:
        raise ValueError(f"height must be positive, got {height}")
    w = max(1, round(img.shape[2] * height / img.shape[1]))
    mode = "area" if height <= img.shape[1] else "bilinear"
    align = False if mode == "bilinear" else None
    return F.interpolate(img[None], size=(height, w), mode=mode, align_corners=align)[0].clamp(0, 1)


def contact_sheet(
    rows: Sequence[Sequence[torch.Tensor]],
    *,
    height: int = 160,
    labels: Sequence[str] | None = None,
    gap: int = 4,
) -> Image.Image:
    """Lay out images in rows, each scaled to ``height`` pixels high.

    Args:
        rows: rows of (3, H, W) images in [0, 1]; rows may differ in length.
        height: height of every tile in pixels.
        labels: optional column titles drawn above the first row.
        gap: pixels between tiles.

    Returns:
        An RGB image.
    """
    if not rows or not all(rows):
        raise ValueError("contact_sheet needs at least one non-empty row")
    tiles = [
        [
            (im := tensor_to_image(t)).resize(
                (max(1, round(im.width * height / im.height)), height), Image.Resampling.LANCZOS
            )
            for t in row
        ]
        for row in rows
    ]
    top = 16 if labels else 0
    width = max(sum(t.width for t in row) + gap * (len(row) - 1) for row in tiles)
    sheet = Image.new("RGB", (width, top + len(tiles) * (height + gap) - gap), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(tiles):
        x = 0
        for c, tile in enumerate(row):
            y = top + r * (height + gap)
            sheet.paste(tile, (x, y))
            if labels and r == 0 and c < len(labels):
                draw.text((x + 2, 2), labels[c], fill="black")
            x += tile.width + gap
    return sheet


def write_sheet(
    rows: Sequence[Sequence[torch.Tensor]],
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    protect: Iterable[str | Path] = (),
) -> Path:
    """Write the :func:`contact_sheet` of ``rows`` to ``path`` atomically (never onto a file of
    ``protect``).

    Returns:
        ``path``.
    """
    sheet = image_to_tensor(contact_sheet(rows, labels=labels))
    return save_image(sheet, path, protect=protect)
