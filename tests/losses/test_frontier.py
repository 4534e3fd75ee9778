"""Differentiable forms of the evaluation axes: SSIM on luma and the log Gram ratio."""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity

from photostyle.losses.frontier import gram_log_ratio, gram_log_ratio_to, gram_target, ssim_luma


def test_ssim_luma_agrees_with_scikit_image() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 48, 64, generator=g, dtype=torch.float64)
    b = (a + 0.1 * torch.randn(a.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).reshape(3, 1, 1)
    ref = structural_similarity(
        (a[0] * w).sum(0).numpy(),
        (b[0] * w).sum(0).numpy(),
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    got = float(ssim_luma(a, b)[0])
    assert abs(got - float(np.asarray(ref))) < 0.02  # borders: replicate padding vs cropping
    assert float(ssim_luma(a, a)[0]) > 0.9999


def test_ssim_luma_gradcheck() -> None:
    a = torch.rand(1, 3, 12, 12, dtype=torch.float64, requires_grad=True)
    b = torch.rand(1, 3, 12, 12, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: ssim_luma(x, b), (a,))


def test_gram_log_ratio_is_zero_for_the_content_and_very_negative_for_the_style(
    make_encoder,  # type: ignore[no-untyped-def]
) -> None:
    enc = make_encoder()
    c, s = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32) * 0.5 + 0.5
    tc, ts = enc(c).taps, enc(s).taps
    assert torch.allclose(gram_log_ratio(tc, tc, ts), torch.zeros(2), atol=1e-6)
    assert (gram_log_ratio(ts, tc, ts) < -10).all()


def test_gram_target_computed_once_gives_the_same_ratio() -> None:
    """The refinement's form (target once, many outputs) equals the one-call form exactly."""
    g = torch.Generator().manual_seed(2)
    content = [torch.rand(2, 4, 6, 6, generator=g), torch.rand(2, 8, 3, 3, generator=g)]
    style = [torch.rand(2, 4, 5, 7, generator=g), torch.rand(2, 8, 2, 4, generator=g)]
    target = gram_target(content, style)
    for seed in (3, 4):
        g.manual_seed(seed)
        out = [torch.rand(t.shape, generator=g) for t in content]
        assert torch.equal(gram_log_ratio_to(out, *target), gram_log_ratio(out, content, style))
