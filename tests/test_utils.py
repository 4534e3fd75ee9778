"""Tests of photostyle.utils: device resolution, atomic writes, messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from photostyle.utils import (
    atomic_path,
    one_line,
    remove_stale_temporaries,
    resolve_device,
    write_json,
)


def test_resolve_device_names_the_unknown_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    for bad in ("tpu", "cuda:x", "meta"):
        with pytest.raises(ValueError, match=repr(bad)):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda:1")


def test_stale_temporaries_of_one_target_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.safetensors"
    with atomic_path(target) as tmp:  # the name a killed writer leaves behind
        stale = tmp.with_name(tmp.name.replace(tmp.name.split(".")[2], "0123456789ab"))
        tmp.write_text("new")
    stale.write_text("left by a kill")
    others = [
        tmp_path / ".stylizer.0123456789ab.tmp.safetensors",  # another target's
        tmp_path / ".checkpoint.notahexname00.tmp.safetensors",  # not atomic_path's
        target,
    ]
    for other in others[:2]:
        other.write_text("keep")
    assert remove_stale_temporaries(target) == [stale]
    assert not stale.exists() and all(p.exists() for p in others)
    assert target.read_text() == "new"


def test_write_json_replaces_the_file_only_when_the_data_is_written(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "r.json"
    assert write_json(target, {"a": [1, 2], "b": "é"}) == target
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": [1, 2], "b": "é"}
    assert "\n  " in target.read_text(encoding="utf-8")  # indented by default
    with pytest.raises(TypeError):
        write_json(target, {"a": object()})  # not JSON: the old file stays, no temporary left
    assert json.loads(target.read_text(encoding="utf-8"))["a"] == [1, 2]
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.json"]
    write_json(target, [1], indent=None)
    assert target.read_text(encoding="utf-8") == "[1]"


def test_one_line_keeps_the_first_line_or_names_the_error() -> None:
    assert one_line(ValueError("bad value\nTraceback details")) == "bad value"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(OSError("  padded  ")) == "padded"
