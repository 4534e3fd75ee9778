"""``photostyle export``: the stylizer network for deployment (ONNX, or a torch.export pt2 file)."""

from __future__ import annotations

import argparse
from pathlib import Path

from photostyle.cli.args import SubParsers, add_weights_args
from photostyle.cli.errors import EXIT_OK
from photostyle.models.layers import FA_VARIANTS


def register(sub: SubParsers) -> None:
    from photostyle.deploy.onnx import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET

    ex = sub.add_parser("export", help="export the stylizer network for deployment (ONNX, pt2)")
    ex.add_argument(
        "--format",
        choices=["onnx", "pt2"],
        default="onnx",
        help="onnx (default) or pt2 (a torch.export ExportedProgram)",
    )
    ex.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="output .onnx or .pt2 file"
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
    from photostyle.deploy.onnx import check_exportable, check_onnx_path, check_opset, export_onnx

    if args.format == "pt2":
        from photostyle.deploy.torch_export import check_pt2_path, export_pt2

        check_pt2_path(args.out)
        if args.fa is not None:
            check_exportable(args.fa)
        stylizer = Stylizer(
            args.weights, device="cpu", encoder_weights=args.encoder_weights, fa=args.fa
        )
        pt2 = export_pt2(stylizer.model, args.out)
        print(
            f"wrote {pt2.path} (torch.export, FA {pt2.fa}; inputs content (1,3,H,W), style "
            f"(1,3,Hs,Ws), alpha; sides >= 16 px); vs eager: max abs diff {pt2.max_abs_diff:.2g}"
        )
        return EXIT_OK
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401  (checks the export)
    except ImportError as err:
        raise ValueError(
            f"ONNX export needs the deploy extra ({err}): pip install 'photostyle[deploy]'"
        ) from err
    check_onnx_path(args.out, protect=[p for p in (args.weights, args.encoder_weights) if p])
    check_opset(args.opset)
    if args.fa is not None:
        check_exportable(args.fa)
    stylizer = Stylizer(
        args.weights, device="cpu", encoder_weights=args.encoder_weights, fa=args.fa
    )
    result = export_onnx(stylizer.model, args.out, weights=stylizer.path, opset=args.opset)
    (ch, cw), _ = result.check_sizes
    print(
        f"wrote {result.path} (ONNX opset {result.info.opset}, FA {result.info.fa}; inputs "
        "content (1,3,H,W), style (1,3,Hs,Ws), alpha; sides >= 16 px); onnxruntime vs PyTorch "
        f"at {cw}x{ch}: max abs diff {result.max_abs_diff:.2g}"
    )
    return EXIT_OK
