"""Make the README's figures from photos that may be redistributed.

- ``docs/demo.png``: the bundled demo pair and photostyle's result.
- ``docs/methods.jpg`` (with ``--methods``): a contact sheet, one row per pair of scikit-image's
  sample photos (all CC0 or public domain, see below), one column per method of ``photostyle eval``.

Usage:
    python scripts/make_docs_figures.py [--weights FILE] [--out docs/demo.png]
    python scripts/make_docs_figures.py --methods [--methods-out docs/methods.jpg]
        [--gatys-steps 100] [--max-size 384]

Only CC0 / public-domain photos go into the repository (src/photostyle/assets/ATTRIBUTION.md and
scikit-image's ``skimage.data`` docstrings: coffee (Rachel Michetti, CC0), rocket (SpaceX, public
domain), chelsea (Stefan van der Walt, CC0), astronaut (NASA, public domain)); the DPST evaluation
photos are academic-use only and stay outside it.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from skimage import data as skdata

from photostyle import Stylizer, load_image
from photostyle.eval.neural_baselines import bundled_autoencoder
from photostyle.eval.quality import make_methods
from photostyle.eval.sheet import contact_sheet
from photostyle.utils import atomic_path

METHODS = ("reinhard", "histogram", "adain", "wct", "gatys", "photostyle-mean_std")
PAIRS = (("coffee", "rocket"), ("chelsea", "astronaut"), ("astronaut", "coffee"))


def _sample(name: str) -> torch.Tensor:
    """A scikit-image sample photo as (3, H, W) in [0, 1]."""
    pixels = np.asarray(getattr(skdata, name)(), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


def demo_figure(weights: Path | None, out: Path, height: int) -> None:
    assets = resources.files("photostyle") / "assets"
    content = load_image(Path(str(assets / "demo_content.jpg")))
    style = load_image(Path(str(assets / "demo_style.jpg")))
    result = Stylizer(weights, device="cpu").stylize(content, style)
    sheet = contact_sheet(
        [[content, style, result]], height=height, labels=["content", "style", "photostyle"]
    )
    with atomic_path(out) as tmp:
        sheet.save(tmp)


def methods_figure(
    weights: Path | None, out: Path, height: int, gatys_steps: int, max_size: int
) -> None:
    methods = make_methods(
        METHODS,
        lambda: Stylizer(weights, device="cpu"),
        max_size=max_size,
        autoencoder=lambda: bundled_autoencoder("cpu"),
        gatys_steps=gatys_steps,
    )
    rows = []
    for content_name, style_name in PAIRS:
        content, style = _sample(content_name), _sample(style_name)
        row = [content, style]
        for name in METHODS:
            torch.manual_seed(0)
            row.append(methods[name](content, style, None, None))
        rows.append(row)
    labels = ["content", "style", *(m.removesuffix("-mean_std") for m in METHODS)]
    sheet = contact_sheet(rows, height=height, labels=labels)
    with atomic_path(out) as tmp:
        sheet.save(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="stylizer (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=Path("docs/demo.png"))
    parser.add_argument("--height", type=int, default=300, help="tile height in pixels")
    parser.add_argument("--methods", action="store_true", help="make docs/methods.jpg instead")
    parser.add_argument("--methods-out", type=Path, default=Path("docs/methods.jpg"))
    parser.add_argument("--gatys-steps", type=int, default=100)
    parser.add_argument("--max-size", type=int, default=384, help="working size of every method")
    args = parser.parse_args(argv)
    if args.methods:
        methods_figure(
            args.weights, args.methods_out, min(args.height, 160), args.gatys_steps, args.max_size
        )
        print(f"wrote {args.methods_out}")
    else:
        demo_figure(args.weights, args.out, args.height)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
