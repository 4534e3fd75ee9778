"""Tests of the neural baselines (AdaIN, WCT with a reconstruction decoder, Gatys) and their CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from photostyle.api import Stylizer
from photostyle.cli import main
from photostyle.eval.metrics import gram_matrix
from photostyle.eval.neural_baselines import adain, autoencoder_transfer, gatys, wct
from photostyle.eval.quality import make_methods, method_names
from photostyle.models.encoder import VGGEncoder


@pytest.fixture(scope="module")
def autoencoder_file(tiny_stylizer_files: tuple[Path, Path], tmp_path_factory) -> Path:
    """A tiny autoencoder checkpoint (FA "none") on the tiny stylizer's encoder, random weights."""
    from photostyle.models.checkpoint import save_stylizer
    from photostyle.models.stylizer import ModelConfig
    from photostyle.models.weights import build_encoder
    from photostyle.train.pipeline import TwoStageModel
    from photostyle.utils import sha256_file

    _, encoder_path = tiny_stylizer_files
    tiny = Stylizer(tiny_stylizer_files[0], encoder_weights=encoder_path, device="cpu").config
    config = ModelConfig.from_dict(
        {**tiny.to_dict(), "fa": "none", "encoder_sha256": sha256_file(encoder_path)}
    )
    torch.manual_seed(1)
    model = TwoStageModel(config, build_encoder(encoder_path, config.vgg()))
    with torch.no_grad():  # outputs around 0.5 rather than saturated
        model.u.block1[-1].weight.mul_(0.2)
        model.u.block1[-1].bias.fill_(0.5)
    path = tmp_path_factory.mktemp("autoencoder") / "ae_tiny.safetensors"
    save_stylizer(path, model.u.state_dict(), config)
    return path


@pytest.fixture
def ae(autoencoder_file: Path, tiny_stylizer_files: tuple[Path, Path]) -> Stylizer:
    return Stylizer(autoencoder_file, encoder_weights=tiny_stylizer_files[1], device="cpu")


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _stats(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (biased) std of (1, C, H, W). Shape: (C,), (C,)."""
    flat = t[0].flatten(1)
    return flat.mean(dim=1), flat.std(dim=1, unbiased=False)


# --- feature transforms ------------------------------------------------------------------------


def test_adain_gives_the_style_channel_mean_and_std():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 5, 6, dtype=torch.float64)
    y = torch.randn(1, 3, 7, 4, dtype=torch.float64) * torch.tensor([0.5, 2.0, 4.0]).view(
        1, 3, 1, 1
    ) + torch.tensor([1.0, -3.0, 10.0]).view(1, 3, 1, 1)
    z = adain(x, y)
    mu_z, sd_z = _stats(z)
    mu_y, sd_y = _stats(y)
    torch.testing.assert_close(mu_z, mu_y)
    torch.testing.assert_close(sd_z, sd_y, rtol=1e-4, atol=1e-4)  # eps = 1e-5 under the root
    # By hand, one value: sigma(y) (x - mu(x)) / sigma(x) + mu(y).
    xs = x[0, 1].flatten()
    ys = y[0, 1].flatten()
    by_hand = (x[0, 1, 2, 3] - xs.mean()) / (xs.var(unbiased=False) + 1e-5).sqrt()
    by_hand = by_hand * (ys.var(unbiased=False) + 1e-5).sqrt() + ys.mean()
    assert float(z[0, 1, 2, 3]) == pytest.approx(float(by_hand), rel=1e-9)
    torch.testing.assert_close(adain(x, y, alpha=0.0), x)


def test_wct_gives_the_style_covariance():
    torch.manual_seed(1)
    x = torch.randn(1, 4, 6, 7, dtype=torch.float64)
    mix = torch.randn(4, 4, dtype=torch.float64)
    y = (mix @ torch.randn(4, 50, dtype=torch.float64)).view(1, 4, 5, 10) + 3.0
    z = wct(x, y)
    zf, yf = z[0].flatten(1), y[0].flatten(1)
    torch.testing.assert_close(zf.mean(dim=1), yf.mean(dim=1))
    torch.testing.assert_close(torch.cov(zf), torch.cov(yf), rtol=1e-3, atol=1e-3)
    assert not torch.allclose(torch.cov(x[0].flatten(1)), torch.cov(yf), atol=0.5)


# --- decoding with a reconstruction decoder ------------------------------------------------------


@pytest.mark.parametrize("transform", ["adain", "wct"])
def test_autoencoder_transfer_decodes_the_transformed_relu4_1(ae: Stylizer, transform: str):
    content, style = _rand(3, 20, 28), _rand(3, 24, 16, seed=1) * 0.5 + 0.4
    seen: list[torch.Tensor] = []
    hook = ae.model.decoder.block4[0].register_forward_pre_hook(
        lambda _module, args: seen.append(args[0].detach().clone())
    )
    try:
        out = autoencoder_transfer(ae, content, style, transform)  # type: ignore[arg-type]
    finally:
        hook.remove()
    assert out.shape == (3, 20, 28) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0 and torch.isfinite(out).all()
    # The decoder's first conv received relu4_1 with the style's channel statistics.
    with torch.no_grad():
        style_relu4 = ae.model.encoder(style[None]).taps[3]
        content_relu4 = ae.model.encoder(content[None]).taps[3]
    mu_in, sd_in = _stats(seen[0])
    mu_s, sd_s = _stats(style_relu4)
    torch.testing.assert_close(mu_in, mu_s, rtol=1e-3, atol=1e-4)
    if transform == "adain":  # by hand: sd = sqrt(var_s + eps) * sd_c / sqrt(var_c + eps)
        sd_c = _stats(content_relu4)[1]
        expected = (sd_s**2 + 1e-5).sqrt() * sd_c / (sd_c**2 + 1e-5).sqrt()
        torch.testing.assert_close(sd_in, expected, rtol=1e-3, atol=1e-5)
        assert int((sd_c > 1e-2).sum()) >= 4  # enough live (non-constant) channels to check
    assert ae.model.decoder.variant == "none"  # all FA layers back as loaded
    plain = ae.stylize(content, style)  # the autoencoder's own reconstruction
    assert float((out - plain).abs().max()) > 1e-4  # the style reached the output
    torch.testing.assert_close(
        autoencoder_transfer(ae, content, style, "adain", alpha=0.0), plain, rtol=1e-5, atol=1e-5
    )


def test_autoencoder_transfer_at_a_working_size_and_with_masks(ae: Stylizer):
    content, style = _rand(3, 40, 56), _rand(3, 32, 32, seed=1)
    out = autoencoder_transfer(ae, content, style, "wct", max_size=24)
    assert out.shape == (3, 40, 56) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    cm = torch.zeros(40, 56, dtype=torch.long)
    cm[:, 28:] = 1
    sm = torch.zeros(32, 32, dtype=torch.long)
    sm[16:] = 1
    masked = autoencoder_transfer(ae, content, style, "adain", content_mask=cm, style_mask=sm)
    assert masked.shape == (3, 40, 56)
    assert not torch.allclose(masked, autoencoder_transfer(ae, content, style, "adain"))
    with pytest.raises(ValueError, match="both a content mask and a style mask"):
        autoencoder_transfer(ae, content, style, "adain", content_mask=cm)
    with pytest.raises(ValueError, match="unknown transform"):
        autoencoder_transfer(ae, content, style, "gatys")  # type: ignore[arg-type]


def test_a_stylizer_is_not_an_autoencoder(tiny_stylizer_files: tuple[Path, Path]):
    weights, encoder = tiny_stylizer_files
    stylizer = Stylizer(weights, encoder_weights=encoder, device="cpu")  # FA "mean_std"
    with pytest.raises(ValueError, match=r"not an autoencoder.*--reconstruction"):
        autoencoder_transfer(stylizer, _rand(3, 16, 16), _rand(3, 16, 16), "adain")


# --- Gatys ---------------------------------------------------------------------------------------


def test_gatys_lowers_its_objective_and_keeps_the_content_size(tiny_encoder: VGGEncoder):
    content, style = _rand(3, 20, 24), _rand(3, 16, 16, seed=1) * 0.3 + 0.6
    objective: list[float] = []
    out = gatys(
        content, style, tiny_encoder, steps=5, lr=0.05, on_step=lambda _, v: objective.append(v)
    )
    assert len(objective) == 5 and objective[-1] < objective[0], objective
    assert out.shape == (3, 20, 24) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.allclose(out, content, atol=1e-3)
    # Its Gram matrices moved towards the style's.
    with torch.no_grad():
        g_s = gram_matrix(tiny_encoder(style[None]).taps[0])
        before = (gram_matrix(tiny_encoder(content[None]).taps[0]) - g_s).pow(2).sum()
        after = (gram_matrix(tiny_encoder(out[None]).taps[0]) - g_s).pow(2).sum()
    assert float(after) < float(before)
    # Working at a smaller size still returns the content's size; 0 steps is the content.
    assert gatys(content, style, tiny_encoder, steps=2, max_size=16).shape == (3, 20, 24)
    torch.testing.assert_close(gatys(content, style, tiny_encoder, steps=0), content)
    with pytest.raises(ValueError, match="steps >= 0"):
        gatys(content, style, tiny_encoder, steps=-1)


# --- make_methods and the CLI --------------------------------------------------------------------


def test_make_methods_neural_baselines(ae: Stylizer, tiny_encoder: VGGEncoder):
    def fail() -> Stylizer:
        raise AssertionError("photostyle stylizer loaded for the baselines")

    for name in ("adain", "wct"):
        with pytest.raises(ValueError, match=f"^{name} needs --autoencoder FILE"):
            make_methods([name], fail)
    loads: list[int] = []

    def load_ae() -> Stylizer:
        loads.append(1)
        return ae

    methods = make_methods(
        ["adain", "wct", "gatys"],
        fail,
        autoencoder=load_ae,
        gatys_encoder=lambda: tiny_encoder,
        gatys_steps=2,
    )
    assert list(methods) == ["adain", "wct", "gatys"] and loads == [1]  # loaded once
    content, style = _rand(3, 20, 24), _rand(3, 16, 16, seed=1)
    for method in methods.values():
        assert method(content, style, None, None).shape == (3, 20, 24)
    with pytest.raises(ValueError, match="not an autoencoder"):
        make_methods(["wct"], fail, autoencoder=lambda: _not_ae())
    with pytest.raises(ValueError, match="gatys steps must be >= 0"):
        make_methods(["gatys"], fail, gatys_encoder=lambda: tiny_encoder, gatys_steps=-1)
    with pytest.raises(ValueError, match=r"unknown method.*gatys"):
        make_methods(["adian"], fail)
    assert {"adain", "wct", "gatys"} <= set(method_names(["mean_std"]))


def _not_ae() -> Stylizer:
    stylizer = Stylizer.__new__(Stylizer)
    stylizer.path = Path("style.safetensors")
    from photostyle.models.stylizer import ModelConfig

    stylizer.config = ModelConfig(fa="mean_std")
    return stylizer


@pytest.fixture
def pairs_dir(tmp_path: Path, write_png: Callable[..., Path]) -> Path:
    root = tmp_path / "pairs"
    write_png(root / "content" / "in1.png", 24, 32, seed=0)
    write_png(root / "style" / "in1.png", 28, 20, seed=10)
    return root


def test_cli_eval_gatys_and_autoencoder_methods(
    pairs_dir: Path,
    autoencoder_file: Path,
    tiny_stylizer_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
):
    scores = tmp_path / "scores.json"
    argv = ["eval", "--pairs", str(pairs_dir), "--method", "gatys", "--gatys-steps", "2"]
    assert main([*argv, "--json", str(scores), "--device", "cpu"]) == 0
    assert "| gatys |" in capsys.readouterr().out
    (row,) = json.loads(scores.read_text())["pairs"]
    assert row["method"] == "gatys" and row["ssim"] < 1.0

    argv = ["eval", "--pairs", str(pairs_dir), "--method", "adain", "--method", "wct"]
    assert main([*argv, "--device", "cpu"]) == 0  # the shipped autoencoder by default
    stdout = capsys.readouterr().out
    assert "| adain |" in stdout and "| wct |" in stdout
    weights, encoder = tiny_stylizer_files
    argv += ["--encoder-weights", str(encoder), "--device", "cpu"]
    assert main([*argv, "--autoencoder", str(autoencoder_file)]) == 0
    stdout = capsys.readouterr().out
    assert "| adain |" in stdout and "| wct |" in stdout
    assert main([*argv, "--autoencoder", str(weights)]) == 2  # a stylizer is not an autoencoder
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an autoencoder" in err
