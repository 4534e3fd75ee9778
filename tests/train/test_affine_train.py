"""Training of the affine colour head: a step lowers the loss, checkpoints resume, CLI wiring."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from photostyle.api import Stylizer
from photostyle.cli import main
from photostyle.data.datasets import image_folder
from photostyle.inference import StylizeOptions
from photostyle.losses.frontier import gram_log_ratio, ssim_luma
from photostyle.models.affine import AffineHead, LearnedStep
from photostyle.models.checkpoint import read_stylizer
from photostyle.models.refine import FrontierObjective, RefineSettings
from photostyle.models.weights import WeightsError, load_checkpoint, save_checkpoint
from photostyle.train.affine import (
    AffineTrainConfig,
    _distill_loss,
    _PairStream,
    _steer_loss,
    continue_targets,
    distill_targets,
    total_variation,
    train_affine,
)


def _folder(root: Path, write_png) -> Path:  # type: ignore[no-untyped-def]
    for i in range(4):
        write_png(root / ("a" if i % 2 else "b") / f"{i}.png", 40, 48, seed=i)
    return root


def test_steps_on_a_fixed_batch_lower_the_loss(make_encoder, tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    enc = make_encoder()
    head = AffineHead(tiny_cfg.widths, bins=2, hidden=8)
    g = torch.Generator().manual_seed(0)
    c = torch.rand(2, 3, 32, 32, generator=g) * 0.5
    s = torch.rand(2, 3, 32, 32, generator=g) * 0.5 + 0.5
    ec, es = enc(c), enc(s)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        out = head(c, s, ec, es)
        image = out.image.clamp(0, 1)
        style = gram_log_ratio(enc(image).taps, ec.taps, es.taps).mean()
        return style + (1 - ssim_luma(image, c).mean()) + total_variation(out.residual)

    first = loss().item()
    for _ in range(15):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < first - 1e-3


def test_pair_stream_draws_styles_of_the_content_class(tmp_path, write_png) -> None:  # type: ignore[no-untyped-def]
    images = image_folder(_folder(tmp_path / "photos", write_png))
    always = _PairStream(images, 32, seed=0, same_class=1.0)
    never = _PairStream(images, 32, seed=0, same_class=0.0)
    c1, s1, _, _ = always.batch(0, 16)
    c0, s0, _, _ = never.batch(0, 16)
    assert c1.shape == s1.shape == c0.shape == s0.shape == (16, 3, 32, 32)

    def same(stream: _PairStream) -> list[bool]:
        pairs = [stream.pair(n)[:2] for n in range(16)]
        assert all(i != j for i, j in pairs)
        return [bool(images.labels[i] == images.labels[j]) for i, j in pairs]

    assert all(same(always))
    assert not all(same(never))  # 4 images in 2 classes: some random pairs mix them


def test_pair_stream_draws_matched_styles_from_the_neighbours(tmp_path, write_png) -> None:  # type: ignore[no-untyped-def]
    images = image_folder(_folder(tmp_path / "photos", write_png))  # class a: rows 0, 1; b: 2, 3
    # Rows: 0 -> 3; 1 -> 2 (9 is not in the list); 2 -> none (its class instead); 3 -> 0 or 1.
    table = torch.tensor([[3, -1], [2, 9], [-1, -1], [0, 1]])
    near = _PairStream(images, 32, seed=0, same_class=1.0, neighbours=table)
    by_class = _PairStream(images, 32, seed=0, same_class=1.0)
    allowed = {0: {3}, 1: {2}, 2: {3}, 3: {0, 1}}
    pairs = [near.pair(n)[:2] for n in range(32)]
    assert all(j in allowed[i] for i, j in pairs)
    assert {i for i, _ in pairs} == {0, 1, 2, 3}
    assert [i for i, _ in pairs] == [by_class.pair(n)[0] for n in range(32)]  # same contents


def test_pair_stream_grades_style_crops_with_looks_only_when_asked(tmp_path, write_png) -> None:  # type: ignore[no-untyped-def]
    images = image_folder(_folder(tmp_path / "photos", write_png))
    plain = _PairStream(images, 32, seed=0, same_class=0.5)
    graded = _PairStream(images, 32, seed=0, same_class=0.5, looks=1.0)
    c0, s0, _, _ = plain.batch(0, 8)
    c1, s1, _, _ = graded.batch(0, 8)
    torch.testing.assert_close(c1, c0)  # contents and their crops are untouched
    changed = (s1 - s0).abs().flatten(1).mean(1)  # (8,)
    assert (changed > 0.01).all()


def test_total_variation_of_a_constant_grid_is_zero() -> None:
    assert float(total_variation(torch.ones(1, 12, 3, 4, 5))) == 0.0
    ramp = torch.arange(4.0).reshape(1, 1, 1, 1, 4).expand(1, 1, 2, 3, 4)
    assert float(total_variation(ramp)) == 1.0  # unit steps along the columns only


def test_train_resumes_from_its_checkpoint_and_exports_a_stylizer(tmp_path, write_png) -> None:  # type: ignore[no-untyped-def]
    data = _folder(tmp_path / "photos", write_png)
    cfg = AffineTrainConfig.from_dict(
        {
            "data": str(data),
            "out_dir": str(tmp_path / "run"),
            "steps": 2,
            "batch_size": 1,
            "crop": 32,
            "hidden": 8,  # top-level keys of model.grid_hidden and model.grid_bins
            "bins": 2,
            "log_every": 1,
            "checkpoint_every": 1,
            "device": "cpu",
        }
    )
    assert (cfg.model.grid_hidden, cfg.model.grid_bins) == (8, 2)
    path = train_affine(cfg)
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [1, 2]
    # A later metrics line than the checkpoint (a run killed between the two) is dropped on resume.
    with (tmp_path / "run" / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps({"step": 3, "total": 0.0}) + "\n")
    stale = tmp_path / "run" / ".checkpoint.0123456789ab.tmp.safetensors"  # a kill mid-write
    stale.write_bytes(b"half a checkpoint")
    train_affine(AffineTrainConfig(**{**cfg.__dict__, "steps": 4}))
    steps = [
        json.loads(r)["step"] for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4]
    assert not stale.exists()
    stylizer = Stylizer(path, device="cpu")
    assert stylizer.config.head == "affine" and stylizer.config.grid_bins == 2
    content = torch.rand(3, 20, 30)
    assert stylizer.stylize(content, torch.rand(3, 16, 16)).shape == content.shape


def test_cli_train_affine_wires_its_flags(tmp_path, write_png, capsys) -> None:  # type: ignore[no-untyped-def]
    data = _folder(tmp_path / "photos", write_png)
    out = tmp_path / "run"
    argv = [
        "train-affine",
        "--data",
        str(data),
        "--out-dir",
        str(out),
        "--steps",
        "1",
        "--batch-size",
        "1",
        "--crop",
        "32",
        "--hidden",
        "4",
        "--bins",
        "1",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    assert (out / "stylizer.safetensors").is_file()
    assert str(out / "stylizer.safetensors") in capsys.readouterr().out
    config = Stylizer(out / "stylizer.safetensors", device="cpu").config
    assert (config.grid_hidden, config.grid_bins, config.grid_residual) == (4, 1, "curves")


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--style-looks", "2", "--style-looks must be in [0, 1], got 2.0"),
        ("--same-class", "-0.5", "--same-class must be in [0, 1], got -0.5"),
        ("--crop", "16", "--crop must be at least 32, got 16"),
        ("--batch-size", "0", "--batch-size must be at least 1, got 0"),
        ("--distill-pool", "0", "--distill-pool must be at least 1, got 0"),
        ("--distill-extra-steps", "0", "--distill-extra-steps must all be at least 1, got [0]"),
    ],
)
def test_cli_train_affine_refuses_bad_values_naming_the_flag(  # type: ignore[no-untyped-def]
    tmp_path, capsys, flag, value, message
) -> None:
    out = tmp_path / "run"
    argv = ["train-affine", "--data", str(tmp_path), "--out-dir", str(out), flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"photostyle: error: {message}"]
    assert not out.exists()


def test_cli_extra_target_phases_take_one_w_ssim_each(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    argv = ["train-affine", "--data", str(tmp_path), "--out-dir", str(out), "--distill-steps", "8"]
    phases = ["--distill-extra-steps", "8", "4"]
    assert main([*argv, *phases, "--distill-extra-ssim-weight", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "photostyle: error: --distill-extra-ssim-weight must give one w_ssim per phase of extra "
        "steps (2), got 1"
    ]
    assert main([*argv[:-2], *phases, "--distill-extra-ssim-weight", "1", "0.5"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "photostyle: error: --distill-extra-steps needs --distill-steps (the first phase)"
    ]
    assert not out.exists()


def test_flat_stored_configs_of_earlier_releases_still_load(tmp_path: Path) -> None:
    # As earlier releases stored it in checkpoint.safetensors ("config"): the model's settings flat.
    flat = {
        "data": str(tmp_path / "photos"),
        "out_dir": str(tmp_path / "run"),
        "steps": 100000,
        "batch_size": 8,
        "crop": 160,
        "lr": 0.001,
        "ssim_weight": 3.0,
        "tv_weight": 1.0,
        "bins": 8,
        "hidden": 256,
        "base_power": 0.5,
        "residual": "curves",
        "same_class": 0.75,
        "seed": 0,
        "device": "auto",
        "amp": True,
        "log_every": 10,
        "checkpoint_every": 50,
        "max_images": None,
    }
    config = AffineTrainConfig.from_dict(flat)
    model = config.model
    assert (model.grid_bins, model.grid_hidden, model.base_power) == (8, 256, 0.5)
    assert (model.grid_residual, model.head, model.arch) == ("curves", "affine", "vgg16")
    assert (config.steps, config.crop, config.amp) == (100000, 160, True)
    # What this release stores (nested) reads back the same; unknown keys are ignored.
    stored = json.loads(json.dumps(asdict(config)))
    assert "bins" not in stored and stored["model"]["grid_hidden"] == 256
    assert AffineTrainConfig.from_dict({**stored, "from_a_later_release": 1}) == config
    # Defaults: a flat dict without the model's keys gives the release's default head.
    default = AffineTrainConfig.from_dict({"data": "d", "out_dir": "o"}).model
    assert (default.grid_bins, default.grid_hidden, default.grid_residual) == (8, 64, "curves")
    # 0.5.0 stored one extra target phase as two numbers; no phase as 0 steps.
    one = AffineTrainConfig.from_dict(
        {**flat, "distill_steps": 8, "distill_extra_steps": 4, "distill_extra_ssim_weight": 1}
    )
    assert (one.distill_extra_steps, one.distill_extra_ssim_weight) == ((4,), (1.0,))
    none = AffineTrainConfig.from_dict(
        {**flat, "distill_extra_steps": 0, "distill_extra_ssim_weight": 3.0}
    )
    assert (none.distill_extra_steps, none.distill_extra_ssim_weight) == ((), ())
    with pytest.raises(ValueError, match="'bins' is given twice"):
        AffineTrainConfig.from_dict({**stored, "bins": 4})
    with pytest.raises(ValueError, match="config key 'residual' must be one of"):
        AffineTrainConfig.from_dict({**flat, "residual": "grid"})
    with pytest.raises(ValueError, match="affine head on the bundled vgg16"):
        AffineTrainConfig(data="d", out_dir="o", model=replace(model, head="decoder"))


def test_learned_step_training_lowers_the_loss_and_leaves_the_head(make_encoder, tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    enc = make_encoder()
    head = AffineHead(tiny_cfg.widths, bins=2, hidden=8, residual="curves", steer_hidden=16)
    assert head.steer is not None
    g = torch.Generator().manual_seed(0)
    c = torch.rand(2, 3, 32, 32, generator=g) * 0.5
    s = torch.rand(2, 3, 32, 32, generator=g) * 0.5 + 0.5
    ec, es = enc(c), enc(s)
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    cfg = AffineTrainConfig(data=".", out_dir=".", ssim_weight=1.0)
    opt = torch.optim.Adam(head.steer.parameters(), lr=1e-2)
    before = {k: v.clone() for k, v in head.state_dict().items() if not k.startswith("steer.")}

    def loss() -> torch.Tensor:
        return _steer_loss(head, lambda x: enc(x).taps, c, s, ec, es, labels, labels, cfg)[-1]

    first = loss().item()
    for _ in range(10):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < first - 1e-3
    after = {k: v for k, v in head.state_dict().items() if not k.startswith("steer.")}
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_learned_step_loss_uses_the_models_refinement_levels(make_encoder, tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    enc = make_encoder()
    head = AffineHead(tiny_cfg.widths, bins=2, hidden=8, residual="curves", steer_hidden=16)
    g = torch.Generator().manual_seed(1)
    c = torch.rand(2, 3, 32, 32, generator=g) * 0.5
    s = torch.rand(2, 3, 32, 32, generator=g) * 0.5 + 0.5
    ec, es = enc(c), enc(s)
    labels = torch.zeros(2, 32, 32, dtype=torch.long)

    def taps(x: torch.Tensor) -> list[torch.Tensor]:
        return enc(x).taps

    def by_hand(levels: int) -> torch.Tensor:  # the step and the loss after it, both at ``levels``
        settings = RefineSettings(steps=1, ssim_weight=3.0, levels=levels)
        with torch.no_grad():
            base, grade = head.grid(c, s, ec, es, content_labels=labels, style_labels=labels)
            objective = FrontierObjective(head, taps, c, base, ec.taps, es.taps, settings)
            stepped = grade + objective.step(grade, head.steer)
            style, dissimilarity, smooth = objective.terms(stepped)
        return (style + 4.0 * dissimilarity + smooth).mean()

    for levels in (2, 4):
        model = replace(AffineTrainConfig(data=".", out_dir=".").model, refine_levels=levels)
        cfg = AffineTrainConfig(data=".", out_dir=".", model=model)
        with torch.no_grad():
            total = _steer_loss(head, taps, c, s, ec, es, labels, labels, cfg)[-1]
        torch.testing.assert_close(total, by_hand(levels))
    assert not torch.allclose(by_hand(2), by_hand(4))


def test_train_steer_starts_from_a_stylizer_and_trains_only_the_step(tmp_path, write_png) -> None:  # type: ignore[no-untyped-def]
    data = _folder(tmp_path / "photos", write_png)
    common = {"data": str(data), "batch_size": 1, "crop": 32, "hidden": 8, "bins": 2}
    first = train_affine(
        AffineTrainConfig.from_dict({**common, "out_dir": str(tmp_path / "a"), "steps": 1})
    )
    steered = train_affine(
        AffineTrainConfig.from_dict(
            {
                **common,
                "out_dir": str(tmp_path / "b"),
                "steps": 2,
                "init": str(first),
                "steer_hidden": 8,
                "train_steer": True,
                "lr": 1e-2,
            }
        )
    )
    old, new = Stylizer(first, device="cpu"), Stylizer(steered, device="cpu")
    assert new.config.steer_hidden == 8
    old_head, new_head = old.model.decoder.state_dict(), new.model.decoder.state_dict()
    assert all(torch.equal(v, new_head[k]) for k, v in old_head.items())  # the head as given
    assert new_head["steer.mlp.5.weight"].abs().sum() > 0  # trained away from the plain step
    content = torch.rand(3, 20, 30)
    out = new.stylize(content, torch.rand(3, 16, 16), options=StylizeOptions(refine=1))
    assert out.shape == content.shape


def test_train_steer_refits_a_learned_step_of_another_width(tmp_path, write_png) -> None:  # type: ignore[no-untyped-def]
    """A run that trains its step starts from the file's head whatever the width of the file's
    step (a release's merged fits are wider than one fit); a run that keeps the step refuses."""
    data = _folder(tmp_path / "photos", write_png)
    common = {"data": str(data), "batch_size": 1, "crop": 32, "hidden": 8, "bins": 2}
    wide = train_affine(
        AffineTrainConfig.from_dict(
            {**common, "out_dir": str(tmp_path / "a"), "steps": 1, "steer_hidden": 12}
        )
    )
    narrow = {**common, "steps": 1, "init": str(wide), "steer_hidden": 4}
    steered = train_affine(
        AffineTrainConfig.from_dict({**narrow, "out_dir": str(tmp_path / "b"), "train_steer": True})
    )
    old = Stylizer(wide, device="cpu").model.decoder.state_dict()
    new = Stylizer(steered, device="cpu").model.decoder.state_dict()
    assert new["steer.mlp.1.weight"].shape[0] == 4
    assert all(torch.equal(v, new[k]) for k, v in old.items() if not k.startswith("steer."))
    with pytest.raises(WeightsError, match=r"size mismatch for steer\.mlp\.1\.weight"):
        train_affine(AffineTrainConfig.from_dict({**narrow, "out_dir": str(tmp_path / "c")}))


def test_train_steer_fine_tunes_a_learned_step_of_the_same_width(tmp_path, write_png) -> None:  # type: ignore[no-untyped-def]
    """A run that trains its step starts from the file's step when the widths agree (how a
    release's step is fine-tuned), not from its own seed's initial weights."""
    data = _folder(tmp_path / "photos", write_png)
    common = {"data": str(data), "batch_size": 1, "crop": 32, "hidden": 8, "bins": 2}
    common |= {"steer_hidden": 6, "train_steer": True}
    first = train_affine(
        AffineTrainConfig.from_dict(
            {**common, "out_dir": str(tmp_path / "a"), "steps": 1, "lr": 1e-2}
        )
    )
    again = train_affine(
        AffineTrainConfig.from_dict(
            {**common, "out_dir": str(tmp_path / "b"), "steps": 0, "init": str(first), "seed": 7}
        )
    )
    old = Stylizer(first, device="cpu").model.decoder.state_dict()
    new = Stylizer(again, device="cpu").model.decoder.state_dict()
    assert old["steer.mlp.5.weight"].abs().sum() > 0  # a trained step, not the plain one
    assert all(torch.equal(v, new[k]) for k, v in old.items())


def test_train_steer_refuses_a_head_of_another_shape(tmp_path, write_png) -> None:  # type: ignore[no-untyped-def]
    data = _folder(tmp_path / "photos", write_png)
    common = {"data": str(data), "batch_size": 1, "crop": 32, "bins": 2}
    first = train_affine(
        AffineTrainConfig.from_dict(
            {**common, "out_dir": str(tmp_path / "a"), "steps": 1, "hidden": 8}
        )
    )
    cfg = AffineTrainConfig.from_dict(
        {**common, "out_dir": str(tmp_path / "b"), "steps": 1, "hidden": 4, "init": str(first)}
    )
    with pytest.raises(
        WeightsError,
        match=r"does not fit this run.s architecture .*size mismatch for curves\.1\.weight",
    ):
        train_affine(cfg)


def test_cli_train_steer_needs_a_learned_step(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    argv = ["train-affine", "--data", str(tmp_path), "--out-dir", str(out), "--train-steer"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "photostyle: error: --train-steer needs --steer-hidden > 0 (the learned step's width)"
    ]
    assert not out.exists()


def test_distill_targets_lower_the_frontier_loss_from_the_base(make_encoder, tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    enc = make_encoder()
    # A base that shifts only the mean colour leaves the style's contrast to the refinement.
    head = AffineHead(tiny_cfg.widths, bins=2, hidden=8, residual="curves", base_power=0.0)
    g = torch.Generator().manual_seed(1)
    c = torch.rand(2, 3, 32, 32, generator=g) * 0.2 + 0.3
    s = torch.rand(2, 3, 32, 32, generator=g)
    ec, es = enc(c), enc(s)
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    settings = RefineSettings(steps=3, ssim_weight=1.0)
    inputs, target = distill_targets(head, enc, c, s, ec, es, labels, labels, [settings])
    assert target.shape == (2, 12, 2, 1, 1) and inputs.shape[0] == 2
    assert torch.equal(head.curves_from(inputs), torch.zeros_like(target))  # untrained: the base
    # Three steps of 0.1 from the base, each of length 0.1 (steps may turn, so at most 0.3 away).
    assert (target.flatten(1).norm(dim=1) <= 0.3 + 1e-5).all()
    base = head.grid(c, s, ec, es, content_labels=labels, style_labels=labels)[0]
    objective = FrontierObjective(head, lambda x: enc(x).taps, c, base, ec.taps, es.taps, settings)

    def loss(grade: torch.Tensor) -> torch.Tensor:
        style, dissimilarity, smooth = objective.terms(grade)
        return style + objective.structure(dissimilarity, smooth)  # (B,)

    with torch.no_grad():
        assert (loss(target) < loss(torch.zeros_like(target)) - 1e-4).all()


def test_distill_targets_take_plain_steps_whatever_the_learned_step(make_encoder, tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    """The targets are the untrained architecture's refinement: a learned step being trained must
    not feed back into its own targets."""
    enc = make_encoder()
    kwargs = {"bins": 2, "hidden": 8, "residual": "curves", "base_power": 0.0}
    plain = AffineHead(tiny_cfg.widths, **kwargs)
    steered = AffineHead(tiny_cfg.widths, steer_hidden=8, **kwargs)
    steered.load_state_dict(plain.state_dict(), strict=False)
    assert steered.steer is not None
    with torch.no_grad():
        steered.steer.mlp[-1].bias.fill_(0.05)  # a step far from the plain one
    g = torch.Generator().manual_seed(2)
    c = torch.rand(1, 3, 32, 32, generator=g) * 0.2 + 0.3
    s = torch.rand(1, 3, 32, 32, generator=g)
    ec, es = enc(c), enc(s)
    labels = torch.zeros(1, 32, 32, dtype=torch.long)
    phases = [RefineSettings(steps=2, ssim_weight=1.0)]
    _, want = distill_targets(plain, enc, c, s, ec, es, labels, labels, phases)
    inputs, got = distill_targets(steered, enc, c, s, ec, es, labels, labels, phases, steer=True)
    torch.testing.assert_close(got, want)
    assert inputs.shape == (1, 3 * 24 + 2)


def _pool_config(tmp_path: Path, data: Path, **extra: object) -> AffineTrainConfig:
    """A one-step run on a tiny distillation pool (2 plain steps per target) in ``tmp_path/run``."""
    common = {"steps": 1, "batch_size": 2, "crop": 32, "hidden": 8, "bins": 2, "distill_steps": 2}
    run = {"data": str(data), "out_dir": str(tmp_path / "run")}
    return AffineTrainConfig.from_dict(run | common | extra)


def _refine_again(*args: object, **kwargs: object) -> None:
    raise AssertionError("a resumed distillation computed a target again")


def test_distillation_fits_the_pool_and_a_resume_reuses_its_targets(  # type: ignore[no-untyped-def]
    tmp_path, write_png, monkeypatch
) -> None:
    data = _folder(tmp_path / "photos", write_png)
    cfg = AffineTrainConfig.from_dict(
        {
            "data": str(data),
            "out_dir": str(tmp_path / "run"),
            "steps": 20,
            "batch_size": 2,
            "crop": 32,
            "hidden": 16,
            "bins": 2,
            "lr": 1e-3,
            "distill_steps": 2,
            "distill_pool": 2,  # one batch: every step fits the same two refined grades
            "log_every": 1,
            "checkpoint_every": 10,
            "device": "cpu",
        }
    )
    train_affine(cfg)
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    pool = load_file(str(tmp_path / "run" / "distill_targets.safetensors"))
    assert pool["index"].tolist() == [0, 1] and [r["pool"] for r in rows] == [2.0] * 20
    # The untrained head predicts a zero residual: the first loss is the targets' squared norm.
    expected = pool["targets"].flatten(1).pow(2).sum(1).mean()
    assert rows[0]["total"] == pytest.approx(float(expected), rel=1e-5)
    assert float(expected) > 1e-3  # the refinement moved away from the base
    assert rows[-1]["total"] < 0.2 * rows[0]["total"]
    monkeypatch.setattr("photostyle.train.affine.refine_grade", _refine_again)
    train_affine(replace(cfg, steps=22))
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == list(range(1, 23))
    # A resume whose targets would differ (other crops, other extra steps) is refused.
    saved = (tmp_path / "run" / "distill_targets.safetensors").read_bytes()
    with pytest.raises(ValueError, match="crop=32, this run has 48; keep the settings"):
        train_affine(replace(cfg, steps=24, crop=48))
    with pytest.raises(ValueError, match="targets took 2 refinement steps that this run's 1 do"):
        train_affine(replace(cfg, steps=24, distill_steps=1))
    assert (tmp_path / "run" / "distill_targets.safetensors").read_bytes() == saved


def test_styles_matched_by_a_perceptual_index_and_their_pool(  # type: ignore[no-untyped-def]
    tmp_path, write_png, tiny_encoder
) -> None:
    """Styles matched by the index's neighbours: an index of other photos is refused, and a
    pool is only taken up by runs that match styles the same way."""
    from photostyle.data.embed_index import IndexConfig, build_embedding_index
    from photostyle.data.sources import DataSource

    data = _folder(tmp_path / "photos", write_png)
    index = tmp_path / "index"
    build_embedding_index(index, DataSource(str(data)), tiny_encoder, IndexConfig(16, 16, 0))
    common = {
        "data": str(data), "steps": 1, "batch_size": 2, "crop": 32, "hidden": 8, "bins": 2,
        "distill_steps": 1, "distill_pool": 2, "device": "cpu", "same_class": 1.0,
    }  # fmt: skip
    matched = {**common, "style_index": str(index), "style_neighbours": 1}
    train_affine(AffineTrainConfig.from_dict({**matched, "out_dir": str(tmp_path / "m")}))
    train_affine(AffineTrainConfig.from_dict({**common, "out_dir": str(tmp_path / "c")}))
    with pytest.raises(ValueError, match=r"computed with style_index=.*this run has None"):
        train_affine(AffineTrainConfig.from_dict({**common, "out_dir": str(tmp_path / "m")}))
    with pytest.raises(ValueError, match="computed without style_index, this run has"):
        train_affine(AffineTrainConfig.from_dict({**matched, "out_dir": str(tmp_path / "c")}))
    other = _folder(tmp_path / "other", write_png)
    write_png(other / "a" / "extra.png", 40, 48, seed=9)
    with pytest.raises(ValueError, match="an index of other photos than"):
        train_affine(
            AffineTrainConfig.from_dict({**matched, "data": str(other), "out_dir": str(tmp_path)})
        )
    with pytest.raises(ValueError, match=r"style_neighbours \(> 0\) and style_index go together"):
        AffineTrainConfig.from_dict({**common, "out_dir": ".", "style_neighbours": 1})


def test_cli_distillation_needs_the_curves_head(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    argv = ["train-affine", "--data", str(tmp_path), "--out-dir", str(out), "--distill-steps", "2"]
    assert main([*argv, "--residual", "spatial"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "photostyle: error: --distill-steps needs --residual curves"
    ]
    assert not out.exists()


def test_steer_distillation_fits_the_step_on_the_frozen_heads_inputs(tmp_path, write_png) -> None:  # type: ignore[no-untyped-def]
    data = _folder(tmp_path / "photos", write_png)
    common = {"data": str(data), "batch_size": 2, "crop": 32, "hidden": 8, "bins": 2}
    head = train_affine(
        AffineTrainConfig.from_dict({**common, "out_dir": str(tmp_path / "a"), "steps": 1})
    )
    runs = {}
    for name, extra in (("b", []), ("c", [1, 1])):
        cfg = {
            **common,
            "out_dir": str(tmp_path / name),
            "steps": 20,
            "init": str(head),
            "steer_hidden": 16,
            "train_steer": True,
            "lr": 1e-3,
            "distill_steps": 2,
            "distill_extra_steps": extra,  # "c": two phases of one step
            "distill_extra_ssim_weight": [0.5, 1.0][: len(extra)],
            "distill_pool": 2,
            "log_every": 1,
        }
        path = train_affine(AffineTrainConfig.from_dict(cfg))
        rows = [json.loads(r) for r in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        runs[name] = (path, rows, load_file(str(tmp_path / name / "distill_targets.safetensors")))
    path, rows, pool = runs["b"]
    assert rows[-1]["total"] < 0.5 * rows[0]["total"]
    # The step's inputs are taken at the frozen head's grade: 3 x 24 coefficients and 2 losses.
    assert pool["inputs"].shape == (2, 3 * 24 + 2)
    stylizer = Stylizer(path, device="cpu")
    old = Stylizer(head, device="cpu").model.decoder.state_dict()
    new = stylizer.model.decoder.state_dict()
    assert all(torch.equal(v, new[k]) for k, v in old.items())  # only the step was trained
    # Extra steps move the targets on from where the first phase ended (same inputs).
    extended = runs["c"][2]
    torch.testing.assert_close(extended["inputs"], pool["inputs"])
    moved = (extended["targets"] - pool["targets"]).flatten(1).norm(dim=1)
    assert ((moved > 1e-3) & (moved <= 0.2 + 1e-5)).all()  # two steps of 0.1 at most


def test_weight_averaging_exports_the_mean_of_the_steps_weights_across_a_resume(  # type: ignore[no-untyped-def]
    tmp_path, write_png
) -> None:
    data = _folder(tmp_path / "photos", write_png)
    common = {"data": str(data), "batch_size": 2, "crop": 32, "hidden": 8, "bins": 2}
    head = train_affine(
        AffineTrainConfig.from_dict({**common, "out_dir": str(tmp_path / "a"), "steps": 1})
    )
    steer = {
        **common,
        "init": str(head),
        "steer_hidden": 16,
        "train_steer": True,
        "distill_steps": 1,
        "distill_pool": 2,
        "checkpoint_every": 1,
    }

    def steer_weights(run: str, steps: int, average_from: int | None) -> dict[str, torch.Tensor]:
        cfg = {**steer, "out_dir": str(tmp_path / run), "steps": steps}
        path = train_affine(AffineTrainConfig.from_dict(cfg | {"average_from": average_from}))
        state = read_stylizer(path).state
        return {k: v for k, v in state.items() if k.startswith("steer.")}

    # Without averaging: the weights after steps 2 and 3 (one run, resumed).
    raw = [steer_weights("plain", n, None) for n in (1, 2, 3)]
    assert not torch.equal(raw[1]["steer.mlp.5.weight"], raw[2]["steer.mlp.5.weight"])
    # Averaging from step 2 exports their mean, in one session or resumed after step 2.
    whole = steer_weights("avg", 3, 2)
    steer_weights("avg_resumed", 2, 2)
    resumed = steer_weights("avg_resumed", 3, 2)
    for k, v in whole.items():
        torch.testing.assert_close(v, (raw[1][k] + raw[2][k]) / 2)
        torch.testing.assert_close(resumed[k], v)
    # Other weights are the frozen head's.
    exported = read_stylizer(tmp_path / "avg" / "stylizer.safetensors").state
    frozen = read_stylizer(head).state
    assert all(exported[k].equal(v) for k, v in frozen.items() if not k.startswith("steer."))
    with pytest.raises(ValueError, match="average_from must be at least 0, got -1"):
        AffineTrainConfig.from_dict({**steer, "out_dir": str(tmp_path / "x"), "average_from": -1})


def test_steps_fitted_side_by_side_export_their_mean_and_resume(tmp_path, write_png) -> None:  # type: ignore[no-untyped-def]
    data = _folder(tmp_path / "photos", write_png)
    common = {"data": str(data), "batch_size": 2, "crop": 32, "hidden": 8, "bins": 2}
    head = train_affine(
        AffineTrainConfig.from_dict({**common, "out_dir": str(tmp_path / "a"), "steps": 1})
    )
    cfg = AffineTrainConfig.from_dict(
        {
            **common,
            "out_dir": str(tmp_path / "fits"),
            "steps": 6,
            "init": str(head),
            "steer_hidden": 16,
            "train_steer": True,
            "distill_steps": 1,
            "distill_pool": 4,
            "distill_holdout": 2,
            "fits": 3,
            "average_from": 4,
            "log_every": 2,
            "checkpoint_every": 3,
        }
    )
    train_affine(replace(cfg, steps=3))
    path = train_affine(cfg)  # resumed after step 3
    straight = train_affine(replace(cfg, out_dir=str(tmp_path / "straight")))
    state, whole = read_stylizer(path).state, read_stylizer(straight).state
    for k, v in whole.items():
        torch.testing.assert_close(state[k], v)
    stylizer = Stylizer(path, device="cpu")
    assert stylizer.config.steer_hidden == 48  # three steps of width 16, side by side
    # The exported step changes a grade by the mean of the three averaged fits' changes.
    ckpt = load_file(str(tmp_path / "fits" / "checkpoint.safetensors"))
    fits = [LearnedStep(24, 16) for _ in range(3)]
    for i, fit in enumerate(fits):
        prefix = f"average.module.{i}."
        fit.load_state_dict({k[len(prefix) :]: v for k, v in ckpt.items() if k.startswith(prefix)})
    assert not torch.equal(fits[0].mlp[1].weight, fits[1].mlp[1].weight)  # own initial weights
    torch.manual_seed(0)
    grade, grad_s, grad_q = (torch.randn(5, 24) for _ in range(3))
    losses = torch.randn(5, 2)
    changes = torch.stack([fit(grade, grad_s, grad_q, losses, 0.1) for fit in fits])
    assert changes.std(0).max() > 1e-4  # the fits differ
    steer = stylizer.model.decoder.steer
    torch.testing.assert_close(steer(grade, grad_s, grad_q, losses, 0.1), changes.mean(0))
    rows = [json.loads(r) for r in (tmp_path / "fits" / "metrics.jsonl").read_text().splitlines()]
    assert {"held_out", "held_out_merged", "held_out_average_merged"} <= set(rows[-1])
    with pytest.raises(ValueError, match="fits above 1 needs --train-steer and --distill-steps"):
        replace(cfg, distill_steps=0)


def test_held_out_pairs_are_not_fitted_and_their_distance_is_logged(tmp_path, write_png) -> None:  # type: ignore[no-untyped-def]
    data = _folder(tmp_path / "photos", write_png)
    common = {"data": str(data), "batch_size": 2, "crop": 32, "hidden": 8, "bins": 2}
    head = train_affine(
        AffineTrainConfig.from_dict({**common, "out_dir": str(tmp_path / "a"), "steps": 1})
    )
    cfg = {
        **common,
        "out_dir": str(tmp_path / "run"),
        "init": str(head),
        "steer_hidden": 16,
        "train_steer": True,
        "distill_steps": 1,
        "distill_pool": 4,
        "distill_holdout": 2,  # pairs 0 and 2 held out, 1 and 3 fitted
        "steps": 8,
        "average_from": 5,
        "log_every": 1,
    }
    path = train_affine(AffineTrainConfig.from_dict(cfg))
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    pool = load_file(str(tmp_path / "run" / "distill_targets.safetensors"))
    assert pool["index"].tolist() == [0, 1, 2, 3]  # the held-out pairs filled with the stream
    assert all("held_out" in r for r in rows) and "held_out_average" in rows[-1]
    assert "held_out_average" not in rows[3] and "held_out_average" in rows[4]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(tmp_path / "run" / "tb")).Reload().Tags()["scalars"]
    assert {"loss/held_out", "loss/held_out_average", "train/pool", "train/seconds"} <= set(tags)
    assert rows[-1]["total"] < 0.5 * rows[0]["total"]  # the fitted pairs are fitted
    # The last logged held-out distance is the exported (averaged) step's on pairs 0 and 2.
    steer = Stylizer(path, device="cpu").model.decoder.steer
    x, y = pool["inputs"][[0, 2]], pool["targets"][[0, 2]]
    with torch.no_grad():
        distance = _distill_loss(steer, x, y, 0.1).item()
        fitted = _distill_loss(steer, pool["inputs"][[1, 3]], pool["targets"][[1, 3]], 0.1).item()
    assert rows[-1]["held_out_average"] == pytest.approx(distance, rel=1e-5)
    assert fitted < distance  # what the fit saw is closer than what it did not
    with pytest.raises(ValueError, match=r"holdout must be 0 \(none\) or at least 2, got 1"):
        AffineTrainConfig.from_dict({**cfg, "distill_holdout": 1})


def test_more_extra_steps_continue_a_saved_pool_as_a_fresh_pool_would_compute_it(  # type: ignore[no-untyped-def]
    tmp_path, write_png, monkeypatch
) -> None:
    cfg = _pool_config(
        tmp_path,
        _folder(tmp_path / "photos", write_png),
        distill_extra_steps=[1],
        distill_extra_ssim_weight=[0.5],
        distill_pool=4,
    )
    train_affine(cfg)  # pairs 0 and 1 at 2 + 1 steps
    pool = tmp_path / "run" / "distill_targets.safetensors"
    first = load_file(str(pool))
    assert first["steps"].tolist() == [3, 3]
    calls: list[int] = []

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(args[2]))  # the batch's pairs
        return continue_targets(*args, **kwargs)

    monkeypatch.setattr("photostyle.train.affine.continue_targets", counted)
    # A second phase at another w_ssim: pairs 2, 3 new; 0, 1 moved on.
    more = {"distill_extra_steps": (1, 2), "distill_extra_ssim_weight": (0.5, 0.25)}
    train_affine(replace(cfg, steps=3, **more))  # type: ignore[arg-type]
    fresh = replace(cfg, out_dir=str(tmp_path / "fresh"), steps=3, **more)  # type: ignore[arg-type]
    train_affine(fresh)
    moved, scratch = load_file(str(pool)), load_file(str(tmp_path / "fresh" / pool.name))
    assert moved["index"].tolist() == [0, 1, 2, 3] and moved["steps"].tolist() == [5] * 4
    assert calls == [2]  # one batch taken 2 steps further, the new pairs computed from the base
    torch.testing.assert_close(moved["inputs"], scratch["inputs"])
    torch.testing.assert_close(moved["targets"], scratch["targets"], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(moved["targets"][:2], first["targets"], atol=1e-4)


def test_pool_targets_ignore_the_models_later_ssim_weight_and_old_pools_resume(  # type: ignore[no-untyped-def]
    tmp_path, write_png, monkeypatch
) -> None:
    """The targets' schedule is their phases: a model refined at another w_ssim after its first
    step gets the same pool. A pool saved before RefineSettings had ``later_ssim_weight`` (0.6)
    resumes without computing a target again."""
    cfg = _pool_config(tmp_path, _folder(tmp_path / "photos", write_png), distill_pool=2)
    train_affine(cfg)
    later = replace(cfg.model, refine_later_ssim_weight=0.25)
    train_affine(replace(cfg, out_dir=str(tmp_path / "later"), model=later))
    pool = tmp_path / "run" / "distill_targets.safetensors"
    tensors, meta = load_checkpoint(pool)
    torch.testing.assert_close(
        load_file(str(tmp_path / "later" / pool.name))["targets"],
        tensors["targets"],
        atol=0,
        rtol=0,
    )
    settings = json.loads(meta["settings"])
    for step in settings["steps"]:
        del step["later_ssim_weight"]
    save_checkpoint(pool, tensors, meta | {"settings": json.dumps(settings)})
    monkeypatch.setattr("photostyle.train.affine.refine_grade", _refine_again)
    train_affine(replace(cfg, steps=2))
