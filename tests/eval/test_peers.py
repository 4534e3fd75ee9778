"""Tests of the peers from PyPI (mkl, hm-mvgd-hm, pdf_regrain) through eval's code path."""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from photostyle.cli import main
from photostyle.eval.baselines import PEERS, PeerUnavailable, hm_mvgd_hm, mkl, pdf_regrain
from photostyle.eval.bench import BENCH_METHODS
from photostyle.eval.quality import make_methods, method_names


def _smooth(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 6, 8, generator=g)
    return torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear")[0]


def _stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = image.reshape(3, -1).double()
    return pixels.mean(1), torch.cov(pixels, correction=0)


def test_mkl_takes_the_styles_mean_and_covariance():
    content = _smooth(40, 48, 0)
    matrix = torch.tensor([[0.5, 0.2, 0.0], [0.1, 0.4, 0.1], [0.0, 0.1, 0.3]])
    style = torch.einsum("ij,jhw->ihw", matrix, _smooth(36, 30, 1)) + 0.2  # in range, no clip
    out = mkl(content, style)
    assert out.shape == content.shape and out.dtype == content.dtype
    (mu_o, cov_o), (mu_s, cov_s) = _stats(out), _stats(style)
    assert torch.allclose(mu_o, mu_s, atol=1e-5)
    assert torch.allclose(cov_o, cov_s, atol=1e-5)


def test_a_complex_dtype_result_with_zero_imaginary_parts_is_taken_as_real(monkeypatch):
    """np.linalg.eig inside color-matcher's MKL returns a complex dtype on some BLAS builds."""
    content, style = _smooth(20, 24, 0), _smooth(18, 16, 1)
    real = mkl(content, style)
    module = importlib.import_module("color_matcher")
    transfer = module.ColorMatcher.transfer

    def complex_transfer(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return transfer(self, *args, **kwargs).astype(np.complex128)

    monkeypatch.setattr(module.ColorMatcher, "transfer", complex_transfer)
    torch.testing.assert_close(mkl(content, style), real)

    def noisy_transfer(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return transfer(self, *args, **kwargs) + 0.01j

    monkeypatch.setattr(module.ColorMatcher, "transfer", noisy_transfer)
    with pytest.raises(ValueError, match="complex values"):
        mkl(content, style)


def test_hm_mvgd_hm_ends_with_the_styles_channel_histograms():
    content, style = _smooth(32, 32, 2), _smooth(32, 32, 3) * 0.6 + 0.3
    quantised = (style * 255).round() / 255  # few distinct values, as in a photo
    out = hm_mvgd_hm(content, quantised)
    for c in range(3):
        ours, theirs = out[c].flatten().sort().values, quantised[c].flatten().sort().values
        assert (ours - theirs).abs().mean() < 0.01


def test_pdf_regrain_is_deterministic_and_moves_the_colours_to_the_style():
    content, style = _smooth(48, 64, 4), _smooth(40, 40, 5) * 0.4 + 0.5
    out = pdf_regrain(content, style)
    assert out.shape == content.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(out, pdf_regrain(content, style))  # fixed rotations: reproducible
    gap_before = (content.mean((1, 2)) - style.mean((1, 2))).abs().sum()
    gap_after = (out.mean((1, 2)) - style.mean((1, 2))).abs().sum()
    assert gap_after < 0.5 * gap_before  # regrain keeps some of the content's tone


def test_peers_are_registered_once_and_listed_for_eval_not_bench():
    assert set(PEERS) == {"mkl", "hm-mvgd-hm", "pdf_regrain"}
    names = method_names([])
    assert all(names.count(name) == 1 for name in PEERS)
    assert not set(PEERS) & set(BENCH_METHODS)  # bench's default stays photostyle + baselines
    for fn in (mkl, hm_mvgd_hm, pdf_regrain):
        with pytest.raises(ValueError, match="RGB"):
            fn(torch.rand(8, 9), torch.rand(3, 5, 5))


@pytest.fixture
def no_color_matcher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend color-matcher is not installed."""
    missing = dataclasses.replace(PEERS["mkl"], module="photostyle_no_such_module")
    monkeypatch.setitem(PEERS, "mkl", missing)


@pytest.mark.usefixtures("no_color_matcher")
def test_a_missing_package_is_one_line_naming_the_extra(
    tmp_path: Path, write_png: Callable[..., Path], capsys: pytest.CaptureFixture[str]
):
    with pytest.raises(PeerUnavailable, match=r"mkl needs color-matcher .*photostyle\[peers\]"):
        make_methods(["identity", "mkl"], lambda: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(PeerUnavailable):
        mkl(torch.rand(3, 8, 8), torch.rand(3, 8, 8))
    write_png(tmp_path / "pairs" / "content" / "in1.png", 24, 32, seed=0)
    write_png(tmp_path / "pairs" / "style" / "in1.png", 24, 32, seed=1)
    scores = tmp_path / "scores.json"
    argv = ["eval", "--pairs", str(tmp_path / "pairs"), "--method", "mkl", "--json", str(scores)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'photostyle[peers]'" in err
    assert not scores.exists()


def test_cli_eval_runs_the_peers(
    tmp_path: Path, write_png: Callable[..., Path], capsys: pytest.CaptureFixture[str]
):
    write_png(tmp_path / "pairs" / "content" / "in1.png", 40, 48, seed=0)
    write_png(tmp_path / "pairs" / "style" / "in1.png", 36, 30, seed=1)
    scores = tmp_path / "scores.json"
    argv = ["eval", "--pairs", str(tmp_path / "pairs"), "--json", str(scores)]
    for name in PEERS:
        argv += ["--method", name]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert all(f"| {name} |" in out for name in PEERS)
    rows = json.loads(scores.read_text())["pairs"]
    assert [row["method"] for row in rows] == list(PEERS)
    assert all(0 < row["photorealism"] < 100 for row in rows)
