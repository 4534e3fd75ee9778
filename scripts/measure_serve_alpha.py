"""The server's strength against the network's: ``blend(content, stylize(alpha=1), a)`` vs
``stylize(alpha=a)`` on the demo pair with the default model (docs/serve.md, "Strength").

Prints, per alpha, the mean and max absolute difference in 8-bit levels over all values, the max
over the values whose alpha-1 result was not clamped to 0 or 1, and the share of clamped values.
Run: ``OMP_NUM_THREADS=1 python scripts/measure_serve_alpha.py [--max-size 512]``.
"""

from __future__ import annotations

import argparse
from importlib import resources

import torch

from photostyle.api import StylizeOptions, Stylizer
from photostyle.io import load_image
from photostyle.serve.images import blend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-size", type=int, default=512)
    args = parser.parse_args()
    assets = resources.files("photostyle") / "assets"
    content = load_image(str(assets / "demo_content.jpg"))
    style = load_image(str(assets / "demo_style.jpg"))
    model = Stylizer(device="cpu")
    one = model.stylize(content, style, options=StylizeOptions(max_size=args.max_size))
    clamped = (one <= 0) | (one >= 1)
    print(
        f"content {tuple(content.shape)}, clamped values at alpha 1: {clamped.float().mean():.2%}"
    )
    for a in (0.25, 0.5, 0.75):
        direct = model.stylize(
            content, style, options=StylizeOptions(alpha=a, max_size=args.max_size)
        )
        diff = (blend(content, one, a) - direct).abs() * 255
        free = diff[~clamped]
        print(
            f"alpha {a}: mean {diff.mean():.3f}, max {diff.max():.2f} levels; "
            f"max where not clamped {free.max():.4f}"
        )


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
