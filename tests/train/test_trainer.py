"""Tests of the training loop: outputs, resume, refused checkpoints, export, the NaN guard.

The Trainer runs its real encoder-loading path on a tiny VGG layout: the layout is registered in
``VGG_CONFIGS`` (monkeypatched, so it disappears after each test) and its random weights are written
to a safetensors file, which ``TrainConfig.encoder_weights`` points at.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from photostyle.api import Stylizer
from photostyle.data.datasets import TripletCrops
from photostyle.models.encoder import VGG_CONFIGS, VGGConfig, VGGEncoder
from photostyle.models.weights import (
    STYLIZER_FORMAT,
    WeightsError,
    load_checkpoint,
    save_checkpoint,
)
from photostyle.train.config import TrainConfig
from photostyle.train.trainer import TRAIN_FORMAT, Trainer
from photostyle.utils import sha256_file

BATCH = 2


def _write_encoder_weights(path: Path, cfg: VGGConfig, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    encoder = VGGEncoder(cfg, "torch_rgb")
    save_checkpoint(path, dict(encoder.convs.state_dict()), {"input_convention": "torch_rgb"})
    return path


@pytest.fixture
def tiny_weights(tmp_path: Path, tiny_cfg: VGGConfig, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Registers the tiny layout as arch "tiny" and writes seeded random weights for it."""
    monkeypatch.setitem(VGG_CONFIGS, "tiny", tiny_cfg)
    return _write_encoder_weights(tmp_path / "tiny_vgg.safetensors", tiny_cfg)


@pytest.fixture
def data_dir(tmp_path: Path, write_png: Callable[..., Path]) -> Path:
    """An ImageFolder tree: 2 classes x 3 random 40 px photos."""
    root = tmp_path / "photos"
    for c, name in enumerate(("beach", "city")):
        for i in range(3):
            write_png(root / name / f"{i}.png", 40, 40, seed=10 * c + i)
    return root


@pytest.fixture
def make_config(data_dir: Path, tiny_weights: Path, tmp_path: Path) -> Callable[..., TrainConfig]:
    """A tiny, deterministic run configuration; keyword arguments override fields."""

    def make(out: str = "run", **overrides: Any) -> TrainConfig:
        fields: dict[str, Any] = {
            "data": str(data_dir),
            "out_dir": str(tmp_path / out),
            "arch": "tiny",
            "encoder_weights": str(tiny_weights),
            "crop": 16,
            "batch_size": BATCH,
            "steps": 4,
            "lr": 1e-3,
            "index_size": 16,
            "device": "cpu",
            "workers": 0,
            "log_every": 1,
            "image_every": 2,
            "ckpt_every": 2,
        }
        return TrainConfig(**{**fields, **overrides})

    return make


def _trainable(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().clone()
        for k, v in trainer.model.state_dict().items()
        if not k.startswith("encoder.")
    }


@pytest.mark.filterwarnings("error:Converting a tensor with requires_grad")
def test_trains_and_writes_every_output(make_config: Callable[..., TrainConfig]):
    cfg = make_config()
    seen: list[int] = []
    trainer = Trainer(cfg, progress=lambda step, losses: seen.append(step))
    before = _trainable(trainer)
    result = trainer.train()
    out = Path(cfg.out_dir)

    assert result.step == 4 and seen == [1, 2, 3, 4]
    assert result.checkpoint == out / "checkpoint.safetensors" and result.checkpoint.is_file()
    assert result.stylizer == out / "stylizer.safetensors" and result.stylizer.is_file()
    assert {"total", "scp_u", "scp_v", "p_u1", "p_u2", "p_v1", "p_v2", "p_c"} == set(result.losses)
    assert all(isinstance(v, float) for v in result.losses.values())
    assert (out / "index.safetensors").is_file()

    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    assert lines[-1]["total"] == pytest.approx(result.losses["total"])
    with Image.open(out / "loss_curves.png") as png:
        assert png.format == "PNG" and png.size[0] > 100

    tensors, meta = load_checkpoint(result.checkpoint)
    assert meta["format"] == TRAIN_FORMAT and meta["step"] == "4"
    assert json.loads(meta["train_config"]) == json.loads(json.dumps(cfg.to_dict()))
    assert [h["step"] for h in json.loads(meta["history"])] == [1, 2, 3, 4]
    assert not any(k.startswith("model.encoder.") for k in tensors)
    assert any(k.startswith("optim.") for k in tensors)
    after = _trainable(trainer)
    for key in ("u", "v", "scp_u", "scp_v"):  # every trained part moved and was saved
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(key + "."))
    for k, v in after.items():
        torch.testing.assert_close(tensors[f"model.{k}"], v, rtol=0, atol=0)


def test_resume_continues_like_one_uninterrupted_run(make_config: Callable[..., TrainConfig]):
    whole = Trainer(make_config("whole", steps=4))
    whole.train()

    first = Trainer(make_config("split", steps=2))
    assert first.train().step == 2
    halfway = _trainable(first)
    second = Trainer(make_config("split", steps=4))
    assert second.step == 2  # resumed from the checkpoint
    for k, v in _trainable(second).items():
        torch.testing.assert_close(v, halfway[k], rtol=0, atol=0)
    assert second.train().step == 4

    expected, got = _trainable(whole), _trainable(second)
    assert any(not torch.equal(halfway[k], expected[k]) for k in expected)
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-5, atol=1e-6)
    assert [h["step"] for h in second.history] == [1, 2, 3, 4]
    # A finished run started again does nothing more.
    assert Trainer(make_config("split", steps=4)).train().step == 4


def test_checkpoint_of_another_fa_or_arch_is_refused(
    make_config: Callable[..., TrainConfig],
    tmp_path: Path,
    tiny_cfg: VGGConfig,
    monkeypatch: pytest.MonkeyPatch,
):
    Trainer(make_config()).save()  # step-0 checkpoint of a tiny/mean_std run
    with pytest.raises(WeightsError, match="checkpoint is tiny/mean_std"):
        Trainer(make_config(fa="wct"))

    other = VGGConfig("tiny2", (4, 8, 16, 16), tiny_cfg.depths, tiny_cfg.full_depths)
    monkeypatch.setitem(VGG_CONFIGS, "tiny2", other)
    weights = _write_encoder_weights(tmp_path / "tiny2.safetensors", other)
    with pytest.raises(WeightsError, match="config asks for tiny2/mean_std"):
        Trainer(make_config(arch="tiny2", encoder_weights=str(weights)))

    out = Path(make_config().out_dir)
    (out / "checkpoint.safetensors").write_bytes((out / "stylizer.safetensors").read_bytes())
    with pytest.raises(WeightsError, match="not a photostyle training checkpoint"):
        Trainer(make_config())


def test_exported_stylizer_loads_for_inference(
    make_config: Callable[..., TrainConfig], tiny_weights: Path
):
    trainer = Trainer(make_config(steps=2))
    result = trainer.train()

    tensors, meta = load_checkpoint(result.stylizer)
    assert meta["format"] == STYLIZER_FORMAT and meta["step"] == "2"
    model_config = json.loads(meta["model_config"])
    assert model_config["arch"] == "tiny" and model_config["fa"] == "mean_std"
    assert tuple(model_config["widths"]) == (4, 8, 8, 16)
    assert model_config["convention"] == "torch_rgb"
    assert model_config["encoder_sha256"] == sha256_file(tiny_weights)
    assert set(tensors) == {f"decoder.{k}" for k in trainer.model.u.state_dict()}

    with pytest.raises(WeightsError, match="other encoder weights"):
        Stylizer(result.stylizer, device="cpu")  # not the bundled VGG16
    stylizer = Stylizer(result.stylizer, encoder_weights=tiny_weights, device="cpu")
    for k, v in trainer.model.u.state_dict().items():
        torch.testing.assert_close(stylizer.model.decoder.state_dict()[k], v, rtol=0, atol=0)
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(3, 20, 24, generator=g), torch.rand(3, 24, 20, generator=g)
    out = stylizer.stylize(content, style)
    assert out.shape == (3, 20, 24)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_time_limit_stops_after_a_checkpoint(make_config: Callable[..., TrainConfig]):
    result = Trainer(make_config(steps=50, time_limit_s=1e-9, ckpt_every=100)).train()
    assert result.step == 1
    assert load_checkpoint(result.checkpoint)[1]["step"] == "1"


class _NaNFromStep2(TripletCrops):
    """Triplet stream whose content crops turn NaN from step 2 on (a corrupt batch)."""

    def __getitem__(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ic, is_, it = super().__getitem__(n)
        return (ic * float("nan"), is_, it) if n >= 2 * BATCH else (ic, is_, it)


def test_non_finite_loss_stops_training_and_keeps_progress(
    make_config: Callable[..., TrainConfig], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("photostyle.train.trainer.TripletCrops", _NaNFromStep2)
    cfg = make_config(steps=4, ckpt_every=100)
    trainer = Trainer(cfg)
    with pytest.raises(FloatingPointError, match="loss became nan at step 2"):
        trainer.train()
    assert trainer.step == 2
    tensors, meta = load_checkpoint(Path(cfg.out_dir) / "checkpoint.safetensors")
    assert meta["step"] == "2"  # the two good steps were saved although ckpt_every is 100
    assert all(torch.isfinite(t).all() for t in tensors.values())


def test_diverged_weights_never_overwrite_the_last_checkpoint(
    make_config: Callable[..., TrainConfig],
):
    Trainer(make_config(steps=2)).train()
    out = Path(make_config().out_dir)
    saved = {
        name: (out / name).read_bytes()
        for name in ("checkpoint.safetensors", "stylizer.safetensors")
    }
    trainer = Trainer(make_config(steps=4))
    with torch.no_grad():
        trainer.model.u.block1[-1].bias.fill_(float("nan"))  # U's weights diverged
    with pytest.raises(FloatingPointError, match="at step 2"):
        trainer.train()
    for name, data in saved.items():
        assert (out / name).read_bytes() == data


# --- reconstruction mode -------------------------------------------------------------------------


def test_reconstruction_trains_a_plain_autoencoder(
    make_config: Callable[..., TrainConfig], tiny_weights: Path
):
    cfg = make_config(reconstruction=True, fa="none", steps=3)
    trainer = Trainer(cfg)
    before = _trainable(trainer)
    result = trainer.train()
    out = Path(cfg.out_dir)
    assert result.step == 3 and set(result.losses) == {"total", "scp_u", "p_u1"}
    assert not (out / "index.safetensors").exists()  # no triplets, no perceptual index
    after = _trainable(trainer)
    for key in ("u", "scp_u"):
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(key + "."))
    for key in ("v", "scp_v"):  # V is not trained
        assert all(torch.equal(before[k], after[k]) for k in after if k.startswith(key + "."))

    ae = Stylizer(result.stylizer, encoder_weights=tiny_weights, device="cpu")
    assert ae.config.fa == "none"
    g = torch.Generator().manual_seed(0)
    content = torch.rand(3, 20, 24, generator=g)
    out_a = ae.stylize(content, torch.rand(3, 16, 16, generator=g))
    out_b = ae.stylize(content, torch.rand(3, 24, 16, generator=g))
    assert out_a.shape == (3, 20, 24) and torch.equal(out_a, out_b)  # the style is ignored

    # Resuming with the other mode is refused, both ways.
    with pytest.raises(WeightsError, match=r"checkpoint is tiny/none \(reconstruction\)"):
        Trainer(make_config(fa="none", steps=3))


def test_cli_train_reconstruction_forces_fa_none(
    make_config: Callable[..., TrainConfig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from photostyle.cli import main

    cfg = make_config("cli", steps=1)
    config_json = tmp_path / "config.json"
    config_json.write_text(json.dumps(cfg.to_dict()))  # fa "mean_std" in the file
    assert main(["train", "--config", str(config_json), "--reconstruction"]) == 0
    _, meta = load_checkpoint(Path(cfg.out_dir) / "checkpoint.safetensors")
    saved = json.loads(meta["train_config"])
    assert saved["reconstruction"] is True and saved["fa"] == "none"
    capsys.readouterr()
    argv = ["train", "--config", str(config_json), "--reconstruction", "--fa", "wct"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs fa='none'" in err
