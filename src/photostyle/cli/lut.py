"""``photostyle lut``: bake a look into a .cube 3D LUT, or measure how much of a stylization a LUT
captures (--pairs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from photostyle.cli.args import SubParsers, add_model_args, options_from_args, stylizer_from_args
from photostyle.cli.errors import EXIT_OK
from photostyle.cli.outputs import check_output, write_json


def register(sub: SubParsers) -> None:
    lu = sub.add_parser(
        "lut",
        help="bake a look into a .cube 3D LUT (Lightroom, Photoshop, Resolve, ffmpeg), or "
        "measure how much of the stylization a LUT captures (--pairs)",
    )
    lu.add_argument(
        "inputs",
        nargs="*",
        type=Path,
        metavar="PHOTO",
        help="CONTENT STYLE: the LUT of this pair's stylization; STYLE alone: over a neutral "
        "reference image",
    )
    lu.add_argument("-o", "--output", type=Path, metavar="CUBE", help="output .cube file")
    lu.add_argument("--size", type=int, default=33, help="lattice points per axis (default 33)")
    lu.add_argument("--title", help="TITLE stored in the file (default: the style's name)")
    lu.add_argument(
        "--pairs",
        type=Path,
        help="instead: DPST-layout folder; report PSNR of LUTs against photostyle's results",
    )
    lu.add_argument("--no-masks", action="store_true", help="with --pairs: ignore the masks")
    lu.add_argument("--limit", type=int, help="with --pairs: only the first N pairs")
    lu.add_argument("--json", type=Path, help="with --pairs: also write the rows as JSON")
    add_model_args(lu)
    lu.set_defaults(handler=_cmd_lut)


def _cmd_lut(args: argparse.Namespace) -> int:
    if args.pairs is not None:
        return _lut_pairs(args)
    from dataclasses import replace

    from photostyle.lut import bake_lut, write_cube
    from photostyle.photo import read_photo, software_tag

    if len(args.inputs) not in (1, 2) or args.output is None:
        raise ValueError("lut needs [CONTENT] STYLE -o LOOK.cube (or --pairs DIR)")
    if args.output.suffix.lower() != ".cube":
        raise ValueError(f"{args.output}: a LUT file must end in .cube")
    if not 2 <= args.size <= 256:
        raise ValueError(f"--size must be in 2..256, got {args.size}")
    if any(path.resolve() == args.output.resolve() for path in args.inputs):
        raise ValueError(f"{args.output}: refusing to overwrite an input file")
    check_output(args.output)
    *content_path, style_path = args.inputs
    style, _ = read_photo(style_path)
    content = read_photo(content_path[0])[0] if content_path else None
    stylizer = stylizer_from_args(args)
    source = f"{content_path[0].name} + " if content_path else "neutral reference + "
    lut = bake_lut(
        stylizer,
        style,
        content,
        size=args.size,
        options=options_from_args(args),
        title=args.title or f"photostyle {style_path.stem}",
    )
    lut = replace(lut, comments=(f"{software_tag()}: {source}{style_path.name}",))
    print(f"wrote {write_cube(lut, args.output)} ({args.size}^3 3D LUT)")
    return EXIT_OK


def _lut_pairs(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from photostyle.data.pairs import find_pairs
    from photostyle.eval.lut_capture import capture_markdown, lut_capture

    if args.inputs or args.output is not None:
        raise ValueError("--pairs takes no PHOTO or -o")
    check_output(args.json)
    pairs = find_pairs(args.pairs, use_masks=not args.no_masks)
    if args.limit is not None:
        pairs = pairs[: args.limit]
    stylizer = stylizer_from_args(args)
    with tqdm(total=len(pairs), desc="lut", unit="pair", file=sys.stderr) as bar:
        rows = lut_capture(
            stylizer,
            pairs,
            size=args.size,
            options=options_from_args(args),
            on_pair=lambda _: bar.update(),
        )
    print(capture_markdown(rows), end="")
    write_json(args.json, [r.to_json() for r in rows], "rows")
    return EXIT_OK
