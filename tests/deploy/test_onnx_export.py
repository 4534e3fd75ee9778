"""Tests of the ONNX export (photostyle.deploy.onnx): exportable ops, the graph, its metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from photostyle.api import Stylizer
from photostyle.deploy import onnx as deploy
from photostyle.deploy.onnx import (
    EXPORTABLE_FA,
    ExportableStylizer,
    OnnxError,
    OnnxNetwork,
    aggregate,
    export_onnx,
    params_sha256,
    unpool,
)
from photostyle.inference import WorkingStyle
from photostyle.models.layers import feature_aggregation
from photostyle.models.weights import PREVIOUS_STYLIZER
from photostyle.utils import sha256_file


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _stylizer(files: tuple[Path, Path], weights: Path | None = None) -> Stylizer:
    tiny, encoder = files
    return Stylizer(weights or tiny, encoder_weights=encoder, device="cpu")


# ---------------------------------------------------------------------------------------------
# Exportable building blocks, against the PyTorch ops they stand for
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("h", "w"), [(8, 8), (9, 7), (17, 30), (2, 3)])
def test_unpool_equals_max_unpool2d_at_even_and_odd_sizes(h: int, w: int) -> None:
    x = torch.relu(_rand(2, 3, h, w, seed=h) - 0.5)  # many zero windows: ties keep the first
    pooled, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    expected = F.max_unpool2d(pooled, idx, (2, 2), (2, 2), output_size=(h, w))
    assert torch.equal(unpool(pooled, idx, (h, w)), expected)


def test_unpool_puts_each_value_at_its_index_and_zeros_elsewhere() -> None:
    pooled = torch.tensor([[[[5.0, 7.0]]]])  # (1, 1, 1, 2)
    idx = torch.tensor([[[[3, 4]]]])  # flat positions in a 2x4 plane: (0, 3) and (1, 0)
    out = unpool(pooled, idx, (2, 4))
    assert out.tolist() == [[[[0.0, 0.0, 0.0, 5.0], [7.0, 0.0, 0.0, 0.0]]]]


@pytest.mark.parametrize("fa", EXPORTABLE_FA)
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_aggregate_equals_feature_aggregation(fa: str, alpha: float) -> None:
    x, y = _rand(1, 4, 6, 5, seed=1) * 3, _rand(1, 4, 7, 9, seed=2) + 1
    expected = feature_aggregation(x, y, fa, alpha=alpha)  # type: ignore[arg-type]
    got = aggregate(x, y, fa, torch.tensor(alpha))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    if alpha == 0.0 or fa == "none":
        assert torch.equal(got, x)


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("fa", EXPORTABLE_FA)
def test_exportable_stylizer_equals_the_model_in_pytorch(
    tiny_stylizer_files: tuple[Path, Path], residual_weights: Path, residual: bool, fa: str
) -> None:
    stylizer = _stylizer(tiny_stylizer_files, residual_weights if residual else None)
    model = stylizer.model
    assert model.config.residual is residual
    graph = ExportableStylizer(model, fa)  # type: ignore[arg-type]
    content, style = _rand(1, 3, 37, 50, seed=3), _rand(1, 3, 45, 33, seed=4)
    with torch.no_grad():
        for alpha in (1.0, 0.6):
            expected = model(content, style, alpha=alpha, variant=fa).image  # type: ignore[arg-type]
            got = graph(content, style, torch.tensor(alpha))
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("fa", ["wct", "quantile"])
def test_wct_and_quantile_cannot_be_exported(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path, fa: str
) -> None:
    stylizer = _stylizer(tiny_stylizer_files)
    with pytest.raises(ValueError, match=f"'{fa}' cannot be exported to ONNX"):
        export_onnx(stylizer.model, tmp_path / "m.onnx", weights=stylizer.path, fa=fa)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot be exported"):
        ExportableStylizer(stylizer.model, fa)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# The exported file: metadata, dynamic shapes, parity with PyTorch
# ---------------------------------------------------------------------------------------------


def test_export_writes_checked_model_with_photostyle_metadata(
    tiny_stylizer_files: tuple[Path, Path], tiny_onnx: Path
) -> None:
    weights, _ = tiny_stylizer_files
    stylizer = _stylizer(tiny_stylizer_files)
    proto = onnx.load(str(tiny_onnx))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["photostyle.format"] == "photostyle.stylizer.onnx"
    assert meta["photostyle.format_version"] == "1"
    assert meta["photostyle.fa"] == "mean_std"
    assert json.loads(meta["photostyle.model_config"]) == {
        **json.loads(json.dumps(stylizer.config.to_dict())),
        "fa": "mean_std",
    }
    assert meta["photostyle.weights_sha256"] == sha256_file(weights)
    assert meta["photostyle.params_sha256"] == params_sha256(stylizer.model)
    assert meta["photostyle.opset"] == "17"
    assert meta["photostyle.min_side"] == "16"
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]


def test_exported_inputs_have_dynamic_height_and_width(tiny_onnx: Path) -> None:
    graph = onnx.load(str(tiny_onnx)).graph

    def dims(value: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert {i.name: dims(i) for i in graph.input} == {
        "content": [1, 3, "height", "width"],
        "style": [1, 3, "style_height", "style_width"],
        "alpha": [],
    }
    assert [(o.name, dims(o)) for o in graph.output] == [("image", [1, 3, "height", "width"])]


@pytest.mark.parametrize(
    ("content_hw", "style_hw", "alpha"),
    [((16, 16), (16, 16), 1.0), ((37, 50), (23, 61), 0.4), ((96, 40), (64, 64), 0.0)],
)
def test_onnxruntime_matches_pytorch_at_sizes_other_than_traced(
    tiny_stylizer_files: tuple[Path, Path],
    tiny_onnx: Path,
    content_hw: tuple[int, int],
    style_hw: tuple[int, int],
    alpha: float,
) -> None:
    assert content_hw != deploy.TRACE_SIZES[0]
    model = _stylizer(tiny_stylizer_files).model
    network = OnnxNetwork(tiny_onnx)
    content, style = _rand(1, 3, *content_hw, seed=5), _rand(1, 3, *style_hw, seed=6)
    with torch.no_grad():
        expected = model(content, style, alpha=alpha).image
    got = network(content, style, alpha=alpha)
    assert got.shape == (1, 3, *content_hw) and got.dtype == torch.float32
    assert float((got - expected).abs().max()) < 1e-5


@pytest.mark.parametrize("fa", ["paper", "none"])
def test_other_fa_variants_export_and_match(
    tiny_stylizer_files: tuple[Path, Path], residual_weights: Path, tmp_path: Path, fa: str
) -> None:
    stylizer = _stylizer(tiny_stylizer_files, residual_weights)
    out = tmp_path / f"{fa}.onnx"
    result = export_onnx(stylizer.model, out, weights=stylizer.path, fa=fa)  # type: ignore[arg-type]
    assert result.info.fa == fa and result.info.config.residual
    assert result.max_abs_diff < 1e-5
    assert stylizer.model.decoder.variant == "mean_std"  # the stylizer itself is not changed
    content, style = _rand(1, 3, 24, 40, seed=7), _rand(1, 3, 33, 17, seed=8)
    with torch.no_grad():
        expected = stylizer.model(content, style, alpha=0.7, variant=fa).image  # type: ignore[arg-type]
    got = OnnxNetwork(result.path)(content, style, alpha=0.7)
    assert float((got - expected).abs().max()) < 1e-5


def test_export_at_another_opset(tiny_stylizer_files: tuple[Path, Path], tmp_path: Path) -> None:
    stylizer = _stylizer(tiny_stylizer_files)
    result = export_onnx(stylizer.model, tmp_path / "m.onnx", weights=stylizer.path, opset=13)
    proto = onnx.load(str(result.path))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [13]
    assert OnnxNetwork(result.path).info.opset == 13


@pytest.mark.parametrize("opset", [12, 21])
def test_opset_out_of_range_is_refused(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path, opset: int
) -> None:
    stylizer = _stylizer(tiny_stylizer_files)
    with pytest.raises(ValueError, match="opset must be 13 to 20"):
        export_onnx(stylizer.model, tmp_path / "m.onnx", weights=stylizer.path, opset=opset)


def test_failed_check_leaves_existing_output_untouched(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous")
    monkeypatch.setattr(deploy, "_parity", lambda network, model, fa: 0.5)
    stylizer = _stylizer(tiny_stylizer_files)
    with pytest.raises(OnnxError, match=r"onnxruntime and PyTorch differ by 0\.5"):
        export_onnx(stylizer.model, out, weights=stylizer.path)
    assert out.read_bytes() == b"previous"
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left


def test_export_refuses_non_onnx_suffix_and_the_weights_file(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path
) -> None:
    weights, _ = tiny_stylizer_files
    stylizer = _stylizer(tiny_stylizer_files)
    with pytest.raises(ValueError, match=r"must be a \.onnx file"):
        export_onnx(stylizer.model, tmp_path / "m.onx", weights=weights)
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        export_onnx(stylizer.model, tmp_path / "dir.onnx", weights=weights)
    existing = tmp_path / "w.onnx"
    existing.write_bytes(b"x")
    with pytest.raises(ValueError, match="refusing to overwrite an input"):
        deploy.check_onnx_path(tmp_path / "." / "w.onnx", protect=[weights, existing])
    assert existing.read_bytes() == b"x"


# ---------------------------------------------------------------------------------------------
# The shipped model
# ---------------------------------------------------------------------------------------------


def test_shipped_model_onnxruntime_matches_pytorch_at_64(shipped_onnx: Path) -> None:
    torch_stylizer = Stylizer(PREVIOUS_STYLIZER, device="cpu")
    onnx_stylizer = Stylizer(
        PREVIOUS_STYLIZER, device="cpu", backend="onnxruntime", onnx_path=shipped_onnx
    )
    content, style = _rand(1, 3, 64, 64, seed=9), _rand(1, 3, 64, 64, seed=10)
    for alpha in (1.0, 0.5):
        with torch.inference_mode():
            expected = torch_stylizer.network.run(
                content, WorkingStyle(style), alpha=alpha, fa="mean_std"
            ).image
            got = onnx_stylizer.network.run(
                content, WorkingStyle(style), alpha=alpha, fa="mean_std"
            ).image
        assert expected is not None and got is not None
        assert float((got - expected).abs().max()) < 1e-4
    got_image = onnx_stylizer.stylize(content[0], style[0])
    expected_image = torch_stylizer.stylize(content[0], style[0])
    assert float((got_image - expected_image).abs().max()) < 1e-4
    assert np.isfinite(got_image.numpy()).all()
