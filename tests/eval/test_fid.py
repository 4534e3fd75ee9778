"""Tests of the Fréchet distance, folder statistics, ``fid`` and ``photostyle fid``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from scipy.linalg import sqrtm as scipy_sqrtm

from photostyle import cli
from photostyle.eval import fid as fid_module
from photostyle.eval.fid import (
    activation_statistics,
    fid,
    frechet_distance,
    list_images,
    resize_square,
    trace_sqrt_product,
)
from photostyle.models.inception import INCEPTION_WEIGHTS_ENV, FIDInceptionV3
from photostyle.models.weights import WeightsError


def _spd(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No InceptionV3 weights anywhere: no env var, an empty torch hub cache."""
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))


@pytest.fixture
def folders(tmp_path: Path, write_png: Callable[..., Path]) -> tuple[Path, Path]:
    """Two folders of four random 32 px images each (different seeds)."""
    for i in range(4):
        write_png(tmp_path / "a" / f"{i}.png", 32, 32, seed=i)
        write_png(tmp_path / "b" / f"{i}.png", 32, 32, seed=10 + i)
    return tmp_path / "a", tmp_path / "b"


# ---------------------------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------------------------


def test_identical_gaussians_are_at_distance_zero():
    mu, sigma = np.arange(5.0), _spd(5, 0)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_one_dimensional_case_by_hand():
    # (1 - 3)^2 + 4 + 9 - 2 * sqrt(4 * 9) = 4 + 1
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(5.0)
    assert frechet_distance(1.0, 4.0, 3.0, 9.0) == pytest.approx(5.0)  # scalars


def test_diagonal_case_by_hand():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected)  # 7.25 + (4 + 1 + 0)
    assert expected == pytest.approx(12.25)


def test_commuting_full_covariances():
    # sigma2 = c sigma1 commutes with sigma1: sqrt(sigma1 sigma2) = sqrt(c) sigma1.
    sigma, c = _spd(6, 1), 2.5
    mu = np.zeros(6)
    expected = np.trace(sigma) * (1 + c - 2 * math.sqrt(c))
    assert frechet_distance(mu, sigma, mu, c * sigma) == pytest.approx(expected, rel=1e-9)


def test_symmetric_and_positive():
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    s1, s2 = _spd(8, 4), _spd(8, 5)
    d12, d21 = frechet_distance(mu1, s1, mu2, s2), frechet_distance(mu2, s2, mu1, s1)
    assert d12 == pytest.approx(d21, rel=1e-9)
    assert d12 > 1.0


def test_singular_product_gets_epsilon(monkeypatch: pytest.MonkeyPatch):
    import scipy.linalg

    real_sqrtm = scipy.linalg.sqrtm
    calls: list[np.ndarray] = []

    def flaky_sqrtm(a: np.ndarray) -> np.ndarray:
        calls.append(a)
        return np.full_like(a, np.inf) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky_sqrtm)
    sigma = np.diag([1.0, 0.0])
    with pytest.warns(RuntimeWarning, match="singular"):
        value = frechet_distance([0.0, 0.0], sigma, [0.0, 0.0], sigma)
    assert len(calls) == 2
    assert np.allclose(calls[1], (sigma + 1e-6 * np.eye(2)) @ (sigma + 1e-6 * np.eye(2)))
    assert value == pytest.approx(-4e-6, abs=1e-9)  # tr(S) + tr(S) - 2 tr(S + eps I)


def test_imaginary_parts(monkeypatch: pytest.MonkeyPatch):
    import scipy.linalg

    noise = [1e-9j]
    monkeypatch.setattr(scipy.linalg, "sqrtm", lambda a: a.astype(complex) + noise[0])
    s1, s2 = np.diag([4.0, 1.0]), np.diag([9.0, 1.0])  # FD = (4 + 9 - 12) + 0 = 1
    # a tiny imaginary part is dropped and the real part used (this fake's: 13 + 2 - 2 * 37)
    assert frechet_distance([0, 0], s1, [0, 0], s2) == pytest.approx(-59.0)
    noise[0] = 0.5j  # pytorch-fid raises; the symmetric form gives the true trace
    assert frechet_distance([0, 0], s1, [0, 0], s2) == pytest.approx(1.0)


def test_trace_sqrt_product():
    s1, s2 = _spd(6, 6), _spd(6, 7)
    expected = np.trace(scipy_sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-9)
    # rank 2 in 5-D, the case of fewer images than feature dimensions
    feats = np.random.default_rng(8).normal(size=(3, 5)) * 1e3
    rank2 = np.cov(feats, rowvar=False)
    # square roots of rounding-level eigenvalues: errors of order sqrt(machine eps)
    assert trace_sqrt_product(rank2, rank2) == pytest.approx(np.trace(rank2), rel=1e-7)
    assert frechet_distance(np.zeros(5), rank2, np.zeros(5), rank2) == pytest.approx(
        0.0, abs=1e-6 * np.trace(rank2)
    )


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="vectors"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3))


# ---------------------------------------------------------------------------------------------
# Folder statistics
# ---------------------------------------------------------------------------------------------


def _mean_colour(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3))  # (B, 3)


def test_statistics_match_numpy_across_batches(tmp_path: Path, write_png: Callable[..., Path]):
    paths = [write_png(tmp_path / f"{i}.png", 20 + i, 24, seed=i) for i in range(5)]
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    paths.insert(2, tmp_path / "broken.png")
    seen: list[int] = []
    stats = activation_statistics(paths, _mean_colour, size=16, batch_size=2, on_batch=seen.append)
    assert seen == [2, 2, 2] and stats.count == 5 and stats.skipped == (tmp_path / "broken.png",)
    from photostyle.io import load_image

    feats = np.stack(
        [
            _mean_colour(resize_square(load_image(p), 16)[None])[0].numpy()
            for p in paths
            if p.name != "broken.png"
        ]
    ).astype(np.float64)
    assert np.allclose(stats.mu, feats.mean(axis=0), atol=1e-12)
    assert np.allclose(stats.sigma, np.cov(feats, rowvar=False), atol=1e-12)


def test_fewer_than_two_readable_images_is_an_error(tmp_path: Path, write_png: Callable[..., Path]):
    one = [write_png(tmp_path / "x.png"), tmp_path / "missing.png"]
    with pytest.raises(ValueError, match="at least 2 readable"):
        activation_statistics(one, _mean_colour, size=16)


def test_list_images(tmp_path: Path, write_png: Callable[..., Path]):
    write_png(tmp_path / "b.PNG")
    write_png(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG"]
    with pytest.raises(ValueError, match="not a folder"):
        list_images(tmp_path / "nope")


def test_vgg_folder_against_itself_is_zero(folders: tuple[Path, Path]):
    a, b = folders
    same = fid(a, a, vgg=True, size=32, batch_size=3, device="cpu")
    other = fid(a, b, vgg=True, size=32, batch_size=3, device="cpu")
    assert same.metric == other.metric == "FID-VGG"
    assert (same.outputs_count, same.reference_count) == (4, 4)
    scale = float(
        np.trace(activation_statistics(list_images(a), fid_module.vgg_extractor(), size=32).sigma)
    )
    assert abs(same.value) < 1e-6 * scale
    assert other.value > 1e-2 * scale


def test_inception_path_with_weights_file(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    torch.manual_seed(0)
    path = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in FIDInceptionV3().state_dict().items()}, str(path))
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(path))
    seen: list[tuple[int, ...]] = []

    def mean_distance(mu1, sigma1, mu2, sigma2):  # sqrtm of 2048 x 2048 takes seconds
        seen.extend([mu1.shape, sigma1.shape])
        return float(np.sum((mu1 - mu2) ** 2))

    monkeypatch.setattr(fid_module, "frechet_distance", mean_distance)
    result = fid(*folders, size=75, batch_size=4, device="cpu")
    assert seen == [(2048,), (2048, 2048)] and result.dims == 2048
    assert result.metric == "FID@75px" and result.weights == str(path)
    assert math.isfinite(result.value) and result.value > 0
    assert result.features.startswith("InceptionV3")


def test_missing_weights_error_says_how_to_get_them(folders: tuple[Path, Path], no_weights: None):
    with pytest.raises(WeightsError) as info:
        fid(*folders, device="cpu")
    message = str(info.value)
    assert "\n" not in message
    for part in ("pt_inception-2015-12-05-6726825d.pth", "--inception-weights", "--vgg", "FID-VGG"):
        assert part in message


def test_bad_options(folders: tuple[Path, Path]):
    with pytest.raises(ValueError, match="drop --inception-weights"):
        fid(*folders, vgg=True, inception_weights="x.pth")
    with pytest.raises(ValueError, match="at least 16"):
        fid(*folders, vgg=True, size=8)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli_without_weights_exits_2_with_one_line(
    folders: tuple[Path, Path], no_weights: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "fid.json"
    assert cli.main(["fid", *map(str, folders), "--json", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "FID-VGG" in err and "pt_inception-2015-12-05-6726825d.pth" in err
    assert not out.exists()


def test_cli_vgg_writes_json(
    folders: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    (folders[1] / "corrupt.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "res" / "fid.json"
    argv = ["fid", *map(str, folders), "--vgg", "--size", "32", "--device", "cpu"]
    assert cli.main([*argv, "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("FID-VGG: ")
    assert "(outputs: 4 images, reference: 4 images)" in captured.out
    assert "skipped 1 unreadable" in captured.err
    data = json.loads(out.read_text())
    assert data["metric"] == "FID-VGG"
    assert data["value"] > 0 and data["size"] == 32 and data["dims"] == 512
    assert data["outputs"]["images"] == 4 and len(data["reference"]["skipped"]) == 1


def test_cli_bad_input_exits_2(
    folders: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "only.png").write_bytes((folders[0] / "0.png").read_bytes())
    assert cli.main(["fid", str(folders[0]), str(lonely), "--vgg", "--size", "32"]) == 2
    assert "at least 2 readable" in capsys.readouterr().err
    assert cli.main(["fid", str(folders[0]), str(tmp_path / "nope"), "--vgg"]) == 2
    assert "not a folder" in capsys.readouterr().err
