"""The ceiling of a distilled first step (docs/quality.md): ``photostyle eval`` with the first
refinement step replaced by the exact distillation target.

For each photo the target is computed as ``train-affine --distill-steps K --distill-extra-steps N
--distill-extra-ssim-weight W`` computes it (plain steps from the base:
:func:`photostyle.train.affine.distill_targets`' phases), then the remaining default steps run
plain. A learned step that predicted its targets perfectly would score this. Every other argument
goes to ``photostyle eval`` unchanged:

    python scripts/eval_oracle_step.py --distill-steps 8 --distill-extra-steps 4 \\
        --distill-extra-ssim-weight 1 -- --pairs ../shared/eval/dpst-dev \\
        --method photostyle-mean_std --max-size 256 --refine 2 --weights UNTRAINED --device cpu
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

import photostyle.inference
from photostyle.cli import main as photostyle_main
from photostyle.models.refine import RefineSettings, refine_grade


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--distill-steps", type=int, default=8, help="plain steps at the model's w_ssim (8)")
    add("--distill-extra-steps", type=int, default=4, help="then this many more (4)")
    add("--distill-extra-ssim-weight", type=float, default=1.0, help="at this w_ssim (1)")
    add("eval_args", nargs=argparse.REMAINDER, help="-- then photostyle eval's")
    args = parser.parse_args(argv)
    if args.distill_steps < 1 or args.distill_extra_steps < 0:
        parser.error("--distill-steps must be at least 1 and --distill-extra-steps non-negative")

    def oracle_first_step(
        head, encoder, content, style, base, grade, settings: RefineSettings, *taps, **kwargs
    ) -> torch.Tensor:
        phases = [
            replace(settings, steps=args.distill_steps),
            replace(
                settings,
                steps=args.distill_extra_steps,
                ssim_weight=args.distill_extra_ssim_weight,
            ),
        ]
        target = torch.zeros_like(grade).float()
        for phase in [*phases, replace(settings, steps=settings.steps - 1)]:
            target = refine_grade(
                head, encoder, content, style, base, target, phase, *taps, learned=False
            )
        return target.to(grade.dtype)

    rest = args.eval_args[1:] if args.eval_args[:1] == ["--"] else args.eval_args
    plain = photostyle.inference.refine_grade
    photostyle.inference.refine_grade = oracle_first_step
    try:
        return photostyle_main(["eval", *rest])
    finally:
        photostyle.inference.refine_grade = plain


if __name__ == "__main__":
    raise SystemExit(main())
