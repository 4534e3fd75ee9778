"""The dtype registry: names, torch types and the uses each is offered for."""

from __future__ import annotations

import pytest
import torch

from photostyle.cli import main
from photostyle.dtypes import (
    AUTOCAST_DTYPES,
    COMPUTE_DTYPES,
    DEFAULT_COMPUTE_DTYPE,
    dtype_spec,
    torch_dtype,
)
from photostyle.eval.end_to_end import DTYPES
from photostyle.train.config import TrainConfig


def test_names_map_to_torch_types_by_use():
    assert list(COMPUTE_DTYPES) == ["float32", "bfloat16"]
    assert list(AUTOCAST_DTYPES) == ["bfloat16", "float16"]
    assert DEFAULT_COMPUTE_DTYPE in COMPUTE_DTYPES
    assert torch_dtype("bfloat16") is torch.bfloat16 and torch_dtype("float16") is torch.float16
    assert dtype_spec("float16").cuda_only and not dtype_spec("bfloat16").cuda_only
    assert {"float32": torch.float32, "bfloat16": torch.bfloat16} == DTYPES  # bench --end-to-end
    with pytest.raises(ValueError, match=r"unknown dtype 'float8'; choose from \('float32'"):
        torch_dtype("float8")


def test_flags_and_configs_take_their_choices_from_the_registry(
    capsys: pytest.CaptureFixture[str],
):
    with pytest.raises(ValueError, match="amp_dtype must be 'bfloat16' or 'float16', got 'x'"):
        TrainConfig(amp_dtype="x")
    assert main(["stylize", "--help"]) == 0
    assert "--dtype {auto,float32,bfloat16}" in capsys.readouterr().out
    assert main(["train", "--help"]) == 0
    assert "--amp-dtype {bfloat16,float16}" in capsys.readouterr().out
