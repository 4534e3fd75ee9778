"""``photostyle demo``: stylize the bundled demo pair."""

from __future__ import annotations

import argparse
from pathlib import Path

from photostyle.cli.args import (
    SubParsers,
    add_backend_args,
    add_model_args,
    options_from_args,
    stylizer_from_args,
)
from photostyle.cli.errors import EXIT_OK
from photostyle.cli.outputs import check_output


def register(sub: SubParsers) -> None:
    demo = sub.add_parser("demo", help="stylize the bundled demo pair")
    demo.add_argument("--out-dir", type=Path, default=Path("out"), help="default: out/")
    add_model_args(demo)
    add_backend_args(demo)
    demo.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from photostyle.io import demo_files

    content, style = demo_files()
    check_output(args.out_dir, folder=True)
    out = stylizer_from_args(args).stylize_files(
        content, style, args.out_dir / "demo_stylized.png", options=options_from_args(args)
    )
    print(f"content: {content}\nstyle:   {style}\nresult:  {out}")
    return EXIT_OK
