"""Tests of the inference API (photostyle.api) on a tiny stylizer checkpoint built in conftest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from photostyle.api import STAGES, StylizeOptions, Stylizer, check_output_path, working_size
from photostyle.io import ImageError, load_image, save_image
from photostyle.models.checkpoint import STYLIZER_FORMAT
from photostyle.models.layers import FA_VARIANTS
from photostyle.models.weights import WeightsError, load_checkpoint, save_checkpoint
from photostyle.upsample import UpsampleMethod


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def stylizer(tiny_stylizer_files: tuple[Path, Path]) -> Stylizer:
    weights, encoder = tiny_stylizer_files
    return Stylizer(weights, encoder_weights=encoder, device="cpu")


@pytest.fixture
def fake_forward(stylizer: Stylizer, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Replace the network by ``content + 0.25 * (channel - 1)`` and record the sizes it sees."""
    seen: list[tuple[int, ...]] = []

    def forward(content: torch.Tensor, style: torch.Tensor, **kwargs: object) -> SimpleNamespace:
        seen.append(tuple(content.shape))
        shift = torch.tensor([-0.25, 0.0, 0.25]).view(1, 3, 1, 1)
        return SimpleNamespace(image=content + shift)

    monkeypatch.setattr(stylizer.model, "forward", forward)
    return seen


def _rewrite(src: Path, dst: Path, **meta_updates: str) -> Path:
    tensors, meta = load_checkpoint(src)
    save_checkpoint(dst, tensors, {**meta, **meta_updates})
    return dst


# ---------------------------------------------------------------------------------------------
# Shapes, sizes, values
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("h", "w"), [(16, 16), (17, 23), (33, 64), (64, 31), (45, 45)])
def test_output_has_content_shape_and_range(stylizer: Stylizer, h: int, w: int) -> None:
    content, style = _rand(3, h, w, seed=h), _rand(3, 29, 37, seed=w)
    out = stylizer.stylize(content, style)
    assert out.shape == (3, h, w)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.allclose(out, content, atol=0.05)  # it did something


@pytest.mark.parametrize(("h", "w"), [(61, 47), (40, 90)])
def test_small_max_size_still_returns_full_size(stylizer: Stylizer, h: int, w: int) -> None:
    out = stylizer.stylize(
        _rand(3, h, w), _rand(3, 70, 50, seed=1), options=StylizeOptions(max_size=24)
    )
    assert out.shape == (3, h, w)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_working_size() -> None:
    assert working_size(100, 50, 1024) == (100, 50)  # never upscaled
    assert working_size(2000, 1000, 1000) == (1000, 500)
    assert working_size(1000, 3000, 300) == (100, 300)
    assert working_size(40, 4000, 100) == (16, 100)  # at least 16 px for the encoder


@pytest.mark.parametrize("upsample", ["guided", "change"])
def test_full_size_is_content_plus_upsampled_change(
    stylizer: Stylizer, fake_forward: list[tuple[int, ...]], upsample: UpsampleMethod
) -> None:
    # Content with single-pixel detail that a 20 px working size cannot carry.
    content = _rand(3, 64, 80, seed=3).clamp(0.3, 0.7)
    options = StylizeOptions(max_size=20, upsample=upsample)
    out = stylizer.stylize(content, _rand(3, 30, 30), options=options)
    assert fake_forward[0] == (1, 3, 16, 20)  # the network ran at the working size
    # The change is the same constant everywhere, so content + upsampled change is exact:
    # every full-resolution detail of the content survives.
    expected = content + torch.tensor([-0.25, 0.0, 0.25]).view(3, 1, 1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_no_change_returns_the_content_exactly(
    stylizer: Stylizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        stylizer.model, "forward", lambda c, s, **kw: SimpleNamespace(image=c.clone())
    )
    content = _rand(3, 37, 50, seed=4)
    for max_size in (16, 23, 1024):
        for upsample in ("guided", "change"):  # bicubic drops the detail (tests/test_upsample.py)
            options = StylizeOptions(max_size=max_size, upsample=upsample)
            out = stylizer.stylize(content, _rand(3, 20, 20), options=options)
            torch.testing.assert_close(out, content, atol=1e-5, rtol=0)


def test_real_network_change_is_smooth_at_small_working_size(stylizer: Stylizer) -> None:
    # With a 16 px working size the change (result - content) comes from a 16x16 map brought up
    # bilinearly: neighbouring pixels differ far less than the random content does.
    content = _rand(3, 64, 64, seed=5).clamp(0.2, 0.8)
    options = StylizeOptions(max_size=16, upsample="change")
    out = stylizer.stylize(content, _rand(3, 32, 32, seed=6), options=options)
    change = out - content
    unclamped = (out > 0) & (out < 1)
    jump_change = (change[:, :, 1:] - change[:, :, :-1]).abs()[
        unclamped[:, :, 1:] & unclamped[:, :, :-1]
    ]
    jump_content = (content[:, :, 1:] - content[:, :, :-1]).abs()
    assert float(jump_change.mean()) < 0.2 * float(jump_content.mean())


def test_input_checks(stylizer: Stylizer) -> None:
    c, s = _rand(3, 20, 20), _rand(3, 20, 20)
    with pytest.raises(ValueError, match="content"):
        stylizer.stylize(c[0], s)
    with pytest.raises(ValueError, match="style"):
        stylizer.stylize(c, _rand(4, 20, 20))
    with pytest.raises(ValueError, match="floating"):
        stylizer.stylize((c * 255).to(torch.uint8), s)


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_outside_unit_interval_raises(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        StylizeOptions(alpha=alpha)


def test_bad_options_raise(tiny_stylizer_files: tuple[Path, Path]) -> None:
    weights, encoder = tiny_stylizer_files
    with pytest.raises(ValueError, match="max_size"):
        StylizeOptions(max_size=15)
    with pytest.raises(ValueError, match="FA variant"):
        StylizeOptions(fa="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="FA variant"):
        Stylizer(weights, encoder_weights=encoder, fa="bogus")  # type: ignore[arg-type]


def test_alpha_zero_and_one_differ(stylizer: Stylizer) -> None:
    c, s = _rand(3, 32, 32), _rand(3, 32, 32, seed=1)
    out0 = stylizer.stylize(c, s, options=StylizeOptions(alpha=0.0))
    out1 = stylizer.stylize(c, s, options=StylizeOptions(alpha=1.0))
    assert not torch.allclose(out0, out1, atol=1e-3)


@pytest.mark.parametrize("variant", FA_VARIANTS)
def test_each_fa_variant_runs(stylizer: Stylizer, variant: str) -> None:
    c, s = _rand(3, 24, 40), _rand(3, 32, 32, seed=1)
    out = stylizer.stylize(c, s, options=StylizeOptions(fa=variant))  # type: ignore[arg-type]
    assert out.shape == (3, 24, 40)
    assert torch.isfinite(out).all()
    other_style = stylizer.stylize(c, s * 0.3, options=StylizeOptions(fa=variant))  # type: ignore[arg-type]
    # Literal Eq. (1) returns 2x and "none" returns x: the style never reaches the output.
    assert torch.allclose(out, other_style) == (variant in ("paper", "none"))


def test_fa_override_is_per_call(stylizer: Stylizer) -> None:
    c, s = _rand(3, 32, 32), _rand(3, 32, 32, seed=1)
    default = stylizer.config.fa
    before = stylizer.stylize(c, s)
    wct = stylizer.stylize(c, s, options=StylizeOptions(fa="wct"))
    assert not torch.allclose(before, wct)
    assert stylizer.model.decoder.variant == default
    assert torch.equal(stylizer.stylize(c, s), before)


def test_fa_restored_after_a_failure(stylizer: Stylizer, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(stylizer.model, "forward", boom)
    with pytest.raises(RuntimeError):
        stylizer.stylize(_rand(3, 16, 16), _rand(3, 16, 16), options=StylizeOptions(fa="quantile"))
    assert stylizer.model.decoder.variant == stylizer.config.fa


def test_stylizer_default_fa(tiny_stylizer_files: tuple[Path, Path]) -> None:
    weights, encoder = tiny_stylizer_files
    s = Stylizer(weights, encoder_weights=encoder, device="cpu", fa="wct")
    assert s.config.fa == "wct" and s.model.decoder.variant == "wct"
    c, st = _rand(3, 32, 32), _rand(3, 32, 32, seed=1)
    base = Stylizer(weights, encoder_weights=encoder, device="cpu")
    assert torch.equal(s.stylize(c, st), base.stylize(c, st, options=StylizeOptions(fa="wct")))


# ---------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------


def _labels(h: int, w: int) -> torch.Tensor:
    labels = torch.zeros(h, w, dtype=torch.int64)
    labels[:, w // 2 :] = 1
    return labels


def test_masks_change_the_result(stylizer: Stylizer) -> None:
    c, s = _rand(3, 40, 48), _rand(3, 36, 30, seed=1)
    masked = stylizer.stylize(c, s, content_mask=_labels(40, 48), style_mask=_labels(36, 30))
    assert masked.shape == (3, 40, 48)
    assert not torch.allclose(masked, stylizer.stylize(c, s), atol=1e-3)
    small = stylizer.stylize(
        c,
        s,
        content_mask=_labels(40, 48),
        style_mask=_labels(36, 30),
        options=StylizeOptions(max_size=20),
    )
    assert small.shape == (3, 40, 48)


def test_mask_errors(stylizer: Stylizer) -> None:
    c, s = _rand(3, 40, 48), _rand(3, 36, 30, seed=1)
    with pytest.raises(ValueError, match="content mask size"):
        stylizer.stylize(c, s, content_mask=_labels(40, 47), style_mask=_labels(36, 30))
    with pytest.raises(ValueError, match="style mask size"):
        stylizer.stylize(c, s, content_mask=_labels(40, 48), style_mask=_labels(30, 36))
    with pytest.raises(ValueError, match="both"):
        stylizer.stylize(c, s, content_mask=_labels(40, 48))
    with pytest.raises(ValueError, match="both"):
        stylizer.stylize(c, s, style_mask=_labels(36, 30))


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def test_checkpoint_metadata(stylizer: Stylizer) -> None:
    assert stylizer.meta["format"] == STYLIZER_FORMAT
    assert stylizer.config.arch == "custom"
    assert stylizer.config.widths == (4, 8, 8, 16)


def test_decoder_of_another_architecture(
    tmp_path: Path, tiny_stylizer_files: tuple[Path, Path]
) -> None:
    weights, encoder = tiny_stylizer_files
    tensors, meta = load_checkpoint(weights)
    tensors["decoder.block4.0.weight"] = torch.zeros(4, 16, 3, 3)  # 16 -> 4 instead of 16 -> 8
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, tensors, meta)
    with pytest.raises(WeightsError, match="do not fit a custom stylizer") as info:
        Stylizer(other, encoder_weights=encoder, device="cpu")
    assert "\n" not in str(info.value)


def test_config_of_another_architecture(
    tmp_path: Path, tiny_stylizer_files: tuple[Path, Path]
) -> None:
    weights, encoder = tiny_stylizer_files
    config = json.loads(load_checkpoint(weights)[1]["model_config"])
    wider = _rewrite(
        weights,
        tmp_path / "wider.safetensors",
        model_config=json.dumps({**config, "widths": [8, 8, 8, 16]}),
    )
    with pytest.raises(WeightsError, match="encoder weights") as info:
        Stylizer(wider, encoder_weights=encoder, device="cpu")
    assert "\n" not in str(info.value)
    assert str(wider) in str(info.value)


def test_trained_with_other_encoder_needs_it(
    tmp_path: Path, tiny_stylizer_files: tuple[Path, Path]
) -> None:
    weights, _ = tiny_stylizer_files
    with pytest.raises(WeightsError, match="encoder_weights") as info:
        Stylizer(weights, device="cpu")
    assert "\n" not in str(info.value)
    config = json.loads(load_checkpoint(weights)[1]["model_config"])
    no_sha = _rewrite(
        weights,
        tmp_path / "nosha.safetensors",
        model_config=json.dumps({**config, "encoder_sha256": ""}),
    )
    with pytest.raises(WeightsError, match="bundled VGG16") as info:  # the bundled one does not fit
        Stylizer(no_sha, device="cpu")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "model_config",
    ["{not json", "[1, 2]", '{"widths": [4, 8]}', '{"fa": "bogus"}', '{"depths": [0, 1, 2, 1]}'],
)
def test_unreadable_model_config(
    tmp_path: Path, tiny_stylizer_files: tuple[Path, Path], model_config: str
) -> None:
    weights, encoder = tiny_stylizer_files
    bad = _rewrite(weights, tmp_path / "bad.safetensors", model_config=model_config)
    with pytest.raises(WeightsError, match="model config"):
        Stylizer(bad, encoder_weights=encoder, device="cpu")


def test_non_stylizer_files(tmp_path: Path, tiny_stylizer_files: tuple[Path, Path]) -> None:
    _, encoder = tiny_stylizer_files
    with pytest.raises(WeightsError, match="not a photostyle stylizer"):
        Stylizer(encoder, encoder_weights=encoder, device="cpu")  # VGG weights, not a stylizer
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00garbage" * 8)
    pth = tmp_path / "model.pth"
    torch.save({"a": torch.ones(1)}, pth)
    for path in (garbage, pth, tmp_path / "missing.safetensors"):
        with pytest.raises(WeightsError) as info:
            Stylizer(path, encoder_weights=encoder, device="cpu")
        assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path: Path, write_png) -> tuple[Path, Path]:
    return write_png(tmp_path / "c.png", 30, 40, seed=1), write_png(
        tmp_path / "s.png", 20, 20, seed=2
    )


def test_stylize_files_writes_the_result(stylizer: Stylizer, photos: tuple[Path, Path]) -> None:
    content, style = photos
    out = stylizer.stylize_files(content, style, content.parent / "out" / "r.png")
    assert out == content.parent / "out" / "r.png"
    expected = stylizer.stylize(load_image(content), load_image(style))
    torch.testing.assert_close(load_image(out), expected, atol=0.5 / 255 + 1e-6, rtol=0)
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.png"]  # no temporary files left


@pytest.mark.parametrize("target", ["content", "style", "dotted", "protected"])
def test_stylize_files_never_writes_onto_an_input(
    stylizer: Stylizer,
    photos: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    target: str,
) -> None:
    content, style = photos
    extra = content.parent / "keep.png"
    extra.write_bytes(content.read_bytes())
    out = {
        "content": content,
        "style": style,
        "dotted": content.parent / "." / "sub" / ".." / "c.png",
        "protected": extra,
    }[target]
    before = {p: p.read_bytes() for p in (content, style, extra)}

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("stylized before checking the output path")

    monkeypatch.setattr(stylizer, "stylize", no_work)
    (content.parent / "sub").mkdir()
    with pytest.raises(ImageError, match="refusing to overwrite"):
        stylizer.stylize_files(content, style, out, protect=[extra])
    assert {p: p.read_bytes() for p in before} == before


def test_stylize_files_failure_leaves_existing_output(
    stylizer: Stylizer, photos: tuple[Path, Path]
) -> None:
    content, _ = photos
    bad_style = content.parent / "bad.png"
    bad_style.write_bytes(content.read_bytes()[:100])  # truncated PNG
    out = content.parent / "out.png"
    save_image(torch.zeros(3, 16, 16), out)
    before = out.read_bytes()
    names = sorted(p.name for p in content.parent.iterdir())
    with pytest.raises(ImageError, match=r"bad\.png"):
        stylizer.stylize_files(content, bad_style, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in content.parent.iterdir()) == names


def test_stylize_files_checks_output_before_work(
    stylizer: Stylizer, photos: tuple[Path, Path]
) -> None:
    content, style = photos
    with pytest.raises(ImageError, match="unsupported output format"):
        stylizer.stylize_files(content, style, content.parent / "out.gif")
    (content.parent / "dir.png").mkdir()
    with pytest.raises(ImageError, match="is a directory"):
        stylizer.stylize_files(content, style, content.parent / "dir.png")
    assert not (content.parent / "out.gif").exists()
    assert (
        check_output_path(content.parent / "new.JPG", protect=[content])
        == content.parent / "new.JPG"
    )


def test_stylize_files_masks(stylizer: Stylizer, photos: tuple[Path, Path], tmp_path: Path) -> None:
    from PIL import Image

    content, style = photos
    cm, sm = tmp_path / "cm.png", tmp_path / "sm.png"
    Image.new("RGB", (40, 30), (0, 0, 255)).save(cm)
    Image.new("RGB", (20, 20), (0, 0, 255)).save(sm)
    out = stylizer.stylize_files(content, style, tmp_path / "m.png", content_mask=cm, style_mask=sm)
    assert load_image(out).shape == (3, 30, 40)
    with pytest.raises(ValueError, match="both"):
        stylizer.stylize_files(content, style, tmp_path / "m2.png", content_mask=cm)
    assert not (tmp_path / "m2.png").exists()


def test_bfloat16_network_keeps_float32_io(tiny_stylizer_files: tuple[Path, Path]) -> None:
    weights, encoder = tiny_stylizer_files
    f32 = Stylizer(weights, encoder_weights=encoder, device="cpu")
    bf16 = Stylizer(weights, encoder_weights=encoder, device="cpu", dtype=torch.bfloat16)
    content, style = _rand(3, 40, 52, seed=7), _rand(3, 30, 30, seed=8)
    options = StylizeOptions(max_size=20)
    a = f32.stylize(content, style, options=options)
    b = bf16.stylize(content, style, options=options)
    assert b.dtype == torch.float32 and b.shape == a.shape
    diff = (a - b).abs()
    assert 0 < float(diff.mean()) < 0.03  # bfloat16 rounding (8-bit mantissa), nothing worse


def test_channels_last_gives_the_same_result(tiny_stylizer_files: tuple[Path, Path]) -> None:
    weights, encoder = tiny_stylizer_files
    nhwc = Stylizer(weights, encoder_weights=encoder, device="cpu")
    nchw = Stylizer(weights, encoder_weights=encoder, device="cpu", channels_last=False)
    assert nhwc.memory_format == torch.channels_last
    conv = next(m for m in nhwc.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    content, style = _rand(3, 40, 52, seed=9), _rand(3, 30, 30, seed=10)
    torch.testing.assert_close(nhwc.stylize(content, style), nchw.stylize(content, style))


# ---------------------------------------------------------------------------------------------
# Per-stage timing hook (photostyle bench --profile)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_affine_weights(make_affine_weights: Callable[..., Path], tmp_path: Path) -> Path:
    """A tiny affine-head stylizer (spatial residual) with its own working size, 24."""
    return make_affine_weights(tmp_path / "affine_tiny.safetensors", working_size=24)


def test_curves_model_refines_by_default_and_on_request(
    tiny_stylizer_files: tuple[Path, Path], make_affine_weights: Callable[..., Path], tmp_path: Path
) -> None:
    path = make_affine_weights(
        tmp_path / "curves.safetensors",
        grid_residual="curves",
        base_power=0.0,
        refine_steps=2,
    )
    stylizer = Stylizer(path, encoder_weights=tiny_stylizer_files[1], device="cpu")
    assert stylizer.resolve_options().refine == 2
    content, style = _rand(3, 40, 48, seed=21) * 0.2 + 0.4, _rand(3, 30, 30, seed=22)
    default = stylizer.stylize(content, style)
    torch.testing.assert_close(
        default, stylizer.stylize(content, style, options=StylizeOptions(refine=2))
    )
    one_pass = stylizer.stylize(content, style, options=StylizeOptions(refine=0))
    assert not torch.allclose(default, one_pass, atol=1e-4)  # the grade moved


def test_refine_needs_the_curves_head(tiny_stylizer_files: tuple[Path, Path]) -> None:
    stylizer = Stylizer(
        tiny_stylizer_files[0], encoder_weights=tiny_stylizer_files[1], device="cpu"
    )
    with pytest.raises(ValueError, match="curves"):
        stylizer.stylize(
            _rand(3, 20, 20, seed=1), _rand(3, 20, 20, seed=2), options=StylizeOptions(refine=1)
        )
    assert stylizer.resolve_options(StylizeOptions(refine=0)).refine == 0  # 0 is always fine
    with pytest.raises(ValueError, match="refine"):
        StylizeOptions(refine=-1)


def test_refine_on_the_affine_head_without_curves_is_refused_where_options_resolve(
    tiny_stylizer_files: tuple[Path, Path], tiny_affine_weights: Path
) -> None:
    # resolve_options owns the refusal; the backend refines whatever steps reach it.
    spatial = Stylizer(tiny_affine_weights, encoder_weights=tiny_stylizer_files[1], device="cpu")
    assert spatial.config.grid_residual == "spatial"
    content, style = _rand(3, 20, 24, seed=3), _rand(3, 20, 20, seed=4)
    message = "refine needs a model with the affine head's curves residual"
    with pytest.raises(ValueError, match=message):
        spatial.stylize(content, style, options=StylizeOptions(refine=1))
    one_pass = spatial.stylize(content, style, options=StylizeOptions(refine=0))
    torch.testing.assert_close(spatial.stylize(content, style), one_pass)  # default: no steps


@pytest.mark.parametrize("head", ["decoder", "affine"])
def test_stage_hook_reports_every_stage_and_changes_nothing(
    tiny_stylizer_files: tuple[Path, Path], tiny_affine_weights: Path, head: str
) -> None:
    weights = tiny_stylizer_files[0] if head == "decoder" else tiny_affine_weights
    stylizer = Stylizer(weights, encoder_weights=tiny_stylizer_files[1], device="cpu")
    content, style = _rand(3, 48, 64, seed=11), _rand(3, 30, 40, seed=12)
    options = StylizeOptions(max_size=32)
    stages: list[tuple[str, float]] = []
    timed = stylizer.stylize(content, style, options=options, on_stage=lambda *s: stages.append(s))
    plain = stylizer.stylize(content, style, options=options)
    torch.testing.assert_close(timed, plain)
    assert {name for name, _ in stages} == set(STAGES)
    assert all(seconds >= 0 for _, seconds in stages)


def test_default_working_size_is_the_models_own(
    tiny_stylizer_files: tuple[Path, Path], tiny_affine_weights: Path
) -> None:
    stylizer = Stylizer(tiny_affine_weights, encoder_weights=tiny_stylizer_files[1], device="cpu")
    assert stylizer.config.working_size == 24
    assert stylizer.resolve_options().max_size == 24
    assert stylizer.resolve_options(StylizeOptions(max_size=40, alpha=0.5)).max_size == 40
    content, style = _rand(3, 48, 64, seed=13), _rand(3, 30, 40, seed=14)
    default = stylizer.stylize(content, style)
    at_24 = stylizer.stylize(content, style, options=StylizeOptions(max_size=24))
    at_48 = stylizer.stylize(content, style, options=StylizeOptions(max_size=48))
    torch.testing.assert_close(default, at_24)
    assert not torch.allclose(default, at_48, atol=1e-4)


@pytest.mark.cuda
@pytest.mark.parametrize("head", ["decoder", "affine"])
def test_cuda_result_matches_the_cpu_and_the_hook_times_it(
    tiny_stylizer_files: tuple[Path, Path], tiny_affine_weights: Path, head: str
) -> None:
    weights = tiny_stylizer_files[0] if head == "decoder" else tiny_affine_weights
    encoder = tiny_stylizer_files[1]
    content, style = _rand(3, 96, 128, seed=13), _rand(3, 40, 60, seed=14)
    options = StylizeOptions(max_size=48)
    cpu = Stylizer(weights, encoder_weights=encoder, device="cpu").stylize(
        content, style, options=options
    )
    gpu = Stylizer(weights, encoder_weights=encoder, device="cuda")
    stages: list[str] = []
    out = gpu.stylize(content, style, options=options, on_stage=lambda n, s: stages.append(n))
    assert out.device.type == "cpu" and out.shape == cpu.shape
    torch.testing.assert_close(out, cpu, atol=1e-3, rtol=0)  # TF32/cuDNN rounding only
    assert set(stages) == set(STAGES)
    bf16 = Stylizer(weights, encoder_weights=encoder, device="cuda", dtype=torch.bfloat16)
    assert float((bf16.stylize(content, style, options=options) - cpu).abs().mean()) < 0.03


def test_fa_option_is_passed_per_call_not_set_on_the_model(
    tiny_stylizer_files: tuple[Path, Path],
) -> None:
    stylizer = Stylizer(
        tiny_stylizer_files[0], encoder_weights=tiny_stylizer_files[1], device="cpu"
    )
    decoder = stylizer.model.pixel_decoder
    before = decoder.variant
    assert before != "wct"
    content, style = _rand(3, 40, 48, seed=31), _rand(3, 30, 30, seed=32)
    per_call = stylizer.stylize(content, style, options=StylizeOptions(fa="wct", max_size=32))
    assert decoder.variant == before  # the shared module is not switched around the call
    default = stylizer.stylize(content, style, options=StylizeOptions(max_size=32))
    assert not torch.allclose(per_call, default, atol=1e-4)
    # The model's per-call variant is the variant of a model whose FA layers are built with it.
    built = Stylizer(
        tiny_stylizer_files[0], encoder_weights=tiny_stylizer_files[1], device="cpu", fa="wct"
    )
    assert built.model.pixel_decoder.variant == "wct"
    c, s = content[None], style[None]
    with torch.no_grad():
        given = stylizer.model(c, s, variant="wct").image
        switched = built.model(c, s).image
    torch.testing.assert_close(given, switched)


@pytest.mark.parametrize("units", [True, False])
def test_auto_dtype_follows_the_cpu_and_the_head(
    tiny_stylizer_files: tuple[Path, Path],
    tiny_affine_weights: Path,
    monkeypatch: pytest.MonkeyPatch,
    units: bool,
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: units)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    encoder = tiny_stylizer_files[1]
    affine = Stylizer(tiny_affine_weights, encoder_weights=encoder, device="cpu", dtype="auto")
    assert affine.dtype == (torch.bfloat16 if units else torch.float32)
    assert next(affine.model.parameters()).dtype == affine.dtype
    out = affine.stylize(torch.rand(3, 40, 56), torch.rand(3, 32, 32))
    assert out.dtype == torch.float32 and out.shape == (3, 40, 56)
    decoder = Stylizer(tiny_stylizer_files[0], encoder_weights=encoder, device="cpu", dtype="auto")
    assert decoder.dtype == torch.float32  # the pixel decoder: not measured faster
