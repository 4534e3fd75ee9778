"""Tests of the one stylize path (photostyle.inference): working size -> network -> full size."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from photostyle.api import StylizeOptions, Stylizer
from photostyle.deploy.onnx import OnnxNetwork
from photostyle.inference import (
    STAGES,
    NetworkBackend,
    NetworkOutput,
    TorchBackend,
    WorkingStyle,
    resolve_options,
    stylize_photo,
    timed_stage,
    to_full_size,
    to_working_size,
    working_style,
)
from photostyle.models.encoder import VGGEncoder
from photostyle.models.layers import FAVariant
from photostyle.models.stylizer import ModelConfig, PhotoStylizer
from photostyle.upsample import apply_local_affine, upsample_stylized
from photostyle.utils import resize_image

CPU = torch.device("cpu")


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@dataclass
class ShiftBackend:
    """A network that adds 0.3 * alpha and records what each call was given."""

    calls: list[dict[str, object]] = field(default_factory=list)
    encodes_style: bool = False

    def encode_style(self, style: WorkingStyle) -> WorkingStyle:
        return style

    def run(
        self,
        content: torch.Tensor,
        style: WorkingStyle,
        *,
        alpha: float,
        fa: FAVariant,
        refine: int = 0,
        content_labels: torch.Tensor | None = None,
    ) -> NetworkOutput:
        self.calls.append(
            {"shape": tuple(content.shape), "alpha": alpha, "fa": fa, "refine": refine}
        )
        self.calls[-1]["labels"] = content_labels
        return NetworkOutput(image=content + 0.3 * alpha)


def _tiny_model(tiny_encoder: VGGEncoder, **config: object) -> PhotoStylizer:
    torch.manual_seed(0)
    cfg = ModelConfig(arch="custom", widths=(4, 8, 8, 16), depths=(1, 1, 2, 1), **config)  # type: ignore[arg-type]
    return PhotoStylizer(cfg, tiny_encoder).eval()


# --- the steps -------------------------------------------------------------------------------


def test_working_size_steps_have_their_shapes_and_dtypes() -> None:
    full, small = to_working_size(_rand(3, 90, 60), 30, CPU)
    assert full.shape == (1, 3, 90, 60) and small.shape == (1, 3, 30, 20)
    assert full.dtype == small.dtype == torch.float32
    mask = torch.zeros(70, 50, dtype=torch.long)
    mask[35:] = 1
    style = working_style(_rand(3, 70, 50, seed=1), 35, CPU, torch.bfloat16, mask)
    assert style.image.shape == (1, 3, 35, 25) and style.image.dtype == torch.bfloat16
    assert style.labels is not None and style.labels.shape == (1, 35, 25)
    assert set(style.labels.unique().tolist()) == {0, 1} and style.encoding is None
    # float32 resizing, then the cast: as the API has always done
    expected = resize_image(_rand(3, 70, 50, seed=1)[None], (35, 25)).to(torch.bfloat16)
    assert torch.equal(style.image, expected)


def test_to_full_size_applies_a_colour_model_or_upsamples_an_image() -> None:
    """Either way the result is clamped to [0, 1] (in the same pass for a colour model)."""
    content, small = to_working_size(_rand(3, 40, 56), 20, CPU)
    image = small.flip(1)
    for method in ("guided", "change", "bicubic"):
        got = to_full_size(content, small, NetworkOutput(image=image), method)
        assert torch.equal(got, upsample_stylized(content, small, image, method).clamp(0, 1))
    coeffs = _rand(1, 12, 20, 28, seed=2)
    got = to_full_size(content, small, NetworkOutput(coeffs=coeffs))
    assert got.shape == (1, 3, 40, 56)
    assert torch.equal(got, apply_local_affine(coeffs, content).clamp(0, 1))
    with pytest.raises(ValueError, match="neither an image nor a colour model"):
        to_full_size(content, small, NetworkOutput())


def test_change_upsampler_is_the_neural_baselines_former_way_back() -> None:
    """The baselines' own ``full + bilinear(out - small)``, now the registry's ``change``."""
    content, small = to_working_size(_rand(3, 47, 61), 24, CPU)
    out = small * 0.8 + 0.1 * _rand(1, 3, *small.shape[-2:], seed=3)
    former = content + resize_image(out - small, (47, 61), mode="bilinear")
    got = to_full_size(content, small, NetworkOutput(image=out), "change")
    torch.testing.assert_close(got, former.clamp(0, 1), rtol=0, atol=1e-6)


def test_resolve_options_fills_the_models_defaults() -> None:
    config = ModelConfig(fa="paper", working_size=300)
    opts = resolve_options(None, config)
    assert (opts.max_size, opts.fa, opts.refine) == (300, "paper", 0)
    opts = resolve_options(StylizeOptions(max_size=64, fa="wct", alpha=0.5), config)
    assert (opts.max_size, opts.fa, opts.alpha) == (64, "wct", 0.5)
    with pytest.raises(ValueError, match="refine needs"):
        resolve_options(StylizeOptions(refine=2), config)


def test_stage_hook_synchronises_cuda_around_each_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("sync"))
    with timed_stage(lambda name, s: log.append(name), "network", torch.device("cuda")):
        log.append("work")
    assert log == ["sync", "work", "sync", "network"]
    log.clear()
    with timed_stage(None, "network", torch.device("cuda")):
        log.append("work")
    assert log == ["work"]  # no hook: no synchronisation, nothing timed


# --- the whole path --------------------------------------------------------------------------


def test_stylize_photo_passes_the_options_per_call() -> None:
    backend = ShiftBackend()
    style = working_style(_rand(3, 30, 30, seed=1), 24, CPU, torch.float32)
    mask = torch.zeros(50, 70, dtype=torch.long)
    mask[:, 35:] = 1
    stages: list[str] = []
    opts = StylizeOptions(alpha=0.5, max_size=35, fa="paper", upsample="change", refine=0)
    out = stylize_photo(
        backend,
        _rand(3, 50, 70) * 0.5,
        style,
        opts,
        content_mask=mask,
        on_stage=lambda n, s: stages.append(n),
    )
    assert out.shape == (3, 50, 70) and out.dtype == torch.float32 and out.device == CPU
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    torch.testing.assert_close(out, (_rand(3, 50, 70) * 0.5 + 0.15).clamp(0, 1))
    (call,) = backend.calls
    assert call["shape"] == (1, 3, 25, 35) and call["alpha"] == 0.5 and call["fa"] == "paper"
    labels = call["labels"]
    assert isinstance(labels, torch.Tensor) and labels.shape == (1, 25, 35)
    assert set(stages) == set(STAGES) - {"style_encoding"}
    with pytest.raises(ValueError, match="resolve the options first"):
        stylize_photo(backend, _rand(3, 50, 70), style, StylizeOptions())


def test_torch_backend_takes_the_variant_per_call_and_changes_nothing(
    tiny_encoder: VGGEncoder,
) -> None:
    model = _tiny_model(tiny_encoder, residual=True)
    backend = TorchBackend(model)
    content = _rand(1, 3, 32, 24, seed=4)
    style = backend.encode_style(WorkingStyle(_rand(1, 3, 24, 40, seed=5)))
    assert style.encoding is not None
    with torch.inference_mode():
        for fa in ("mean_std", "paper"):
            got = backend.run(content, style, alpha=0.6, fa=fa).image  # type: ignore[arg-type]
            expected = model(content, style.image, alpha=0.6, variant=fa).image  # type: ignore[arg-type]
            assert got is not None and torch.equal(got, expected)
    assert model.pixel_decoder.variant == "mean_std"


def test_torch_backend_gives_the_affine_heads_colour_model(tiny_encoder: VGGEncoder) -> None:
    model = _tiny_model(tiny_encoder, head="affine")
    backend = TorchBackend(model)
    content, style = _rand(1, 3, 32, 24, seed=6), _rand(1, 3, 24, 40, seed=7)
    with torch.inference_mode():
        out = backend.run(content, WorkingStyle(style), alpha=0.7, fa="mean_std")
        expected = model(content, style, alpha=0.7).coeffs
    assert out.image is None and out.coeffs is not None and out.coeffs.shape == (1, 12, 32, 24)
    assert expected is not None and torch.equal(out.coeffs, expected)


def test_backends_share_the_protocol() -> None:
    def parameters(method: object) -> list[tuple[str, object, object]]:
        sig = inspect.signature(method)  # type: ignore[arg-type]
        return [(p.name, p.kind, p.default) for p in sig.parameters.values()]

    for name in ("run", "encode_style"):
        protocol = parameters(getattr(NetworkBackend, name))
        assert parameters(getattr(TorchBackend, name)) == protocol, name
        assert parameters(getattr(OnnxNetwork, name)) == protocol, name
    assert TorchBackend.encodes_style and not OnnxNetwork.encodes_style
    style = WorkingStyle(_rand(1, 3, 16, 16))
    assert OnnxNetwork.encode_style(SimpleNamespace(), style) is style  # type: ignore[arg-type]


# --- the API and video on it: as before -----------------------------------------------------


def test_api_result_is_the_three_steps_by_hand(tiny_stylizer_files: tuple[Path, Path]) -> None:
    weights, encoder = tiny_stylizer_files
    stylizer = Stylizer(weights, encoder_weights=encoder, device="cpu")
    content, style = _rand(3, 45, 60, seed=8), _rand(3, 30, 40, seed=9)
    options = StylizeOptions(max_size=32, alpha=0.8)
    got = stylizer.stylize(content, style, options=options)
    # the former Stylizer._stylize_one, written out
    full = content[None]
    small = resize_image(full, (24, 32))
    s = resize_image(style[None], (24, 32))
    with torch.inference_mode():
        image = stylizer.model(small, s, alpha=0.8).image
    expected = upsample_stylized(full, small, image, "guided")[0].clamp(0, 1)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)  # NHWC convolutions: rounding
    many = list(stylizer.stylize_many([content], style, options=options))
    torch.testing.assert_close(many[0], got, rtol=0, atol=1e-6)
