"""Tests of the FA decoder (paper Fig. 2, right half, and Sec. III-A)."""

from __future__ import annotations

import pytest
import torch

from photostyle.models.decoder import Decoder, residual_tail
from photostyle.models.encoder import VGG16, VGG19
from photostyle.models.layers import FA_VARIANTS


@pytest.fixture
def decoder(tiny_cfg) -> Decoder:
    torch.manual_seed(0)
    return Decoder(tiny_cfg)


@pytest.mark.parametrize("size", [(16, 16), (17, 23), (32, 40), (27, 18)])
def test_q_shapes_match_p_and_image_shape_matches_input(tiny_encoder, decoder, size):
    content = torch.rand(2, 3, *size)
    style = torch.rand(2, 3, 24, 20)
    enc_c, enc_s = tiny_encoder(content), tiny_encoder(style)
    out = decoder(enc_c, enc_s)
    assert len(out.q) == 3
    for q, p in zip(out.q, enc_c.pooled, strict=True):
        assert q.shape == p.shape
    assert out.image.shape == content.shape
    assert torch.isfinite(out.image).all()


@pytest.mark.parametrize("variant", FA_VARIANTS)
def test_style_of_another_size(tiny_encoder, decoder, variant):
    content, style = tiny_encoder(torch.rand(1, 3, 17, 23)), tiny_encoder(torch.rand(1, 3, 40, 32))
    out = decoder(content, style, variant=variant)
    assert out.image.shape == (1, 3, 17, 23)
    assert torch.isfinite(out.image).all()


def test_batch_mismatch_is_rejected(tiny_encoder, decoder):
    with pytest.raises(ValueError):
        decoder(tiny_encoder(torch.rand(2, 3, 16, 16)), tiny_encoder(torch.rand(1, 3, 16, 16)))


def test_variant_per_call_is_that_of_all_fa_layers(tiny_encoder, tiny_cfg, decoder):
    assert decoder.variant == "mean_std"
    assert len(decoder.fa) == 4
    built = Decoder(tiny_cfg, fa="wct")
    built.load_state_dict(decoder.state_dict())
    assert built.variant == "wct"
    assert [layer.variant for layer in built.fa] == ["wct"] * 4
    enc_c, enc_s = tiny_encoder(torch.rand(1, 3, 16, 16)), tiny_encoder(torch.rand(1, 3, 16, 16))
    per_call = decoder(enc_c, enc_s, variant="wct").image
    torch.testing.assert_close(per_call, built(enc_c, enc_s).image)
    assert decoder.variant == "mean_std"  # the decoder is not changed by the call


def test_variant_per_call_changes_the_output(tiny_encoder, decoder):
    torch.manual_seed(1)
    enc_c, enc_s = tiny_encoder(torch.rand(1, 3, 16, 16)), tiny_encoder(torch.rand(1, 3, 16, 16))
    a = decoder(enc_c, enc_s).image
    b = decoder(enc_c, enc_s, variant="paper").image
    assert not torch.allclose(a, b)


def test_paper_variant_ignores_the_style(tiny_encoder, tiny_cfg):
    torch.manual_seed(2)
    decoder = Decoder(tiny_cfg, fa="paper")
    enc_c = tiny_encoder(torch.rand(1, 3, 24, 24))
    a = decoder(enc_c, tiny_encoder(torch.rand(1, 3, 24, 24)))
    b = decoder(enc_c, tiny_encoder(torch.rand(1, 3, 32, 16) * 0.3 + 0.6))
    torch.testing.assert_close(a.image, b.image, atol=1e-5, rtol=1e-5)
    for qa, qb in zip(a.q, b.q, strict=True):
        torch.testing.assert_close(qa, qb, atol=1e-5, rtol=1e-5)


def test_mean_std_output_depends_on_the_style(tiny_encoder, decoder):
    torch.manual_seed(3)
    enc_c = tiny_encoder(torch.rand(1, 3, 24, 24))
    a = decoder(enc_c, tiny_encoder(torch.rand(1, 3, 24, 24))).image
    b = decoder(enc_c, tiny_encoder(torch.rand(1, 3, 24, 24) * 0.3 + 0.6)).image
    assert (a - b).abs().max() > 1e-3


def test_alpha_zero_ignores_the_style(tiny_encoder, decoder):
    torch.manual_seed(4)
    enc_c = tiny_encoder(torch.rand(1, 3, 16, 16))
    a = decoder(enc_c, tiny_encoder(torch.rand(1, 3, 16, 16)), alpha=0.0).image
    b = decoder(enc_c, tiny_encoder(torch.rand(1, 3, 20, 16)), alpha=0.0).image
    torch.testing.assert_close(a, b)


def test_labels_are_passed_to_the_fa_layers(tiny_encoder, decoder):
    torch.manual_seed(5)
    enc_c, enc_s = tiny_encoder(torch.rand(1, 3, 16, 16)), tiny_encoder(torch.rand(1, 3, 16, 16))
    cl = torch.zeros(1, 16, 16, dtype=torch.long)
    cl[..., 8:] = 1
    sl = cl.clone()
    plain = decoder(enc_c, enc_s).image
    masked = decoder(enc_c, enc_s, content_labels=cl, style_labels=sl).image
    assert masked.shape == plain.shape
    assert not torch.allclose(plain, masked)
    with pytest.raises(ValueError):
        decoder(enc_c, enc_s, content_labels=cl)


def test_gradients_reach_every_decoder_conv(tiny_encoder, decoder):
    out = decoder(tiny_encoder(torch.rand(1, 3, 16, 16)), tiny_encoder(torch.rand(1, 3, 16, 16)))
    (out.image.square().mean() + sum(q.square().mean() for q in out.q)).backward()
    for name, p in decoder.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


@pytest.mark.parametrize("cfg", [VGG16, VGG19])
def test_block4_has_conv_4_d2_shaped_like_conv_4_d1(cfg):
    decoder = Decoder(cfg)
    assert len(decoder.block4) == 2
    d1, d2 = decoder.block4
    assert d1.in_channels == cfg.widths[3]
    assert d2.out_channels == d1.out_channels == cfg.widths[2]
    assert d2.kernel_size == d1.kernel_size == (3, 3)
    assert d2.in_channels == d1.out_channels


def test_vgg16_decoder_mirrors_the_encoder():
    decoder = Decoder(VGG16)
    shapes = [
        [(c.in_channels, c.out_channels) for c in block]
        for block in (decoder.block3, decoder.block2, decoder.block1)
    ]
    assert shapes == [
        [(256, 256), (256, 256), (256, 128)],
        [(128, 128), (128, 64)],
        [(64, 64), (64, 3)],
    ]
    assert (
        sum(len(b) for b in (decoder.block4, decoder.block3, decoder.block2, decoder.block1)) == 9
    )


@pytest.mark.parametrize("variant", ["mean_std", "wct", "quantile"])
def test_feature_scale_is_a_change_of_units(tiny_encoder, tiny_cfg, variant):
    from photostyle.models.encoder import EncoderOutput

    k = 0.125
    torch.manual_seed(0)
    scaled = Decoder(tiny_cfg, variant, feature_scale=k)
    plain = Decoder(tiny_cfg, variant)
    plain.load_state_dict(scaled.state_dict())
    c, s = tiny_encoder(torch.rand(1, 3, 24, 32)), tiny_encoder(torch.rand(1, 3, 16, 16))

    def times(e: EncoderOutput, f: float) -> EncoderOutput:
        return EncoderOutput([t * f for t in e.taps], [t * f for t in e.pooled], e.indices, e.sizes)

    # Decoding f with scale k equals decoding k * f with scale 1; Q comes back in f's units.
    a = scaled(c, s)
    b = plain(times(c, k), times(s, k))
    torch.testing.assert_close(a.image, b.image, rtol=1e-4, atol=1e-5)
    for qa, qb in zip(a.q, b.q, strict=True):
        torch.testing.assert_close(qa * k, qb, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="feature_scale"):
        Decoder(tiny_cfg, variant, feature_scale=0.0)


def test_caffe_models_decode_at_torchvision_scale():
    from photostyle.models.encoder import FEATURE_SCALE, VGGEncoder
    from photostyle.models.stylizer import ModelConfig
    from photostyle.train.pipeline import TwoStageModel

    config = ModelConfig.for_arch("vgg16", convention="caffe_bgr255")
    model = TwoStageModel(config, VGGEncoder(VGG16, "caffe_bgr255"))
    assert model.u.feature_scale == model.v.feature_scale == FEATURE_SCALE["caffe_bgr255"]
    assert FEATURE_SCALE["caffe_bgr255"] == pytest.approx(1 / 57.63, rel=1e-3)
    assert FEATURE_SCALE["torch_rgb"] == 1.0


def test_residual_decoder_starts_at_the_image_level_fa(tiny_encoder, tiny_cfg):
    from photostyle.models.layers import feature_aggregation

    torch.manual_seed(0)
    dec = Decoder(tiny_cfg, "mean_std", residual=True)
    content, style = torch.rand(2, 3, 24, 16) * 0.5, torch.rand(2, 3, 16, 16) * 0.5 + 0.25
    c, s = tiny_encoder(content), tiny_encoder(style)
    out = dec(c, s, base=content, base_style=style)
    # The change starts at exactly zero: the output is the pixel-level FA (RGB mean/std transfer).
    expected = feature_aggregation(content, style, "mean_std").clamp(0, 1)
    torch.testing.assert_close(out.image, expected)
    mean_o, mean_s = out.image.mean(dim=(2, 3)), style.mean(dim=(2, 3))
    torch.testing.assert_close(mean_o, mean_s, atol=1e-3, rtol=0)  # the style's colour means
    assert [q.shape for q in out.q] == [p.shape for p in c.pooled]
    with pytest.raises(ValueError, match="base"):
        dec(c, s, base=content)
    # Once trained, the image is base + change: a hand-set last bias shifts every pixel.
    with torch.no_grad():
        dec.block1[-1].bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    shifted = dec(c, s, base=content, base_style=style).image
    delta = torch.tensor([0.1, -0.2, 0.3]).view(1, 3, 1, 1).expand_as(content)
    torch.testing.assert_close(shifted - expected, delta)
    # "paper" (Eq. (1) doubles its input) and "none" keep the content as the base.
    for variant in ("paper", "none"):
        torch.testing.assert_close(dec.image_base(content, style, variant=variant), content)


def test_residual_tail_is_the_base_plus_the_scaled_change():
    content, change = torch.rand(1, 3, 8, 10), torch.rand(1, 3, 8, 10) - 0.5
    seen: list[torch.Tensor] = []

    def image_fa(x: torch.Tensor) -> torch.Tensor:  # a base that leaves [0, 1]: it is clamped
        seen.append(x)
        return x * 2.0

    got = residual_tail(content, change, 0.5, "mean_std", image_fa)
    torch.testing.assert_close(got, (content * 2.0).clamp(0, 1) + 0.5 * change)
    assert len(seen) == 1 and seen[0] is content
    # Variants without an image-level form keep the content; image_fa is not called.
    got = residual_tail(content, change, torch.tensor(0.25), "paper", image_fa)
    torch.testing.assert_close(got, content + 0.25 * change)
    assert len(seen) == 1


def test_residual_stylizer_round_trips_its_config():
    from photostyle.models.stylizer import ModelConfig, PhotoStylizer

    config = ModelConfig.for_arch("vgg16", residual=True)
    assert ModelConfig.from_dict(config.to_dict()).residual is True
    assert (
        ModelConfig.from_dict(
            {k: v for k, v in config.to_dict().items() if k != "residual"}
        ).residual
        is False
    )
    model = PhotoStylizer(config)
    assert model.decoder.residual
