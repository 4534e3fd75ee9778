"""Turn a trained stylizer into a shipped one: set its default working size, write it atomically.

The working size is chosen after training, on the dev pairs' quality/speed frontier, so it is set
here rather than in training. Prints the new file's sha256 for ``models/weights.py`` and its card.

    python scripts/ship_stylizer.py RUN/stylizer.safetensors \
        src/photostyle/weights/photostyle_affine.safetensors --working-size 256

``--untrained`` writes the trained parts' untrained architecture at the same settings instead (the
comparison issue 10's bar asks for): the last layer of the curves MLP and of the learned step
zeroed, as they start, so the head predicts no residual and the first step is the plain one.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import torch

from photostyle.models.checkpoint import read_stylizer, save_stylizer
from photostyle.utils import sha256_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a stylizer .safetensors (e.g. from train-affine)")
    parser.add_argument("target", help="where to write the shipped file")
    parser.add_argument("--working-size", type=int, required=True, help="default working size")
    parser.add_argument("--refine", type=int, default=0, help="default refinement steps (0)")
    parser.add_argument(
        "--refine-ssim-weight", type=float, default=3.0, help="w_ssim of the refinement (3)"
    )
    parser.add_argument(
        "--refine-later-ssim-weight",
        type=float,
        help="w_ssim of the refinement's steps after the first (default: --refine-ssim-weight)",
    )
    parser.add_argument(
        "--refine-levels", type=int, default=4, help="VGG levels of the refinement's style term (4)"
    )
    parser.add_argument(
        "--untrained",
        action="store_true",
        help="zero the last layers of the curves MLP and the learned step (the untrained model)",
    )
    args = parser.parse_args(argv)
    if args.working_size < 16 or args.refine < 0 or not 1 <= args.refine_levels <= 4:
        parser.error(
            "--working-size must be at least 16, --refine non-negative, --refine-levels in [1, 4]"
        )
    if min(args.refine_ssim_weight, args.refine_later_ssim_weight or 0.0) < 0:
        parser.error("--refine-ssim-weight and --refine-later-ssim-weight must be non-negative")
    saved = read_stylizer(args.source)
    shipped = replace(
        saved.config,
        working_size=args.working_size,
        refine_steps=args.refine,
        refine_ssim_weight=args.refine_ssim_weight,
        refine_later_ssim_weight=args.refine_later_ssim_weight,
        refine_levels=args.refine_levels,
    )
    state = dict(saved.state)
    if args.untrained:
        for mlp in ("curves.", "steer.mlp."):  # zero_start_mlp: the last Linear starts at zero
            layers = [int(k[len(mlp) :].split(".")[0]) for k in state if k.startswith(mlp)]
            if layers:
                last = f"{mlp}{max(layers)}."
                state |= {k: torch.zeros_like(v) for k, v in state.items() if k.startswith(last)}
    save_stylizer(args.target, state, shipped, saved.meta)
    sys.stdout.write(f"{args.target}\nsha256 {sha256_file(args.target)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
