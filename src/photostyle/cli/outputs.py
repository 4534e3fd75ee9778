"""Output flags shared by the commands: checked before any work, written atomically, reported."""

from __future__ import annotations

import sys
from pathlib import Path


def check_output(path: str | Path | None, *, folder: bool = False) -> None:
    """An output file (or folder) named by a flag, checked before any work; None = not asked."""
    from photostyle.utils import check_writable

    if path is not None:
        check_writable(path, folder=folder)


def write_json(path: Path | None, data: object, what: str) -> None:
    """``--json FILE``: ``data`` written atomically (indented), and a line saying where."""
    from photostyle.utils import write_json as write

    if path is not None:
        write(path, data)
        print(f"{what}: {path}")


def plot_target(explicit: Path | None, default: Path | None) -> Path | None:
    """Where a command's plot goes: an explicit ``--plot`` must be writable with matplotlib
    installed (checked before any work); a default one is dropped, with a note, without it."""
    from photostyle.utils import PlotUnavailable, pyplot

    path = explicit or default
    if path is None:
        return None
    check_output(path)
    try:
        pyplot()
    except PlotUnavailable as err:
        if explicit is not None:
            raise ValueError(str(err)) from err
        print(f"photostyle: no plot: {err}", file=sys.stderr)
        return None
    return path
