"""``photostyle train``: train a stylizer (paper Fig. 1); one flag per field of ``TrainConfig``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from photostyle.cli.args import FlagSpec, SubParsers, dataclass_flags
from photostyle.cli.errors import EXIT_OK
from photostyle.cli.outputs import check_output

# TrainConfig fields whose flag is named otherwise (the flags older releases had).
_NAMES = {
    "use_scp": "scp",  # --no-scp
    "use_restyle": "restyle",  # --no-restyle
    "use_perceptual": "perceptual",  # --no-perceptual
    "time_limit_s": "time_limit",  # --time-limit
}
_NEGATIONS = {
    "relative_losses": (
        "--absolute-losses",
        "plain squared errors instead of errors relative to each target's energy "
        "(= --no-relative-losses)",
    )
}


def register(sub: SubParsers) -> None:
    from photostyle.models.encoder import VGG_CONFIGS
    from photostyle.train.config import TrainConfig

    tr = sub.add_parser("train", help="train a stylizer (paper Fig. 1) on an ImageFolder")
    tr.add_argument(
        "--config",
        type=Path,
        help="YAML (or .json) file of TrainConfig settings; flags override it (see --print-config)",
    )
    tr.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved settings (defaults < --config < flags) as commented YAML and exit",
    )
    spec = FlagSpec(
        names=_NAMES,
        choices={"arch": tuple(sorted(VGG_CONFIGS))},
        negations=_NEGATIONS,
        layered=True,
    )
    tr.set_defaults(handler=_cmd_train, config_fields=dataclass_flags(tr, TrainConfig, spec))


def _cmd_train(args: argparse.Namespace) -> int:
    import logging

    from tqdm import tqdm

    from photostyle.train.config import config_yaml, layered_config
    from photostyle.train.distributed import distributed
    from photostyle.train.trainer import Trainer

    overrides = {path: getattr(args, dest) for dest, path in args.config_fields.items()}
    if args.reconstruction and args.fa is None:
        overrides[args.config_fields["fa"]] = "none"  # another --fa is refused by TrainConfig
    config = layered_config(args.config, overrides)
    if args.print_config:
        print(config_yaml(config), end="")
        return EXIT_OK
    if not config.data and config.index is None:
        raise ValueError("train needs --data DIR or --index DIR (or 'data' in --config)")
    check_output(config.out_dir, folder=True)
    from photostyle.utils import check_bfloat16_speed, resolve_device

    try:
        device = resolve_device(config.device)  # --device is checked already; --config's now
    except ValueError as err:
        raise ValueError(f"{args.config}: {err}") from None
    if config.amp and config.amp_dtype == "bfloat16":
        check_bfloat16_speed(device, "--amp (bfloat16)")
    with distributed(config.device) as dist:  # joins the torchrun job, if any
        quiet = not dist.is_main  # rank 0 alone reports progress
        logging.basicConfig(
            level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s %(message)s"
        )
        index_bar = tqdm(
            desc="perceptual index", unit="img", file=sys.stderr, leave=False, disable=quiet
        )
        bar = tqdm(total=config.steps, desc="train", unit="step", file=sys.stderr, disable=quiet)

        def progress(step: int, losses: dict[str, float]) -> None:
            bar.n = step
            bar.set_postfix(loss=f"{losses.get('total', float('nan')):.4g}", refresh=False)
            bar.refresh()

        trainer = Trainer(config, progress=progress, on_index_batch=index_bar.update, dist=dist)
        index_bar.close()
        bar.n = trainer.step
        result = trainer.train()
        bar.close()
    if not quiet:
        print(f"step {result.step}: checkpoint {result.checkpoint}, stylizer {result.stylizer}")
    return EXIT_OK
