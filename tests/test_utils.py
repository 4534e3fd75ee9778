"""Tests of photostyle.utils: device resolution, atomic writes, messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from photostyle.models.stylizer import head_spec
from photostyle.utils import (
    atomic_path,
    auto_dtype,
    check_writable,
    cpu_bfloat16_units,
    cpu_has_fast_bfloat16,
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


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "device", "head", "expected"),
    [
        (True, False, "cpu", "affine", torch.bfloat16),  # this project's CPU, default model
        (False, True, "cpu", "affine", torch.bfloat16),  # AMX
        (False, False, "cpu", "affine", torch.float32),  # AVX2 only: reference kernels
        (True, True, "cpu", "decoder", torch.float32),  # the pixel decoder moves pixels by 0.1
        (True, True, "cuda", "affine", torch.float32),  # not measured on a GPU
    ],
)
def test_auto_dtype_takes_bfloat16_only_where_it_was_measured_faster(
    monkeypatch: pytest.MonkeyPatch,
    avx512_bf16: bool,
    amx: bool,
    device: str,
    head: str,
    expected: torch.dtype,
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert cpu_bfloat16_units() is (avx512_bf16 or amx)
    assert auto_dtype(torch.device(device), head_spec(head)) == expected


def test_auto_dtype_is_float32_where_pytorch_cannot_tell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert cpu_bfloat16_units() is None
    assert cpu_has_fast_bfloat16()  # an explicit --dtype bfloat16 is not refused then
    assert auto_dtype(torch.device("cpu"), head_spec("affine")) == torch.float32


def test_check_writable_leaves_nothing_behind(tmp_path: Path) -> None:
    assert check_writable(tmp_path / "new" / "out.jpg") == tmp_path / "new" / "out.jpg"
    assert list(tmp_path.iterdir()) == []  # the trial file is gone, no folder made
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_writable(tmp_path / "file" / "out.jpg")


@pytest.mark.skipif(sys.platform != "linux", reason="needs Linux's /proc")
def test_check_writable_refuses_a_folder_where_no_file_can_be_made() -> None:
    with pytest.raises(ValueError, match=r"^/proc/out\.jpg: cannot write in /proc \("):
        check_writable("/proc/out.jpg")  # writable bits for root, yet no file can be made there
