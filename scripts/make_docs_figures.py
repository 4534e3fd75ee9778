"""Make the README's figure: the bundled demo pair and photostyle's result, side by side.

Usage:
    python scripts/make_docs_figures.py [--weights FILE] [--out docs/demo.png]

Only the bundled demo photos (CC0 / public domain, see src/photostyle/assets/ATTRIBUTION.md) go into
the repository; the DPST evaluation photos are academic-use only and stay outside it.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from photostyle import Stylizer, load_image
from photostyle.eval.sheet import contact_sheet
from photostyle.utils import atomic_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="stylizer (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=Path("docs/demo.png"))
    parser.add_argument("--height", type=int, default=300, help="tile height in pixels")
    args = parser.parse_args(argv)
    assets = resources.files("photostyle") / "assets"
    content = load_image(Path(str(assets / "demo_content.jpg")))
    style = load_image(Path(str(assets / "demo_style.jpg")))
    result = Stylizer(args.weights, device="cpu").stylize(content, style)
    sheet = contact_sheet(
        [[content, style, result]], height=args.height, labels=["content", "style", "photostyle"]
    )
    with atomic_path(args.out) as tmp:
        sheet.save(tmp)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
