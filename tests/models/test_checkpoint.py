"""The one construction and checkpoint path: build_stylizer, save_stylizer, read/load_stylizer."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest
import torch

from photostyle.models.checkpoint import (
    STYLIZER_FORMAT,
    load_stylizer,
    read_stylizer,
    save_stylizer,
)
from photostyle.models.stylizer import HEADS, ModelConfig, PhotoStylizer, build_stylizer
from photostyle.models.weights import (
    WeightsError,
    build_encoder,
    load_checkpoint,
    save_checkpoint,
    stylizer_file,
)
from photostyle.train.pipeline import TwoStageModel
from photostyle.utils import sha256_file


def _config(encoder_path: Path, head: str, **fields: object) -> ModelConfig:
    """A tiny architecture on the tiny encoder file of ``tiny_stylizer_files``."""
    return ModelConfig.from_dict(
        {
            "arch": "custom",
            "widths": [4, 8, 8, 16],
            "depths": [1, 1, 2, 1],
            "convention": "torch_rgb",
            "encoder_sha256": sha256_file(encoder_path),
            "head": head,
            "grid_bins": 4,
            "grid_hidden": 8,
            **fields,
        }
    )


def _saved(
    tmp_path: Path, encoder_path: Path, head: str, **fields: object
) -> tuple[PhotoStylizer, Path]:
    """A freshly built stylizer and the file it was saved to."""
    config = _config(encoder_path, head, **fields)
    torch.manual_seed(3)
    model = build_stylizer(config, build_encoder(encoder_path, config.vgg())).eval()
    path = tmp_path / f"{head}.safetensors"
    save_stylizer(path, model.decoder.state_dict(), config, {"step": "5"})
    return model, path


@pytest.mark.parametrize("head", HEADS)
def test_scratch_and_loaded_models_are_the_same(
    tmp_path: Path, tiny_stylizer_files: tuple[Path, Path], head: str
):
    _, encoder_path = tiny_stylizer_files
    model, path = _saved(tmp_path, encoder_path, head, residual=True)
    loaded, saved = load_stylizer(path, encoder_weights=encoder_path)
    assert type(loaded) is type(model) and type(loaded.decoder) is type(model.decoder)
    assert loaded.config == model.config == saved.config
    mine, theirs = model.state_dict(), loaded.state_dict()
    assert list(mine) == list(theirs)
    for key, value in mine.items():
        assert torch.equal(value, theirs[key]), key
    assert saved.meta["format"] == STYLIZER_FORMAT and saved.meta["step"] == "5"


@pytest.mark.parametrize("head", HEADS)
def test_saved_then_loaded_stylizer_gives_the_same_output(
    tmp_path: Path, tiny_stylizer_files: tuple[Path, Path], head: str
):
    _, encoder_path = tiny_stylizer_files
    model, path = _saved(tmp_path, encoder_path, head)
    loaded = load_stylizer(path, encoder_weights=encoder_path)[0].eval()
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 32, 24, generator=g), torch.rand(1, 3, 24, 32, generator=g)
    with torch.no_grad():
        assert torch.equal(model(content, style).image, loaded(content, style).image)


def test_training_builds_the_inference_head(tiny_stylizer_files: tuple[Path, Path]):
    """U of the training pipeline is the ``decoder`` of a PhotoStylizer of the same config."""
    _, encoder_path = tiny_stylizer_files
    config = _config(encoder_path, "decoder", residual=True)
    encoder = build_encoder(encoder_path, config.vgg())
    u = TwoStageModel(config, encoder).u.state_dict()
    head = build_stylizer(config, encoder).decoder.state_dict()
    assert {k: v.shape for k, v in u.items()} == {k: v.shape for k, v in head.items()}


def test_two_stage_model_refuses_other_heads(tiny_stylizer_files: tuple[Path, Path]):
    _, encoder_path = tiny_stylizer_files
    config = _config(encoder_path, "affine")
    with pytest.raises(ValueError, match="pixel decoders, not the 'affine' head"):
        TwoStageModel(config, build_encoder(encoder_path, config.vgg()))


def test_save_stylizer_keeps_extra_metadata_and_sets_the_header(tmp_path: Path):
    config = ModelConfig(fa="wct")
    path = tmp_path / "s.safetensors"
    meta = {"format": "other", "train_config": {"steps": 3}}
    save_stylizer(path, {"w": torch.ones(2)}, config, meta)
    tensors, raw = load_checkpoint(path)
    assert list(tensors) == ["decoder.w"]
    assert raw["format"] == STYLIZER_FORMAT and raw["version"] == "1"
    assert json.loads(raw["train_config"]) == {"steps": 3}
    saved = read_stylizer(path)
    assert saved.config == config and list(saved.state) == ["w"]


def test_load_stylizer_applies_an_fa_variant(
    tmp_path: Path, tiny_stylizer_files: tuple[Path, Path]
):
    _, encoder_path = tiny_stylizer_files
    _, path = _saved(tmp_path, encoder_path, "decoder")
    model, saved = load_stylizer(path, encoder_weights=encoder_path, fa="wct")
    assert model.config.fa == "wct" and saved.config.fa == "mean_std"
    with pytest.raises(ValueError, match="unknown FA variant 'nope'"):
        load_stylizer(path, encoder_weights=encoder_path, fa="nope")


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"format": "photostyle.train_state"}, "not a photostyle stylizer checkpoint"),
        ({"model_config": "[1, 2]"}, "unreadable model config"),
        ({"model_config": json.dumps({"widths": [1, 2]})}, "widths and depths need 4 entries"),
        ({"model_config": json.dumps({"depths": [0, 1, 1, 1]})}, "must be positive"),
        ({"model_config": json.dumps({"head": "mlp"})}, "unknown head 'mlp'"),
    ],
)
def test_read_stylizer_names_the_file_of_a_bad_checkpoint(
    tmp_path: Path, meta: dict[str, str], message: str
):
    path = tmp_path / "bad.safetensors"
    save_checkpoint(path, {}, {"format": STYLIZER_FORMAT, "model_config": "{}", **meta})
    with pytest.raises(WeightsError, match=message) as err:
        read_stylizer(path)
    assert str(err.value).startswith(str(path))


def test_load_stylizer_names_weights_of_another_architecture(
    tmp_path: Path, tiny_stylizer_files: tuple[Path, Path]
):
    _, encoder_path = tiny_stylizer_files
    model, _ = _saved(tmp_path, encoder_path, "decoder")
    other = tmp_path / "other.safetensors"
    save_stylizer(other, model.decoder.state_dict(), _config(encoder_path, "affine"))
    with pytest.raises(WeightsError, match="weights do not fit a custom stylizer"):
        load_stylizer(other, encoder_weights=encoder_path)


def test_ship_script_rewrites_only_the_defaults(
    tmp_path: Path, tiny_stylizer_files: tuple[Path, Path], load_script: Callable[..., ModuleType]
):
    """scripts/ship_stylizer.py: the same tensors and metadata, the chosen defaults."""
    module = load_script("ship_stylizer")
    source, _ = tiny_stylizer_files
    target = tmp_path / "shipped.safetensors"
    assert module.main([str(source), str(target), "--working-size", "256", "--refine", "2"]) == 0
    before, after = read_stylizer(source), read_stylizer(target)
    assert after.config.working_size == 256 and after.config.refine_steps == 2
    assert after.config.to_dict() == {
        **before.config.to_dict(),
        "working_size": 256,
        "refine_steps": 2,
    }
    assert after.state.keys() == before.state.keys()
    assert all(torch.equal(after.state[k], v) for k, v in before.state.items())
    assert {k: v for k, v in after.meta.items() if k != "model_config"} == {
        k: v for k, v in before.meta.items() if k != "model_config"
    }


def test_ship_script_sets_the_refinements_later_ssim_weight(
    tmp_path: Path, tiny_stylizer_files: tuple[Path, Path], load_script: Callable[..., ModuleType]
):
    """--refine-later-ssim-weight lands in the file and in the model's refinement settings; a file
    written without it (every release up to 0.6) refines at one w_ssim throughout."""
    module = load_script("ship_stylizer")
    source, _ = tiny_stylizer_files
    target = tmp_path / "shipped.safetensors"
    argv = [str(source), str(target), "--working-size", "256", "--refine", "2"]
    assert module.main([*argv, "--refine-later-ssim-weight", "1"]) == 0
    settings = read_stylizer(target).config.refinement(2)
    assert (settings.ssim_weight, settings.later_ssim_weight) == (3.0, 1.0)
    assert read_stylizer(source).config.refinement(2).later_ssim_weight is None
    assert (
        ModelConfig.from_dict({"refine_ssim_weight": 2.0}).refinement(1).later_ssim_weight is None
    )
    with pytest.raises(SystemExit):
        module.main([*argv, "--refine-later-ssim-weight", "-1"])


def test_ship_script_writes_the_untrained_architecture(
    tmp_path: Path, load_script: Callable[..., ModuleType]
) -> None:
    """--untrained zeroes the last layers of the curves MLP and of the learned step, nothing else:
    the head predicts no residual and its first refinement step is the plain one."""
    from photostyle.models.affine import LearnedStep

    bundled = read_stylizer(stylizer_file("affine")[0])
    step = LearnedStep(96, 8)
    torch.nn.init.normal_(step.mlp[-1].weight)
    state = bundled.state | {f"steer.{k}": v for k, v in step.state_dict().items()}
    trained = tmp_path / "trained.safetensors"
    save_stylizer(trained, state, replace(bundled.config, steer_hidden=8), bundled.meta)
    target = tmp_path / "untrained.safetensors"
    argv = [str(trained), str(target), "--working-size", "256", "--refine", "2", "--untrained"]
    assert load_script("ship_stylizer").main(argv) == 0
    untrained = read_stylizer(target).state
    last = {"curves.5.weight", "curves.5.bias", "steer.mlp.5.weight", "steer.mlp.5.bias"}
    assert untrained.keys() == state.keys() and not any(untrained[k].any() for k in last)
    assert all(untrained[k].equal(v) for k, v in state.items() if k not in last)
    assert read_stylizer(trained).state["steer.mlp.5.weight"].any()  # the source is untouched
