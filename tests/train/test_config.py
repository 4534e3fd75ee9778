"""Tests of the typed training configuration: validation and (de)serialisation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from photostyle.data.sampler import SamplingConfig
from photostyle.models.stylizer import ModelConfig
from photostyle.train.config import (
    TrainConfig,
    config_yaml,
    field_comments,
    layered_config,
    read_config_file,
)


def test_defaults_follow_the_paper():
    cfg = TrainConfig()
    assert cfg.adam_betas == (0.5, 0.999)
    assert cfg.lr == 1e-4
    assert cfg.beta == 1.0
    assert (cfg.use_scp, cfg.use_restyle, cfg.use_perceptual) == (True, True, True)
    assert cfg.sampling == SamplingConfig(t1=0.5, t2=0.1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fa": "adain"}, "unknown FA variant"),
        ({"crop": 15}, "crop must be >= 16"),
        ({"batch_size": 0}, "batch_size >= 1"),
        ({"steps": -1}, "steps >= 0"),
        ({"use_scp": False, "use_perceptual": False}, "at least one"),
        ({"arch": "vgg13"}, "unknown arch"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"beta": -1.0}, "beta >= 0"),
        ({"adam_betas": (0.5, 1.0)}, "Adam betas"),
        ({"log_every": 0}, "log_every"),
        ({"ckpt_every": 0}, "ckpt_every"),
        ({"image_every": 0}, "image_every"),
        ({"workers": -1}, "workers >= 0"),
        ({"index_size": 8}, "index_size"),
        ({"max_images": 0}, "max_images"),
        ({"reconstruction": True}, "needs fa='none'"),  # refused, never silently switched
        ({"reconstruction": True, "fa": "wct"}, "needs fa='none'"),
        ({"amp_dtype": "float8"}, "amp_dtype must be"),
        ({"amp": True, "fa": "quantile"}, "amp is not supported with fa='quantile'"),
        ({"grad_clip": 0.0}, "grad_clip must be > 0"),
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, Any], match: str):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict(kwargs)  # arch, fa: top-level keys of the nested model


def test_smallest_valid_settings_are_accepted():
    cfg = TrainConfig(crop=16, steps=0, index_size=16, use_scp=False, max_images=1, workers=0)
    assert cfg.crop == 16
    assert TrainConfig(use_perceptual=False).use_scp


def _custom() -> TrainConfig:
    return TrainConfig(
        data="photos",
        out_dir="runs/x",
        model=ModelConfig.for_arch("vgg19", fa="wct", residual=True),
        encoder_weights="vgg19.pth",
        crop=64,
        batch_size=2,
        steps=7,
        lr=5e-4,
        adam_betas=(0.9, 0.99),
        beta=0.25,
        use_restyle=False,
        sampling=SamplingConfig(t1=0.3, t2=0.2),
        max_images=5,
        time_limit_s=12.5,
    )


def test_dict_round_trip_keeps_every_field():
    cfg = _custom()
    d = cfg.to_dict()
    assert d["sampling"] == {"t1": 0.3, "t2": 0.2}
    back = TrainConfig.from_dict(d)
    assert back == cfg
    assert isinstance(back.sampling, SamplingConfig)
    assert back.adam_betas == (0.9, 0.99)


def test_json_round_trip_restores_tuple_and_sampling(tmp_path: Path):
    cfg = _custom()
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_dict()))  # JSON turns the betas tuple into a list
    back = TrainConfig.from_json(path)
    assert back == cfg
    assert isinstance(back.adam_betas, tuple)
    assert back.sampling == SamplingConfig(t1=0.3, t2=0.2)


def test_from_dict_ignores_unknown_keys_and_validates():
    cfg = TrainConfig.from_dict({"steps": 3, "sampling": {"t1": 1.0, "t2": 0.5}, "future": 1})
    assert cfg.steps == 3
    assert cfg.sampling == SamplingConfig(t1=1.0, t2=0.5)
    with pytest.raises(ValueError):
        TrainConfig.from_dict({"sampling": {"t1": 0.0, "t2": 0.1}})
    with pytest.raises(ValueError):
        TrainConfig.from_dict({"fa": "nope"})


def test_reconstruction_config_round_trips():
    cfg = TrainConfig(reconstruction=True, model=ModelConfig(fa="none"))
    assert not TrainConfig().reconstruction
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    no_fa = TrainConfig.from_dict({"fa": "none"})  # a no-FA two-stage ablation stays possible
    assert no_fa.model.fa == "none"


# --- YAML files: every setting documented, strict keys and types ---------------------------------


@pytest.mark.parametrize("cls", [TrainConfig, SamplingConfig, ModelConfig])
def test_every_setting_has_a_comment(cls: type):
    comments = field_comments(cls)
    assert set(comments) == set(cls.__dataclass_fields__)
    assert all(len(text) > 10 for text in comments.values()), comments


def test_default_yaml_shows_every_setting_with_its_comment_and_reads_back(tmp_path: Path):
    text = config_yaml(TrainConfig())
    lines = text.splitlines()
    comments = field_comments(TrainConfig)
    for name in TrainConfig.__dataclass_fields__:
        (line,) = [x for x in lines if x.startswith(f"{name}:")]
        assert line.endswith(f"# {comments[name]}"), line
    sampling = field_comments(SamplingConfig)
    for name in ("t1", "t2"):
        (line,) = [x for x in lines if x.startswith(f"  {name}: ")]
        assert line.endswith(f"# {sampling[name]}")
    assert "lr: 0.0001 " in text and "encoder_weights: null " in text
    assert "adam_betas: [0.5, 0.999] " in text
    path = tmp_path / "run.yaml"
    path.write_text(text)
    assert TrainConfig.from_file(path) == TrainConfig()


def test_custom_config_round_trips_through_yaml(tmp_path: Path):
    cfg = TrainConfig.from_dict(
        {
            **_custom().to_dict(),
            "data": 'my photos: "beach" #1',  # YAML syntax inside a string
            "out_dir": "yes",  # would be a boolean if written unquoted (YAML 1.1)
            "lr": 2.5e-5,
            "sampling": SamplingConfig(t1=0.3, t2=0.2),
            "amp": True,
            "channels_last": True,
            "grad_clip": 1.0,
        }
    )
    path = tmp_path / "run.yaml"
    path.write_text(cfg.to_yaml())
    assert TrainConfig.from_file(path) == cfg
    yaml = pytest.importorskip("yaml")
    plain = yaml.safe_load(path.read_text())  # a plain YAML reader sees the same values
    assert plain["data"] == cfg.data and plain["out_dir"] == "yes" and plain["lr"] == 2.5e-5


def test_yaml_reads_exponents_ints_as_floats_and_partial_sampling(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text("lr: 1e-3\nbeta: 2\nadam_betas: [0.9, 0.99]\nsampling: {t2: 0.2}\n")
    cfg = TrainConfig.from_file(path)
    assert cfg.lr == 1e-3 and isinstance(cfg.lr, float)
    assert cfg.beta == 2.0 and isinstance(cfg.beta, float)
    assert cfg.adam_betas == (0.9, 0.99)
    assert cfg.sampling == SamplingConfig(t1=0.5, t2=0.2)
    assert read_config_file(path).keys() == {"lr", "beta", "adam_betas", "sampling"}
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing set\n")
    assert TrainConfig.from_file(empty) == TrainConfig()


def test_json_config_files_are_read_strictly(tmp_path: Path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"steps": 7, "sampling": {"t1": 0.2, "t2": 0.4}}))
    assert TrainConfig.from_file(path) == TrainConfig(steps=7, sampling=SamplingConfig(0.2, 0.4))
    path.write_text(json.dumps({"steps": 7.5}))
    with pytest.raises(ValueError, match=r"run.json: config key 'steps' must be an integer"):
        TrainConfig.from_file(path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("stpes: 3", r"unknown config key 'stpes' \(did you mean 'steps'\?\)"),
        ("zzz: 3", r"unknown config key 'zzz'$"),
        ("steps: ten", r"config key 'steps' must be an integer, got 'ten'"),
        ("steps: true", r"config key 'steps' must be an integer, got True"),
        ("lr: fast", r"config key 'lr' must be a number, got 'fast'"),
        ("amp: 1", r"config key 'amp' must be true or false, got 1"),
        ("fa: adain", r"config key 'fa' must be one of 'paper', 'mean_std'"),
        ("adam_betas: [0.5]", r"config key 'adam_betas' must be a list of 2 numbers"),
        ("max_images: many", r"config key 'max_images' must be an integer or null"),
        ("sampling: 3", r"config key 'sampling' must be a mapping"),
        ("sampling: {t_1: 0.1}", r"unknown config key 'sampling.t_1' \(did you mean 'sampling.t1'"),
        ("sampling: {t1: high}", r"config key 'sampling.t1' must be a number"),
        ("sampling: {t1: 2.0}", r"t1 and t2 must be in \(0, 1\]"),
        ("- steps: 3", r"a config file must be a mapping"),
        ("steps: [1,", r"not valid YAML \(line \d+: "),
    ],
)
def test_bad_config_files_are_refused_naming_the_key(tmp_path: Path, text: str, match: str):
    path = tmp_path / "run.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ValueError, match=match) as info:
        TrainConfig.from_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


def test_strict_from_dict_refuses_what_the_lenient_one_ignores():
    assert TrainConfig.from_dict({"steps": 3, "future": 1}).steps == 3  # old/new checkpoints
    with pytest.raises(ValueError, match="unknown config key 'future'"):
        TrainConfig.from_dict({"steps": 3, "future": 1}, strict=True)
    with pytest.raises(ValueError, match="cannot read config"):
        read_config_file("/nonexistent/run.yaml")


def test_layered_config_flags_override_the_file_which_overrides_defaults(tmp_path: Path):
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps({"steps": 7, "lr": 0.001, "use_scp": False, "sampling": {"t2": 0.3}})
    )
    config = layered_config(path, {"lr": 0.002, "crop": None, "sampling.t1": 0.2})
    assert (config.steps, config.lr, config.crop, config.use_scp) == (7, 0.002, 128, False)
    assert config.sampling == SamplingConfig(t1=0.2, t2=0.3)  # the file's t2 kept
    assert layered_config(overrides={"sampling.t2": 0.4}).sampling == SamplingConfig(t2=0.4)
    assert layered_config() == TrainConfig()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"stepz": 3}, "unknown config key 'stepz'"),
        ({"steps.x": 3}, "unknown config key 'steps.x'"),
        ({"steps": "3"}, "config key 'steps' must be an integer"),
        ({"sampling.t1": 2.0}, "t1 and t2 must be in"),
    ],
)
def test_layered_config_refuses_bad_overrides(overrides: dict[str, Any], match: str):
    with pytest.raises(ValueError, match=match):
        layered_config(overrides=overrides)


# --- the nested model: ModelConfig, and the flat keys of earlier releases ------------------------


def test_old_flat_train_config_dicts_still_load():
    """Checkpoints of earlier releases saved arch, fa and residual as top-level keys."""
    old = {**TrainConfig().to_dict(), "steps": 3}
    del old["model"]
    old |= {"arch": "vgg19", "fa": "wct", "residual": False}
    cfg = TrainConfig.from_dict(json.loads(json.dumps(old)))
    assert cfg.model == ModelConfig.for_arch("vgg19", fa="wct", residual=False)
    assert cfg.steps == 3 and "arch" not in cfg.to_dict()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # and the new form round-trips
    assert TrainConfig.from_dict(old, strict=True) == cfg


def test_model_defaults_and_widths_follow_the_arch():
    assert TrainConfig().model == ModelConfig.for_arch("vgg16", residual=True)
    cfg = TrainConfig(model=ModelConfig(arch="vgg19"))  # the vgg16 widths/depths of the default
    assert cfg.model == ModelConfig.for_arch("vgg19")
    with pytest.raises(ValueError, match="not the 'affine' head"):
        TrainConfig(model=ModelConfig(head="affine"))


@pytest.mark.parametrize(
    "text",
    [
        "arch: vgg19\nfa: wct\nresidual: false\n",  # an earlier release's file
        "model: {arch: vgg19, fa: wct, residual: false}\n",
        "model: {arch: vgg19}\nfa: wct\nresidual: false\n",
    ],
)
def test_yaml_files_give_the_model_flat_or_nested(tmp_path: Path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    expected = ModelConfig.for_arch("vgg19", fa="wct", residual=False)
    assert TrainConfig.from_file(path) == TrainConfig(model=expected)


def test_a_partial_nested_model_keeps_the_training_defaults(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text("model: {fa: wct}\n")
    assert TrainConfig.from_file(path).model == ModelConfig.for_arch(
        "vgg16", fa="wct", residual=True
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "fa: wct\nmodel: {fa: quantile}",
            r"config key 'fa' is given twice \(also as 'model.fa'\)",
        ),
        ("model: {fa: adain}", r"config key 'model.fa' must be one of 'paper'"),
        ("model: {grid_bins: many}", r"config key 'model.grid_bins' must be an integer"),
        ("model: {extra: [1]}", r"config key 'model.extra' must be a mapping of strings"),
        ("arhc: vgg16", r"unknown config key 'arhc' \(did you mean 'arch'\?\)"),
        ("residual: 1", r"config key 'residual' must be true or false, got 1"),
    ],
)
def test_bad_model_keys_are_refused_naming_the_key(tmp_path: Path, text: str, match: str):
    path = tmp_path / "run.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_file(path)


def test_layered_config_sets_model_fields_flat_or_dotted(tmp_path: Path):
    path = tmp_path / "run.yaml"
    path.write_text("fa: wct\nmodel: {extra: {note: x}}\n")
    config = layered_config(path, {"arch": "vgg19", "model.residual": False})
    assert config.model == ModelConfig.for_arch(
        "vgg19", fa="wct", residual=False, extra={"note": "x"}
    )
    path.write_text(config.to_yaml())  # the extra notes are written as a YAML mapping
    assert TrainConfig.from_file(path) == config
