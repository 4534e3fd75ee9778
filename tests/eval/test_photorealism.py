"""Tests of the photorealism score (PSNR to the best local affine colour model of the content)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import torch

from photostyle.eval.metrics import local_affine_model, photorealism
from photostyle.io import load_image


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """The bundled demo content, a real 400x600 photo."""
    return load_image(resources.files("photostyle") / "assets" / "demo_content.jpg")


def _brute_force_model(output: np.ndarray, content: np.ndarray, r: int, eps: float) -> np.ndarray:
    """The guided filter by hand: a ridge least-squares fit per window, then per-pixel averages.

    For each window (its pixels inside the image, n of them) minimise
    ``sum_i |A c_i + b - o_i|^2 + n eps |A|^2`` (He et al. Eq. (18), the ridge on A only), then
    average the (A, b) of every window covering a pixel and apply them to its content.
    """
    _, h, w = content.shape
    theta = np.zeros((h, w, 4, 3))  # [A^T; b^T] of the window centred at each pixel
    for y in range(h):
        for x in range(w):
            ys, xs = slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1)
            c = content[:, ys, xs].reshape(3, -1).T  # (n, 3)
            o = output[:, ys, xs].reshape(3, -1).T
            design = np.hstack([c, np.ones((len(c), 1))])  # (n, 4)
            ridge = len(c) * eps * np.diag([1.0, 1.0, 1.0, 0.0])
            theta[y, x] = np.linalg.solve(design.T @ design + ridge, design.T @ o)
    model = np.zeros_like(output)
    for y in range(h):
        for x in range(w):
            ys, xs = slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1)
            mean = theta[ys, xs].reshape(-1, 4, 3).mean(axis=0)  # (4, 3)
            model[:, y, x] = np.append(content[:, y, x], 1.0) @ mean
    return model


def test_local_affine_model_equals_a_brute_force_least_squares():
    g = torch.Generator().manual_seed(0)
    content = torch.rand(3, 7, 9, generator=g, dtype=torch.float64)
    output = torch.rand(3, 7, 9, generator=g, dtype=torch.float64)  # not affine: residual left
    for eps in (1e-4, 1e-1):
        model = local_affine_model(output, content, radius=2, eps=eps)
        expected = _brute_force_model(output.numpy(), content.numpy(), 2, eps)
        assert model.dtype == torch.float64
        assert np.allclose(model.numpy(), expected, atol=1e-9)
        assert not np.allclose(expected, output.numpy(), atol=1e-3)  # a real residual


def test_identical_and_global_colour_matrix_score_high(photo):
    same = photorealism(photo, photo)
    assert same > 50.0  # finite: the ridge shrinks A a little in flat windows
    matrix = torch.tensor([[0.8, 0.1, 0.05], [0.1, 0.7, 0.1], [0.0, 0.2, 0.7]])
    graded = (
        torch.einsum("ij,jhw->ihw", matrix, photo) + torch.tensor([0.05, 0.0, 0.08])[:, None, None]
    )
    assert float(graded.min()) >= 0 and float(graded.max()) <= 1  # no clipping: exactly global
    assert photorealism(graded, photo) > 45.0


def test_noise_and_pasted_texture_score_low(photo):
    noisy = photo + 0.05 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(0))
    assert photorealism(noisy.clamp(0, 1), photo) < 30.0
    yy, xx = torch.meshgrid(torch.arange(400.0), torch.arange(600.0), indexing="ij")
    stripes = 0.08 * torch.sin(2 * torch.pi * (xx + 0.5 * yy) / 5)  # a texture the photo lacks
    assert photorealism((photo + stripes).clamp(0, 1), photo) < 30.0


def test_images_are_compared_at_short_side_512():
    g = torch.Generator().manual_seed(1)
    small = torch.nn.functional.interpolate(
        torch.rand(1, 3, 8, 12, generator=g), size=(64, 96), mode="bilinear"
    )[0]
    noisy = (small + 0.05 * torch.randn(small.shape, generator=g)).clamp(0, 1)
    # Shrinking to short side 32 (area) averages 2x2 blocks: noise drops, the score rises ...
    assert photorealism(noisy, small, size=32) > photorealism(noisy, small, size=64) + 3
    # ... and a short side already below the size is used as it is (no upsampling).
    assert photorealism(noisy, small, size=512) == photorealism(noisy, small, size=64)


def test_photorealism_rejects_bad_input(photo):
    with pytest.raises(ValueError, match="differ in size"):
        photorealism(photo, photo[:, :100])
    with pytest.raises(ValueError, match="window"):
        photorealism(photo, photo, size=4)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        local_affine_model(photo[:1], photo[:1])
