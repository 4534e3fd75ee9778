"""``photostyle fid``: Fréchet Inception Distance (or FID-VGG) between two folders of images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from photostyle.cli.args import SubParsers, add_device_arg
from photostyle.cli.errors import EXIT_OK
from photostyle.cli.outputs import check_output, write_json


def register(sub: SubParsers) -> None:
    fd = sub.add_parser("fid", help="Fréchet Inception Distance between two folders of images")
    fd.add_argument("outputs", type=Path, help="folder of images (e.g. stylized results)")
    fd.add_argument("reference", type=Path, help="folder of reference images")
    fd.add_argument(
        "--inception-weights",
        type=Path,
        metavar="FILE",
        help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth or a .safetensors copy "
        "(default: $PHOTOSTYLE_INCEPTION_WEIGHTS, then the torch hub cache)",
    )
    fd.add_argument(
        "--vgg",
        action="store_true",
        help="compute FID-VGG on the bundled VGG16 instead (offline; not comparable with FID)",
    )
    fd.add_argument(
        "--size", type=int, default=299, metavar="N", help="side images are resized to (299)"
    )
    fd.add_argument(
        "--batch-size", type=int, default=50, metavar="N", help="images per batch (default 50)"
    )
    add_device_arg(fd)
    fd.add_argument("--json", type=Path, metavar="FILE", help="also write the result as JSON")
    fd.set_defaults(handler=_cmd_fid)


def _cmd_fid(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from photostyle.eval.fid import fid, list_images

    check_output(args.json)
    total = len(list_images(args.outputs)) + len(list_images(args.reference))
    with tqdm(total=total, desc="fid", unit="img", file=sys.stderr, delay=1.0) as bar:
        result = fid(
            args.outputs,
            args.reference,
            inception_weights=args.inception_weights,
            vgg=args.vgg,
            size=args.size,
            batch_size=args.batch_size,
            device=args.device,
            on_batch=bar.update,
        )
    for folder, skipped in (
        (result.outputs, result.outputs_skipped),
        (result.reference, result.reference_skipped),
    ):
        if skipped:
            print(f"photostyle: skipped {len(skipped)} unreadable in {folder}", file=sys.stderr)
    if min(result.outputs_count, result.reference_count) <= result.dims:
        print(
            f"photostyle: note: fewer images than the {result.dims} feature dimensions; "
            f"{result.metric} is biased upward: compare runs with equal image counts only",
            file=sys.stderr,
        )
    print(
        f"{result.metric}: {result.value:.3f} (outputs: {result.outputs_count} images, "
        f"reference: {result.reference_count} images)"
    )
    write_json(args.json, result.to_json(), result.metric)
    return EXIT_OK
