"""The ceiling of a distilled first step (docs/quality.md): ``photostyle eval`` with the first
refinement step replaced by the exact distillation target.

For each photo the target is computed as ``train-affine --distill-steps K --distill-extra-steps
N1 N2 .. --distill-extra-ssim-weight W1 W2 ..`` computes it (plain steps from the base, phase after
phase: :func:`photostyle.train.affine.distill_targets`), optionally with the style term on other
VGG levels than the model's (``--teacher-levels``); then the remaining default steps run plain. A
learned step that predicted its targets perfectly would score this. Every other argument goes to
``photostyle eval`` unchanged:

    python scripts/eval_oracle_step.py --distill-steps 8 --distill-extra-steps 8 4 \\
        --distill-extra-ssim-weight 1 0.5 -- --pairs ../shared/eval/dpst-dev \\
        --method photostyle-mean_std --max-size 256 --refine 2 --weights UNTRAINED --device cpu

The eval's refinement is swapped for the oracle's for the length of the run (a research tool, not
a library path).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

import photostyle.inference
from photostyle.cli import main as photostyle_main
from photostyle.models.affine import AffineHead
from photostyle.models.encoder import VGGEncoder
from photostyle.models.refine import RefineSettings, refine_grade


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--distill-steps", type=int, default=8, help="plain steps at the model's w_ssim (8)")
    add("--distill-extra-steps", type=int, nargs="*", default=[], help="then these phases' steps")
    add("--distill-extra-ssim-weight", type=float, nargs="*", default=[], help="their w_ssim")
    add("--teacher-levels", type=int, help="VGG levels of the targets' style term (the model's)")
    add("eval_args", nargs=argparse.REMAINDER, help="-- then photostyle eval's")
    args = parser.parse_args(argv)
    if args.distill_steps < 1 or any(n < 1 for n in args.distill_extra_steps):
        parser.error("--distill-steps and --distill-extra-steps must be at least 1")
    if len(args.distill_extra_steps) != len(args.distill_extra_ssim_weight):
        parser.error("--distill-extra-ssim-weight needs one w_ssim per --distill-extra-steps phase")
    if args.teacher_levels is not None and not 1 <= args.teacher_levels <= 4:
        parser.error("--teacher-levels must be in [1, 4]")

    def oracle_first_step(
        head: AffineHead,
        encoder: VGGEncoder,
        content: torch.Tensor,
        style: torch.Tensor,
        base: torch.Tensor,
        grade: torch.Tensor,
        settings: RefineSettings,
        *taps: list[torch.Tensor],
        **_: object,
    ) -> torch.Tensor:
        teacher = replace(  # one w_ssim per phase: the targets' schedule is their phases
            settings, levels=args.teacher_levels or settings.levels, later_ssim_weight=None
        )
        phases = [replace(teacher, steps=args.distill_steps)] + [
            replace(teacher, steps=n, ssim_weight=w)
            for n, w in zip(args.distill_extra_steps, args.distill_extra_ssim_weight, strict=True)
        ]
        target = torch.zeros_like(grade).float()
        for phase in [*phases, settings.later()]:  # then the model's steps after its first
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
