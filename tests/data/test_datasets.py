"""Tests of the ImageFolder listing and the training crops of sampled triplets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from photostyle.data.datasets import (
    ImageList,
    TripletCrops,
    image_folder,
    random_crop,
    unlabelled_folder,
)
from photostyle.data.sampler import SamplingConfig, TripletSampler

# --- image_folder ------------------------------------------------------------------------------


def test_image_folder_lists_classes_sorted(tmp_path: Path, write_png: Callable[..., Path]):
    for name in ["zebra/2.png", "zebra/1.png", "apple/b.png", "mango/x.png", "apple/a.png"]:
        write_png(tmp_path / name, 16, 16)
    images = image_folder(tmp_path)
    assert images.classes == ["apple", "mango", "zebra"]
    rel = [p.relative_to(tmp_path).as_posix() for p in images.paths]
    assert rel == ["apple/a.png", "apple/b.png", "mango/x.png", "zebra/1.png", "zebra/2.png"]
    assert images.labels.dtype == torch.int64
    assert images.labels.tolist() == [0, 0, 1, 2, 2]
    assert len(images) == 5


def test_image_folder_ignores_other_files_and_hidden_ones(
    tmp_path: Path, write_png: Callable[..., Path]
):
    write_png(tmp_path / "cats" / "a.png", 16, 16)
    write_png(tmp_path / "cats" / "B.JPEG", 16, 16)  # suffix case does not matter
    write_png(tmp_path / "cats" / "deep" / "c.png", 16, 16)  # nested: still class "cats"
    write_png(tmp_path / "top.png", 16, 16)  # directly in root: class "."
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    (tmp_path / "cats" / "README").write_text("no suffix")
    (tmp_path / "cats" / "folder.png").mkdir()  # a directory with an image suffix
    write_png(tmp_path / "cats" / "._a.png", 16, 16)  # macOS AppleDouble file
    write_png(tmp_path / "cats" / ".hidden.png", 16, 16)
    write_png(tmp_path / ".thumbnails" / "t.png", 16, 16)  # hidden folder: not a class
    write_png(tmp_path / "dogs" / ".cache" / "t.png", 16, 16)  # only hidden images: no class
    images = image_folder(tmp_path)
    assert images.classes == [".", "cats"]
    rel = [p.relative_to(tmp_path).as_posix() for p in images.paths]
    assert rel == ["top.png", "cats/B.JPEG", "cats/a.png", "cats/deep/c.png"]
    assert images.labels.tolist() == [0, 1, 1, 1]


def test_image_folder_root_may_be_inside_a_hidden_folder(
    tmp_path: Path, write_png: Callable[..., Path]
):
    root = tmp_path / ".datasets" / "photos"
    write_png(root / "cls" / "a.png", 16, 16)
    images = image_folder(root)
    assert images.classes == ["cls"]
    assert images.paths == [root / "cls" / "a.png"]


def test_image_folder_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        image_folder(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        image_folder(tmp_path / "file.png")
    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no images found"):
        image_folder(empty)
    (empty / "cls" / "notes.txt").write_text("x")
    (empty / "cls" / ".hidden.jpg").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no images found"):
        image_folder(empty)


# --- random_crop -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("h", "w", "size"), [(16, 16, 16), (16, 40, 24), (48, 20, 32), (20, 17, 40)]
)
def test_random_crop_shape_and_range(h: int, w: int, size: int):
    g = torch.Generator().manual_seed(h * w)
    img = torch.rand(3, h, w, generator=g)
    for _ in range(5):
        out = random_crop(img, size, g)
        assert out.shape == (3, size, size)
        assert out.dtype == torch.float32
        assert out.is_contiguous()
        assert out.min() >= 0 and out.max() <= 1


def test_random_crop_deterministic_and_flips():
    # Horizontal ramp: a crop increases left to right, a flipped one decreases.
    img = torch.linspace(0, 1, 40).expand(3, 24, 40).contiguous()
    crops = [random_crop(img, 16, torch.Generator().manual_seed(s)) for s in range(20)]
    again = [random_crop(img, 16, torch.Generator().manual_seed(s)) for s in range(20)]
    assert all(torch.equal(a, b) for a, b in zip(crops, again, strict=True))
    increasing = [bool((c[:, :, -1] > c[:, :, 0]).all()) for c in crops]
    assert any(increasing) and not all(increasing)
    assert len({tuple(c[0, 0, :2].tolist()) for c in crops}) > 5  # places and scales vary


# --- TripletCrops -------------------------------------------------------------------------------

# Five uniform photos whose grey level identifies them; sizes below and above the crop.
LEVELS = [0, 60, 120, 180, 240]
SIZES = [(16, 16), (20, 48), (48, 32), (24, 24), (17, 30)]
CROP = 32


@pytest.fixture
def uniform_images(tmp_path: Path) -> ImageList:
    paths = []
    for i, (level, (h, w)) in enumerate(zip(LEVELS, SIZES, strict=True)):
        path = tmp_path / ("a" if i < 3 else "b") / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((h, w, 3), level, dtype=np.uint8)).save(path)
        paths.append(path)
    return ImageList(paths, torch.tensor([0, 0, 0, 1, 1]), ["a", "b"])


def _sampler(m: int = 5) -> TripletSampler:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(m, m, generator=g)
    a = a + a.T
    a.fill_diagonal_(0)
    return TripletSampler(a, torch.tensor([0, 0, 0, 1, 1][:m]), SamplingConfig(0.5, 0.5))


def _level(crop: torch.Tensor) -> int:
    """Index of the uniform photo a crop was cut from."""
    assert float(crop.max() - crop.min()) < 1e-5
    return LEVELS.index(round(float(crop.mean()) * 255))


def test_triplet_crops_shapes_and_range(uniform_images: ImageList):
    ds = TripletCrops(uniform_images, _sampler(), crop=CROP, seed=0, length=12)
    assert len(ds) == 12
    for n in range(12):
        item = ds[n]
        assert len(item) == 3
        for crop in item:
            assert crop.shape == (3, CROP, CROP)
            assert crop.dtype == torch.float32
            assert crop.min() >= 0 and crop.max() <= 1


def test_triplet_crops_follow_the_sampler(uniform_images: ImageList):
    sampler = _sampler()
    seed = 5
    ds = TripletCrops(uniform_images, sampler, crop=CROP, seed=seed, length=20)
    for n in range(20):
        content, style, similar = (_level(t) for t in ds[n])
        # the documented per-item stream: generator seeded from (seed, n)
        g = torch.Generator().manual_seed(seed * 1_000_003 + n)
        assert (content, style, similar) == sampler.draw(g)
        assert style in sampler.style_set(content).tolist()
        assert similar in sampler.similar_set(content).tolist()


def test_triplet_crops_are_deterministic_per_index(tmp_path: Path, write_png: Callable[..., Path]):
    paths = [
        write_png(tmp_path / f"c{i % 2}" / f"{i}.png", 20 + 7 * i, 36, seed=i) for i in range(5)
    ]
    images = ImageList(paths, torch.tensor([i % 2 for i in range(5)]), ["c0", "c1"])
    sampler = _sampler()
    ds = TripletCrops(images, sampler, crop=24, seed=1, length=8)
    first = [ds[n] for n in range(8)]
    # same index, any order, a fresh dataset object: identical crops
    again = TripletCrops(images, sampler, crop=24, seed=1, length=8)
    for n in reversed(range(8)):
        assert all(torch.equal(a, b) for a, b in zip(first[n], again[n], strict=True))
    assert not all(torch.equal(first[0][0], first[n][0]) for n in range(1, 8))
    # another seed, another stream
    other_seed = TripletCrops(images, sampler, crop=24, seed=2, length=8)
    assert not all(torch.equal(first[n][0], other_seed[n][0]) for n in range(8))


def test_triplet_crops_unreadable_image_is_grey(
    tmp_path: Path, uniform_images: ImageList, caplog: pytest.LogCaptureFixture
):
    broken = tmp_path / "a" / "0.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    tiny = tmp_path / "b" / "3.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tiny)  # below load_image's 16 px
    ds = TripletCrops(uniform_images, _sampler(), crop=CROP, seed=0, length=40)
    seen_grey = 0
    with caplog.at_level(logging.WARNING, logger="photostyle.data.datasets"):
        for n in range(40):
            indices = ds.sampler.draw(torch.Generator().manual_seed(0 * 1_000_003 + n))
            for i, crop in zip(indices, ds[n], strict=True):
                assert crop.shape == (3, CROP, CROP)
                if i in (0, 3):
                    torch.testing.assert_close(crop, torch.full_like(crop, 0.5))
                    seen_grey += 1
                else:
                    assert _level(crop) == i
    assert seen_grey > 0
    assert "unreadable training image" in caplog.text


def test_single_image_dataset(uniform_images: ImageList):
    one = ImageList(uniform_images.paths[:1], torch.tensor([0]), ["a"])
    sampler = TripletSampler(torch.zeros(1, 1), one.labels)
    content, style, similar = TripletCrops(one, sampler, crop=CROP, seed=0, length=1)[0]
    assert _level(content) == _level(style) == _level(similar) == 0


# --- unlabelled_folder ---------------------------------------------------------------------------


def test_unlabelled_folder_lists_every_image_without_a_class(
    tmp_path: Path, write_png: Callable[..., Path]
):
    for name in ["b.png", "a/x.jpg", "a/deep/y.png", ".hidden/z.png", "a/._w.png"]:
        write_png(tmp_path / name, 16, 16)
    (tmp_path / "notes.txt").write_text("not an image")
    images = unlabelled_folder(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in images.paths] == [
        "a/deep/y.png",
        "a/x.jpg",
        "b.png",
    ]
    assert images.labels.tolist() == [-1, -1, -1] and images.classes == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        unlabelled_folder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        unlabelled_folder(tmp_path / "b.png")
