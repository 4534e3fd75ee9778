"""Tests of the SCP loss (Eq. (2)) and the perceptual loss (Eqs. (3)-(7))."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from photostyle.losses import SCPHead, channel_stats, perceptual_loss, scp_loss, statistics_loss


def test_perceptual_loss_hand_computed():
    a = [torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]), torch.tensor([[[[0.0, 0.0, 0.0]]]])]
    b = [torch.tensor([[[[1.0, 0.0], [3.0, 2.0]]]]), torch.tensor([[[[3.0, 0.0, 0.0]]]])]
    # Layer 1: squared errors [0, 4, 0, 4] -> mean 2. Layer 2: [9, 0, 0] -> mean 3. Sum: 5.
    loss = perceptual_loss(a, b)
    assert loss.ndim == 0
    assert float(loss) == pytest.approx(5.0)
    assert float(perceptual_loss(b, a)) == pytest.approx(5.0)
    assert float(perceptual_loss(a, a)) == 0.0


def test_perceptual_loss_is_sum_of_mse_over_four_taps():
    torch.manual_seed(0)
    a = [torch.randn(2, c, s, s) for c, s in ((4, 16), (8, 8), (8, 4), (16, 2))]
    b = [torch.randn_like(t) for t in a]
    expected = sum(float(((x - y) ** 2).mean()) for x, y in zip(a, b, strict=True))
    assert float(perceptual_loss(a, b)) == pytest.approx(expected, rel=1e-6)


def test_perceptual_loss_shape_errors():
    with pytest.raises(ValueError):
        perceptual_loss([torch.zeros(1, 2, 3, 3)], [torch.zeros(1, 2, 3, 4)])
    with pytest.raises(ValueError):
        perceptual_loss([torch.zeros(1, 2, 3, 3)] * 2, [torch.zeros(1, 2, 3, 3)])


def test_perceptual_loss_gradient():
    a = [torch.zeros(1, 1, 1, 2, requires_grad=True)]
    b = [torch.tensor([[[[1.0, -3.0]]]])]
    perceptual_loss(a, b).backward()
    # d/da mean((a - b)^2) = 2 (a - b) / n.
    torch.testing.assert_close(a[0].grad, torch.tensor([[[[-1.0, 3.0]]]]))


def test_relative_perceptual_loss_divides_by_reference_energy():
    a = [torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])]  # energy (1 + 4 + 9 + 16) / 4 = 7.5
    b = [torch.tensor([[[[1.0, 0.0], [3.0, 2.0]]]])]  # mse 2
    assert float(perceptual_loss(a, b, relative=True)) == pytest.approx(2.0 / 7.5)
    # scale-free: the same relative error for features 100x larger
    big_a, big_b = [100 * a[0]], [100 * b[0]]
    assert float(perceptual_loss(big_a, big_b, relative=True)) == pytest.approx(2.0 / 7.5)


def test_relative_loss_normaliser_is_detached():
    a = [torch.tensor([[[[1.0, 2.0]]]], requires_grad=True)]
    b = [torch.tensor([[[[0.0, 0.0]]]])]
    perceptual_loss(a, b, relative=True).backward()
    # d/da mean(a^2) / 2.5 with the 2.5 held constant = a / 2.5
    torch.testing.assert_close(a[0].grad, torch.tensor([[[[0.4, 0.8]]]]))


def test_channel_stats_hand_computed():
    f = torch.tensor([[[[1.0, 3.0]], [[2.0, 2.0]]]])  # (1, 2, 1, 2)
    mu, sd = channel_stats(f, eps=0.0)
    torch.testing.assert_close(mu, torch.tensor([[2.0, 2.0]]))
    torch.testing.assert_close(sd, torch.tensor([[1.0, 0.0]]))


def test_statistics_loss_hand_computed_and_size_free():
    a = [torch.tensor([[[[1.0, 3.0]], [[2.0, 2.0]]]])]  # mu (2, 2), sd (1, 0)
    b = [torch.tensor([[[[0.0, 0.0, 0.0, 0.0]], [[1.0, 5.0, 1.0, 5.0]]]])]  # mu (0, 3), sd (0, 2)
    # mean((mu_b - mu_a)^2) = (4 + 1) / 2; mean((sd_b - sd_a)^2) = (1 + 4) / 2; sum 5.
    assert float(statistics_loss(a, b)) == pytest.approx(5.0, abs=0.02)  # eps in the std
    assert float(statistics_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    # a translated copy has the same statistics: no spatial alignment is asked for
    shifted = [torch.roll(b[0], 1, dims=3)]
    assert float(statistics_loss(b, shifted)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        statistics_loss(a, [torch.zeros(1, 3, 1, 2)])


def test_statistics_loss_gradcheck():
    torch.manual_seed(3)
    a = [torch.randn(2, 3, 4, 5, dtype=torch.float64)]
    b = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: statistics_loss(a, [t], relative=True), (b,))


def test_scp_head_starts_at_identity():
    torch.manual_seed(1)
    widths = (4, 8, 8)
    head = SCPHead(widths)
    q = [torch.randn(2, w, s, s + 1) for w, s in zip(widths, (8, 4, 2), strict=True)]
    p = [torch.randn_like(t) for t in q]
    for conv, qi in zip(head.convs, q, strict=True):
        assert conv.kernel_size == (3, 3)
        assert conv.in_channels == conv.out_channels
        torch.testing.assert_close(conv(qi).detach(), qi)
    expected = sum(float(F.mse_loss(qi, pi)) for qi, pi in zip(q, p, strict=True))
    assert float(head(q, p).detach()) == pytest.approx(expected, rel=1e-6)


def test_scp_loss_hand_set_conv():
    # W_r = 2 * identity + bias 1 (1x1 conv, one channel): W*Q - P = 2Q + 1 - P.
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        conv.bias.fill_(1.0)
    q = [torch.tensor([[[[0.0, 1.0]]]])]
    p = [torch.tensor([[[[1.0, 1.0]]]])]
    # Residuals [0, 2] -> squared [0, 4] -> mean 2.
    assert float(scp_loss(q, p, [conv]).detach()) == pytest.approx(2.0)
    # Relative: P = [2, 2] gives residuals [-1, 1] (mse 1) over P's energy 4.
    p2 = [torch.tensor([[[[2.0, 2.0]]]])]
    assert float(scp_loss(q, p2, [conv], relative=True).detach()) == pytest.approx(0.25)


def test_scp_loss_three_scales_sum():
    torch.manual_seed(2)
    convs = [nn.Conv2d(c, c, 3, padding=1) for c in (2, 3, 4)]
    q = [torch.randn(1, c, s, s) for c, s in ((2, 8), (3, 4), (4, 2))]
    p = [torch.randn_like(t) for t in q]
    expected = sum(
        float(((conv(qi) - pi) ** 2).mean().detach())
        for conv, qi, pi in zip(convs, q, p, strict=True)
    )
    assert float(scp_loss(q, p, convs).detach()) == pytest.approx(expected, rel=1e-6)


def test_scp_loss_shape_and_count_errors():
    conv = nn.Conv2d(2, 2, 3, padding=1)
    with pytest.raises(ValueError):
        scp_loss([torch.zeros(1, 2, 4, 4)], [torch.zeros(1, 2, 4, 3)], [conv])
    with pytest.raises(ValueError):  # zip(strict=True)
        scp_loss([torch.zeros(1, 2, 4, 4)] * 2, [torch.zeros(1, 2, 4, 4)], [conv])


def test_scp_loss_gradcheck_wrt_q():
    torch.manual_seed(3)
    conv = nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect").double()
    q = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    p = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: scp_loss([t], [p], [conv]), (q,))


def test_scp_head_trains_its_convs_and_passes_gradient_to_q():
    torch.manual_seed(4)
    head = SCPHead((2, 2, 2))
    q = [torch.randn(1, 2, 4, 4, requires_grad=True) for _ in range(3)]
    p = [torch.randn(1, 2, 4, 4) for _ in range(3)]
    head(q, p).backward()
    assert all(t.grad is not None and float(t.grad.abs().sum()) > 0 for t in q)
    assert all(c.weight.grad is not None for c in head.convs)
