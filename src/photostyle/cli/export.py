"""``photostyle export``: the stylizer network for deployment (ONNX, or a torch.export pt2 file)."""

from __future__ import annotations

import argparse
from pathlib import Path

from photostyle.cli.args import SubParsers, add_weights_args
from photostyle.cli.errors import EXIT_OK
from photostyle.deploy.formats import (
    DEFAULT_EXPORT_FORMAT,
    EXPORT_FORMATS,
    ExportRequest,
    check_export_modules,
    export_format,
)
from photostyle.models.layers import FA_VARIANTS


def register(sub: SubParsers) -> None:
    from photostyle.deploy.onnx import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET

    formats = [export_format(name) for name in EXPORT_FORMATS]
    ex = sub.add_parser(
        "export",
        help=f"export the stylizer network for deployment ({', '.join(EXPORT_FORMATS)})",
    )
    ex.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default=DEFAULT_EXPORT_FORMAT,
        help=", ".join(f"{f.name} ({f.description})" for f in formats)
        + f" (default {DEFAULT_EXPORT_FORMAT})",
    )
    ex.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="output " + " or ".join(f.suffix for f in formats) + " file",
    )
    add_weights_args(ex)
    ex.add_argument(
        "--fa",
        choices=FA_VARIANTS,
        help="FA variant baked into the graph (default: the model's; wct cannot be exported)",
    )
    ex.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        metavar="N",
        help=f"ONNX opset ({MIN_OPSET}-{MAX_OPSET}, {DEFAULT_OPSET})",
    )
    ex.set_defaults(handler=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from photostyle.api import Stylizer
    from photostyle.deploy.onnx import check_exportable

    check_export_modules(args.format)
    fmt = export_format(args.format)
    inputs = tuple(Path(p) for p in (args.weights, args.encoder_weights) if p)
    request = ExportRequest(args.out, inputs=inputs, opset=args.opset)
    fmt.check(request)
    if args.fa is not None:
        check_exportable(args.fa)
    stylizer = Stylizer(
        args.weights, device="cpu", encoder_weights=args.encoder_weights, fa=args.fa
    )
    print(fmt.export(stylizer.model, stylizer.path, request))
    return EXIT_OK
