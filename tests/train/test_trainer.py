"""Tests of the training loop: outputs, resume after a kill, atomic checkpoints, export, the NaN
guard, gradient clipping, mixed precision, channels_last. Fixtures: tests/train/conftest.py."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from photostyle.api import Stylizer
from photostyle.data.datasets import TripletCrops
from photostyle.models.checkpoint import STYLIZER_FORMAT
from photostyle.models.encoder import VGG_CONFIGS, VGGConfig
from photostyle.models.weights import WeightsError, load_checkpoint, save_checkpoint
from photostyle.train.config import TrainConfig
from photostyle.train.trainer import TRAIN_FORMAT, Trainer
from photostyle.utils import sha256_file

BATCH = 2  # make_config's batch size


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

    assert "grad_norm" in lines[-1] and lines[-1]["grad_norm"] > 0
    assert TrainConfig.from_file(out / "config.yaml") == cfg  # the resolved config, as YAML

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tb"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    assert {f"loss/{k}" for k in result.losses} | {"train/grad_norm"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("loss/total")] == [1, 2, 3, 4]
    assert tags["images"] == ["samples/content|style|similar|u|v"]  # image_every=2: steps 2, 4
    shots = events.Images("samples/content|style|similar|u|v")
    assert [e.step for e in shots] == [2, 4]
    # One row per sample (at most 4; the batch holds 2), the five images side by side.
    assert (shots[0].height, shots[0].width) == (BATCH * 16, 5 * 16)

    tensors, meta = load_checkpoint(result.checkpoint)
    assert meta["format"] == TRAIN_FORMAT and meta["step"] == "4"
    assert meta["samples"] == str(4 * BATCH) and meta["world_size"] == "1"
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


class _Killed(Exception):
    """Stands in for the process being killed."""


def _recording_stream(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Makes the Trainer's TripletCrops record every sample number it is asked for."""
    seen: list[int] = []

    class Recording(TripletCrops):
        def __getitem__(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            seen.append(n)
            return super().__getitem__(n)

    monkeypatch.setattr("photostyle.train.trainer.TripletCrops", Recording)
    return seen


def test_killed_run_resumes_like_an_uninterrupted_one(
    make_config: Callable[..., TrainConfig], monkeypatch: pytest.MonkeyPatch
):
    seen = _recording_stream(monkeypatch)
    straight = Trainer(make_config("straight", steps=6, ckpt_every=2))
    straight.train()
    assert seen == list(range(6 * BATCH))

    def kill_at_step_3(step: int, losses: dict[str, float]) -> None:
        if step == 3:  # after the step-2 checkpoint; step 3 is lost with the process
            raise _Killed

    seen.clear()
    with pytest.raises(_Killed):
        Trainer(make_config("killed", steps=6, ckpt_every=2), progress=kill_at_step_3).train()
    assert seen == list(range(3 * BATCH))

    out = Path(make_config("killed").out_dir)
    metrics = out / "metrics.jsonl"
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == [1, 2, 3]
    # A kill mid-write leaves a temporary checkpoint and half a metrics line behind.
    stale = out / ".checkpoint.0123456789ab.tmp.safetensors"
    stale.write_bytes(b"half a checkpoint")
    metrics.write_text(metrics.read_text() + '{"step": 4, "tot')

    seen.clear()
    resumed = Trainer(make_config("killed", steps=6, ckpt_every=2))  # the same command again
    assert resumed.step == 2 and resumed.samples == 2 * BATCH
    assert resumed.train().step == 6
    assert seen == list(range(2 * BATCH, 6 * BATCH))  # the stream continues at sample 4
    assert not stale.exists() and not list(out.glob(".*"))
    logged = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert logged == [1, 2, 3, 4, 5, 6]  # step 3 once, although the killed run logged it

    expected, got = _trainable(straight), _trainable(resumed)
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-5, atol=1e-6)
    a, b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert a.keys() == b.keys()
    for pid in a:
        assert int(a[pid]["step"]) == int(b[pid]["step"]) == 6
        torch.testing.assert_close(b[pid]["exp_avg_sq"], a[pid]["exp_avg_sq"], rtol=1e-5, atol=0)
    assert [h["step"] for h in resumed.history] == [1, 2, 3, 4, 5, 6]
    for h_straight, h_resumed in zip(straight.history, resumed.history, strict=True):
        assert h_resumed["total"] == pytest.approx(h_straight["total"], rel=1e-5)


def test_interrupted_checkpoint_write_keeps_the_previous_checkpoint(
    make_config: Callable[..., TrainConfig], monkeypatch: pytest.MonkeyPatch
):
    trainer = Trainer(make_config(steps=2))
    trainer.train()
    out = Path(trainer.config.out_dir)
    before = {p.name: p.read_bytes() for p in out.glob("*.safetensors")}

    def dies_while_writing(tensors: dict, path: str, metadata: dict) -> None:
        Path(path).write_bytes(b"half a checkpoint")
        raise _Killed

    trainer.step = 99
    with monkeypatch.context() as m, pytest.raises(_Killed):
        m.setattr("photostyle.models.weights.save_file", dies_while_writing)
        trainer.save()
    assert {p.name: p.read_bytes() for p in out.glob("*.safetensors")} == before
    assert not list(out.glob(".*"))  # no temporary files left behind
    assert Trainer(make_config(steps=2)).step == 2


def test_gradients_are_clipped_to_grad_clip(make_config: Callable[..., TrainConfig]):
    cfg = make_config(steps=1, grad_clip=1e-3)
    trainer = Trainer(cfg)
    trainer.train()
    grads = [p.grad for p in trainer.params if p.grad is not None]
    assert grads  # the last step's gradients are still there
    clipped = float(torch.nn.utils.get_total_norm(grads))
    logged = json.loads((Path(cfg.out_dir) / "metrics.jsonl").read_text())["grad_norm"]
    assert logged > 1e-2  # the raw norm: far above the limit, so clipping was active
    assert clipped == pytest.approx(1e-3, rel=1e-4)

    unclipped = Trainer(make_config("free", steps=1))
    unclipped.train()
    free = [p.grad for p in unclipped.params if p.grad is not None]
    assert float(torch.nn.utils.get_total_norm(free)) == pytest.approx(logged, rel=1e-5)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"use_scp": False},
        {"use_restyle": False},
        {"reconstruction": True, "fa": "none"},
        {"use_perceptual": False},
        {"use_restyle": False, "use_perceptual": False},
    ],
)
def test_exactly_the_parameters_the_loss_reaches_require_grad(
    make_config: Callable[..., TrainConfig], overrides: dict[str, Any]
):
    # DDP waits for a gradient of every parameter that requires one: the parts the loss never
    # reaches are frozen, and nothing the loss reaches may be.
    trainer = Trainer(make_config(steps=1, **overrides))
    trainer.train()
    reached = {name for name, p in trainer.model.named_parameters() if p.grad is not None}
    trainable = {name for name, p in trainer.model.named_parameters() if p.requires_grad}
    if trainer.config.use_perceptual:
        assert reached == trainable
    else:  # SCP alone: the layers after the last unpooling (Q^1) get no gradient, so the
        # Trainer has DDP look for unused parameters instead
        unreached = trainable - reached
        assert reached < trainable and all(".block1." in name for name in unreached)
    assert any(name.startswith("u.") for name in reached)


def _first_step_losses(trainer: Trainer) -> dict[str, float]:
    seen: list[dict[str, float]] = []
    trainer.progress = lambda step, losses: seen.append(losses)
    trainer.train()
    return seen[0]


def test_channels_last_trains_like_contiguous(make_config: Callable[..., TrainConfig]):
    nchw = Trainer(make_config("nchw", steps=2))
    nhwc = Trainer(make_config("nhwc", steps=2, channels_last=True))
    conv = nhwc.model.u.block1[-1].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    a, b = _first_step_losses(nchw), _first_step_losses(nhwc)
    assert a.keys() == b.keys()
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-4)
    expected, got = _trainable(nchw), _trainable(nhwc)
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-3, atol=1e-5)


def test_bfloat16_autocast_on_cpu_runs_only_when_asked(make_config: Callable[..., TrainConfig]):
    full = _first_step_losses(Trainer(make_config("fp32", steps=1)))
    same = _first_step_losses(Trainer(make_config("auto", steps=1, amp_dtype="float16")))
    assert same == full  # amp off: the dtype setting changes nothing
    half = _first_step_losses(Trainer(make_config("bf16", steps=1, amp=True)))
    assert half.keys() == full.keys()
    assert half != full  # the networks did run in bfloat16 ...
    for k in full:  # ... close to float32 (bfloat16 keeps ~3 significant digits)
        assert half[k] == pytest.approx(full[k], rel=0.05)
    with pytest.raises(ValueError, match="'float16' is not supported on cpu"):
        Trainer(make_config("fp16", amp=True, amp_dtype="float16"))


def test_checkpoint_of_another_fa_or_arch_is_refused(
    make_config: Callable[..., TrainConfig],
    tmp_path: Path,
    tiny_cfg: VGGConfig,
    monkeypatch: pytest.MonkeyPatch,
    write_encoder_weights: Callable[..., Path],
):
    Trainer(make_config()).save()  # step-0 checkpoint of a tiny/mean_std run
    with pytest.raises(WeightsError, match="checkpoint is tiny/mean_std"):
        Trainer(make_config(fa="wct"))

    other = VGGConfig("tiny2", (4, 8, 16, 16), tiny_cfg.depths, tiny_cfg.full_depths)
    monkeypatch.setitem(VGG_CONFIGS, "tiny2", other)
    weights = write_encoder_weights(tmp_path / "tiny2.safetensors", other)
    with pytest.raises(WeightsError, match="config asks for tiny2/mean_std"):
        Trainer(make_config(arch="tiny2", encoder_weights=str(weights)))

    out = Path(make_config().out_dir)
    (out / "checkpoint.safetensors").write_bytes((out / "stylizer.safetensors").read_bytes())
    with pytest.raises(WeightsError, match="not a photostyle training checkpoint"):
        Trainer(make_config())


def test_checkpoint_of_an_earlier_release_resumes(make_config: Callable[..., TrainConfig]):
    """Earlier releases saved arch, fa and residual as top-level keys of the train_config."""
    cfg = make_config(steps=2)
    Trainer(cfg).train()
    path = Path(cfg.out_dir) / "checkpoint.safetensors"
    tensors, meta = load_checkpoint(path)
    flat = json.loads(meta["train_config"])
    model = flat.pop("model")
    flat |= {"arch": model["arch"], "fa": model["fa"], "residual": model["residual"]}
    save_checkpoint(path, tensors, {**meta, "train_config": json.dumps(flat)})
    trainer = Trainer(make_config(steps=3))
    assert trainer.step == 2
    assert trainer.train().step == 3


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


def test_infinite_gradient_on_a_step_without_logging_stops_before_the_update(
    make_config: Callable[..., TrainConfig],
):
    cfg = make_config(steps=4, ckpt_every=100, log_every=100)  # step 2 logs nothing
    trainer = Trainer(cfg)
    param = trainer.params[0]
    calls = []

    def poison(grad: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return torch.full_like(grad, float("inf")) if len(calls) == 3 else grad

    param.register_hook(poison)  # the loss stays finite; only the third gradient is inf
    with pytest.raises(FloatingPointError, match="gradient norm became inf at step 2"):
        trainer.train()
    assert trainer.step == 2 and all(torch.isfinite(p).all() for p in trainer.params)
    tensors, meta = load_checkpoint(Path(cfg.out_dir) / "checkpoint.safetensors")
    assert meta["step"] == "2" and all(torch.isfinite(t).all() for t in tensors.values())


def test_unreadable_images_are_left_out_of_the_exact_index_and_never_drawn(
    make_config: Callable[..., TrainConfig], data_dir: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="photostyle.train.trainer")
    broken = data_dir / "city" / "9.png"
    broken.write_bytes(b"not a png")
    cfg = make_config(steps=2)
    trainer = Trainer(cfg)
    assert broken not in trainer.images.paths and len(trainer.images) == 6
    assert trainer.index is not None and trainer.index.skipped == [str(broken)]
    assert "left out of training" in caplog.text and str(broken) in caplog.text
    assert trainer.sampler is not None
    draws = [trainer.sampler.draw(torch.Generator().manual_seed(n)) for n in range(200)]
    assert {i for d in draws for i in d} == set(range(6))  # every readable image, nothing else
    trainer.train()
    caplog.clear()
    again = Trainer(make_config(steps=2))  # the cached index is reused, not rebuilt
    assert again.index is not None and again.index.skipped == [str(broken)]
    assert "rebuilding" not in caplog.text and "left out" not in caplog.text


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
    assert saved["reconstruction"] is True and saved["model"]["fa"] == "none"
    capsys.readouterr()
    argv = ["train", "--config", str(config_json), "--reconstruction", "--fa", "wct"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs fa='none'" in err


# --- photostyle train: YAML configs ---------------------------------------------------------------


def test_cli_print_config_shows_defaults_then_file_then_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from photostyle.cli import main

    assert main(["train", "--print-config"]) == 0
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text(capsys.readouterr().out)
    assert TrainConfig.from_file(defaults) == TrainConfig()

    run = tmp_path / "run.yaml"
    run.write_text("steps: 5\nlr: 1e-3\namp: true\nsampling: {t2: 0.3}\n")
    argv = ["train", "--config", str(run), "--steps", "7", "--no-amp", "--t1", "0.2"]
    assert main([*argv, "--grad-clip", "0.5", "--print-config"]) == 0
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(capsys.readouterr().out)
    cfg = TrainConfig.from_file(resolved)
    assert (cfg.steps, cfg.lr, cfg.amp, cfg.grad_clip) == (7, 1e-3, False, 0.5)
    assert (cfg.sampling.t1, cfg.sampling.t2) == (0.2, 0.3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("batch_sise: 2\n", "unknown config key 'batch_sise' (did you mean 'batch_size'?)"),
        ("crop: big\n", "config key 'crop' must be an integer, got 'big'"),
        ("device: tpu\n", "unknown device 'tpu': use auto, cpu, cuda or cuda:N"),
    ],
)
def test_cli_bad_config_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
):
    from photostyle.cli import main

    run = tmp_path / "run.yaml"
    run.write_text(text)
    assert main(["train", "--config", str(run), "--data", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"photostyle: error: {run}: {message}\n" and not captured.out
    assert not (tmp_path / "runs").exists()


def test_cli_trains_from_yaml_and_saves_the_resolved_config(
    make_config: Callable[..., TrainConfig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from photostyle.cli import main

    cfg = make_config("yaml_run", steps=3)
    run = tmp_path / "run.yaml"
    run.write_text(cfg.to_yaml())
    assert main(["train", "--config", str(run), "--steps", "1"]) == 0
    out = Path(cfg.out_dir)
    saved = TrainConfig.from_file(out / "config.yaml")
    assert saved == TrainConfig.from_dict({**cfg.to_dict(), "steps": 1})
    _, meta = load_checkpoint(out / "checkpoint.safetensors")
    assert TrainConfig.from_dict(json.loads(meta["train_config"])) == saved
    assert capsys.readouterr().out.startswith("step 1: checkpoint ")
