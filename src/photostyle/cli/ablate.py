"""``photostyle ablate``: train and score ablation variants (paper Tables III/IV)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from photostyle.api import DEFAULT_MAX_SIZE
from photostyle.cli.args import SubParsers, add_device_arg
from photostyle.cli.errors import EXIT_OK
from photostyle.cli.outputs import check_output, plot_target, write_json


def register(sub: SubParsers) -> None:
    from photostyle.eval.ablate import DEFAULT_VARIANTS, SWITCHES, THRESHOLDS
    from photostyle.models.encoder import VGG_CONFIGS
    from photostyle.models.stylizer import ModelConfig
    from photostyle.train.config import TrainConfig

    defaults = ",".join(DEFAULT_VARIANTS)
    terms = ", ".join(["full", *SWITCHES, *(f"{t}=X" for t in THRESHOLDS)])
    ab = sub.add_parser("ablate", help="train and score ablation variants (paper Tables III/IV)")
    ab.add_argument("--data", required=True, help="ImageFolder root to train on")
    ab.add_argument("--pairs", type=Path, required=True, help="DPST-layout folder of pairs")
    ab.add_argument("--out-dir", type=Path, required=True, help="one run folder per variant")
    ab.add_argument(
        "--variants",
        default=defaults,
        help=f"comma-separated: {terms}; join terms with + (default: {defaults})",
    )
    ab.add_argument(
        "--steps", type=int, help=f"training steps per variant (default {TrainConfig.steps})"
    )
    ab.add_argument("--crop", type=int, help=f"training crop side (default {TrainConfig.crop})")
    ab.add_argument(
        "--batch-size", type=int, help=f"triplets per step (default {TrainConfig.batch_size})"
    )
    ab.add_argument("--lr", type=float, help=f"Adam learning rate (default {TrainConfig.lr:g})")
    ab.add_argument("--max-images", type=int, help="use at most N training images per class")
    ab.add_argument(
        "--arch",
        help=f"encoder: {' or '.join(VGG_CONFIGS)} (default {ModelConfig.arch})",
    )
    ab.add_argument("--encoder-weights", help="VGG weights file or URL (default: bundled VGG16)")
    ab.add_argument(
        "--seed", type=int, help=f"seed shared by all variants (default {TrainConfig.seed})"
    )
    ab.add_argument(
        "--time-limit-per-variant",
        type=float,
        metavar="S",
        help="stop each variant's training after S seconds (re-run to resume)",
    )
    add_device_arg(ab)
    ab.add_argument("--limit-pairs", type=int, metavar="N", help="score only the first N pairs")
    ab.add_argument(
        "--max-size",
        type=int,
        default=DEFAULT_MAX_SIZE,
        help=f"working size at scoring ({DEFAULT_MAX_SIZE})",
    )
    ab.add_argument("--no-masks", action="store_true", help="ignore the pairs' masks")
    ab.add_argument("--no-fid", action="store_true", help="skip the FID-VGG column")
    ab.add_argument("--json", type=Path, metavar="FILE", help="also write rows and settings")
    ab.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="bar chart of the metrics per variant (default: OUT_DIR/ablation.png; needs "
        "matplotlib)",
    )
    ab.set_defaults(handler=_cmd_ablate)


def _cmd_ablate(args: argparse.Namespace) -> int:
    import logging

    from tqdm import tqdm

    from photostyle.eval.ablate import (
        AblationConfig,
        AblationProgress,
        Variant,
        ablation_json,
        ablation_markdown,
        parse_variants,
        run_ablation,
    )
    from photostyle.train.config import layered_config

    check_output(args.json)
    check_output(args.out_dir, folder=True)
    plot = plot_target(args.plot, args.out_dir / "ablation.png")
    overrides = {
        "data": args.data,
        "device": args.device,
        "steps": args.steps,
        "crop": args.crop,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "max_images": args.max_images,
        "arch": args.arch,
        "encoder_weights": args.encoder_weights,
        "seed": args.seed,
        "time_limit_s": args.time_limit_per_variant,
    }
    base = layered_config(overrides=overrides)
    config = AblationConfig(
        pairs=str(args.pairs),
        out_dir=str(args.out_dir),
        variants=tuple(v.name for v in parse_variants(args.variants)),
        limit_pairs=args.limit_pairs,
        use_masks=not args.no_masks,
        max_size=args.max_size,
        fid_vgg=not args.no_fid,
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    variant_bar = tqdm(total=len(config.variants), desc="ablate", unit="variant", file=sys.stderr)
    bars: list[tqdm] = []

    def on_variant(variant: Variant, phase: str) -> None:  # phase: "train", "done", "eval"
        for bar in bars:
            bar.close()
        bars.clear()
        variant_bar.n = config.variants.index(variant.name)
        variant_bar.set_postfix_str(f"{variant.name}: {phase}")
        if phase == "train":
            bars.append(tqdm(total=base.steps, desc=variant.name, unit="step", file=sys.stderr))
        elif phase == "eval":
            bars.append(tqdm(desc=f"{variant.name} eval", unit="pair", file=sys.stderr))

    def on_step(step: int, losses: dict[str, float]) -> None:
        if bars:
            bars[0].n = step
            bars[0].set_postfix(loss=f"{losses.get('total', float('nan')):.4g}", refresh=False)
            bars[0].refresh()

    def on_pair() -> None:
        if bars:
            bars[0].update()

    progress = AblationProgress(on_variant=on_variant, on_step=on_step, on_pair=on_pair)
    rows = run_ablation(config, base, progress=progress)
    for bar in bars:
        bar.close()
    variant_bar.n = len(config.variants)
    variant_bar.close()
    print(ablation_markdown(rows), end="")
    write_json(args.json, ablation_json(rows, config, base), "ablation")
    if plot is not None:
        from photostyle.eval.plots import plot_ablation

        print(f"plot: {plot_ablation(rows, plot)}")
    return EXIT_OK
