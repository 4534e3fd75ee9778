"""Tests of the onnxruntime backend: OnnxNetwork, Stylizer(backend="onnxruntime"), bench rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
import torch

from photostyle.api import StylizeOptions, Stylizer
from photostyle.deploy import onnx as deploy
from photostyle.deploy.onnx import OnnxError, OnnxNetwork, load_backend
from photostyle.eval.bench import PHOTOSTYLE_ONNX, BenchConfig, bench_table_markdown, run_bench
from photostyle.models.stylizer import PhotoStylizer
from photostyle.models.weights import WeightsError, load_checkpoint, save_checkpoint


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _onnx_stylizer(files: tuple[Path, Path], onnx_path: Path | None, **kw: object) -> Stylizer:
    weights, encoder = files
    return Stylizer(
        weights,
        encoder_weights=encoder,
        device="cpu",
        backend="onnxruntime",
        onnx_path=onnx_path,
        **kw,  # type: ignore[arg-type]
    )


def _rewrite_metadata(src: Path, dst: Path, **updates: str | None) -> Path:
    """Copy an ONNX file with metadata entries changed (None removes one)."""
    proto = onnx.load(str(src))
    meta = {p.key: p.value for p in proto.metadata_props}
    for key, value in updates.items():
        meta.pop(f"photostyle.{key}", None)
        if value is not None:
            meta[f"photostyle.{key}"] = value
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(dst))
    return dst


# ---------------------------------------------------------------------------------------------
# OnnxNetwork: what it accepts and refuses
# ---------------------------------------------------------------------------------------------


def test_network_reads_its_metadata(tiny_onnx: Path) -> None:
    network = OnnxNetwork(tiny_onnx)
    assert (network.info.fa, network.info.opset, network.info.format_version) == ("mean_std", 17, 1)
    assert network.info.config.widths == (4, 8, 8, 16)


def test_missing_garbage_and_foreign_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OnnxError, match="no such ONNX file"):
        OnnxNetwork(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf \x00\xff" * 10)
    with pytest.raises(OnnxError, match="not a readable ONNX model") as err:
        OnnxNetwork(garbage)
    assert "\n" not in str(err.value)
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    value = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [node], "g", [value("x", 1, [1])], [value("y", 1, [1])]
    )  # a valid model, not a photostyle export
    foreign = tmp_path / "identity.onnx"
    onnx.save(onnx.helper.make_model(graph), str(foreign))
    with pytest.raises(OnnxError, match="not a photostyle ONNX export"):
        OnnxNetwork(foreign)


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ({"format_version": "2"}, "newer photostyle"),
        ({"fa": None}, "entry 'photostyle.fa' missing"),
        ({"fa": "wct"}, "damaged photostyle metadata"),
        ({"model_config": "[1, 2]"}, "damaged photostyle metadata"),
        ({"opset": "seventeen"}, "damaged photostyle metadata"),
    ],
)
def test_bad_metadata_is_refused(
    tiny_onnx: Path, tmp_path: Path, updates: dict[str, str | None], message: str
) -> None:
    path = _rewrite_metadata(tiny_onnx, tmp_path / "bad.onnx", **updates)
    with pytest.raises(OnnxError, match=message):
        OnnxNetwork(path)


def test_network_checks_its_inputs(tiny_onnx: Path) -> None:
    network = OnnxNetwork(tiny_onnx)
    content, style = _rand(1, 3, 20, 24), _rand(1, 3, 20, 20, seed=1)
    assert network(content, style).shape == (1, 3, 20, 24)
    with pytest.raises(ValueError, match=r"content must be \(1, 3, H, W\)"):
        network(content[0], style)
    with pytest.raises(ValueError, match=r"style must be \(1, 3, H, W\)"):
        network(content, torch.cat([style, style]))
    with pytest.raises(ValueError, match="at least 16 px"):
        network(content[..., :15], style)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        network(content, style, alpha=1.5)
    with pytest.raises(ValueError, match="exported with FA 'mean_std', not 'paper'"):
        network(content, style, fa="paper")


# ---------------------------------------------------------------------------------------------
# Stylizer(backend="onnxruntime")
# ---------------------------------------------------------------------------------------------


def test_stylize_with_onnxruntime_matches_torch_with_resizing(
    tiny_stylizer_files: tuple[Path, Path], tiny_onnx: Path
) -> None:
    weights, encoder = tiny_stylizer_files
    torch_stylizer = Stylizer(weights, encoder_weights=encoder, device="cpu")
    onnx_stylizer = _onnx_stylizer(tiny_stylizer_files, tiny_onnx)
    assert onnx_stylizer.backend == "onnxruntime" and onnx_stylizer.config.fa == "mean_std"
    content, style = _rand(3, 70, 45, seed=2), _rand(3, 33, 51, seed=3)
    for options in (StylizeOptions(max_size=48), StylizeOptions(alpha=0.5)):
        expected = torch_stylizer.stylize(content, style, options=options)
        got = onnx_stylizer.stylize(content, style, options=options)
        assert got.shape == (3, 70, 45)
        assert float((got - expected).abs().max()) < 1e-4


def test_onnxruntime_backend_refuses_masks(
    tiny_stylizer_files: tuple[Path, Path], tiny_onnx: Path
) -> None:
    stylizer = _onnx_stylizer(tiny_stylizer_files, tiny_onnx)
    content, style = _rand(3, 20, 20), _rand(3, 20, 20, seed=1)
    labels = torch.zeros(20, 20, dtype=torch.long)
    with pytest.raises(ValueError, match="onnxruntime backend does not support semantic masks"):
        stylizer.stylize(content, style, content_mask=labels, style_mask=labels)


def test_other_fa_per_call_is_refused(
    tiny_stylizer_files: tuple[Path, Path], tiny_onnx: Path
) -> None:
    stylizer = _onnx_stylizer(tiny_stylizer_files, tiny_onnx)
    content = _rand(3, 20, 20)
    with pytest.raises(ValueError, match="exported with FA 'mean_std', not 'paper'"):
        stylizer.stylize(content, content, options=StylizeOptions(fa="paper"))


def test_onnx_file_of_other_weights_or_fa_is_refused(
    tiny_stylizer_files: tuple[Path, Path], tiny_onnx: Path, tmp_path: Path
) -> None:
    weights, encoder = tiny_stylizer_files
    tensors, meta = load_checkpoint(weights)
    key = next(k for k in tensors if k.endswith("bias"))
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, {**tensors, key: tensors[key] + 0.01}, meta)
    with pytest.raises(WeightsError, match="exported from other weights"):
        Stylizer(
            other, encoder_weights=encoder, device="cpu", backend="onnxruntime", onnx_path=tiny_onnx
        )
    with pytest.raises(OnnxError, match="exported with FA 'mean_std', not 'paper'"):
        _onnx_stylizer(tiny_stylizer_files, tiny_onnx, fa="paper")


def test_fa_of_the_file_becomes_the_default(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path
) -> None:
    weights, encoder = tiny_stylizer_files
    model = Stylizer(weights, encoder_weights=encoder, device="cpu").model
    paper = deploy.export_onnx(model, tmp_path / "p.onnx", weights=weights, fa="paper").path
    stylizer = _onnx_stylizer(tiny_stylizer_files, paper)
    assert stylizer.config.fa == "paper"
    content = _rand(3, 24, 24)
    assert stylizer.stylize(content, content).shape == (3, 24, 24)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "tensorrt"}, "unknown backend 'tensorrt'"),
        ({"onnx_path": "m.onnx"}, "needs the onnxruntime backend"),
        ({"backend": "onnxruntime", "dtype": torch.bfloat16}, "float32 only"),
        ({"backend": "onnxruntime", "fa": "wct"}, "'wct' cannot be exported"),
    ],
)
def test_bad_backend_arguments(
    tiny_stylizer_files: tuple[Path, Path], kwargs: dict[str, object], message: str
) -> None:
    weights, encoder = tiny_stylizer_files
    with pytest.raises(ValueError, match=message):
        Stylizer(weights, encoder_weights=encoder, device="cpu", **kwargs)  # type: ignore[arg-type]


def test_without_a_file_the_export_is_cached(
    tiny_stylizer_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    first = _onnx_stylizer(tiny_stylizer_files, None)
    assert isinstance(first.network, OnnxNetwork)
    cached = first.network.path
    assert cached.parent == tmp_path / ".cache" / "photostyle" / "onnx"
    assert cached.name.endswith("-mean_std-opset17-v1.onnx")
    exports: list[Path] = []
    original = deploy.export_onnx

    def spy(model: PhotoStylizer, out: Path, **kw: object) -> deploy.ExportResult:
        exports.append(out)
        return original(model, out, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(deploy, "export_onnx", spy)
    second = _onnx_stylizer(tiny_stylizer_files, None)
    assert isinstance(second.network, OnnxNetwork)
    assert second.network.path == cached and exports == []
    cached.write_bytes(b"damaged")  # a damaged cache entry is exported again
    third = _onnx_stylizer(tiny_stylizer_files, None)
    assert isinstance(third.network, OnnxNetwork) and exports == [cached]
    assert OnnxNetwork(cached).info.fa == "mean_std"
    assert sorted(p.name for p in cached.parent.iterdir()) == [cached.name]


def test_load_backend_with_a_cache_dir(
    tiny_stylizer_files: tuple[Path, Path], tiny_onnx: Path, tmp_path: Path
) -> None:
    weights, encoder = tiny_stylizer_files
    stylizer = Stylizer(weights, encoder_weights=encoder, device="cpu")
    network = load_backend(stylizer.model, weights, cache_dir=tmp_path / "cache")
    assert network.path.parent == tmp_path / "cache"
    assert network.info.params_sha256 == OnnxNetwork(tiny_onnx).info.params_sha256
    copy = tmp_path / "copy.onnx"
    shutil.copy(tiny_onnx, copy)
    assert load_backend(stylizer.model, weights, copy).path == copy


# ---------------------------------------------------------------------------------------------
# Benchmark rows
# ---------------------------------------------------------------------------------------------


def test_bench_times_onnxruntime_next_to_torch(
    tiny_stylizer_files: tuple[Path, Path], tiny_onnx: Path
) -> None:
    weights, encoder = tiny_stylizer_files
    config = BenchConfig(
        sizes=((16, 32),),
        methods=("photostyle", PHOTOSTYLE_ONNX),
        runs=2,
        warmup=1,
        device="cpu",
        weights=str(weights),
        encoder_weights=str(encoder),
        onnx=str(tiny_onnx),
    )
    rows = run_bench(config)
    assert [(r.method, r.size, r.device) for r in rows] == [
        ("photostyle", "32x16", "cpu"),
        (PHOTOSTYLE_ONNX, "32x16", "cpu"),
    ]
    torch_row, onnx_row = rows
    assert torch_row.max_abs_diff is None
    assert onnx_row.max_abs_diff is not None and onnx_row.max_abs_diff < 1e-4
    assert onnx_row.ratio == pytest.approx(onnx_row.median_s / torch_row.median_s)
    table = bench_table_markdown(rows)
    assert table.splitlines()[0].endswith("| x photostyle | max abs diff |")
    assert table.splitlines()[2].endswith("| 1.00 | - |")
    assert "max abs diff" not in bench_table_markdown(rows[:1])


def test_bench_onnxruntime_is_not_a_default_method() -> None:
    assert PHOTOSTYLE_ONNX not in BenchConfig().methods
    with pytest.raises(ValueError, match="photostyle-onnxruntime"):
        BenchConfig(methods=("bogus",))
