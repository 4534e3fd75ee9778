"""Tests of the fixed VGG encoder (paper Fig. 2, left half)."""

from __future__ import annotations

import pytest
import torch

from photostyle.models.encoder import (
    CAFFE_MEAN_BGR,
    TORCH_MEAN_RGB,
    TORCH_STD_RGB,
    VGG16,
    VGG19,
    VGGEncoder,
    normalize_input,
)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("size", [(16, 16), (17, 23), (32, 40), (35, 19)])
def test_output_shapes(tiny_encoder, tiny_cfg, batch, size):
    h, w = size
    out = tiny_encoder(torch.rand(batch, 3, h, w))
    widths = tiny_cfg.widths
    # Spatial sizes before each tap: max-pool floors odd sizes.
    spatial = [(h, w)]
    for _ in range(3):
        spatial.append((spatial[-1][0] // 2, spatial[-1][1] // 2))
    assert len(out.taps) == 4 and len(out.pooled) == 3 and len(out.indices) == 3
    for b in range(4):
        assert out.taps[b].shape == (batch, widths[b], *spatial[b])
    for i in range(3):
        assert out.pooled[i].shape == (batch, widths[i], *spatial[i + 1])
        assert out.indices[i].shape == out.pooled[i].shape
        assert out.indices[i].dtype == torch.int64
    assert out.sizes == spatial[:3]
    assert tiny_encoder.taps(torch.rand(batch, 3, h, w))[3].shape == out.taps[3].shape


def test_pooled_are_max_pools_of_taps(tiny_encoder):
    out = tiny_encoder(torch.rand(2, 3, 17, 23))
    # P^1 is the max-pool of relu1_1 (block 1 has one conv in the tiny layout).
    expected = torch.nn.functional.max_pool2d(out.taps[0], 2, 2)
    torch.testing.assert_close(out.pooled[0], expected)
    # Indices point at the max values of the pre-pool map.
    flat = out.taps[0].flatten(2)
    gathered = flat.gather(2, out.indices[0].flatten(2)).view_as(out.pooled[0])
    torch.testing.assert_close(gathered, out.pooled[0])


def test_taps_are_non_negative_relu_outputs(tiny_encoder):
    out = tiny_encoder(torch.rand(1, 3, 16, 20))
    assert all(bool((t >= 0).all()) for t in out.taps)
    assert any(bool((t > 0).any()) for t in out.taps)


def test_normalize_caffe_bgr255_one_pixel():
    r, g, b = 0.2, 0.5, 0.9
    x = torch.tensor([r, g, b]).view(1, 3, 1, 1)
    y = normalize_input(x, "caffe_bgr255").flatten().tolist()
    expected = [
        b * 255 - CAFFE_MEAN_BGR[0],
        g * 255 - CAFFE_MEAN_BGR[1],
        r * 255 - CAFFE_MEAN_BGR[2],
    ]
    assert y == pytest.approx(expected, abs=1e-4)
    # Hand-computed numbers: B = 0.9*255 - 103.939 = 125.561, G = 127.5 - 116.779, R = 51 - 123.68.
    assert y == pytest.approx([125.561, 10.721, -72.68], abs=1e-3)


def test_normalize_torch_rgb_one_pixel():
    rgb = (0.2, 0.5, 0.9)
    x = torch.tensor(rgb).view(1, 3, 1, 1)
    y = normalize_input(x, "torch_rgb").flatten().tolist()
    expected = [(v - m) / s for v, m, s in zip(rgb, TORCH_MEAN_RGB, TORCH_STD_RGB, strict=True)]
    assert y == pytest.approx(expected, abs=1e-5)
    assert y[0] == pytest.approx((0.2 - 0.485) / 0.229, abs=1e-5)


def test_normalize_unknown_convention():
    with pytest.raises(ValueError):
        normalize_input(torch.rand(1, 3, 2, 2), "bgr")  # type: ignore[arg-type]


def test_convention_changes_features(make_encoder):
    x = torch.rand(1, 3, 16, 16)
    a = make_encoder(seed=3, convention="torch_rgb")(x).taps[0]
    b = make_encoder(seed=3, convention="caffe_bgr255")(x).taps[0]
    assert not torch.allclose(a, b)


@pytest.mark.parametrize(
    "shape", [(3, 16, 16), (1, 1, 16, 16), (1, 4, 16, 16), (2, 3, 16), (1, 1, 3, 16, 16)]
)
def test_rejects_non_rgb_batches(tiny_encoder, shape):
    with pytest.raises(ValueError):
        tiny_encoder(torch.rand(*shape))


@pytest.mark.parametrize("size", [(7, 32), (32, 7), (4, 4)])
def test_rejects_too_small(tiny_encoder, size):
    with pytest.raises(ValueError):
        tiny_encoder(torch.rand(1, 3, *size))


@pytest.mark.parametrize("size", [(8, 8), (15, 20), (20, 15)])
def test_sides_below_16_are_rejected_cleanly(tiny_encoder, size):
    with pytest.raises(ValueError, match="too small"):
        tiny_encoder(torch.rand(1, 3, *size))


@pytest.mark.parametrize("size", [(16, 16), (17, 23), (31, 16)])
def test_smallest_sizes_encode(tiny_encoder, size):
    out = tiny_encoder(torch.rand(1, 3, *size))
    assert out.taps[3].shape[-2:] == (size[0] // 8, size[1] // 8)


def test_encoder_is_frozen_and_stays_in_eval(tiny_encoder):
    params = list(tiny_encoder.parameters())
    assert params and all(not p.requires_grad for p in params)
    assert not tiny_encoder.training
    tiny_encoder.train()
    assert not tiny_encoder.training
    assert all(not m.training for m in tiny_encoder.modules())
    # Also when a parent module is put in train mode.
    parent = torch.nn.Sequential(tiny_encoder)
    parent.train()
    assert parent.training and not tiny_encoder.training


def test_gradient_flows_to_input_not_weights(tiny_encoder):
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    tiny_encoder(x).taps[3].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in tiny_encoder.parameters())


def test_vgg16_torchvision_keys():
    keys = VGG16.torchvision_keys()
    assert keys == {
        "conv1_1": "features.0",
        "conv1_2": "features.2",
        "conv2_1": "features.5",
        "conv2_2": "features.7",
        "conv3_1": "features.10",
        "conv3_2": "features.12",
        "conv3_3": "features.14",
        "conv4_1": "features.17",
    }


def test_vgg19_torchvision_keys():
    keys = VGG19.torchvision_keys()
    assert list(keys) == VGG19.conv_names()
    assert keys["conv1_1"] == "features.0"
    assert keys["conv2_1"] == "features.5"
    assert keys["conv3_1"] == "features.10"
    assert keys["conv3_4"] == "features.16"
    assert keys["conv4_1"] == "features.19"
    assert len(keys) == 9


def test_conv_names_and_layer_shapes():
    assert VGG16.conv_names() == [
        "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1",
    ]  # fmt: skip
    enc = VGGEncoder(VGG16)
    shapes = {name: tuple(conv.weight.shape) for name, conv in enc.convs.items()}
    assert shapes["conv1_1"] == (64, 3, 3, 3)
    assert shapes["conv2_1"] == (128, 64, 3, 3)
    assert shapes["conv3_3"] == (256, 256, 3, 3)
    assert shapes["conv4_1"] == (512, 256, 3, 3)


@pytest.mark.parametrize("levels", [1, 2, 3, 4])
def test_first_taps_are_the_forward_taps_and_skip_deeper_layers(tiny_encoder, levels):
    x = torch.rand(1, 3, 32, 24)
    full = tiny_encoder(x).taps
    first = tiny_encoder.first_taps(x, levels)
    assert len(first) == levels
    for a, b in zip(first, full, strict=False):
        torch.testing.assert_close(a, b)
    convs = dict(tiny_encoder.convs.items())
    deeper = [
        m
        for name, m in convs.items()
        if int(name[4]) > levels or (int(name[4]) == levels and not name.endswith("_1"))
    ]
    with torch.no_grad():
        for m in deeper:  # layers past relu{levels}_1 must not be run
            m.weight.fill_(float("nan"))
    assert all(torch.isfinite(t).all() for t in tiny_encoder.first_taps(x, levels))


def test_first_taps_checks_levels(tiny_encoder):
    with pytest.raises(ValueError, match="levels must be in"):
        tiny_encoder.first_taps(torch.rand(1, 3, 32, 32), 5)
