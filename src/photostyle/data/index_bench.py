"""Benchmark of the scalable perceptual index: speed, size, projected cost, and JL accuracy.

Speed: indexes of a few seeded subsets of a dataset are built from scratch (after an untimed
warm-up build); embedding is O(M) and the thresholds O(M^2 k), so images/s is taken from the
largest subset and the thresholds' seconds are fitted as ``a M + b M^2`` (non-negative least
squares) to project the cost to 83k (COCO 2014 train) and 1M images; bytes on disk are linear.

Accuracy: on a seeded subset, exact Eq. (9) (float32 features at the index size) is compared with
the index's distances (JL projection + int16 quantisation) for several k: relative error of the
distances, per-row Spearman rank correlation, and the agreement of the subsets of Eqs. (10)-(11)
(Jaccard index of {I_w^c} and of the other-class part of {I_gamma^c}).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from photostyle.data.datasets import ImageList
from photostyle.data.embed import (
    JLEmbedder,
    calibrate_scale,
    exact_sq_distances,
    gaussian_projection,
    quantize,
    tap_dims,
)
from photostyle.data.embed_index import EmbeddingIndex, IndexConfig
from photostyle.data.index import pairwise_sq_distances
from photostyle.data.index_sampler import chunked_thresholds
from photostyle.data.sampler import SamplingConfig, thresholds
from photostyle.data.sources import DataSource
from photostyle.io import ImageError, load_image
from photostyle.models.encoder import VGGEncoder

PROJECT_TO = (82_783, 1_000_000)  # COCO 2014 train, and a million images


@dataclass
class SizeRow:
    """Measured cost of one index build (or, synthetic, of the thresholds alone)."""

    images: int  # images in the subset
    thresholds_s: float  # median seconds of the chunked thresholds (t1, t2 of the settings)
    embed_s: float | None = None  # wall seconds to embed them (decoding included); None: synthetic
    images_per_s: float | None = None  # images / embed_s
    bytes: int | None = None  # bytes on disk (embeddings, status, manifest, one thresholds file)


@dataclass
class AccuracyRow:
    """JL index distances against exact Eq. (9) on the same images."""

    dim: int  # k
    rel_err_median: float  # median over pairs of |A' - A| / A
    rel_err_p95: float  # 95th percentile of |A' - A| / A
    bias: float  # mean of A' / A - 1 (0 for an unbiased projection)
    spearman_mean: float  # per-row Spearman rank correlation of A' and A, mean over rows
    spearman_min: float  # its minimum
    similar_jaccard: float  # mean Jaccard index of {I_w^c} (Eq. (10)) under A' and under A
    style_other_jaccard: float  # same for the other-class part of {I_gamma^c} (Eq. (11))


@dataclass
class IndexBench:
    """Everything ``photostyle index-bench`` reports."""

    sizes: list[SizeRow]
    accuracy: list[AccuracyRow]
    accuracy_images: int  # images in the accuracy subset
    projections: list[dict[str, float]]  # per target M: embed_s, thresholds_s, bytes
    settings: dict[str, Any] = field(default_factory=dict)


def subset(images: ImageList, n: int, seed: int) -> ImageList:
    """A seeded random subset of ``n`` images (all if fewer), in the original order."""
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(images), generator=g)[: min(n, len(images))].sort().values
    return ImageList([images.paths[i] for i in keep], images.labels[keep], images.classes)


def fit_cost(ms: Sequence[int], seconds: Sequence[float]) -> tuple[float, float]:
    """Non-negative least-squares ``(a, b)`` of ``seconds = a M + b M^2``."""
    x = np.array([[m, m * m] for m in ms], dtype=np.float64)
    y = np.array(seconds, dtype=np.float64)
    best: tuple[float, float] = (0.0, 0.0)
    best_err = math.inf
    for cols in ([0, 1], [0], [1]):  # full fit, or one term when the other would go negative
        coef, *_ = np.linalg.lstsq(x[:, cols], y, rcond=None)
        if (coef < 0).any():
            continue
        full = np.zeros(2)
        full[cols] = coef
        err = float(((x @ full - y) ** 2).sum())
        if err < best_err:
            best, best_err = (float(full[0]), float(full[1])), err
    return best


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _jaccard(x: torch.Tensor, y: torch.Tensor) -> float:
    union = int((x | y).sum())
    return 1.0 if union == 0 else int((x & y).sum()) / union


@torch.inference_mode()
def exact_features(
    paths: Sequence[Path], encoder: VGGEncoder, size: int
) -> tuple[torch.Tensor, list[int]]:
    """Float32 Eq. (9) features (maps scaled by 1/sqrt(numel)) of the readable images.

    Returns:
        ((N, D) features, the indices into ``paths`` of those N images).
    """
    rows, kept = [], []
    device = next(encoder.parameters()).device
    for i, path in enumerate(paths):
        try:
            img = load_image(path)
        except ImageError:
            continue
        x = F.interpolate(img[None], (size, size), mode="bilinear", antialias=True).to(device)
        flat = [t.flatten(1).float().cpu() / math.sqrt(t[0].numel()) for t in encoder.taps(x)]
        rows.append(torch.cat(flat, 1))  # (1, D)
        kept.append(i)
    return torch.cat(rows), kept


def accuracy(
    features: torch.Tensor,
    labels: torch.Tensor,
    dims: Sequence[int],
    dims_per_layer: Sequence[int],
    sampling: SamplingConfig,
    seed: int = 0,
) -> list[AccuracyRow]:
    """Compare the index's distances (projection + int16) with exact Eq. (9) for each k in ``dims``.

    Args:
        features: (N, D) exact features (:func:`exact_features`).
        labels: (N,) classes.
        dims: values of k to try.
        dims_per_layer: sizes of the 4 layer blocks of D (:func:`~photostyle.data.embed.tap_dims`).
        sampling: fractions of the compared subsets.
        seed: projection seed.
    """
    exact = pairwise_sq_distances(features).double()  # (N, N)
    n = exact.shape[0]
    off = ~torch.eye(n, dtype=torch.bool)
    t1, t2 = thresholds(exact, labels, sampling)
    same = labels[:, None] == labels[None, :]
    sim = same & off & (exact <= t1[:, None])
    oth = ~same & (exact <= t2[:, None])
    rows = []
    for k in dims:
        blocks = gaussian_projection(dims_per_layer, k, seed)
        y = sum(f @ r for f, r in zip(features.split(list(dims_per_layer), 1), blocks, strict=True))
        assert isinstance(y, torch.Tensor)
        scale = calibrate_scale(y[:64])
        q, _ = quantize(y, scale)
        approx = exact_sq_distances(q, q) * scale**2  # (N, N), Eq. (9) units
        ratio = (approx[off] / exact[off]).numpy()
        rel = np.abs(ratio - 1.0)
        a1, a2 = thresholds(approx, labels, sampling)
        sim_a = same & off & (approx <= a1[:, None])
        oth_a = ~same & (approx <= a2[:, None])
        rho = [_spearman(exact[c][off[c]].numpy(), approx[c][off[c]].numpy()) for c in range(n)]
        rows.append(
            AccuracyRow(
                dim=k,
                rel_err_median=float(np.median(rel)),
                rel_err_p95=float(np.percentile(rel, 95)),
                bias=float(ratio.mean() - 1.0),
                spearman_mean=statistics.fmean(rho),
                spearman_min=min(rho),
                similar_jaccard=statistics.fmean(_jaccard(sim[c], sim_a[c]) for c in range(n)),
                style_other_jaccard=statistics.fmean(_jaccard(oth[c], oth_a[c]) for c in range(n)),
            )
        )
    return rows


def project(rows: Sequence[SizeRow], targets: Sequence[int] = PROJECT_TO) -> list[dict[str, float]]:
    """Projected cost at ``targets`` images from the measured rows.

    Embedding is linear at the largest real subset's rate; thresholds ``a M + b M^2`` fitted on all
    rows (:func:`fit_cost`); bytes linear (slope between the two largest real subsets).
    """
    real = [r for r in rows if r.embed_s is not None and r.bytes is not None]
    if not real:
        return []
    last = real[-1]
    assert last.bytes is not None and last.images_per_s is not None
    a, b = fit_cost([r.images for r in rows], [r.thresholds_s for r in rows])
    per_image = last.bytes / last.images
    if len(real) > 1 and real[-2].bytes is not None and last.images > real[-2].images:
        per_image = (last.bytes - real[-2].bytes) / (last.images - real[-2].images)
    fixed = max(0.0, last.bytes - per_image * last.images)
    return [
        {
            "images": float(m),
            "embed_s": m / last.images_per_s,
            "thresholds_s": a * m + b * m * m,
            "bytes": fixed + per_image * m,
        }
        for m in targets
    ]


def _median_seconds(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synthetic_thresholds_seconds(
    m: int,
    dim: int,
    classes: int,
    sampling: SamplingConfig,
    *,
    runs: int = 3,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> float:
    """Median seconds of :func:`chunked_thresholds` on ``m`` seeded random int16 embeddings.

    The cost does not depend on the images, so this times sizes beyond the dataset's.
    """
    g = torch.Generator().manual_seed(seed)
    emb = (torch.randn(m, dim, generator=g) * 1000).to(torch.int16).numpy()
    labels = torch.randint(0, classes, (m,), generator=g).numpy()
    valid = np.ones(m, dtype=bool)
    return _median_seconds(
        partial(chunked_thresholds, emb, labels, valid, sampling, device=device), runs
    )


def _build(
    directory: Path,
    source: DataSource,
    images: ImageList,
    encoder: VGGEncoder,
    config: IndexConfig,
    batch_size: int,
    workers: int,
    device: torch.device | str,
) -> tuple[EmbeddingIndex, float]:
    """A fresh index of ``images`` and the seconds its embedding took (calibration excluded)."""
    embedder = JLEmbedder(encoder, config.size, config.dim, config.seed).to(device)
    index = EmbeddingIndex.create_or_open(
        directory, source, images, embedder, config, device=device
    )
    stats = index.embed(embedder, batch_size=batch_size, workers=workers, device=device)
    index.finalize()
    return index, stats.seconds


def run_index_bench(
    source: DataSource,
    encoder: VGGEncoder,
    *,
    sizes: Sequence[int] = (500, 1000, 2000),
    threshold_sizes: Sequence[int] = (4000, 8000),
    config: IndexConfig | None = None,
    sampling: SamplingConfig | None = None,
    accuracy_images: int = 300,
    accuracy_dims: Sequence[int] = (128, 256, 512),
    runs: int = 3,
    batch_size: int = 64,
    workers: int = 0,
    device: torch.device | str = "cpu",
    on_step: Callable[[str], None] | None = None,
) -> IndexBench:
    """Measure the index on subsets of ``source`` (see the module docstring).

    Args:
        source: a labelled dataset (``kind`` "folder" or "coco").
        encoder: the fixed VGG encoder, on ``device``.
        sizes: subset sizes indexed and timed (increasing).
        threshold_sizes: sizes of random embeddings whose thresholds are timed too (the O(M^2)
            term shows only at sizes beyond small datasets).
        config: embedding settings.
        sampling: fractions of the thresholds timed and of the subsets compared.
        accuracy_images: images of the accuracy comparison (0: skip it).
        accuracy_dims: k values compared.
        runs: timed runs of the thresholds per size (median reported).
        batch_size: images per encoder call.
        workers: DataLoader processes decoding images.
        device: where to run.
        on_step: called with a short description before each step (progress).
    """
    if source.kind == "unlabelled":
        raise ValueError("index-bench needs labelled data (an ImageFolder or COCO)")
    config = config or IndexConfig()
    sampling = sampling or SamplingConfig()
    images = source.images()
    say = on_step or (lambda _: None)
    rows: list[SizeRow] = []
    with tempfile.TemporaryDirectory(prefix="photostyle-index-bench-") as tmp:
        say("warm-up")
        warm = subset(images, min(32, len(images)), config.seed + 2)
        _build(Path(tmp) / "warm", source, warm, encoder, config, batch_size, 0, device)
        for m in sizes:
            say(f"{m} images: embed")
            part = subset(images, m, config.seed)
            index, embed_s = _build(
                Path(tmp) / f"m{m}", source, part, encoder, config, batch_size, workers, device
            )
            say(f"{m} images: thresholds")
            job = partial(chunked_thresholds, index.embeddings, index.labels, index.valid, sampling)
            seconds = _median_seconds(partial(job, device=device), runs)
            index.thresholds(sampling, device=device)  # cached in the index: counted in its bytes
            rows.append(
                SizeRow(
                    images=len(part),
                    thresholds_s=seconds,
                    embed_s=embed_s,
                    images_per_s=len(part) / embed_s,
                    bytes=index.bytes_on_disk(),
                )
            )
    for m in threshold_sizes:
        say(f"{m} synthetic embeddings: thresholds")
        seconds = synthetic_thresholds_seconds(
            m, config.dim, len(images.classes), sampling, runs=runs, device=device
        )
        rows.append(SizeRow(images=m, thresholds_s=seconds))
    acc: list[AccuracyRow] = []
    n_acc = 0
    if accuracy_images > 0:
        say(f"accuracy on {accuracy_images} images")
        part = subset(images, accuracy_images, config.seed + 1)
        feats, kept = exact_features(part.paths, encoder, config.size)
        layer_dims = tap_dims(encoder, config.size)
        acc = accuracy(feats, part.labels[kept], accuracy_dims, layer_dims, sampling, config.seed)
        n_acc = len(kept)
    return IndexBench(
        sizes=rows,
        accuracy=acc,
        accuracy_images=n_acc,
        projections=project(rows),
        settings={
            "size": config.size,
            "dim": config.dim,
            "t1": sampling.t1,
            "t2": sampling.t2,
            "batch_size": batch_size,
            "workers": workers,
            "device": str(device),
            "threads": torch.get_num_threads(),
        },
    )


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.3g} s"
    if s < 7200:
        return f"{s / 60:.3g} min"
    return f"{s / 3600:.3g} h"


def bench_markdown(bench: IndexBench) -> str:
    """The report as markdown tables."""
    lines = [
        "| images | embed s | images/s | thresholds s | bytes on disk | bytes/image |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in bench.sizes:
        if r.embed_s is None or r.bytes is None or r.images_per_s is None:
            lines.append(f"| {r.images} (random) | - | - | {r.thresholds_s:.3f} | - | - |")
            continue
        lines.append(
            f"| {r.images} | {r.embed_s:.2f} | {r.images_per_s:.1f} | {r.thresholds_s:.3f} "
            f"| {r.bytes:,} | {r.bytes / r.images:.0f} |"
        )
    if bench.projections:
        lines += [
            "",
            "| projected | embed | thresholds | bytes on disk |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for p in bench.projections:
            lines.append(
                f"| {int(p['images']):,} | {_duration(p['embed_s'])} "
                f"| {_duration(p['thresholds_s'])} | {p['bytes'] / 2**20:,.0f} MiB |"
            )
    if bench.accuracy:
        lines += [
            "",
            f"JL vs exact Eq. (9) on {bench.accuracy_images} images:",
            "",
            "| k | rel. error median | p95 | bias | Spearman mean | min "
            "| Jaccard {I_w} | Jaccard {I_gamma} other-class |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for a in bench.accuracy:
            lines.append(
                f"| {a.dim} | {a.rel_err_median:.3f} | {a.rel_err_p95:.3f} | {a.bias:+.3f} "
                f"| {a.spearman_mean:.3f} | {a.spearman_min:.3f} | {a.similar_jaccard:.3f} "
                f"| {a.style_other_jaccard:.3f} |"
            )
    return "\n".join(lines) + "\n"


def bench_json(bench: IndexBench) -> dict[str, Any]:
    return dataclasses.asdict(bench)


__all__ = [
    "AccuracyRow",
    "IndexBench",
    "SizeRow",
    "accuracy",
    "bench_json",
    "bench_markdown",
    "exact_features",
    "fit_cost",
    "project",
    "run_index_bench",
    "subset",
    "synthetic_thresholds_seconds",
]
