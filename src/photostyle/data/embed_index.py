"""Scalable perceptual index: Eqs. (9)-(11) for 83k (COCO 2014 train) to millions of images.

The exact index (:mod:`photostyle.data.index`) keeps every image's features and the M x M matrix;
here every image has a k-dimensional int16 JL embedding (:mod:`photostyle.data.embed`) on disk,
the thresholds T1^c, T2^c are computed in chunks (:mod:`photostyle.data.index_sampler`), and the
sampler computes the few distances each draw needs. An index is a directory::

    manifest.json     format, data source, root, image paths (relative to root), labels, classes,
                      config (size, dim, seed), encoder sha256, quantisation scale; once every row
                      is done: "complete", the unreadable files, k-means classes (unlabelled data)
    embeddings.npy    (M, k) int16, row i = image i (a .npy file, used as a memory map)
    status.npy        (M,) uint8 per row: 0 pending, 1 embedded, 2 unreadable (logged, skipped)
    thresholds-t1=0.5-t2=0.1.safetensors   T1, T2 and set sizes per row for those fractions
    .lock             advisory lock (fcntl) held while the index is created or finalised

Builds are resumable and parallel: rows are written, flushed, then marked done in ``status.npy``, so
a killed build continues where it stopped; ``shard=(i, n)`` embeds the i-th of n contiguous row
ranges, so n processes (one per GPU) can fill one index on one machine. The process that finds no
pending row left finalises the index (k-means for unlabelled data) and computes the thresholds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset

from photostyle.data.cluster import kmeans
from photostyle.data.datasets import ImageList
from photostyle.data.embed import (
    JLEmbedder,
    calibrate_scale,
    encoder_fingerprint,
    exact_sq_distances,
    quantize,
)
from photostyle.data.index_sampler import IndexSampler, Thresholds, chunked_thresholds
from photostyle.data.sampler import SamplingConfig
from photostyle.data.sources import DataSource
from photostyle.io import ImageError, load_image
from photostyle.models.encoder import VGGEncoder
from photostyle.utils import atomic_path, write_json

try:
    import fcntl
except ImportError:  # not POSIX: no inter-process lock (run one build at a time)
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

FORMAT = "photostyle.embedding_index"
VERSION = 1
PENDING, DONE, UNREADABLE = 0, 1, 2  # values of status.npy
CALIBRATION_IMAGES = 64  # readable images whose embeddings set the quantisation scale

Advance = Callable[[int], None]  # called with the number of rows just processed
Stage = Callable[[str, int], None]  # called with a stage name and its number of rows


@dataclass(frozen=True)
class IndexConfig:
    """How embeddings are computed; an index is only reused with the same config."""

    size: int = 32  # side images are resized to for Eq. (9) (as TrainConfig.index_size)
    dim: int = 512  # k, JL dimensions; a distance's relative error has std sqrt(2 / k)
    seed: int = 0  # seed of the projection, the calibration sample and k-means

    def __post_init__(self) -> None:
        if self.size < 16 or not 1 <= self.dim <= 8192:
            raise ValueError(f"index size must be >= 16 and dim in [1, 8192], got {self}")


class IndexMismatchError(ValueError):
    """The directory holds an index of other images, settings or encoder."""


@dataclass
class EmbedStats:
    """What one call of :meth:`EmbeddingIndex.embed` did."""

    embedded: int  # rows embedded
    unreadable: int  # rows skipped as unreadable
    seconds: float  # wall time, loading included
    clipped: int  # embedding values saturated at the int16 limit (should be 0)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)  # released by the kernel if the process dies
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)


class _RowImages(Dataset[tuple[int, torch.Tensor, str]]):
    """Item i: (row, image resized to size x size, error message or "")."""

    def __init__(self, paths: list[Path], rows: np.ndarray, size: int) -> None:
        self.paths, self.rows, self.size = paths, rows, size

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, str]:
        row = int(self.rows[i])
        try:
            img = load_image(self.paths[row])
        except (ImageError, OSError) as err:
            return row, torch.zeros(3, self.size, self.size), str(err) or type(err).__name__
        x = F.interpolate(img[None], (self.size, self.size), mode="bilinear", antialias=True)
        return row, x[0], ""


def _new_npy(path: Path, dtype: type, shape: tuple[int, ...]) -> None:
    """A zero-filled .npy file (sparse on disk until written), created atomically."""
    with atomic_path(path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        array.flush()
        del array


class EmbeddingIndex:
    """An index directory (see the module docstring). Use :meth:`open` or :meth:`create_or_open`.

    Args:
        directory: the index directory.
        manifest: its parsed manifest.json.
        writable: open the arrays for writing (building) or read-only.
    """

    def __init__(self, directory: Path, manifest: dict[str, Any], writable: bool = False) -> None:
        self.dir = directory
        self.manifest = manifest
        mode: Any = "r+" if writable else "r"
        self.embeddings: np.memmap = np.load(directory / "embeddings.npy", mmap_mode=mode)
        self.status: np.memmap = np.load(directory / "status.npy", mmap_mode=mode)
        if self.embeddings.shape != (len(self), self.config.dim) or self.status.shape != (
            len(self),
        ):
            raise ValueError(f"{directory}: arrays do not match manifest.json")

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: str | Path, *, writable: bool = False) -> EmbeddingIndex:
        """Open an existing index.

        Raises:
            FileNotFoundError: no index in ``directory``.
            ValueError: manifest.json is not a photostyle embedding index, or arrays are missing.
        """
        directory = Path(directory)
        path = directory / "manifest.json"
        if not path.is_file():
            raise FileNotFoundError(f"{directory}: no perceptual index (manifest.json missing)")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not a photostyle index ({err})") from err
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError(f"{path}: not a photostyle embedding index")
        if manifest.get("version") != VERSION:
            raise ValueError(f"{path}: index version {manifest.get('version')}, need {VERSION}")
        try:
            return cls(directory, manifest, writable)
        except (OSError, ValueError) as err:
            raise ValueError(
                f"{directory}: broken index ({err}); delete it and build again"
            ) from err

    @classmethod
    def create_or_open(
        cls,
        directory: str | Path,
        source: DataSource,
        images: ImageList,
        embedder: JLEmbedder,
        config: IndexConfig,
        *,
        device: torch.device | str = "cpu",
    ) -> EmbeddingIndex:
        """Open the index of these images in ``directory``, or create it (empty, all rows pending).

        Creation calibrates the int16 scale on up to ``CALIBRATION_IMAGES`` readable images of a
        seeded sample. Safe to call from several processes at once (the first creates it).

        Raises:
            IndexMismatchError: ``directory`` holds an index of other images/settings/encoder.
        """
        directory = Path(directory)
        root = os.path.abspath(source.root)
        ann = source.annotations and os.path.abspath(source.annotations)
        fields = {
            "source": {**source.to_dict(), "root": root, "annotations": ann},
            "paths": [
                Path(os.path.relpath(os.path.abspath(p), root)).as_posix() for p in images.paths
            ],
            "labels": images.labels.tolist(),
            "classes": list(images.classes),
            "config": dataclasses.asdict(config),
            "encoder_sha256": encoder_fingerprint(embedder.encoder),
        }
        with _locked(directory):
            if (directory / "manifest.json").exists():
                index = cls.open(directory, writable=True)
                index._check_same(fields)
                return index
            scale = cls._calibrate(images.paths, embedder, config, device)
            _new_npy(directory / "embeddings.npy", np.int16, (len(images), config.dim))
            _new_npy(directory / "status.npy", np.uint8, (len(images),))
            manifest = {"format": FORMAT, "version": VERSION, **fields, "scale": scale}
            manifest["complete"] = False
            # Last: the manifest marks the index created.
            write_json(directory / "manifest.json", manifest, indent=None)
        logger.info("created index %s for %d images (scale %g)", directory, len(images), scale)
        return cls(directory, manifest, writable=True)

    def _check_same(self, fields: dict[str, Any]) -> None:
        m = self.manifest
        for key in ("config", "encoder_sha256", "source", "paths", "labels", "classes"):
            if key in ("labels", "classes") and m["source"]["kind"] == "unlabelled":
                continue  # k-means classes replace the listing's (none)
            if m.get(key) != fields[key]:
                raise IndexMismatchError(
                    f"{self.dir} holds an index of other {key.replace('_', ' ')}; "
                    "use another directory or delete it"
                )

    @staticmethod
    @torch.inference_mode()
    def _calibrate(
        paths: list[Path], embedder: JLEmbedder, config: IndexConfig, device: torch.device | str
    ) -> float:
        g = torch.Generator().manual_seed(config.seed)
        order = torch.randperm(len(paths), generator=g)[: 4 * CALIBRATION_IMAGES].numpy()
        loaded = _RowImages(paths, order, config.size)
        batch = [x for _, x, err in (loaded[i] for i in range(len(order))) if not err]
        batch = batch[:CALIBRATION_IMAGES]
        if not batch:
            return 1.0
        return calibrate_scale(embedder(torch.stack(batch).to(device)).cpu())

    # --- what it holds ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.manifest["paths"])

    @property
    def config(self) -> IndexConfig:
        return IndexConfig(**self.manifest["config"])

    @property
    def source(self) -> DataSource:
        return DataSource.from_dict(self.manifest["source"])

    @property
    def scale(self) -> float:
        """Quantisation step: Eq. (9) distance = scale^2 * distance in embedding units."""
        return float(self.manifest["scale"])

    @property
    def complete(self) -> bool:
        """Every row is embedded or marked unreadable and the index is finalised."""
        return bool(self.manifest.get("complete"))

    @property
    def labels(self) -> np.ndarray:
        """(M,) int64 class of each row; -1 for rows without a class (unreadable, unlabelled)."""
        return np.asarray(self.manifest["labels"], dtype=np.int64)

    @property
    def valid(self) -> np.ndarray:
        """(M,) bool, rows embedded with a class: the rows the sampler draws."""
        return (np.asarray(self.status) == DONE) & (self.labels >= 0)

    def image_list(self) -> ImageList:
        """All rows as an image list (row i = path i); unreadable rows are never drawn."""
        root = Path(self.manifest["source"]["root"])
        return ImageList(
            [root / p for p in self.manifest["paths"]],
            torch.as_tensor(self.labels),
            list(self.manifest["classes"]),
        )

    def neighbours(self, k: int, chunk: int = 1024) -> torch.Tensor:
        """Each row's ``k`` perceptually nearest rows (Eq. (9) distance, exact), nearest first.

        Only valid rows are neighbours, a row is never its own, and ties go to the lower row.
        Invalid rows get none (-1). Memory O(chunk M).

        Raises:
            ValueError: ``k`` is not in [1, valid rows - 1].

        Shape: -> (M, k) int64.
        """
        valid = torch.from_numpy(np.asarray(self.valid))
        rows = torch.nonzero(valid)[:, 0]  # (V,)
        if not 1 <= k < len(rows):
            raise ValueError(f"neighbours needs k in [1, {len(rows) - 1}], got {k}")
        emb = torch.from_numpy(np.asarray(self.embeddings)[rows.numpy()]).double()  # (V, dim)
        norms = (emb * emb).sum(1)
        out = torch.full((len(self), k), -1, dtype=torch.int64)
        for start in range(0, len(rows), chunk):
            block = emb[start : start + chunk]
            d = exact_sq_distances(block, emb, norms)  # (b, V)
            d[torch.arange(len(block)), torch.arange(start, start + len(block))] = float("inf")
            # A stable sort keeps equal distances in row order.
            nearest = torch.sort(d, dim=1, stable=True).indices[:, :k]
            out[rows[start : start + chunk]] = rows[nearest]
        return out

    def pending_rows(self, shard: tuple[int, int] = (0, 1)) -> np.ndarray:
        """Rows of shard ``i`` of ``n`` (contiguous ranges) still to embed. Shape: (p,) int64."""
        i, n = shard
        if not 0 <= i < n:
            raise ValueError(f"shard must be i/n with 0 <= i < n, got {i}/{n}")
        lo, hi = len(self) * i // n, len(self) * (i + 1) // n
        return lo + np.flatnonzero(np.asarray(self.status[lo:hi]) == PENDING)

    def bytes_on_disk(self) -> int:
        """Size of the index files (embeddings, status, manifest, thresholds)."""
        return sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file())

    # --- building --------------------------------------------------------------------------------

    @torch.inference_mode()
    def embed(
        self,
        embedder: JLEmbedder,
        *,
        shard: tuple[int, int] = (0, 1),
        batch_size: int = 64,
        workers: int = 0,
        device: torch.device | str = "cpu",
        on_advance: Advance | None = None,
    ) -> EmbedStats:
        """Embed the pending rows of ``shard``; unreadable images are logged and marked, not fatal.

        Each batch is written to ``embeddings.npy`` and flushed before its rows are marked done,
        so an interrupted build loses at most one batch.
        """
        start = time.perf_counter()
        rows = self.pending_rows(shard)
        paths = self.image_list().paths
        loader = DataLoader(
            _RowImages(paths, rows, self.config.size), batch_size=batch_size, num_workers=workers
        )
        stats = EmbedStats(0, 0, 0.0, 0)
        for batch_rows, x, errors in loader:
            ok = torch.tensor([not e for e in errors], dtype=torch.bool)
            good = batch_rows[ok].numpy()
            if len(good):
                q, clipped = quantize(embedder(x[ok].to(device)).cpu(), self.scale)
                self.embeddings[good] = q.numpy()
                self.embeddings.flush()
                stats.clipped += clipped
            for row, err in zip(batch_rows.tolist(), errors, strict=True):
                if err:
                    logger.warning("skipping unreadable image %s: %s", paths[row], err)
            self.status[good] = DONE
            self.status[batch_rows[~ok].numpy()] = UNREADABLE
            self.status.flush()
            stats.embedded += len(good)
            stats.unreadable += int((~ok).sum())
            if on_advance is not None:
                on_advance(len(batch_rows))
        if stats.clipped:
            logger.warning("%d embedding values saturated at the int16 limit", stats.clipped)
        stats.seconds = time.perf_counter() - start
        return stats

    def finalize(self) -> bool:
        """Mark the index complete once no row is pending; k-means classes for unlabelled data.

        Returns:
            Whether the index is complete (False: rows of other shards are still pending).
        """
        with _locked(self.dir):
            manifest = json.loads((self.dir / "manifest.json").read_text(encoding="utf-8"))
            if not manifest.get("complete"):
                status = np.asarray(self.status)
                if (status == PENDING).any():
                    return False
                bad = np.flatnonzero(status == UNREADABLE)
                manifest["unreadable"] = [manifest["paths"][i] for i in bad]
                if manifest["source"]["kind"] == "unlabelled":
                    manifest.update(self._clusters(status == DONE))
                manifest["complete"] = True
                write_json(self.dir / "manifest.json", manifest, indent=None)
            self.manifest = manifest
        return True

    def _clusters(self, done: np.ndarray) -> dict[str, Any]:
        rows = np.flatnonzero(done)
        labels = np.full(len(self), -1, dtype=np.int64)
        if len(rows) == 0:
            return {"labels": labels.tolist(), "classes": []}
        k = min(self.source.clusters, len(rows))
        points = torch.as_tensor(np.asarray(self.embeddings[rows]))  # (N, k) int16
        result = kmeans(points, k, seed=self.config.seed)
        labels[rows] = result.labels.numpy()
        width = len(str(k - 1))
        return {
            "labels": labels.tolist(),
            "classes": [f"cluster_{i:0{width}d}" for i in range(k)],
            "kmeans": {"k": k, "inertia": result.inertia, "iterations": result.iterations},
        }

    # --- sampling --------------------------------------------------------------------------------

    def _thresholds_path(self, sampling: SamplingConfig) -> Path:
        return self.dir / f"thresholds-t1={sampling.t1!r}-t2={sampling.t2!r}.safetensors"

    def _rows_key(self) -> str:
        """Digest of the labels and valid rows that thresholds were computed for."""
        digest = hashlib.sha256(self.labels.tobytes())
        digest.update(self.valid.tobytes())
        return digest.hexdigest()

    def thresholds(
        self,
        sampling: SamplingConfig,
        *,
        device: torch.device | str = "cpu",
        max_bytes: int = 512 * 2**20,
        on_advance: Advance | None = None,
    ) -> Thresholds:
        """T1, T2 and set sizes for these fractions: cached in the index, computed if missing.

        Raises:
            ValueError: the index is not complete.
        """
        if not self.complete:
            pending = int((np.asarray(self.status) == PENDING).sum())
            raise ValueError(
                f"{self.dir}: index incomplete ({pending} of {len(self)} images pending); "
                "run photostyle index again to finish it"
            )
        path = self._thresholds_path(sampling)
        key = self._rows_key()
        if path.is_file():
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            if meta.get("rows_key") == key:
                return Thresholds(**load_file(str(path)))
        thr = chunked_thresholds(
            self.embeddings,
            self.labels,
            self.valid,
            sampling,
            device=device,
            max_bytes=max_bytes,
            on_rows=on_advance,
        )
        meta = {"format": FORMAT + ".thresholds", "t1": repr(sampling.t1), "t2": repr(sampling.t2)}
        try:
            with atomic_path(path) as tmp:
                save_file(thr.tensors(), str(tmp), metadata={**meta, "rows_key": key})
        except OSError as err:
            logger.warning("could not cache thresholds in %s: %s", path, err)
        return thr

    def sampler(self, sampling: SamplingConfig, **kwargs: Any) -> IndexSampler:
        """The Eqs. (10)-(11) sampler; ``kwargs`` go to :meth:`thresholds`."""
        thr = self.thresholds(sampling, **kwargs)
        embeddings = np.load(self.dir / "embeddings.npy", mmap_mode="r")
        return IndexSampler(embeddings, self.labels, self.valid, thr)


def build_embedding_index(
    directory: str | Path,
    source: DataSource,
    encoder: VGGEncoder,
    config: IndexConfig | None = None,
    *,
    images: ImageList | None = None,
    sampling: SamplingConfig | None = None,
    shard: tuple[int, int] = (0, 1),
    batch_size: int = 64,
    workers: int = 0,
    device: torch.device | str = "cpu",
    max_bytes: int = 512 * 2**20,
    on_stage: Stage | None = None,
    on_advance: Advance | None = None,
) -> EmbeddingIndex:
    """Create (or resume) an index, embed the shard's pending rows, finalise when all are done.

    Args:
        directory: the index directory.
        source: where the images are and how they get classes.
        encoder: the fixed VGG encoder (moved to ``device`` by the caller).
        config: embedding settings (default :class:`IndexConfig`).
        images: the listing of ``source`` if already made (default: ``source.images()``).
        sampling: also compute (and cache) the thresholds for these fractions when complete.
        shard: ``(i, n)``: embed only the i-th of n contiguous row ranges.
        batch_size: images per encoder call.
        workers: DataLoader processes decoding images.
        device: where the encoder runs (and the thresholds are computed).
        max_bytes: memory for one block of threshold distances.
        on_stage: called with ("embed" | "thresholds", rows) when a stage starts.
        on_advance: called with the number of rows done (progress bars).

    Raises:
        IndexMismatchError: ``directory`` holds an index of other images or settings.
    """
    config = config or IndexConfig()
    images = images if images is not None else source.images()
    embedder = JLEmbedder(encoder, config.size, config.dim, config.seed).to(device)
    index = EmbeddingIndex.create_or_open(
        directory, source, images, embedder, config, device=device
    )
    if on_stage is not None:
        on_stage("embed", len(index.pending_rows(shard)))
    stats = index.embed(
        embedder,
        shard=shard,
        batch_size=batch_size,
        workers=workers,
        device=device,
        on_advance=on_advance,
    )
    logger.info(
        "embedded %d images (%d unreadable) in %.1f s",
        stats.embedded,
        stats.unreadable,
        stats.seconds,
    )
    if index.finalize() and sampling is not None:
        if on_stage is not None:
            on_stage("thresholds", int(index.valid.sum()))
        index.thresholds(sampling, device=device, max_bytes=max_bytes, on_advance=on_advance)
    return index


__all__ = [
    "EmbedStats",
    "EmbeddingIndex",
    "IndexConfig",
    "IndexMismatchError",
    "build_embedding_index",
]
