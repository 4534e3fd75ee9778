"""Command-line interface: wires arguments to the library API. Entry point: ``main(argv) -> int``.

One module per command (``register`` adds its parser, whose ``handler`` runs it); the argument
groups several commands share are in :mod:`photostyle.cli.args`, the output checks in
:mod:`photostyle.cli.outputs`, and the exit codes in :mod:`photostyle.cli.errors`: 0 success;
1 some pairs of a folder run failed, or training diverged; 2 bad input or usage (one-line
message, no traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from photostyle.cli import (
    ablate,
    bench,
    demo,
    evaluate,
    export,
    fid,
    index,
    lut,
    serve,
    speed,
    stylize,
    train,
    train_affine,
    video,
)
from photostyle.cli.errors import EXIT_BAD_INPUT, Parser, run_command

__all__ = ["build_parser", "main"]

# The commands in the order ``photostyle --help`` lists them.
COMMANDS = (
    stylize,
    demo,
    evaluate,
    train,
    bench,
    export,
    fid,
    ablate,
    index,
    speed,
    video,
    train_affine,
    serve,
    lut,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="photostyle", description="Fast photorealistic style transfer.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # usage error (one line, code 2) or --help (code 0)
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    return run_command(args.handler, args)
