"""Tests of encoder weight loading and safetensors checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from photostyle.models.encoder import VGG16, VGGConfig, VGGEncoder
from photostyle.models.weights import (
    BUNDLED_VGG16,
    BUNDLED_VGG16_SHA256,
    WeightsError,
    build_encoder,
    bundled_path,
    load_checkpoint,
    load_vgg_weights,
    save_checkpoint,
)
from photostyle.utils import sha256_file


def _torchvision_state(cfg: VGGConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-format ``vgg*.features`` state dict (random values) plus classifier keys."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    in_ch = 3
    keys = cfg.torchvision_keys()
    for name in cfg.conv_names():
        block = int(name[4]) - 1
        out_ch = cfg.widths[block]
        state[f"{keys[name]}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=g)
        state[f"{keys[name]}.bias"] = torch.randn(out_ch, generator=g)
        in_ch = out_ch
    state["classifier.0.weight"] = torch.randn(4, 4, generator=g)  # ignored
    return state


def _check_state(state, convention, cfg: VGGConfig, source: dict[str, torch.Tensor]) -> None:
    assert convention == "torch_rgb"
    assert sorted(state) == sorted(f"{n}.{p}" for n in cfg.conv_names() for p in ("weight", "bias"))
    for name, key in cfg.torchvision_keys().items():
        assert torch.equal(state[f"{name}.weight"], source[f"{key}.weight"])
        assert torch.equal(state[f"{name}.bias"], source[f"{key}.bias"])


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_torchvision_format_tiny(tmp_path, tiny_cfg, suffix):
    source = _torchvision_state(tiny_cfg)
    path = tmp_path / f"vgg{suffix}"
    if suffix == ".pth":
        torch.save(source, path)
    else:
        save_file(source, str(path))
    state, convention = load_vgg_weights(path, tiny_cfg)
    _check_state(state, convention, tiny_cfg, source)
    # The tiny layout maps conv2_1 -> features.3 (conv, relu, pool before it).
    assert torch.equal(state["conv2_1.weight"], source["features.3.weight"])


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_torchvision_format_real_vgg16_layout(tmp_path, suffix):
    source = _torchvision_state(VGG16, seed=1)
    path = tmp_path / f"vgg16{suffix}"
    if suffix == ".pth":
        torch.save(source, path)
    else:
        save_file(source, str(path))
    state, convention = load_vgg_weights(path, VGG16)
    _check_state(state, convention, VGG16, source)
    assert len(state) == 16
    assert torch.equal(state["conv4_1.weight"], source["features.17.weight"])


def test_build_encoder_from_torchvision_file(tmp_path, tiny_cfg):
    source = _torchvision_state(tiny_cfg, seed=2)
    path = tmp_path / "vgg.safetensors"
    save_file(source, str(path))
    encoder = build_encoder(path, tiny_cfg)
    assert isinstance(encoder, VGGEncoder)
    assert encoder.convention == "torch_rgb"
    assert torch.equal(encoder.convs["conv3_2"].weight, source["features.8.weight"])
    assert all(not p.requires_grad for p in encoder.parameters())


def test_build_encoder_with_wrong_shapes(tmp_path, tiny_cfg):
    path = tmp_path / "vgg.safetensors"
    save_file(_torchvision_state(tiny_cfg), str(path))
    wider = VGGConfig("wider", (8, 8, 8, 16), tiny_cfg.depths, tiny_cfg.full_depths)
    with pytest.raises(WeightsError):
        build_encoder(path, wider)


def test_project_format_with_convention_metadata(tmp_path, tiny_cfg):
    g = torch.Generator().manual_seed(3)
    enc = VGGEncoder(tiny_cfg)
    tensors = {f"{k}": torch.randn(v.shape, generator=g) for k, v in enc.convs.state_dict().items()}
    for meta, expected in (({"input_convention": "torch_rgb"}, "torch_rgb"), ({}, "caffe_bgr255")):
        path = tmp_path / f"own_{expected}.safetensors"
        save_file(tensors, str(path), metadata=meta)
        state, convention = load_vgg_weights(path, tiny_cfg)
        assert convention == expected
        assert torch.equal(state["conv3_1.weight"], tensors["conv3_1.weight"])


def test_file_url_with_cache_and_sha256(tmp_path, tiny_cfg):
    source = _torchvision_state(tiny_cfg, seed=4)
    path = tmp_path / "src" / "vgg_tiny.safetensors"
    path.parent.mkdir()
    save_file(source, str(path))
    sha = sha256_file(path)
    cache = tmp_path / "cache"
    state, convention = load_vgg_weights(path.as_uri(), tiny_cfg, sha256=sha, cache_dir=cache)
    _check_state(state, convention, tiny_cfg, source)
    assert (cache / "vgg_tiny.safetensors").is_file()
    # The cached copy is used once downloaded.
    path.unlink()
    state2, _ = load_vgg_weights(path.as_uri(), tiny_cfg, sha256=sha, cache_dir=cache)
    assert torch.equal(state2["conv1_1.weight"], state["conv1_1.weight"])


def test_file_url_wrong_sha256(tmp_path, tiny_cfg):
    path = tmp_path / "vgg_tiny.safetensors"
    save_file(_torchvision_state(tiny_cfg), str(path))
    with pytest.raises(WeightsError, match="sha256"):
        load_vgg_weights(path.as_uri(), tiny_cfg, sha256="0" * 64, cache_dir=tmp_path / "cache")


def test_file_url_missing(tmp_path, tiny_cfg):
    url = (tmp_path / "nope.safetensors").as_uri()
    with pytest.raises(WeightsError):
        load_vgg_weights(url, tiny_cfg, cache_dir=tmp_path / "cache")


def test_local_file_wrong_sha256(tmp_path, tiny_cfg):
    path = tmp_path / "vgg.pth"
    torch.save(_torchvision_state(tiny_cfg), path)
    with pytest.raises(WeightsError):
        load_vgg_weights(path, tiny_cfg, sha256="f" * 64)
    state, _ = load_vgg_weights(path, tiny_cfg, sha256=sha256_file(path))
    assert len(state) == 2 * len(tiny_cfg.conv_names())


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_unrelated_keys(tmp_path, tiny_cfg, suffix):
    tensors = {"encoder.layer1.weight": torch.rand(4, 3, 3, 3), "fc.bias": torch.rand(4)}
    path = tmp_path / f"other{suffix}"
    if suffix == ".pth":
        torch.save(tensors, path)
    else:
        save_file(tensors, str(path))
    with pytest.raises(WeightsError, match="key layout"):
        load_vgg_weights(path, tiny_cfg)


def test_partial_torchvision_file_is_rejected(tmp_path, tiny_cfg):
    source = _torchvision_state(tiny_cfg)
    del source["features.11.weight"]  # conv4_1
    path = tmp_path / "partial.safetensors"
    save_file(source, str(path))
    with pytest.raises(WeightsError):
        load_vgg_weights(path, tiny_cfg)


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("garbage.pth", b"not a pickle at all" * 10),
        ("garbage.safetensors", b"not safetensors" * 10),
        ("empty.safetensors", b""),
        ("garbage.bin", b"\x00\x01\x02" * 50),
    ],
)
def test_garbage_files(tmp_path, tiny_cfg, name, payload):
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(WeightsError):
        load_vgg_weights(path, tiny_cfg)


@pytest.mark.parametrize("obj", [{"a": 1}, [torch.rand(2)], {"x": torch.rand(2), "y": "str"}])
def test_non_tensor_pickles(tmp_path, tiny_cfg, obj):
    path = tmp_path / "obj.pth"
    torch.save(obj, path)
    with pytest.raises(WeightsError):
        load_vgg_weights(path, tiny_cfg)


def test_missing_file(tmp_path, tiny_cfg):
    with pytest.raises(WeightsError):
        load_vgg_weights(tmp_path / "missing.safetensors", tiny_cfg)
    with pytest.raises(WeightsError):
        load_vgg_weights(tmp_path, tiny_cfg)  # a directory


def test_bundled_vgg16():
    path = bundled_path(BUNDLED_VGG16)
    assert path.is_file()
    assert sha256_file(path) == BUNDLED_VGG16_SHA256
    state, convention = load_vgg_weights(None, VGG16)
    assert convention == "caffe_bgr255"
    assert len(state) == 16
    enc = VGGEncoder(VGG16)
    expected = {k: tuple(v.shape) for k, v in enc.convs.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in state.values())
    # Trained, not freshly initialised: conv1_1 filters differ strongly between output channels.
    assert float(state["conv1_1.weight"].flatten(1).norm(dim=1).std()) > 0.01


def test_bundled_vgg16_encodes_images():
    encoder = build_encoder(None, VGG16)
    assert encoder.convention == "caffe_bgr255"
    out = encoder(torch.rand(1, 3, 16, 16))
    assert out.taps[3].shape == (1, 512, 2, 2)
    assert all(torch.isfinite(t).all() and float(t.max()) > 0 for t in out.taps)


def test_checkpoint_round_trip(tmp_path):
    tensors = {
        "decoder.w": torch.randn(3, 4, requires_grad=True),
        "decoder.t": torch.randn(4, 3).T,  # non-contiguous
        "step": torch.tensor(7.0),
    }
    meta = {"format": "test", "config": {"a": [1, 2], "b": "x"}, "step": 3}
    path = tmp_path / "sub" / "ckpt.safetensors"
    save_checkpoint(path, tensors, meta)
    loaded, raw = load_checkpoint(path)
    assert sorted(loaded) == sorted(tensors)
    for k, v in tensors.items():
        assert torch.equal(loaded[k], v.detach())
    assert raw["format"] == "test"
    assert json.loads(raw["config"]) == {"a": [1, 2], "b": "x"}
    assert json.loads(raw["step"]) == 3


def test_failed_checkpoint_save_leaves_old_file(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, {"a": torch.ones(2)}, {"v": "1"})
    before = path.read_bytes()
    shared = torch.zeros(4)
    with pytest.raises(RuntimeError):  # safetensors refuses tensors that share memory
        save_checkpoint(path, {"a": shared, "b": shared}, {"v": "2"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]


def test_load_checkpoint_rejects_pth_and_missing(tmp_path: Path):
    pth = tmp_path / "ckpt.pth"
    torch.save({"a": torch.ones(2)}, pth)
    with pytest.raises(WeightsError):
        load_checkpoint(pth)
    with pytest.raises(WeightsError):
        load_checkpoint(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 40)
    with pytest.raises(WeightsError):
        load_checkpoint(bad)
