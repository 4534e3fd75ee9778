"""Exit codes and the one place where errors become one line on stderr and an exit code.

Exit codes: 0 success; 1 some pairs of a folder run failed, or training diverged; 2 bad input or
usage (one-line message, no traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from photostyle.io import ImageError
from photostyle.utils import one_line

EXIT_OK, EXIT_PARTIAL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_FAILED = 1  # a run that could not finish (e.g. training diverged)

Command = Callable[[argparse.Namespace], int]  # a subcommand: parsed arguments -> exit code


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2 (its default code too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def error(message: str) -> None:
    """``photostyle: error: MESSAGE`` on stderr."""
    print(f"photostyle: error: {message}", file=sys.stderr)


def run_command(command: Command, args: argparse.Namespace) -> int:
    """``command(args)``, with the errors a user can cause turned into one line and an exit code.

    Bad input (images, weights, values, files, missing peers) is exit 2; Ctrl+C is 130; a
    diverged training run (the last good checkpoint kept) is 1. Anything else is a bug and keeps
    its traceback.
    """
    from photostyle.eval.baselines import PeerUnavailable
    from photostyle.models.weights import WeightsError

    try:
        return command(args)
    except KeyboardInterrupt:
        print("photostyle: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ImageError, WeightsError, PeerUnavailable, ValueError, OSError) as err:
        error(one_line(err))  # OSError includes FileNotFoundError and PermissionError
        return EXIT_BAD_INPUT
    except FloatingPointError as err:  # training diverged; the last good checkpoint is kept
        error(one_line(err))
        return EXIT_FAILED
