"""Fixtures of the deployment tests: tiny stylizers (plain and residual) and their ONNX exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from photostyle.api import Stylizer
from photostyle.deploy.onnx import export_onnx
from photostyle.models.weights import PREVIOUS_STYLIZER, load_checkpoint, save_checkpoint


@pytest.fixture(scope="session")
def residual_weights(
    tiny_stylizer_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny checkpoint with ``residual=True`` in its config (same tensors)."""
    weights, _ = tiny_stylizer_files
    tensors, meta = load_checkpoint(weights)
    config = {**json.loads(meta["model_config"]), "residual": True}
    path = tmp_path_factory.mktemp("residual") / "stylizer_residual.safetensors"
    save_checkpoint(path, tensors, {**meta, "model_config": config})
    return path


@pytest.fixture(scope="session")
def tiny_onnx(
    tiny_stylizer_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny (plain) stylizer exported with its default FA (mean_std)."""
    weights, encoder = tiny_stylizer_files
    stylizer = Stylizer(weights, encoder_weights=encoder, device="cpu")
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return export_onnx(stylizer.model, out, weights=stylizer.path).path


@pytest.fixture(scope="session")
def shipped_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model exported with its default FA (mean_std)."""
    path = tmp_path_factory.mktemp("onnx_shipped") / "shipped.onnx"
    stylizer = Stylizer(PREVIOUS_STYLIZER, device="cpu")
    return export_onnx(stylizer.model, path, weights=stylizer.path).path
