"""``photostyle eval``: score methods on content/style pairs (SSIM, Gram, photorealism, time)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from photostyle.cli.args import SubParsers, add_model_args, options_from_args, stylizer_from_args
from photostyle.cli.errors import EXIT_OK
from photostyle.cli.outputs import check_output, plot_target, write_json
from photostyle.models.layers import FA_VARIANTS

if TYPE_CHECKING:
    from photostyle.api import Stylizer
    from photostyle.models.encoder import VGGEncoder


def register(sub: SubParsers) -> None:
    from photostyle.eval.baselines import PEERS
    from photostyle.eval.methods import default_methods
    from photostyle.eval.quality import method_names

    ev = sub.add_parser(
        "eval", help="score methods on content/style pairs (SSIM, Gram, photorealism, time)"
    )
    ev.add_argument("--pairs", type=Path, required=True, help="DPST-layout folder of pairs")
    ev.add_argument(
        "--method",
        action="append",
        help=f"photostyle-<fa>[+<upsampling>][@<size>][-nomasks] (fa: {', '.join(FA_VARIANTS)}), "
        f"{', '.join(method_names([]))} ({', '.join(PEERS)}: the peers extra); "
        f"repeatable (default: {', '.join(default_methods('<the model FA>'))})",
    )
    ev.add_argument(
        "--alpha-sweep",
        metavar="A,B,...",
        help="score every method at these strengths in [0, 1], e.g. 0,0.25,0.5,0.75,1: photostyle "
        "through its alpha, the others blended towards the content; the plot draws each curve",
    )
    ev.add_argument("--out-dir", type=Path, help="write each output and a contact sheet here")
    ev.add_argument("--json", type=Path, help="write per-pair and mean scores as JSON")
    ev.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="write the SSIM / Gram-ratio (geometric mean) trade-off plot here (default with "
        "--out-dir: "
        "OUT_DIR/tradeoff.png; needs matplotlib)",
    )
    ev.add_argument("--no-masks", action="store_true", help="ignore the pairs' masks")
    ev.add_argument("--limit", type=int, help="evaluate only the first N pairs")
    ev.add_argument(
        "--autoencoder",
        type=Path,
        metavar="FILE",
        help="decoder of the adain and wct methods: a checkpoint trained with "
        "photostyle train --reconstruction (default: the shipped one)",
    )
    ev.add_argument(
        "--reference",
        metavar="METHOD",
        help="one of the methods: also report each method's PSNR to its output (e.g. "
        "photostyle-mean_std against photostyle-mean_std+guided@256)",
    )
    ev.add_argument(
        "--gatys-steps",
        type=int,
        default=200,
        metavar="N",
        help="optimisation steps of the gatys method (default 200)",
    )
    add_model_args(ev)
    ev.set_defaults(handler=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from photostyle.data.pairs import Pair, find_pairs
    from photostyle.eval.methods import default_methods
    from photostyle.eval.quality import (
        evaluate,
        make_methods,
        markdown_table,
        metric_encoder,
        parse_alphas,
        results_json,
    )
    from photostyle.eval.sheet import shrink, thumbnail, write_sheet
    from photostyle.io import save_image
    from photostyle.utils import resolve_device

    options = options_from_args(args)  # validates --alpha / --max-size before any work
    check_output(args.json)
    check_output(args.out_dir, folder=True)
    try:
        alphas = None if args.alpha_sweep is None else parse_alphas(args.alpha_sweep)
    except ValueError as err:
        raise ValueError(f"--alpha-sweep {args.alpha_sweep!r}: {err}") from None
    plot = plot_target(args.plot, args.out_dir and args.out_dir / "tradeoff.png")
    pairs = find_pairs(args.pairs, use_masks=not args.no_masks)[: args.limit]
    loaded: list[Stylizer] = []

    def stylizer() -> Stylizer:
        if not loaded:
            loaded.append(stylizer_from_args(args))
        return loaded[0]

    names = args.method or default_methods(args.fa or stylizer().config.fa)
    if args.reference is not None and args.reference not in names:
        raise ValueError(f"--reference {args.reference} is not one of the methods {names}")

    def autoencoder() -> Stylizer:
        from photostyle.api import Stylizer

        if args.autoencoder is None:
            from photostyle.eval.neural_baselines import bundled_autoencoder

            return bundled_autoencoder(args.device)
        return Stylizer(args.autoencoder, device=args.device, encoder_weights=args.encoder_weights)

    def gatys_encoder() -> VGGEncoder:
        return metric_encoder(resolve_device(args.device))

    methods = make_methods(
        names,
        stylizer,
        alpha=options.alpha,
        max_size=options.max_size,
        autoencoder=autoencoder,
        gatys_encoder=gatys_encoder,
        gatys_steps=args.gatys_steps,
        upsample=options.upsample,
        refine=options.refine,
    )
    outputs: dict[str, list[torch.Tensor]] = {}

    def keep(pair: Pair, name: str, image: torch.Tensor) -> None:
        if args.out_dir is not None:
            save_image(image, args.out_dir / pair.name / f"{name}.png")
            outputs.setdefault(pair.name, []).append(shrink(image))  # sheet tiles, not photos

    with tqdm(total=len(pairs), desc="eval", unit="pair", file=sys.stderr) as bar:
        results = evaluate(
            pairs,
            methods,
            metric_encoder(),
            use_masks=not args.no_masks,
            on_output=keep,  # type: ignore[arg-type]
            on_pair=lambda _: bar.update(),
            reference=args.reference,
            memory_device=resolve_device(args.device),
            alphas=alphas,
        )
    print(markdown_table(results), end="")
    write_json(args.json, results_json(results), "scores")
    if args.out_dir is not None:
        rows = [[thumbnail(p.content), thumbnail(p.style), *outputs[p.name]] for p in pairs]
        write_sheet(rows, args.out_dir / "sheet.png", labels=["content", "style", *methods])
        print(f"outputs and contact sheet: {args.out_dir}")
    if plot is not None:
        from photostyle.eval.plots import plot_quality

        print(f"plot: {plot_quality(results, plot)}")
    return EXIT_OK
