"""Tests of the pair evaluation (every method through one code path) and `photostyle eval`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from photostyle.api import Stylizer
from photostyle.cli import main
from photostyle.data.pairs import find_pairs
from photostyle.eval.quality import (
    evaluate,
    make_methods,
    markdown_table,
    method_names,
    results_json,
    summarize,
)
from photostyle.io import load_image


@pytest.fixture
def pairs_dir(tmp_path: Path, write_png: Callable[..., Path]) -> Path:
    root = tmp_path / "pairs"
    for k, name in enumerate(("in1", "in2")):
        write_png(root / "content" / f"{name}.png", 24 + k, 32, seed=k)
        write_png(root / "style" / f"{name}.png", 28, 20 + k, seed=10 + k)
    (root / "content_mask").mkdir()
    (root / "style_mask").mkdir()
    Image.new("RGB", (32, 24), (0, 0, 255)).save(root / "content_mask" / "in1.png")
    Image.new("RGB", (20, 28), (0, 0, 255)).save(root / "style_mask" / "in1.png")
    return root


@pytest.fixture
def tiny_stylizer(tiny_stylizer_files: tuple[Path, Path]) -> Stylizer:
    weights, encoder = tiny_stylizer_files
    return Stylizer(weights, encoder_weights=encoder, device="cpu")


def test_evaluate_scores_every_method_on_every_pair(pairs_dir, tiny_stylizer, tiny_encoder):
    names = ["identity", "reinhard", "photostyle-mean_std"]
    methods = make_methods(names, lambda: tiny_stylizer, max_size=64)
    seen: list[tuple[str, str, tuple[int, ...]]] = []
    results = evaluate(
        find_pairs(pairs_dir),
        methods,
        tiny_encoder,
        on_output=lambda pair, name, out: seen.append((pair.name, name, tuple(out.shape))),
    )
    assert [(r.pair, r.method) for r in results] == [(p, m) for p in ("in1", "in2") for m in names]
    assert ("in2", "photostyle-mean_std", (3, 25, 32)) in seen  # outputs have the content's size
    for r in results:
        assert r.seconds >= 0
        if r.method == "identity":
            assert r.ssim == pytest.approx(1.0) and r.gram_ratio == pytest.approx(1.0)
        else:
            assert r.ssim < 1.0
    summary = summarize(results)
    assert list(summary) == names and summary["identity"]["pairs"] == 2
    table = markdown_table(results)
    assert table.count("\n") == 2 + len(names) and "| identity | 1.000 | 1.000 |" in table
    doc = results_json(results)
    assert len(doc["pairs"]) == 6 and set(doc["summary"]) == set(names)  # type: ignore[arg-type]


def test_make_methods_loads_the_stylizer_only_when_needed():
    def fail() -> Stylizer:
        raise AssertionError("stylizer loaded for baselines only")

    assert list(make_methods(["identity", "histogram"], fail)) == ["identity", "histogram"]
    with pytest.raises(ValueError, match="unknown method"):
        make_methods(["bogus"], fail)
    with pytest.raises(ValueError, match="unknown FA variant"):
        make_methods(["photostyle-bogus"], lambda: None)  # type: ignore[arg-type,return-value]
    assert "photostyle-wct" in method_names(["mean_std", "wct"])


def test_cli_eval_writes_table_json_outputs_and_sheet(
    pairs_dir, tiny_stylizer_files, tmp_path, capsys
):
    weights, encoder = tiny_stylizer_files
    out, scores = tmp_path / "eval", tmp_path / "scores.json"
    argv = ["eval", "--pairs", str(pairs_dir), "--out-dir", str(out), "--json", str(scores)]
    argv += ["--method", "photostyle-quantile", "--method", "identity", "--max-size", "64"]
    argv += ["--weights", str(weights), "--encoder-weights", str(encoder), "--device", "cpu"]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "| photostyle-quantile |" in stdout and "| identity | 1.000 | 1.000 |" in stdout
    doc = json.loads(scores.read_text())
    assert {row["pair"] for row in doc["pairs"]} == {"in1", "in2"}
    assert (out / "in1" / "photostyle-quantile.png").is_file()
    assert Image.open(out / "sheet.png").size[1] > 2 * 160  # two rows of thumbnails


def test_cli_eval_bad_input(pairs_dir, tmp_path, capsys):
    assert main(["eval", "--pairs", str(pairs_dir), "--method", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown method" in err
    assert main(["eval", "--pairs", str(tmp_path / "missing"), "--method", "identity"]) == 2
    assert "expected sub-folders" in capsys.readouterr().err
    assert main(["eval", "--pairs", str(pairs_dir), "--alpha", "2"]) == 2


def test_photostyle_method_suffixes_set_upsampling_and_working_size():
    from photostyle.eval.quality import photostyle_options

    plain = photostyle_options("photostyle-wct", alpha=0.5, max_size=300, upsample="change")
    assert (plain.fa, plain.alpha, plain.max_size, plain.upsample) == ("wct", 0.5, 300, "change")
    both = photostyle_options("photostyle-mean_std+bicubic@256", max_size=1024)
    assert (both.fa, both.max_size, both.upsample) == ("mean_std", 256, "bicubic")
    assert photostyle_options("photostyle-mean_std@64").upsample == "guided"
    for bad, match in [
        ("photostyle-blur", "FA variant"),
        ("photostyle-mean_std+nearest", "upsampling"),
        ("photostyle-mean_std@big", "working size"),
        ("photostyle-mean_std@8", "working size"),
    ]:
        with pytest.raises(ValueError, match=match):
            photostyle_options(bad)


def test_psnr_hand_computed():
    from photostyle.eval.metrics import psnr

    x = torch.zeros(3, 4, 4)
    assert psnr(x, x) == math.inf
    assert psnr(x, x + 0.1) == pytest.approx(20.0)  # mse 0.01 -> 20 dB
    with pytest.raises(ValueError, match="size"):
        psnr(x, torch.zeros(3, 4, 5))


def test_reference_psnr_per_method(pairs_dir, tiny_encoder, capsys):
    pairs = find_pairs(pairs_dir)[:1]
    methods = {
        "half": lambda c, s, cm, sm: c * 0.5,
        "same": lambda c, s, cm, sm: c.clone(),
        "identity": lambda c, s, cm, sm: c,
    }
    results = evaluate(pairs, methods, tiny_encoder, reference="identity")
    assert [r.method for r in results] == ["half", "same", "identity"]  # order asked
    by = {r.method: r for r in results}
    assert by["same"].psnr_ref == math.inf and by["identity"].psnr_ref == math.inf
    content = load_image(pairs[0].content)
    expected = -10 * math.log10(float((content * 0.5 - content).pow(2).mean()))
    assert by["half"].psnr_ref == pytest.approx(expected, rel=1e-5)
    assert "PSNR to reference" in markdown_table(results)
    assert "PSNR" not in markdown_table(evaluate(pairs, methods, tiny_encoder))
    with pytest.raises(ValueError, match="reference"):
        evaluate(pairs, methods, tiny_encoder, reference="nope")
    argv = ["eval", "--pairs", str(pairs_dir), "--method", "identity", "--method", "reinhard"]
    assert main([*argv, "--reference", "identity", "--limit", "1"]) == 0
    assert "PSNR to reference" in capsys.readouterr().out
    assert main([*argv, "--reference", "histogram"]) == 2
    assert "--reference histogram is not one of the methods" in capsys.readouterr().err


def test_nomasks_suffix_ignores_the_masks_in_the_same_run(
    tmp_path: Path, write_png: Callable[..., Path], tiny_stylizer: Stylizer, tiny_encoder
):
    root = tmp_path / "two_regions"
    write_png(root / "content" / "in1.png", 24, 32, seed=1)
    write_png(root / "style" / "in1.png", 28, 20, seed=2)
    for side, (h, w) in (("content_mask", (24, 32)), ("style_mask", (28, 20))):
        mask = Image.new("RGB", (w, h), (0, 0, 255))
        mask.paste((0, 255, 0), (0, 0, w // 2, h))  # left half green, right half blue
        (root / side).mkdir()
        mask.save(root / side / "in1.png")
    names = ["photostyle-mean_std", "photostyle-mean_std-nomasks"]
    methods = make_methods(names, lambda: tiny_stylizer, max_size=64)
    outputs: dict[str, torch.Tensor] = {}
    evaluate(
        find_pairs(root), methods, tiny_encoder, on_output=lambda _, n, o: outputs.setdefault(n, o)
    )
    content, style = (
        load_image(root / "content" / "in1.png"),
        load_image(root / "style" / "in1.png"),
    )
    unmasked = tiny_stylizer.stylize(content, style)
    assert torch.allclose(outputs["photostyle-mean_std-nomasks"], unmasked, atol=1e-6)
    assert not torch.allclose(outputs["photostyle-mean_std"], unmasked, atol=1e-3)


def test_evaluate_measures_each_calls_peak_memory(pairs_dir, tiny_encoder):
    def hungry(content, style, cm, sm):
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched, freed on return
        return content * float(block[-1])

    methods = {"identity": make_methods(["identity"], lambda: None)["identity"], "hungry": hungry}  # type: ignore[arg-type,return-value]
    results = evaluate(find_pairs(pairs_dir), methods, tiny_encoder)
    peaks = {r.method: r.peak_mib for r in results}
    assert peaks["hungry"] is not None and peaks["hungry"] >= 60
    assert peaks["identity"] is not None and peaks["identity"] < 30
    summary = summarize(results)
    assert summary["hungry"]["peak_mib"] == max(r.peak_mib or 0 for r in results)
    assert "peak MiB" in markdown_table(results)
    unmeasured = evaluate(find_pairs(pairs_dir), methods, tiny_encoder, memory_device=None)
    assert all(r.peak_mib is None for r in unmeasured)
    assert "peak MiB" not in markdown_table(unmeasured)
