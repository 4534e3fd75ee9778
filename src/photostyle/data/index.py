"""Perceptual distances between all training images (paper Eq. (9)).

``A(I_j, I_k) = sum_i ||phi_i(I_j) - phi_i(I_k)||^2`` over relu1_1..relu4_1, with ``||.||^2`` a
mean over the elements of each map (the convention of the losses, Eqs. (2)-(9)). Every image is
resized to a fixed ``size x size`` so that feature maps are comparable; each map is scaled by
``1 / sqrt(numel)`` and flattened, so that the squared L2 distance of the concatenated features
is exactly that sum of means. The features of all images are kept (float16) and the M x M matrix
is computed blockwise with ``||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b``. This is exact Eq. (9) at
that size and fits in memory for tens of thousands of images at size 32 (about 120k dimensions
per image).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from photostyle.io import ImageError, load_image
from photostyle.models.encoder import VGGEncoder
from photostyle.utils import atomic_path

Progress = Callable[[int], None]


@torch.inference_mode()
def perceptual_features(
    paths: Sequence[Path],
    encoder: VGGEncoder,
    *,
    size: int = 32,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    on_batch: Progress | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """Flattened relu1_1..relu4_1 features of every image at ``size x size``.

    Each map is divided by ``sqrt(numel)`` so that squared L2 distances between rows are Eq. (9)
    with per-map means. Unreadable images are replaced by a uniform grey (0.5) image.

    Args:
        paths: image files.
        encoder: the fixed VGG encoder.
        size: side every image is resized to (aspect ratio ignored, as a crop would be).
        batch_size: images per encoder call.
        device: where to run the encoder.
        on_batch: called with the number of images done after each batch (progress bars).

    Returns:
        ((M, D) float16 features, indices of the paths that could not be read).
    """
    feats: list[torch.Tensor] = []
    bad: list[int] = []
    for start in range(0, len(paths), batch_size):
        batch = []
        for i in range(start, min(start + batch_size, len(paths))):
            try:
                img = load_image(paths[i])
            except ImageError:
                bad.append(i)
                img = torch.full((3, size, size), 0.5)
            batch.append(F.interpolate(img[None], (size, size), mode="bilinear", antialias=True))
        x = torch.cat(batch).to(device)  # (b, 3, size, size)
        taps = encoder.taps(x)
        flat = [t.flatten(1) / math.sqrt(t[0].numel()) for t in taps]  # mean-normalised maps
        feats.append(torch.cat(flat, dim=1).half().cpu())  # (b, D)
        if on_batch is not None:
            on_batch(len(batch))
    return torch.cat(feats), bad


def pairwise_sq_distances(features: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """All-pairs squared L2 distances, Eq. (9), computed in blocks.

    Shape: (M, D) -> (M, M) float32, symmetric, zero diagonal.
    """
    f = features.float()
    sq = (f * f).sum(1)  # (M,)
    m = f.shape[0]
    out = torch.empty(m, m)
    for i in range(0, m, chunk):
        block = f[i : i + chunk]  # (b, D)
        d = sq[i : i + chunk, None] + sq[None, :] - 2.0 * (block @ f.T)
        out[i : i + chunk] = d.clamp_min(0)
    out.fill_diagonal_(0)
    return torch.minimum(out, out.T)  # exact symmetry despite rounding


@dataclass
class PerceptualIndex:
    """Paths, labels and their perceptual distance matrix; saved as one safetensors file."""

    paths: list[str]  # image paths (as given when built)
    labels: torch.Tensor  # (M,) int64 class labels
    classes: list[str]  # class names
    distances: torch.Tensor  # (M, M) float32, Eq. (9)
    size: int  # side images were resized to for Eq. (9)
    skipped: list[str] = field(default_factory=list)  # unreadable images, left out of the index

    def save(self, path: str | Path) -> None:
        meta = {
            "format": "photostyle.perceptual_index",
            "version": "1",
            "paths": json.dumps(self.paths),
            "classes": json.dumps(self.classes),
            "size": str(self.size),
            "skipped": json.dumps(self.skipped),
        }
        tensors = {"labels": self.labels.contiguous(), "distances": self.distances.contiguous()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> PerceptualIndex:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != "photostyle.perceptual_index":
            raise ValueError(f"{path}: not a photostyle perceptual index")
        t = load_file(str(path))
        return cls(
            paths=json.loads(meta["paths"]),
            labels=t["labels"],
            classes=json.loads(meta["classes"]),
            distances=t["distances"],
            size=int(meta["size"]),
            skipped=json.loads(meta.get("skipped", "[]")),
        )
