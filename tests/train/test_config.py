"""Tests of the typed training configuration: validation and (de)serialisation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from photostyle.data.sampler import SamplingConfig
from photostyle.train.config import TrainConfig


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
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, Any], match: str):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_smallest_valid_settings_are_accepted():
    cfg = TrainConfig(crop=16, steps=0, index_size=16, use_scp=False, max_images=1, workers=0)
    assert cfg.crop == 16
    assert TrainConfig(use_perceptual=False).use_scp


def _custom() -> TrainConfig:
    return TrainConfig(
        data="photos",
        out_dir="runs/x",
        arch="vgg19",
        encoder_weights="vgg19.pth",
        fa="wct",
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
    cfg = TrainConfig(reconstruction=True, fa="none")
    assert not TrainConfig().reconstruction
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert TrainConfig(fa="none").fa == "none"  # a no-FA two-stage ablation stays possible
