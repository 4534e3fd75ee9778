"""Tests of photostyle.cli.args: flags generated from config dataclasses, and train's flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import pytest

from photostyle.cli import main
from photostyle.cli.args import FlagSpec, dataclass_flags
from photostyle.cli.errors import Parser


@dataclass
class _Inner:
    level: float = 0.5  # inner level


@dataclass
class _Toy:
    data: str  # where the data is
    steps: int = 3  # how many steps
    mode: Literal["fast", "slow"] = "fast"  # how to run (100% safe)
    color: Annotated[str, ("red", "blue")] = "red"  # a name from a registry
    use_cache: bool = True  # keep a cache
    betas: tuple[float, float] = (0.5, 0.9)  # two betas
    limit: int | None = None  # optional limit
    device: str = "auto"  # torch device
    inner: _Inner = field(default_factory=_Inner)  # nested settings


def _parser(spec: FlagSpec | None = None) -> tuple[argparse.ArgumentParser, dict[str, str]]:
    parser = Parser(prog="toy")
    return parser, dataclass_flags(parser, _Toy, spec)


def test_each_field_becomes_a_typed_flag_with_its_comment_as_help() -> None:
    parser, dests = _parser()
    assert dests == {
        "data": "data",
        "steps": "steps",
        "mode": "mode",
        "color": "color",
        "use_cache": "use_cache",
        "betas": "betas",
        "limit": "limit",
        "device": "device",
        "level": "inner.level",
    }
    args = parser.parse_args(["--data", "d", "--mode", "slow", "--no-use-cache"])
    assert (args.data, args.steps, args.mode, args.use_cache) == ("d", 3, "slow", False)
    assert (args.betas, args.limit, args.device, args.level) == ((0.5, 0.9), None, "auto", 0.5)
    args = parser.parse_args(["--data", "d", "--betas", "0.1", "0.2", "--limit", "4"])
    assert (args.betas, args.limit) == ([0.1, 0.2], 4)
    text = parser.format_help()
    assert "how many steps (default 3)" in text and "(100% safe)" in text
    assert "{fast,slow}" in text and "{red,blue}" in text and "inner level (default 0.5)" in text


@pytest.mark.parametrize(
    "argv",
    [
        [],  # --data is required
        ["--data", "d", "--mode", "medium"],  # not a choice
        ["--data", "d", "--color", "green"],  # not a registered name
        ["--data", "d", "--steps", "x"],  # not an int
        ["--data", "d", "--device", "tpu"],  # checked when parsed
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    parser, _ = _parser()
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_layered_flags_are_none_unless_given_and_can_be_renamed_and_negated() -> None:
    spec = FlagSpec(
        names={"use_cache": "cache"},
        negations={"use_cache": ("--fresh", "start without a cache")},
        choices={"mode": ("fast",)},
        layered=True,
    )
    parser, dests = _parser(spec)
    assert dests["cache"] == "use_cache"
    args = parser.parse_args(["--data", "d"])
    assert (args.steps, args.mode, args.cache, args.device, args.level) == (None,) * 5
    assert parser.parse_args(["--data", "d", "--fresh"]).cache is False
    assert parser.parse_args(["--data", "d", "--no-cache"]).cache is False
    assert parser.parse_args(["--data", "d", "--cache"]).cache is True
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "d", "--mode", "slow"])  # choices narrowed by the spec
    assert "keep a cache (default True)" in parser.format_help()


def _printed_config(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert main(["train", "--print-config", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    pairs = (line.split("#")[0].strip().partition(":") for line in lines if ":" in line)
    return {key.strip(): value.strip() for key, _, value in pairs if not key.startswith("#")}


def test_train_flags_cover_every_trainconfig_field(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--absolute-losses",
        "--no-residual",
        "--adam-betas",
        "0.4",
        "0.9",
        "--t2",
        "0.3",
        "--time-limit",
        "5",
        "--index-size",
        "24",
        "--image-every",
        "7",
        "--no-scp",
    ]
    config = _printed_config(argv, capsys)
    assert config["relative_losses"] == "false" and config["residual"] == "false"
    assert config["adam_betas"] == "[0.4, 0.9]" and config["t2"] == "0.3"
    assert config["time_limit_s"] == "5.0" and config["index_size"] == "24"
    assert config["image_every"] == "7" and config["use_scp"] == "false"
    assert config["t1"] == "0.5" and config["steps"] == "1000"  # not given: the defaults


def test_train_flags_switch_back_on_what_the_config_file_switched_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.json"
    path.write_text('{"use_restyle": false, "steps": 9}')
    config = _printed_config(["--config", str(path)], capsys)
    assert config["use_restyle"] == "false" and config["steps"] == "9"
    config = _printed_config(["--config", str(path), "--restyle", "--steps", "2"], capsys)
    assert config["use_restyle"] == "true" and config["steps"] == "2"
