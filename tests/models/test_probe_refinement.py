"""scripts/probe_refinement.py: grades of the curves head scored with the refinement's objective."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

from photostyle.models.checkpoint import read_stylizer, save_stylizer


def test_probe_takes_plain_steps_from_the_base_and_the_model_own_default(
    tmp_path: Path,
    write_png: Callable[..., Path],
    make_affine_weights: Callable[..., Path],
    tiny_stylizer_files: tuple[Path, Path],
    load_script: Callable[[str], ModuleType],
) -> None:
    """The long runs from the base are plain steps whatever learned step the file has; the
    ``default`` row is the model's own refinement, learned first step included."""
    pairs = tmp_path / "pairs"
    for k, name in enumerate(("in1", "in2")):
        write_png(pairs / "content" / f"{name}.png", 28, 36, seed=k)
        write_png(pairs / "style" / f"{name}.png", 30, 24, seed=10 + k)
    plain = make_affine_weights(
        tmp_path / "plain.safetensors",
        grid_residual="curves",
        base_power=0.0,
        refine_steps=2,
        steer_hidden=4,
    )
    saved = read_stylizer(plain)
    torch.manual_seed(1)
    state = dict(saved.state)
    state["steer.mlp.5.weight"] = 0.05 * torch.randn_like(state["steer.mlp.5.weight"])
    learned = tmp_path / "learned.safetensors"
    save_stylizer(learned, state, saved.config)
    script = load_script("probe_refinement")
    summaries = {}
    for name, weights in (("plain", plain), ("learned", learned)):
        out = tmp_path / f"{name}.json"
        args = ["--pairs", str(pairs), "--weights", str(weights), "--steps", "3"]
        args += ["--encoder-weights", str(tiny_stylizer_files[1]), "--json", str(out)]
        assert script.main(args) == 0
        summaries[name] = json.loads(out.read_text())["summary"]
    # An untrained step is the plain step, and the untrained head's grade is the base's zero.
    # (equal up to rounding: the learned step sums the two terms' gradients, a plain step takes
    # the total's)
    assert summaries["plain"]["default"] == pytest.approx(summaries["plain"]["refined 2"], rel=1e-5)
    for row in ("refined 2", "refined 3", "step 0.2"):
        assert summaries["learned"][row] == summaries["plain"][row]
    assert summaries["learned"]["default"] != summaries["plain"]["default"]
