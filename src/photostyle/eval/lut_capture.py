"""How much of a stylization a 3D LUT captures, measured on pairs of photos.

For each (content, style) pair, photostyle's full result (with the pair's semantic masks) is the
reference. Two LUTs try to reproduce it from the content alone: one fitted to this very pair
(:func:`photostyle.lut.bake_lut` with the content: the best any LUT can do, so what it misses is
the local part of the stylization), and one baked from the style alone over the neutral reference
(what ``photostyle lut --style`` ships without seeing the photo). Scores: PSNR to the reference,
and the captured fraction ``1 - MSE(LUT) / MSE(content)`` of the change photostyle made.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from photostyle.api import StylizeOptions, Stylizer, working_size
from photostyle.data.pairs import Pair
from photostyle.eval.metrics import psnr
from photostyle.io import load_image, load_mask
from photostyle.lut import DEFAULT_LUT_SIZE, apply_lut, bake_lut, fit_lut
from photostyle.utils import resize_image

__all__ = ["CaptureRow", "capture_markdown", "lut_capture"]


@dataclass(frozen=True)
class CaptureRow:
    """LUT scores of one pair (PSNR in dB against photostyle's result)."""

    name: str  # the pair
    masks: bool  # photostyle's result used the pair's semantic masks
    psnr_content: float  # the unchanged content (how much photostyle changed the photo)
    psnr_pair_lut: float  # the LUT fitted to this pair's result
    psnr_style_lut: float  # the LUT baked from the style alone (neutral reference)

    @property
    def captured_pair(self) -> float:
        """Fraction of the change's energy the pair LUT reproduces."""
        return _captured(self.psnr_content, self.psnr_pair_lut)

    @property
    def captured_style(self) -> float:
        """Fraction of the change's energy the style-only LUT reproduces (negative: worse)."""
        return _captured(self.psnr_content, self.psnr_style_lut)

    def to_json(self) -> dict[str, object]:
        return {
            **asdict(self),
            "captured_pair": self.captured_pair,
            "captured_style": self.captured_style,
        }


def _captured(base_db: float, lut_db: float) -> float:
    if math.isinf(base_db):
        return math.nan
    return 1.0 - 10.0 ** ((base_db - lut_db) / 10.0)  # 1 - MSE_lut / MSE_content


def lut_capture(
    stylizer: Stylizer,
    pairs: Sequence[Pair],
    *,
    size: int = DEFAULT_LUT_SIZE,
    options: StylizeOptions | None = None,
    on_pair: Callable[[CaptureRow], None] | None = None,
) -> list[CaptureRow]:
    """Scores the pair LUT and the style-only LUT of every pair (see the module docstring).

    Args:
        stylizer: the model whose results are reproduced.
        pairs: from :func:`photostyle.data.pairs.find_pairs` (masks used where present).
        size: LUT lattice points per axis.
        options: stylization options.
        on_pair: called with each row as it is done.

    Returns:
        One row per pair.
    """
    opts = stylizer.resolve_options(options)
    rows = []
    for pair in pairs:
        content, style = load_image(pair.content), load_image(pair.style)
        cm = sm = None
        if pair.content_mask is not None and pair.style_mask is not None:
            cm = load_mask(pair.content_mask, (content.shape[1], content.shape[2]))
            sm = load_mask(pair.style_mask, (style.shape[1], style.shape[2]))
        result = stylizer.stylize(content, style, content_mask=cm, style_mask=sm, options=opts)
        size_w = working_size(content.shape[1], content.shape[2], stylizer.working_max_size(opts))
        small_c = resize_image(content[None], size_w)[0]
        small_r = resize_image(result[None], size_w)[0]
        pair_lut = fit_lut(small_c, small_r, size=size)
        style_lut = bake_lut(stylizer, style, size=size, options=opts)
        row = CaptureRow(
            name=pair.name,
            masks=cm is not None,
            psnr_content=psnr(content, result),
            psnr_pair_lut=psnr(apply_lut(content, pair_lut), result),
            psnr_style_lut=psnr(apply_lut(content, style_lut), result),
        )
        rows.append(row)
        if on_pair is not None:
            on_pair(row)
    return rows


def capture_markdown(rows: Sequence[CaptureRow]) -> str:
    """A Markdown table of the rows with their mean."""
    lines = [
        "| pair | masks | content (dB) | pair LUT (dB) | captured | style LUT (dB) | captured |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {'yes' if r.masks else 'no'} | {r.psnr_content:.2f} | "
            f"{r.psnr_pair_lut:.2f} | {r.captured_pair:.1%} | {r.psnr_style_lut:.2f} | "
            f"{r.captured_style:.1%} |"
        )
    if rows:
        n = len(rows)

        def mean(values: list[float]) -> float:
            return sum(values) / n

        lines.append(
            f"| **mean** | | {mean([r.psnr_content for r in rows]):.2f} | "
            f"{mean([r.psnr_pair_lut for r in rows]):.2f} | "
            f"{mean([r.captured_pair for r in rows]):.1%} | "
            f"{mean([r.psnr_style_lut for r in rows]):.2f} | "
            f"{mean([r.captured_style for r in rows]):.1%} |"
        )
    return "\n".join(lines) + "\n"
