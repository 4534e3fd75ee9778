"""Tests of the FID InceptionV3 port: layout, key names of pytorch-fid, shapes, weight loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from photostyle.models.inception import (
    INCEPTION_WEIGHTS_ENV,
    INCEPTION_WEIGHTS_FILE,
    FIDInceptionV3,
    _avg_pool,
    find_inception_weights,
    load_inception,
)
from photostyle.models.weights import WeightsError


@pytest.fixture(scope="module")
def model() -> FIDInceptionV3:
    """Random weights, with BatchNorm statistics that keep activations of a useful size."""
    torch.manual_seed(0)
    net = FIDInceptionV3()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=g) * 0.5 + 0.5)
            elif name.endswith("conv.weight"):
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=g) * (2.0 / fan_in) ** 0.5)
    return net


def test_layout_matches_torchvision_inception3_body(model: FIDInceptionV3):
    # torchvision's inception_v3 has 27,161,264 parameters; without the auxiliary classifier
    # (3,326,696) and the 1000-class fc (2,049,000) that leaves 21,785,568.
    assert sum(p.numel() for p in model.parameters()) == 21_785_568
    state = model.state_dict()
    assert len(state) == 94 * 6  # 94 BasicConv2d: conv.weight + 5 BatchNorm tensors each
    assert all(not p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        ("Conv2d_1a_3x3.conv.weight", (32, 3, 3, 3)),
        ("Conv2d_4a_3x3.bn.running_mean", (192,)),
        ("Mixed_5b.branch5x5_1.conv.weight", (48, 192, 1, 1)),
        ("Mixed_5d.branch_pool.conv.weight", (64, 288, 1, 1)),
        ("Mixed_6a.branch3x3.conv.weight", (384, 288, 3, 3)),
        ("Mixed_6b.branch7x7_2.conv.weight", (128, 128, 1, 7)),
        ("Mixed_6e.branch7x7dbl_5.bn.bias", (192,)),
        ("Mixed_7a.branch7x7x3_4.conv.weight", (192, 192, 3, 3)),
        ("Mixed_7b.branch3x3_2b.conv.weight", (384, 384, 3, 1)),
        ("Mixed_7c.branch3x3dbl_1.conv.weight", (448, 2048, 1, 1)),
        ("Mixed_7c.branch_pool.bn.running_var", (192,)),
        ("Mixed_7c.branch_pool.bn.num_batches_tracked", ()),
    ],
)
def test_pytorch_fid_key_names(model: FIDInceptionV3, key: str, shape: tuple[int, ...]):
    assert tuple(model.state_dict()[key].shape) == shape


def test_no_classifier_or_aux_keys(model: FIDInceptionV3):
    keys = model.state_dict().keys()
    assert not any(k.startswith(("fc.", "AuxLogits.")) for k in keys)


def test_output_shapes_for_batches_and_resolutions(model: FIDInceptionV3):
    with torch.no_grad():
        resized = model(torch.rand(1, 3, 40, 52))  # resized to 299 first
        assert resized.shape == (1, 2048)
        model.resize_input = False
        try:
            assert model(torch.rand(2, 3, 75, 75)).shape == (2, 2048)
            out = model(torch.rand(3, 3, 80, 101))
            assert out.shape == (3, 2048)
            with pytest.raises(ValueError, match="75"):
                model(torch.rand(1, 3, 74, 90))
        finally:
            model.resize_input = True
    assert torch.isfinite(out).all() and (out >= 0).all()  # pooled ReLU outputs
    assert out.abs().max() > 1e-3  # the fixture's weights keep signals alive
    with pytest.raises(ValueError, match="RGB"):
        model(torch.rand(1, 1, 80, 80))


def test_resizes_to_299_like_pytorch_fid(model: FIDInceptionV3):
    x = torch.rand(1, 3, 60, 90, generator=torch.Generator().manual_seed(3))
    big = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    with torch.no_grad():
        a = model(x)
        model.resize_input = False
        try:
            b = model(big)
        finally:
            model.resize_input = True
    assert torch.equal(a, b)


def test_fid_pools(model: FIDInceptionV3):
    # FIDInceptionA/C/E_1 average without counting the zero padding: a constant stays constant.
    assert torch.equal(_avg_pool(torch.ones(1, 2, 4, 5)), torch.ones(1, 2, 4, 5))
    assert (model.Mixed_7b.pool, model.Mixed_7c.pool) == ("avg", "max")  # FIDInceptionE_1, _2


def test_stays_in_eval_mode(model: FIDInceptionV3):
    model.train()
    assert not model.training and not model.Mixed_5b.branch1x1.bn.training


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_safetensors_round_trip(model: FIDInceptionV3, tmp_path: Path):
    path = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    loaded = load_inception(path)
    assert _same_state(model, loaded)
    x = torch.rand(1, 3, 75, 75)
    model.resize_input = loaded.resize_input = False
    try:
        with torch.no_grad():
            assert torch.equal(model(x), loaded(x))
    finally:
        model.resize_input = True


def test_pth_with_classifier_loads_strict_and_bad_files_fail(model: FIDInceptionV3, tmp_path: Path):
    # pytorch-fid's file is the state dict of a torchvision Inception3 with a 1008-class fc.
    state = dict(model.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    path = tmp_path / INCEPTION_WEIGHTS_FILE
    torch.save(state, path)
    assert _same_state(model, load_inception(path))

    del state["Mixed_6c.branch7x7_2.conv.weight"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match="not pytorch-fid's InceptionV3"):
        load_inception(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="not a readable"):
        load_inception(tmp_path / "junk.pth")
    with pytest.raises(WeightsError, match="no such"):
        load_inception(tmp_path / "absent.pth")


def test_find_weights_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert find_inception_weights() is None
    cached = tmp_path / "torch" / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.touch()
    assert find_inception_weights() == cached
    env_file = tmp_path / "env.pth"
    env_file.touch()
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(env_file))
    assert find_inception_weights() == env_file
    given = tmp_path / "given.safetensors"
    given.touch()
    assert find_inception_weights(given) == given
    with pytest.raises(WeightsError, match="no such"):
        find_inception_weights(tmp_path / "nope.pth")
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "gone.pth"))
    with pytest.raises(WeightsError, match=INCEPTION_WEIGHTS_ENV):
        find_inception_weights()
