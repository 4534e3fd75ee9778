import pytest
import torch
import torch.nn.functional as F

from photostyle.upsample import (
    UPSAMPLE_METHODS,
    _linear_taps,
    _runs,
    _split,
    apply_local_affine,
    box_filter,
    fit_local_affine,
    upsample_stylized,
)

A = torch.tensor([[0.5, 0.2, 0.0], [0.1, 0.7, 0.1], [0.0, 0.3, 0.9]], dtype=torch.float64)
B = torch.tensor([0.1, -0.05, 0.2], dtype=torch.float64)


def affine(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("kj,bjhw->bkhw", A, x) + B[:, None, None]


def test_box_filter_hand_computed():
    x = torch.arange(9, dtype=torch.float64).reshape(1, 1, 3, 3)
    out = box_filter(x, 1)
    # corner (0, 0) averages 0, 1, 3, 4; centre averages all nine
    assert out[0, 0, 0, 0] == pytest.approx((0 + 1 + 3 + 4) / 4)
    assert out[0, 0, 1, 1] == pytest.approx(4.0)
    assert torch.equal(box_filter(x, 0), x)


def test_box_filter_window_larger_than_image():
    x = torch.rand(2, 3, 2, 5, dtype=torch.float64)
    out = box_filter(x, 5)  # every 11x11 window holds the whole 2x5 image
    assert torch.allclose(out, x.mean((2, 3), keepdim=True).expand_as(x))


def test_fit_recovers_a_global_affine_colour_transform():
    torch.manual_seed(0)
    guide = torch.rand(2, 3, 12, 17, dtype=torch.float64)
    coeffs = fit_local_affine(guide, affine(guide), radius=2, eps=1e-10)
    assert coeffs.shape == (2, 12, 12, 17)
    a = coeffs[:, :9].permute(0, 2, 3, 1).reshape(-1, 3, 3)
    assert torch.allclose(a, A.expand_as(a), atol=1e-5)
    assert torch.allclose(coeffs[:, 9:].permute(0, 2, 3, 1).reshape(-1, 3), B, atol=1e-5)


def test_large_eps_gives_the_local_mean():
    torch.manual_seed(1)
    guide, target = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    coeffs = fit_local_affine(guide, target, radius=1, eps=1e6)
    assert coeffs[:, :9].abs().max() < 1e-4
    expected = box_filter(box_filter(target, 1), 1)
    assert torch.allclose(coeffs[:, 9:], expected, atol=1e-4)


def test_apply_matches_bilinear_interpolation_in_strips():
    torch.manual_seed(2)
    bias = torch.rand(1, 3, 7, 9, dtype=torch.float64)
    coeffs = torch.cat([torch.zeros(1, 9, 7, 9, dtype=torch.float64), bias], 1)
    guide = torch.rand(1, 3, 30, 41, dtype=torch.float64)
    out = apply_local_affine(coeffs, guide, strip_rows=4)
    ref = F.interpolate(bias, size=(30, 41), mode="bilinear", align_corners=False)
    assert torch.allclose(out, ref, atol=1e-12)


@pytest.mark.parametrize("strip_rows", [1, 5, 1000])
def test_strips_do_not_change_the_result(strip_rows):
    torch.manual_seed(3)
    small, target = torch.rand(1, 3, 10, 14), torch.rand(1, 3, 10, 14)
    full = torch.rand(1, 3, 40, 56)
    coeffs = fit_local_affine(small, target)
    ref = apply_local_affine(coeffs, full, strip_rows=40)
    assert torch.allclose(apply_local_affine(coeffs, full, strip_rows=strip_rows), ref, atol=1e-6)


def reference_apply(coeffs: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """The straightforward application (release 0.3): whole-image gathers of rows of columns."""
    b, n, h, w = coeffs.shape
    c, (height, width) = n // 4, guide.shape[-2:]
    rows_lo, rows_hi, wy = _linear_taps(height, h, coeffs.device)
    cols_lo, cols_hi, wx = _linear_taps(width, w, coeffs.device)
    wy, wx = wy.to(coeffs.dtype), wx.to(coeffs.dtype)
    cols = torch.lerp(coeffs.index_select(3, cols_lo), coeffs.index_select(3, cols_hi), wx)
    full = torch.lerp(cols.index_select(2, rows_lo), cols.index_select(2, rows_hi), wy[:, None])
    a = full[:, : 3 * c].reshape(b, c, 3, height, width)
    return (a * guide[:, None]).sum(2) + full[:, 3 * c :]


@pytest.mark.parametrize(
    ("b", "c", "small", "big", "strip_rows"),
    [
        (1, 3, (7, 9), (101, 131), 256),  # large factor: broadcast runs of rows and columns
        (2, 3, (7, 9), (101, 131), 17),  # strips that cut runs of rows, batch of two
        (1, 3, (13, 11), (29, 97), 5),  # rows gathered (factor 2.2), columns in runs
        (3, 3, (12, 40), (80, 50), 7),  # rows in runs, columns gathered (1.25)
        (1, 12, (6, 5), (6, 5), 2),  # equal sizes (metrics), 12 output channels (video)
        (2, 1, (9, 8), (5, 4), 3),  # downsampling, one output channel
        (1, 3, (1, 1), (9, 7), 4),  # a single working pixel
    ],
)
def test_apply_equals_the_reference_arithmetic(b, c, small, big, strip_rows):
    torch.manual_seed(10)
    coeffs = torch.randn(b, 4 * c, *small)
    guide = torch.rand(b, 3, *big)
    out = apply_local_affine(coeffs, guide, strip_rows=strip_rows)
    ref = reference_apply(coeffs, guide)
    assert out.shape == (b, c, *big)
    assert torch.allclose(out, ref, atol=2e-6, rtol=0)
    whole = apply_local_affine(coeffs.double(), guide.double(), strip_rows=big[0])
    assert torch.allclose(whole, reference_apply(coeffs.double(), guide.double()), atol=1e-12)


def test_apply_is_bilinear_in_float64_at_a_camera_ratio():
    """4000/256 columns (15.625 per working one): runs of 15 and 16, tiles split at 16 rows."""
    torch.manual_seed(11)
    bias = torch.rand(1, 3, 5, 256, dtype=torch.float64)
    coeffs = torch.cat([torch.zeros(1, 9, 5, 256, dtype=torch.float64), bias], 1)
    out = apply_local_affine(coeffs, torch.rand(1, 3, 78, 4000, dtype=torch.float64))
    ref = F.interpolate(bias, size=(78, 4000), mode="bilinear", align_corners=False)
    assert torch.allclose(out, ref, atol=1e-12)


def test_apply_clamps_and_writes_into_out():
    torch.manual_seed(12)
    coeffs, guide = 2 * torch.randn(2, 12, 4, 6), torch.rand(2, 3, 33, 45)
    buffer = torch.full((2, 3, 33, 45), float("nan"))
    out = apply_local_affine(coeffs, guide, out=buffer, clamp=True, strip_rows=10)
    assert out is buffer
    assert torch.allclose(out, reference_apply(coeffs, guide).clamp(0, 1), atol=2e-6)
    assert out.min() == 0 and out.max() == 1
    with pytest.raises(ValueError, match="out"):
        apply_local_affine(coeffs, guide, out=torch.empty(2, 3, 33, 44))


def test_runs_of_equal_taps_and_their_split():
    lo = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 3])
    assert _runs(lo) == [(0, 3, 0), (3, 5, 1), (5, 10, 2), (10, 11, 3)]
    assert _split(_runs(lo), 2) == [
        (0, 1, 0), (1, 3, 0), (3, 5, 1), (5, 6, 2), (6, 8, 2), (8, 10, 2), (10, 11, 3)
    ]  # fmt: skip
    assert _runs(torch.tensor([4])) == [(0, 1, 4)]


def test_guided_carries_full_resolution_structure():
    """A colour transform found at low resolution is applied to full-resolution detail."""
    torch.manual_seed(4)
    full = torch.rand(1, 3, 64, 64, dtype=torch.float64)  # detail finer than the working size
    small = F.interpolate(full, size=(16, 16), mode="area")
    out = upsample_stylized(full, small, affine(small), "guided", eps=1e-10)
    assert torch.allclose(out, affine(full), atol=1e-3)
    bicubic = upsample_stylized(full, small, affine(small), "bicubic")
    assert (bicubic - affine(full)).abs().mean() > 0.05  # bicubic loses that detail


def test_change_adds_the_upsampled_change():
    torch.manual_seed(5)
    full = torch.rand(2, 3, 20, 24)
    small = F.interpolate(full, size=(10, 12), mode="area")
    stylized = small * 0.5 + 0.2
    out = upsample_stylized(full, small, stylized, "change", strip_rows=3)
    change = F.interpolate(stylized - small, size=(20, 24), mode="bilinear", align_corners=False)
    assert torch.allclose(out, full + change, atol=1e-6)


@pytest.mark.parametrize("method", UPSAMPLE_METHODS)
def test_same_size_returns_the_output(method):
    x, y = torch.rand(1, 3, 9, 9), torch.rand(1, 3, 9, 9)
    assert upsample_stylized(x, x, y, method) is y


@pytest.mark.parametrize("method", UPSAMPLE_METHODS)
def test_shapes_across_batch_and_resolution(method):
    for b, (h, w), (H, W) in [(1, (8, 8), (32, 32)), (3, (9, 16), (27, 50))]:
        small, out = torch.rand(b, 3, h, w), torch.rand(b, 3, h, w)
        assert upsample_stylized(torch.rand(b, 3, H, W), small, out, method).shape == (b, 3, H, W)


def test_bad_inputs():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="unknown upsampling"):
        upsample_stylized(torch.rand(1, 3, 16, 16), x, x, "nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="differs"):
        upsample_stylized(torch.rand(1, 3, 16, 16), x, torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="guide"):
        fit_local_affine(torch.rand(1, 1, 8, 8), x)
    with pytest.raises(ValueError, match="eps"):
        fit_local_affine(x, x, eps=0.0)
    with pytest.raises(ValueError, match="radius"):
        box_filter(x, -1)
    with pytest.raises(ValueError, match="strip_rows"):
        apply_local_affine(torch.rand(1, 12, 4, 4), x, strip_rows=0)


def test_fit_gradcheck_float64():
    torch.manual_seed(6)
    guide = torch.rand(1, 3, 5, 6, dtype=torch.float64)
    target = torch.rand(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: fit_local_affine(guide, t, 1, 1e-2), (target,))


@pytest.mark.cuda
def test_apply_on_cuda_gathers_whole_strips_with_the_same_result():
    torch.manual_seed(13)
    coeffs, guide = torch.randn(2, 12, 12, 16), torch.rand(2, 3, 187, 250)
    cpu = apply_local_affine(coeffs, guide, strip_rows=64, clamp=True)
    gpu = apply_local_affine(coeffs.cuda(), guide.cuda(), strip_rows=64, clamp=True)
    assert torch.allclose(gpu.cpu(), cpu, atol=2e-6)
