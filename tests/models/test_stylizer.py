"""Tests of photostyle.models.stylizer's head registry: heads are asked, not listed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from photostyle.deploy.backends import backend_spec
from photostyle.models import stylizer as stylizer_module
from photostyle.models.decoder import Decoder
from photostyle.models.stylizer import (
    HEADS,
    HeadSpec,
    ModelConfig,
    build_head,
    head_spec,
)
from photostyle.utils import auto_dtype


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the head registry for the test (registrations do not leak)."""
    heads = stylizer_module.HEAD_REGISTRY
    monkeypatch.setattr(heads, "_specs", dict(heads._specs))


def test_a_registered_head_is_listed_built_and_asked(
    registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[ModelConfig] = []

    def build(config: ModelConfig) -> Decoder:
        built.append(config)
        return head_spec("decoder").build(config)

    spec = replace(head_spec("decoder"), name="toy", build=build, auto_bfloat16=True)
    stylizer_module.HEAD_REGISTRY.register("toy", spec)
    assert "toy" in HEADS
    config = ModelConfig.from_dict({"head": "toy"})  # a checkpoint's config with the new head
    assert isinstance(build_head(config), Decoder) and built == [config]
    # "May run in bfloat16 under dtype auto" is the registration's answer, not a list of names.
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert auto_dtype(torch.device("cpu"), head_spec("toy")) == torch.bfloat16
    assert auto_dtype(torch.device("cpu"), head_spec("decoder")) == torch.float32


def test_unknown_heads_are_refused_naming_the_choices() -> None:
    choices = r"unknown head 'bogus'; choose from \('decoder', 'affine'"
    with pytest.raises(ValueError, match=choices):
        ModelConfig.from_dict({"head": "bogus"})
    with pytest.raises(ValueError, match="unknown head 'bogus'"):
        head_spec("bogus")


def test_backends_name_heads_by_their_registered_label() -> None:
    assert isinstance(head_spec("affine"), HeadSpec)
    with pytest.raises(ValueError, match="runs pixel-decoder stylizers only") as err:
        backend_spec("onnxruntime").check_head("affine", Path("m.safetensors"))
    assert head_spec("decoder").label in str(err.value)
