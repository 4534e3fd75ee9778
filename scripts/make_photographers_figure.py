"""Make ``docs/photographers.jpg``: the README's "For photographers" figure.

Row 1: the look (a style photo) and three photos of a "shoot". Row 2: the look put on all three by
``photostyle stylize PHOTOS... --style LOOK`` (:meth:`Stylizer.stylize_many`, the style encoded
once). Row 3: the look baked into a 33^3 ``.cube`` LUT from the first photo (``photostyle lut``),
shown on the neutral reference, then applied to the three photos (``--lut``), as any grading tool
would. Photos: scikit-image's samples coffee (Rachel Michetti, CC0), chelsea (Stefan van der
Walt, CC0), astronaut (NASA, public domain) and rocket (SpaceX, public domain).

Usage:
    python scripts/make_photographers_figure.py [--out docs/photographers.jpg] [--max-size 512]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from skimage import data as skdata

from photostyle import Stylizer
from photostyle.api import StylizeOptions
from photostyle.eval.sheet import contact_sheet
from photostyle.lut import apply_lut, bake_lut, neutral_reference
from photostyle.utils import atomic_path


def _sample(name: str) -> torch.Tensor:
    pixels = np.asarray(getattr(skdata, name)(), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/photographers.jpg"))
    parser.add_argument("--max-size", type=int, default=512)
    parser.add_argument("--height", type=int, default=200)
    args = parser.parse_args(argv)
    options = StylizeOptions(max_size=args.max_size)
    style = _sample("rocket")
    photos = [_sample(n) for n in ("coffee", "chelsea", "astronaut")]
    stylizer = Stylizer(device="cpu")
    styled = list(stylizer.stylize_many(photos, style, options=options))
    lut = bake_lut(stylizer, style, photos[0], options=options)
    graded = [apply_lut(p, lut) for p in photos]
    sheet = contact_sheet(
        [[style, *photos], [style, *styled], [apply_lut(neutral_reference(256), lut), *graded]],
        height=args.height,
        labels=["look / LUT", "photo 1", "photo 2", "photo 3"],
    )
    with atomic_path(args.out) as tmp:
        sheet.save(tmp, quality=90)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
