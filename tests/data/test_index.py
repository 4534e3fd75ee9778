"""Tests of the perceptual distances of paper Eq. (9) and their saved index."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from photostyle.data.index import PerceptualIndex, pairwise_sq_distances, perceptual_features
from photostyle.io import load_image
from photostyle.models.encoder import VGGEncoder

SIZE = 16  # index side used in these tests (the smallest the encoder accepts)


@pytest.fixture
def photos(tmp_path: Path, write_png: Callable[..., Path]) -> list[Path]:
    """Four random photos of different sizes, and an exact copy of the first."""
    paths = [
        write_png(tmp_path / "a.png", 16, 16, seed=1),
        write_png(tmp_path / "b.png", 24, 20, seed=2),
        write_png(tmp_path / "c.png", 48, 32, seed=3),
        write_png(tmp_path / "d.png", 20, 40, seed=4),
    ]
    paths.append(Path(shutil.copy(paths[0], tmp_path / "a_copy.png")))
    return paths


def _taps(img: torch.Tensor, encoder: VGGEncoder) -> list[torch.Tensor]:
    """relu1_1..relu4_1 of a (3, H, W) image resized to SIZE x SIZE, as the index does."""
    x = F.interpolate(img[None], (SIZE, SIZE), mode="bilinear", antialias=True)
    with torch.no_grad():
        return encoder.taps(x)


def _eq9(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Eq. (9) written out: sum over the 4 taps of the mean squared difference."""
    return sum(float(((x - y) ** 2).mean()) for x, y in zip(a, b, strict=True))


def test_features_shape_and_dtype(photos: list[Path], tiny_encoder: VGGEncoder):
    feats, bad = perceptual_features(photos, tiny_encoder, size=SIZE)
    # tiny widths (4, 8, 8, 16) at 16, 8, 4, 2 px
    assert feats.shape == (5, 4 * 16 * 16 + 8 * 8 * 8 + 8 * 4 * 4 + 16 * 2 * 2)
    assert feats.dtype == torch.float16
    assert torch.isfinite(feats).all()
    assert bad == []


def test_distances_equal_brute_force_eq9(photos: list[Path], tiny_encoder: VGGEncoder):
    feats, _ = perceptual_features(photos, tiny_encoder, size=SIZE)
    a = pairwise_sq_distances(feats)
    taps = [_taps(load_image(p), tiny_encoder) for p in photos]
    expected = torch.tensor([[_eq9(x, y) for y in taps] for x in taps])
    distinct = ~torch.eye(4, dtype=torch.bool)
    assert (expected[:4, :4][distinct] > 0).all()  # distinct photos are at positive distance
    # float16 storage of the features: about 3 significant digits
    torch.testing.assert_close(a, expected, rtol=2e-3, atol=2e-3 * float(expected.max()))


def test_distances_are_a_metric_like_matrix(photos: list[Path], tiny_encoder: VGGEncoder):
    feats, _ = perceptual_features(photos, tiny_encoder, size=SIZE)
    a = pairwise_sq_distances(feats)
    assert a.shape == (5, 5)
    assert a.dtype == torch.float32
    assert torch.equal(a, a.T)  # exactly symmetric
    assert (a.diagonal() == 0).all()  # A(I, I) = 0
    assert (a >= 0).all()
    # The copy of photo 0 is (numerically) at distance 0 from it, far closer than anything else.
    assert a[0, 4] <= 1e-3 * a[0, 1:4].min()


def test_pairwise_equals_direct_squared_distances_for_any_chunk():
    torch.manual_seed(0)
    f = torch.randn(7, 33).half()
    ff = f.double()
    expected = ((ff[:, None] - ff[None]) ** 2).sum(-1).float()
    for chunk in (1, 3, 7, 1024):
        torch.testing.assert_close(pairwise_sq_distances(f, chunk=chunk), expected)


def test_features_do_not_depend_on_batching(photos: list[Path], tiny_encoder: VGGEncoder):
    calls: list[int] = []
    f2, _ = perceptual_features(
        photos, tiny_encoder, size=SIZE, batch_size=2, on_batch=calls.append
    )
    f64, _ = perceptual_features(photos, tiny_encoder, size=SIZE)
    assert calls == [2, 2, 1]
    torch.testing.assert_close(f2.float(), f64.float(), rtol=1e-3, atol=1e-4)


def test_unreadable_images_are_grey_and_reported(
    tmp_path: Path, photos: list[Path], tiny_encoder: VGGEncoder, write_png: Callable[..., Path]
):
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not a png")
    tiny = write_png(tmp_path / "tiny.png", 8, 8)  # below the 16 px minimum of load_image
    paths = [photos[0], garbage, tmp_path / "missing.jpg", photos[1], tiny]
    feats, bad = perceptual_features(paths, tiny_encoder, size=SIZE)
    assert bad == [1, 2, 4]
    grey_taps = _taps(torch.full((3, 8, 8), 0.5), tiny_encoder)
    grey = torch.cat([t.flatten() / t.numel() ** 0.5 for t in grey_taps])  # Eq. (9) scaling
    for i in bad:
        torch.testing.assert_close(feats[i].float(), grey.half().float())
    a = pairwise_sq_distances(feats)
    # all unreadable images are the same grey image, distinct from the photos
    assert a[1, 2] <= 1e-3 * a[0, 1] and a[1, 4] <= 1e-3 * a[0, 1]
    assert (a[0, [1, 3]] > 0).all()


# --- PerceptualIndex ---------------------------------------------------------------------------


def _index() -> PerceptualIndex:
    torch.manual_seed(0)
    return PerceptualIndex(
        paths=["cls a/été.jpg", "cls a/b.png", 'x/"quoted".png'],
        labels=torch.tensor([0, 0, 1]),
        classes=["cls a", "x"],
        distances=pairwise_sq_distances(torch.randn(3, 5)),
        size=32,
    )


def test_index_round_trip(tmp_path: Path):
    index = _index()
    path = tmp_path / "run" / "index.safetensors"
    index.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["index.safetensors"]  # no temp file left
    back = PerceptualIndex.load(path)
    assert back.paths == index.paths
    assert back.classes == index.classes
    assert back.size == 32
    assert back.labels.dtype == torch.int64
    assert torch.equal(back.labels, index.labels)
    assert back.distances.dtype == torch.float32
    assert torch.equal(back.distances, index.distances)


def test_index_save_overwrites(tmp_path: Path):
    path = tmp_path / "index.safetensors"
    _index().save(path)
    other = PerceptualIndex(["only.png"], torch.tensor([0]), ["."], torch.zeros(1, 1), 16)
    other.save(path)
    back = PerceptualIndex.load(path)
    assert back.paths == ["only.png"]
    assert back.size == 16


def test_load_refuses_other_safetensors(tmp_path: Path):
    path = tmp_path / "weights.safetensors"
    save_file({"labels": torch.zeros(2, dtype=torch.long)}, str(path), metadata={"a": "b"})
    with pytest.raises(ValueError, match="not a photostyle perceptual index"):
        PerceptualIndex.load(path)
