"""How far the curves head's one-pass grade is from the photo's own optimum (docs/quality.md).

For each DPST pair, at the model's working size and with masks, the colour grade is taken in
several ways and scored with the refinement's own objective (``photostyle.models.refine``: Gram
ratio over VGG relu1_1..relu4_1, SSIM on luma, ``log ratio + w_ssim (1 - SSIM)``):

- ``base``: no residual (the untrained head);
- ``head``: the trained head's residual, and ``head x2``: twice it;
- ``refined K``: ``K`` plain refinement steps from the base (``--steps``, the long run that
  approximates the photo's optimum) and ``refined 2`` (the default's budget); plain steps with the
  model's own w_ssim and style levels, as the untrained architecture takes them;
- ``step L``: one straight step of length ``L`` along the first gradient;
- ``default``: the model's own refinement of the head's grade (its learned first step, if it
  has one, then plain steps: what ``photostyle stylize`` does at working size).

It also prints the cosine between the head's residual and the long refinement's: how well the
head predicts where the photo's optimum lies. Scores here are at working size, not the eval's
short side 512; use them to compare grades, and ``photostyle eval`` for the reported figures.

Run: ``OMP_NUM_THREADS=2 python scripts/probe_refinement.py --weights W --limit 10``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from dataclasses import replace
from functools import partial

import torch

from photostyle.api import Stylizer
from photostyle.data.pairs import find_pairs
from photostyle.inference import resize_labels, to_working_size, working_style
from photostyle.io import load_image, load_mask
from photostyle.losses.frontier import gram_log_ratio_to, gram_target, ssim_luma
from photostyle.models.affine import AffineHead
from photostyle.models.refine import refine_grade


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", default="../shared/eval/dpst-dev", help="DPST-layout folder")
    parser.add_argument("--weights", default="affine", help="stylizer file or bundled name")
    parser.add_argument("--limit", type=int, default=10, help="first N pairs (the selection)")
    parser.add_argument("--steps", type=int, default=6, help="K of the long refinement")
    parser.add_argument("--json", help="write per-pair rows here")
    parser.add_argument("--encoder-weights", help="VGG weights file (default: the bundled one)")
    args = parser.parse_args(argv)
    stylizer = Stylizer(weights=args.weights, encoder_weights=args.encoder_weights, device="cpu")
    head, encoder = stylizer.model.decoder, stylizer.model.encoder
    if not isinstance(head, AffineHead) or head.residual != "curves":
        raise SystemExit(f"{args.weights}: not an affine head with the curves residual")
    size = stylizer.config.working_size
    cpu = torch.device("cpu")
    rows: list[dict[str, object]] = []
    scores: dict[str, list[tuple[float, float]]] = defaultdict(list)  # grade -> (ratio, SSIM)
    for pair in find_pairs(args.pairs)[: args.limit]:
        content, style = load_image(pair.content), load_image(pair.style)
        masks = pair.content_mask is not None and pair.style_mask is not None
        _, c = to_working_size(content, size, cpu)
        sm = load_mask(pair.style_mask, tuple(style.shape[1:])) if masks else None  # type: ignore[arg-type]
        ws = working_style(style, size, cpu, torch.float32, sm)
        lc = None
        if masks:
            cm = load_mask(pair.content_mask, tuple(content.shape[1:]))  # type: ignore[arg-type]
            lc = resize_labels(cm, (c.shape[-2], c.shape[-1]))
        ec, es = encoder(c), encoder(ws.image)
        base, residual = head.grid(c, ws.image, ec, es, content_labels=lc, style_labels=ws.labels)
        target = gram_target(ec.taps, es.taps)

        start = partial(refine_grade, head, encoder, c, ws.image, base)
        model_own = stylizer.config.refinement(stylizer.config.refine_steps)
        default = start(residual, model_own, ec.taps, es.taps)  # learned first step, if any
        long_run, two, direction = (  # plain steps from the base, as the untrained architecture
            start(
                torch.zeros_like(residual),
                replace(stylizer.config.refinement(steps), step=length),
                ec.taps,
                es.taps,
                learned=False,
            )
            for steps, length in ((args.steps, 0.1), (2, 0.1), (1, 1.0))
        )
        grades = {
            "base": torch.zeros_like(residual),
            "head": residual,
            "head x2": 2 * residual,
            f"refined {args.steps}": long_run,
            "refined 2": two,
            **{f"step {length}": length * direction for length in (0.1, 0.2, 0.3)},
            "default": default,
        }
        row: dict[str, object] = {
            "pair": pair.name,
            "cos(head, refined)": float(
                torch.cosine_similarity(residual.flatten(), long_run.flatten(), 0)
            ),
        }
        for name, grade in grades.items():
            out = head.colour_model(c, base, grade).image.clamp(0, 1)
            ratio = float(gram_log_ratio_to(encoder(out).taps, *target).exp())
            ssim = float(ssim_luma(out, c))
            row[name] = {"gram_ratio": ratio, "ssim": ssim}
            scores[name].append((ratio, ssim))
        rows.append(row)
        print(pair.name, f"cos {row['cos(head, refined)']:.2f}", flush=True)
    summary: dict[str, dict[str, float]] = {}
    print("\n| grade | SSIM | Gram ratio geo. mean |\n|---|---:|---:|")
    for name, pairs in scores.items():
        geo = math.exp(sum(math.log(ratio) for ratio, _ in pairs) / len(pairs))
        mean_ssim = sum(value for _, value in pairs) / len(pairs)
        summary[name] = {"ssim": mean_ssim, "gram_ratio_geomean": geo}
        print(f"| {name} | {mean_ssim:.3f} | {geo:.3f} |")
    cosines = [float(r["cos(head, refined)"]) for r in rows]  # type: ignore[arg-type]
    print(f"\nmean cos(head, refined {args.steps}): {sum(cosines) / len(cosines):.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"weights": args.weights, "summary": summary, "pairs": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
