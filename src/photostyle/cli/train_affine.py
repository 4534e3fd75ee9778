"""``photostyle train-affine``: train the affine colour head; a flag per AffineTrainConfig field."""

from __future__ import annotations

import argparse

from photostyle.cli.args import SubParsers, dataclass_flags, flag_config
from photostyle.cli.errors import EXIT_OK


def register(sub: SubParsers) -> None:
    from photostyle.train.affine import AffineTrainConfig

    ta = sub.add_parser(
        "train-affine",
        help="train the affine colour head (resumes from --out-dir)",
        description="Train the affine colour head along the SSIM / Gram frontier "
        "(photostyle.train.affine); running again with the same --out-dir resumes.",
    )
    ta.set_defaults(handler=_cmd_train_affine, config_fields=dataclass_flags(ta, AffineTrainConfig))


def _cmd_train_affine(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from photostyle.train.affine import AffineTrainConfig, train_affine
    from photostyle.train.config import with_overrides

    values = {path: getattr(args, dest) for dest, path in args.config_fields.items()}
    config = flag_config(AffineTrainConfig, **with_overrides(AffineTrainConfig, {}, values))
    with tqdm(total=config.steps, desc="train-affine", unit="step") as bar:

        def progress(step: int, terms: dict[str, float]) -> None:
            bar.n = step
            bar.set_postfix({k: f"{v:.4g}" for k, v in terms.items() if k != "total"})

        path = train_affine(config, progress=progress)
    print(f"stylizer: {path}")
    return EXIT_OK
