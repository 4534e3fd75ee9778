"""Training datasets: an ImageFolder listing and random training crops of sampled triplets."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from photostyle.data.sampler import Sampler
from photostyle.io import ImageError, load_image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageList:
    """Image files with integer class labels (class = sub-folder of the root)."""

    paths: list[Path]  # image files, sorted by class then name
    labels: torch.Tensor  # (M,) int64 class index of each image
    classes: list[str]  # class names; labels index into this

    def __len__(self) -> int:
        return len(self.paths)


def image_folder(root: str | Path) -> ImageList:
    """List an ImageFolder tree: ``root/<class>/<image>``; files directly in root get class ``"."``.

    Images in sub-folders of a class belong to that class. Hidden files and folders (names starting
    with ``"."``, e.g. macOS ``._photo.jpg``) and files of other types are ignored.

    Raises:
        FileNotFoundError: ``root`` is not a directory or holds no images.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    paths: list[Path] = []
    labels: list[int] = []
    classes: list[str] = []
    groups: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        hidden = any(part.startswith(".") for part in rel.parts)
        if path.suffix.lower() in IMAGE_SUFFIXES and not hidden and path.is_file():
            groups.setdefault(rel.parts[0] if len(rel.parts) > 1 else ".", []).append(path)
    for name in sorted(groups):
        classes.append(name)
        paths.extend(groups[name])
        labels.extend([len(classes) - 1] * len(groups[name]))
    if not paths:
        raise FileNotFoundError(f"{root}: no images found")
    return ImageList(paths, torch.tensor(labels, dtype=torch.long), classes)


def unlabelled_folder(root: str | Path) -> ImageList:
    """List every image under ``root`` (any depth, sorted), with no class: labels are -1.

    Classes come later, from k-means on the perceptual embeddings
    (:mod:`photostyle.data.embed_index`). Hidden files and folders are ignored.

    Raises:
        FileNotFoundError: ``root`` is not a directory or holds no images.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    paths = [
        p
        for p in sorted(root.rglob("*"))
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    ]
    if not paths:
        raise FileNotFoundError(f"{root}: no images found")
    return ImageList(paths, torch.full((len(paths),), -1, dtype=torch.long), [])


def load_training_image(path: Path, crop: int) -> torch.Tensor:
    """A training photo, or a grey ``crop`` square (with a warning) if it cannot be read.

    One unreadable file among thousands should not stop a long run.

    Shape: -> (3, H, W) in [0, 1].
    """
    try:
        return load_image(path)
    except ImageError as err:
        logger.warning("skipping unreadable training image: %s", err)
        return torch.full((3, crop, crop), 0.5)


def random_crop(img: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Random-scale square crop with random horizontal flip.

    The shorter side is resized to ``size * s`` with ``s`` uniform in [1, 1.25], then a ``size``
    square is cut at a random place.

    Shape: (3, H, W) -> (3, size, size).
    """
    h, w = img.shape[-2:]
    scale = size * (1.0 + 0.25 * float(torch.rand((), generator=generator))) / min(h, w)
    nh, nw = max(size, math.ceil(h * scale)), max(size, math.ceil(w * scale))
    img = F.interpolate(img[None], size=(nh, nw), mode="bilinear", antialias=True)[0]
    top = int(torch.randint(0, nh - size + 1, (), generator=generator))
    left = int(torch.randint(0, nw - size + 1, (), generator=generator))
    img = img[:, top : top + size, left : left + size]
    if float(torch.rand((), generator=generator)) < 0.5:
        img = img.flip(-1)
    return img.clamp(0, 1).contiguous()


class TripletCrops(Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Item ``n`` is a (content, style, similar-content) crop triplet drawn for sample number ``n``.

    Each item uses its own generator seeded from ``(seed, n)``, so the stream of triplets is
    reproducible and a resumed run continues it exactly by starting at the next ``n``.

    Args:
        images: the image list the sampler was built on.
        sampler: draws index triplets (Eqs. (10)-(11)): a brute-force
            :class:`~photostyle.data.sampler.TripletSampler` or an
            :class:`~photostyle.data.index_sampler.IndexSampler`.
        crop: side of the square training crops.
        seed: base seed of the stream.
        length: number of items (e.g. steps * batch size).
    """

    def __init__(
        self, images: ImageList, sampler: Sampler, crop: int, seed: int, length: int
    ) -> None:
        self.images = images
        self.sampler = sampler
        self.crop = crop
        self.seed = seed
        self.length = length

    def __len__(self) -> int:
        return self.length

    def _load(self, index: int, generator: torch.Generator) -> torch.Tensor:
        img = load_training_image(self.images.paths[index], self.crop)
        return random_crop(img, self.crop, generator)

    def __getitem__(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shape: three (3, crop, crop) tensors: I_c, I_s, I_t."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + n)
        ic, is_, it = self.sampler.draw(g)
        return self._load(ic, g), self._load(is_, g), self._load(it, g)
