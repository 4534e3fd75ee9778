import pytest
import torch

from photostyle.data.looks import random_look
from photostyle.models.affine import luma


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_a_look_is_a_global_colour_change_in_range() -> None:
    img = torch.rand(3, 16, 16, generator=_gen(0))
    img[:, 8:] = img[:, :8]  # the lower half repeats the upper half's pixels
    out = random_look(img, _gen(1))
    assert out.shape == img.shape
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out[:, 8:], out[:, :8])  # same colour in, same colour out
    assert (out - img).abs().mean() > 0.01


def test_a_grey_ramp_keeps_its_order_and_looks_differ_by_seed() -> None:
    ramp = torch.linspace(0, 1, 64).expand(3, 4, 64).contiguous()
    outs = [random_look(ramp, _gen(s)) for s in range(8)]
    for out in outs:  # monotone: no new edges or inverted tones
        assert (luma(out[None])[0, 0, 0].diff() >= -1e-6).all()
    means = torch.stack([o.mean(dim=(1, 2)) for o in outs])  # (8, 3)
    assert means.std(0).min() > 0.02
    torch.testing.assert_close(random_look(ramp, _gen(3)), outs[3])


def test_rejects_a_batch() -> None:
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        random_look(torch.rand(1, 3, 8, 8), _gen(0))
