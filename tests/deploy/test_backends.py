"""The backend registry: what each backend runs, asked rather than re-listed."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
import torch

from photostyle.cli import main
from photostyle.deploy.backends import BACKEND_REGISTRY, BACKENDS, BackendSpec, backend_spec
from photostyle.inference import TorchBackend
from photostyle.models.stylizer import PhotoStylizer


def test_builtin_backends_and_their_capabilities() -> None:
    assert tuple(BACKENDS) == ("torch", "onnxruntime")
    torch_spec, ort = backend_spec("torch"), backend_spec("onnxruntime")
    assert torch_spec.heads == ("decoder", "affine") and ort.heads == ("decoder",)
    assert torch.bfloat16 in torch_spec.dtypes and ort.dtypes == (torch.float32,)
    assert ort.takes_file and not torch_spec.takes_file
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'; choose from"):
        backend_spec("tensorrt")


def test_checks_name_the_backend_and_the_file() -> None:
    ort = backend_spec("onnxruntime")
    with pytest.raises(ValueError, match="the onnxruntime backend computes in float32 only"):
        ort.check_dtype(torch.bfloat16)
    with pytest.raises(ValueError, match=r"m\.safetensors: the onnxruntime backend runs "
                       "pixel-decoder stylizers only, this one has the affine head"):  # fmt: skip
        ort.check_head("affine", Path("m.safetensors"))
    ort.check_head("decoder", Path("m.safetensors"))
    backend_spec("torch").check_dtype(torch.bfloat16)


def test_torch_backend_loads_the_model_as_it_is() -> None:
    model = cast(PhotoStylizer, torch.nn.Identity())  # stored, not run
    network = backend_spec("torch").load(model, Path("x"), None, None, torch.channels_last)
    assert isinstance(network, TorchBackend) and network.model is model
    assert network.fixed_fa is None and network.memory_format == torch.channels_last


def test_cli_choices_come_from_the_registry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = BackendSpec(
        "toy", backend_spec("torch").load, ("decoder",), (torch.float32,), False, "a toy"
    )
    monkeypatch.setattr(BACKEND_REGISTRY, "_specs", dict(BACKEND_REGISTRY._specs))
    BACKEND_REGISTRY.register("toy", spec)
    assert main(["stylize", "--help"]) == 0
    out = capsys.readouterr().out
    assert "{torch,onnxruntime,toy}" in out and "a toy" in out
