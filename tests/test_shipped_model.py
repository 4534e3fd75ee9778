"""Tests of the model shipped inside the package (weights, checksum, provenance, demo)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from photostyle import StylizeOptions, Stylizer, WeightsError, load_image
from photostyle.cli import main
from photostyle.models import weights as weights_module
from photostyle.models.weights import (
    BUNDLED_STYLIZER,
    BUNDLED_STYLIZER_SHA256,
    PREVIOUS_STYLIZER,
    bundled_path,
)
from photostyle.utils import sha256_file


@pytest.fixture(scope="module")
def shipped() -> Stylizer:
    return Stylizer(device="cpu")


def _demo_pair(size: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    from importlib import resources

    assets = resources.files("photostyle") / "assets"
    pair = [load_image(Path(str(assets / name))) for name in ("demo_content.jpg", "demo_style.jpg")]
    return tuple(F.interpolate(t[None], size=(size, size), mode="area")[0] for t in pair)  # type: ignore[return-value]


def test_shipped_weights_match_their_checksum_and_card():
    path = bundled_path(BUNDLED_STYLIZER)
    assert sha256_file(path) == BUNDLED_STYLIZER_SHA256
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["sha256"] == BUNDLED_STYLIZER_SHA256
    assert card["file"] == BUNDLED_STYLIZER
    assert card["training"]["steps"] >= 0 and card["training"]["note"]  # how it was made


def test_shipped_model_architecture(shipped: Stylizer):
    cfg = shipped.config
    assert (cfg.arch, cfg.head, cfg.convention) == ("vgg16", "affine", "caffe_bgr255")
    assert cfg.fa in ("mean_std", "wct", "quantile")
    # The learned grade at the working size it was selected at, refined with two steps per photo.
    assert (cfg.grid_residual, cfg.working_size, cfg.refine_steps) == ("curves", 256, 2)
    # relu1_1..relu3_1; a learned first step: three of width 256 merged into one.
    assert (cfg.refine_levels, cfg.steer_hidden) == (3, 768)
    # w_ssim 3 at the learned step, 1 at the plain step after it (0.7).
    assert (cfg.refine_ssim_weight, cfg.refine_later_ssim_weight) == (3.0, 1.0)
    assert shipped.resolve_options().max_size == 256


def test_previous_release_loads_by_name():
    previous = Stylizer(PREVIOUS_STYLIZER, device="cpu")
    assert (previous.config.head, previous.config.residual) == ("decoder", True)
    content, style = _demo_pair(32)
    assert previous.stylize(content, style).shape == content.shape


def test_shipped_model_is_exactly_linear_in_alpha(shipped: Stylizer):
    content, style = _demo_pair(64)
    full = shipped.stylize(content, style)
    half = shipped.stylize(content, style, options=StylizeOptions(alpha=0.5))
    inside = (full > 0) & (full < 1)  # clamping is the only non-linearity
    assert torch.allclose(half[inside], (content + 0.5 * (full - content))[inside], atol=1e-5)
    zero = shipped.stylize(content, style, options=StylizeOptions(alpha=0.0))
    assert torch.allclose(zero, content, atol=1e-6)


def test_shipped_model_stylizes_towards_the_style(shipped: Stylizer):
    content, style = _demo_pair()
    out = shipped.stylize(content, style)
    assert out.shape == content.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # The colour means move from the content's towards the style's.
    before = (content.mean(dim=(1, 2)) - style.mean(dim=(1, 2))).abs().sum()
    after = (out.mean(dim=(1, 2)) - style.mean(dim=(1, 2))).abs().sum()
    assert float(after) < 0.5 * float(before)
    # alpha = 0 keeps the content's colours
    kept = shipped.stylize(content, style, options=StylizeOptions(alpha=0.0))
    assert float((kept.mean(dim=(1, 2)) - content.mean(dim=(1, 2))).abs().max()) < 0.05


def test_corrupt_shipped_weights_are_refused(tmp_path, monkeypatch):
    bad = tmp_path / BUNDLED_STYLIZER
    shutil.copyfile(bundled_path(BUNDLED_STYLIZER), bad)
    with bad.open("r+b") as fh:
        fh.seek(-16, 2)
        fh.write(b"\x00" * 16)
    monkeypatch.setattr(
        "photostyle.models.weights.bundled_path",
        lambda name: tmp_path / name if name == bad.name else None,
    )
    with pytest.raises(WeightsError, match="sha256"):
        Stylizer(device="cpu")
    assert bad.name == weights_module.BUNDLED_STYLIZER


def test_demo_command_with_the_shipped_model(tmp_path, capsys):
    assert main(["demo", "--out-dir", str(tmp_path), "--max-size", "128", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "demo_stylized.png") in out
    result = load_image(tmp_path / "demo_stylized.png")
    assets_content = load_image(Path(out.split("content:")[1].split()[0]))
    assert result.shape == assets_content.shape


def test_shipped_autoencoder_checksum_card_and_reconstruction():
    from photostyle.eval.metrics import psnr
    from photostyle.eval.neural_baselines import bundled_autoencoder
    from photostyle.models.weights import BUNDLED_AUTOENCODER, BUNDLED_AUTOENCODER_SHA256

    path = bundled_path(BUNDLED_AUTOENCODER)
    assert sha256_file(path) == BUNDLED_AUTOENCODER_SHA256
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["sha256"] == BUNDLED_AUTOENCODER_SHA256 and card["fa"] == "none"
    autoencoder = bundled_autoencoder("cpu")
    content, _ = _demo_pair(96)
    out = autoencoder.stylize(content, content)  # FA "none": a plain reconstruction
    assert psnr(out, content) > 16.0  # measured 18.2 dB at 96 px; a broken decoder gives < 10
