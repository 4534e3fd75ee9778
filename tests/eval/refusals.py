"""Shared bodies of the tests that give a config bad settings or a command bad arguments.

Each helper returns a parametrized test; a test module keeps its own cases and binds the result to
a ``test_*`` name, e.g. ``test_config_rejects_bad_settings = config_refusals(BenchConfig, [...])``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from photostyle.cli import main


def config_refusals(
    config: Callable[..., object], cases: Sequence[Mapping[str, object]]
) -> Callable[..., None]:
    """A test that ``config(**kwargs)`` raises ValueError for each of ``cases``."""

    @pytest.mark.parametrize("kwargs", cases)
    def test(kwargs: Mapping[str, object]) -> None:
        with pytest.raises(ValueError):
            config(**kwargs)

    return test


def cli_refusals(command: Sequence[str], cases: Sequence[Sequence[str]]) -> Callable[..., None]:
    """A test that ``command --json FILE *extra`` exits 2 with one line and no FILE, per case."""

    @pytest.mark.parametrize("extra", cases)
    def test(extra: Sequence[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        out = tmp_path / "t.json"
        assert main([*command, "--json", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert not out.exists()

    return test
