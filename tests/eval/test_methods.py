"""Tests of the evaluation method registry: a new baseline is one registration."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from photostyle.api import Stylizer
from photostyle.cli import main
from photostyle.data.pairs import find_pairs
from photostyle.eval import methods as methods_module
from photostyle.eval.methods import (
    MethodSpec,
    default_methods,
    eval_method,
    make_methods,
    method_names,
    method_specs,
    register_method,
)
from photostyle.eval.quality import evaluate
from photostyle.models.encoder import VGGEncoder


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the registry for this test: its registrations end with it."""
    registry = methods_module.METHOD_REGISTRY
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))


@pytest.fixture
def pairs_dir(tmp_path: Path, write_png: Callable[..., Path]) -> Path:
    root = tmp_path / "pairs"
    write_png(root / "content" / "in1.png", 24, 32, seed=0)
    write_png(root / "style" / "in1.png", 28, 20, seed=10)
    return root


def _no_stylizer() -> Stylizer:
    raise AssertionError("no method here needs the stylizer")


def _mean_shift(
    content: torch.Tensor,
    style: torch.Tensor,
    content_mask: torch.Tensor | None,
    style_mask: torch.Tensor | None,
) -> torch.Tensor:
    """Toy baseline: the content's colours moved to the style's mean colour."""
    shift = style.mean(dim=(1, 2), keepdim=True) - content.mean(dim=(1, 2), keepdim=True)
    return (content + shift).clamp(0, 1)


def test_a_registered_method_is_listed_and_evaluated(
    registry: None,
    pairs_dir: Path,
    tiny_encoder: VGGEncoder,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
):
    register_method(
        MethodSpec(
            "mean-shift", lambda name, settings: _mean_shift, uses_masks=False, adjustable=False
        )
    )

    assert method_names([])[-1] == "mean-shift" and eval_method("mean-shift").name == "mean-shift"
    methods = make_methods(["identity", "mean-shift"], _no_stylizer)
    results = evaluate(find_pairs(pairs_dir), methods, tiny_encoder)
    identity, shifted = results
    assert (shifted.pair, shifted.method) == ("in1", "mean-shift")
    assert shifted.ssim < identity.ssim == pytest.approx(1.0)
    # The CLI's eval takes it by name too.
    scores = tmp_path / "scores.json"
    argv = ["eval", "--pairs", str(pairs_dir), "--method", "mean-shift", "--json", str(scores)]
    assert main([*argv, "--device", "cpu"]) == 0
    assert "| mean-shift |" in capsys.readouterr().out
    assert [row["method"] for row in json.loads(scores.read_text())["pairs"]] == ["mean-shift"]


def test_builtin_methods_and_their_capabilities() -> None:
    specs = {spec.name: spec for spec in method_specs()}
    assert method_names(["mean_std"]) == [
        "photostyle-mean_std",
        *("identity", "reinhard", "histogram", "mkl", "hm-mvgd-hm", "pdf_regrain"),
        *("adain", "wct", "gatys"),
    ]
    assert eval_method("photostyle-wct+bicubic@256-nomasks") is specs["photostyle-"]
    assert specs["photostyle-"].adjustable and specs["photostyle-"].model == "stylizer"
    assert specs["adain"].uses_masks and specs["adain"].model == "autoencoder"
    assert not specs["reinhard"].uses_masks and specs["reinhard"].model is None
    assert specs["mkl"].package == "color-matcher" and specs["histogram"].package is None


def test_default_methods_come_from_the_registry(registry: None) -> None:
    """photostyle eval without --method: the registered defaults, in their rank order."""
    assert default_methods("wct") == ["photostyle-wct", "reinhard", "histogram", "identity"]
    register_method(
        MethodSpec(
            "mean-shift",
            lambda name, settings: _mean_shift,
            uses_masks=False,
            adjustable=False,
            default_rank=1,
        )
    )
    assert default_methods("mean_std")[:3] == ["photostyle-mean_std", "reinhard", "mean-shift"]


def test_unknown_and_duplicate_methods_are_refused(registry: None) -> None:
    with pytest.raises(
        ValueError, match=r"unknown method 'adian'; choose from photostyle-<fa>, \["
    ):
        make_methods(["identity", "adian"], _no_stylizer)
    with pytest.raises(ValueError, match="'identity' is registered already"):
        register_method(eval_method("identity"))
