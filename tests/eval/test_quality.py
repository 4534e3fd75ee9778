"""Tests of the pair evaluation (every method through one code path) and `photostyle eval`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from photostyle.api import StylizeOptions, Stylizer
from photostyle.cli import main
from photostyle.data.pairs import find_pairs
from photostyle.eval.metrics import psnr, ssim
from photostyle.eval.quality import (
    Adjustable,
    MethodResult,
    blend,
    evaluate,
    geometric_mean,
    make_methods,
    markdown_table,
    method_names,
    parse_alphas,
    quantile,
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


def test_every_method_reports_photorealism(pairs_dir, tiny_encoder):
    methods = make_methods(["identity", "reinhard"], lambda: None)  # type: ignore[arg-type,return-value]
    results = evaluate(find_pairs(pairs_dir), methods, tiny_encoder, memory_device=None)
    assert all(math.isfinite(r.photorealism) and r.photorealism > 0 for r in results)
    by = {(r.pair, r.method): r.photorealism for r in results}
    assert by["in1", "identity"] > by["in1", "reinhard"] - 1  # unchanged: at least as real
    assert "photorealism dB mean" in markdown_table(results)


def _row(pair: str, method: str, ratio: float, real: float, alpha: float = 1.0) -> MethodResult:
    return MethodResult(pair, method, 0.8, 1.0, ratio, 0.1, photorealism=real, alpha=alpha)


def test_summary_averages_survive_outliers():
    rows = [_row("a", "m", 0.5, 30.0), _row("b", "m", 0.5, 40.0), _row("c", "m", 4.0, 50.0)]
    m = summarize(rows)["m"]
    assert m["gram_ratio"] == pytest.approx(5 / 3)  # the outlier dominates the arithmetic mean
    assert m["gram_ratio_geomean"] == pytest.approx(1.0)  # (0.5 * 0.5 * 4) ** (1 / 3)
    assert m["gram_ratio_median"] == pytest.approx(0.5)
    assert m["photorealism"] == pytest.approx(40.0)
    assert m["photorealism_p10"] == pytest.approx(32.0)  # 30 + 0.2 * (40 - 30), numpy's linear
    table = markdown_table(rows)
    assert "| m | 0.800 | 1.000 | 0.500 | 1.667 | 40.0 | 32.0 |" in table


def test_geometric_mean_and_quantile_edge_cases():
    assert geometric_mean([1.0, 4.0]) == pytest.approx(2.0)
    assert geometric_mean([0.0, 4.0]) == 0.0
    assert math.isnan(geometric_mean([math.nan, 1.0]))
    assert quantile([math.inf, math.inf, 50.0], 0.9) == math.inf  # never inf - inf
    assert quantile([3.0], 0.1) == 3.0
    for bad in ([], [1.0]):
        with pytest.raises(ValueError):
            quantile(bad, 1.5 if bad else 0.5)
    with pytest.raises(ValueError):
        geometric_mean([])


def test_parse_alphas():
    assert parse_alphas("0,0.25, 0.5,0.75,1") == (0.0, 0.25, 0.5, 0.75, 1.0)
    for bad, match in [
        ("", "not a number"),
        ("0,x", "not a number"),
        ("0,1.5", r"not in \[0, 1\]"),
        ("nan", r"not in \[0, 1\]"),
        ("0.5,0.5", "repeated"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_alphas(bad)


class _Knob:
    """An Adjustable test method: the content darkened by its strength; records its calls."""

    def __init__(self, calls: list[float], alpha: float = 1.0) -> None:
        self.calls, self.alpha = calls, alpha

    def at(self, alpha: float) -> _Knob:
        return _Knob(self.calls, alpha)

    def __call__(self, content, style, cm, sm):
        self.calls.append(self.alpha)
        return content * (1 - 0.5 * self.alpha)


def test_alpha_sweep_runs_adjustable_methods_per_strength_and_blends_the_others(
    pairs_dir, tiny_encoder
):
    knob_calls: list[float] = []
    plain_calls: list[int] = []

    def plain(content, style, cm, sm):
        plain_calls.append(1)
        return torch.ones_like(content) * 0.5

    methods = {"knob": _Knob(knob_calls), "plain": plain}
    pairs = find_pairs(pairs_dir)
    shown: list[tuple[str, str]] = []
    results = evaluate(
        pairs,
        methods,
        tiny_encoder,
        alphas=(0.0, 0.5, 1.0),
        on_output=lambda pair, name, out: shown.append((pair.name, name)),
        reference="knob",
    )
    assert knob_calls == [0.0, 0.5, 1.0] * 2 and len(plain_calls) == 2  # plain: once per pair
    assert [(r.pair, r.method, r.alpha) for r in results] == [
        (p, m, a) for p in ("in1", "in2") for m in ("knob", "plain") for a in (0.0, 0.5, 1.0)
    ]
    assert shown == [(p, m) for p in ("in1", "in2") for m in ("knob", "plain")]  # strongest only
    by = {(r.pair, r.method, r.alpha): r for r in results}
    content = load_image(pairs[0].content)
    for a in (0.0, 0.5, 1.0):  # plain at a: (1 - a) content + a * 0.5
        expected = blend(content, torch.full_like(content, 0.5), a)
        assert by["in1", "plain", a].ssim == pytest.approx(ssim(expected, content))
        knob = content * (1 - 0.5 * a)  # the reference at the same strength
        assert by["in1", "plain", a].psnr_ref == pytest.approx(psnr(expected, knob))
    assert by["in1", "plain", 0.0].ssim == pytest.approx(1.0)
    assert by["in1", "plain", 0.0].gram_ratio == pytest.approx(1.0)
    assert len({by["in1", "plain", a].seconds for a in (0.0, 0.5, 1.0)}) == 1  # one timed run
    summary = summarize(results)
    assert list(summary)[:3] == ["knob (alpha 0)", "knob (alpha 0.5)", "knob (alpha 1)"]
    table = markdown_table(results)
    assert "| alpha |" in table and "| plain | 0.5 |" in table
    doc = results_json(results)
    assert len(doc["pairs"]) == 12  # type: ignore[arg-type]
    entry = doc["summary"]["plain (alpha 0.5)"]  # type: ignore[index]
    assert entry["method"] == "plain" and entry["alpha"] == 0.5
    with pytest.raises(ValueError, match="repeated"):
        evaluate(pairs, methods, tiny_encoder, alphas=(1.0, 1.0))


def test_stylizer_method_is_adjustable(tiny_stylizer, pairs_dir):
    method = make_methods(["photostyle-mean_std"], lambda: tiny_stylizer, alpha=0.25)[
        "photostyle-mean_std"
    ]
    assert isinstance(method, Adjustable) and method.alpha == 0.25
    half = method.at(0.5)
    assert half.alpha == 0.5 and method.alpha == 0.25  # a new method, the old one unchanged
    content = load_image(find_pairs(pairs_dir)[0].content)
    style = load_image(find_pairs(pairs_dir)[0].style)
    expected = tiny_stylizer.stylize(
        content, style, options=StylizeOptions(alpha=0.5, max_size=1024)
    )
    assert torch.allclose(half(content, style, None, None), expected)
    assert not isinstance(make_methods(["reinhard"], lambda: tiny_stylizer)["reinhard"], Adjustable)


def test_cli_eval_alpha_sweep(pairs_dir, tmp_path, capsys):
    scores, plot = tmp_path / "scores.json", tmp_path / "frontier.png"
    argv = ["eval", "--pairs", str(pairs_dir), "--method", "identity", "--method", "reinhard"]
    argv += ["--json", str(scores), "--plot", str(plot), "--alpha-sweep", "0,0.5,1"]
    assert main([*argv, "--out-dir", str(tmp_path / "outputs")]) == 0
    out = capsys.readouterr().out
    saved = sorted(p.name for p in (tmp_path / "outputs" / "in1").iterdir())
    assert saved == ["identity.png", "reinhard.png"]  # the strongest output of each method
    assert "| reinhard | 0.5 |" in out and "| alpha |" in out
    doc = json.loads(scores.read_text())
    assert sorted({(row["method"], row["alpha"]) for row in doc["pairs"]}) == [
        (m, a) for m in ("identity", "reinhard") for a in (0.0, 0.5, 1.0)
    ]
    assert Image.open(plot).format == "PNG"
    for bad in ("0,x", "0,2", "", "1,1"):
        target = tmp_path / f"bad{len(bad)}.json"
        assert main([*argv[:-1], bad, "--json", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--alpha-sweep" in err, err
        assert not target.exists()
