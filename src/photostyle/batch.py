"""One look over a whole shoot: many photo files in, one colour-managed result file each out.

:func:`collect_photos` turns files, folders and glob patterns into a sorted list of photos;
:func:`plan_batch` decides every output name up front (refusing collisions and outputs that would
overwrite an input); :func:`run_batch` reads, transforms and writes one photo at a time, skipping
outputs that already exist (so an interrupted run resumes where it stopped) and reporting unreadable
photos instead of stopping. The look is any function from a stream of sRGB photos to a stream of
results: :meth:`photostyle.api.Stylizer.stylize_many` (the style encoded once) or a 3D LUT.

:func:`stylize_pairs` is the other folder job: DPST-layout (content, style[, masks]) pairs, each
pair with its own style.
"""

from __future__ import annotations

import glob
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import torch

from photostyle.io import ImageError
from photostyle.photo import (
    OUTPUT_FORMATS,
    OutputOptions,
    PhotoInfo,
    check_output,
    read_photo,
    write_photo,
)
from photostyle.utils import one_line

if TYPE_CHECKING:
    from photostyle.api import StylizeOptions, Stylizer
    from photostyle.data.pairs import Pair

__all__ = [
    "PHOTO_SUFFIXES",
    "BatchItem",
    "BatchOptions",
    "BatchPlan",
    "PairResult",
    "collect_photos",
    "pair_files",
    "plan_batch",
    "run_batch",
    "stylize_pairs",
]

# Files taken from folders (other files there are left alone).
PHOTO_SUFFIXES: Final = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".heic", ".gif"}
)
Look = Callable[[Iterator[torch.Tensor]], Iterator[torch.Tensor]]  # sRGB photos -> results


@dataclass(frozen=True)
class BatchOptions:
    """Where and how :func:`run_batch` writes its results."""

    out_dir: Path  # results go here (sub-folders of a --recursive folder input are kept)
    suffix: str = ""  # appended to each photo's name: IMG_1.jpg -> IMG_1<suffix>.jpg
    format: str | None = None  # "jpg", "png", "tif" or "webp"; None = the photo's own if possible
    overwrite: bool = False  # replace existing results instead of skipping them (resume)
    output: OutputOptions = field(default_factory=OutputOptions)  # profile, depth, metadata

    def __post_init__(self) -> None:
        if self.format is not None and f".{self.format}" not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {self.format!r}")
        if "/" in self.suffix or "\\" in self.suffix:
            raise ValueError(f"suffix must not contain a path separator, got {self.suffix!r}")


@dataclass(frozen=True)
class BatchItem:
    """What happened to one photo of a batch."""

    source: Path  # the photo
    output: Path  # its result file
    status: Literal["done", "skipped", "failed"]  # skipped: the result existed already
    error: str = ""  # one-line reason when failed
    seconds: float = 0.0  # read + transform + write time


@dataclass(frozen=True)
class BatchPlan:
    """Every photo of a batch with its output file, decided before any work."""

    jobs: tuple[tuple[Path, Path], ...]  # (photo, output) pairs in order
    existing: int  # outputs that already exist (skipped unless overwrite)


def _expand(item: str | Path, recursive: bool) -> list[tuple[Path, Path]]:
    """(photo, folder its output name is relative to) for one command-line input."""
    p = Path(item)
    if p.is_dir():
        pattern = "**/*" if recursive else "*"
        return [
            (f, p)
            for f in sorted(p.glob(pattern))
            if f.is_file() and f.suffix.lower() in PHOTO_SUFFIXES and not f.name.startswith(".")
        ]
    if p.exists():
        return [(p, p.parent)]
    matches = sorted(glob.glob(str(item), recursive=recursive))
    if not matches and glob.has_magic(str(item)):
        raise ValueError(f"{item}: no file matches this pattern")
    if not matches:
        raise ImageError(f"{item}: no such file or folder")
    return [(Path(m), Path(m).parent) for m in matches if Path(m).is_file()]


def collect_photos(
    inputs: Sequence[str | Path], *, recursive: bool = False
) -> list[tuple[Path, Path]]:
    """The photos named by files, folders and glob patterns, each once, in the given order.

    Folders contribute their photo files (by suffix, sorted by name; with ``recursive`` their
    sub-folders' too); patterns are expanded (``**`` with ``recursive``); files are taken as they
    are, whatever their suffix.

    Args:
        inputs: files, folders or glob patterns.
        recursive: descend into sub-folders.

    Returns:
        (photo, base folder) pairs; the output keeps the photo's path relative to its base.

    Raises:
        ImageError: a named file or folder does not exist.
        ValueError: no input given, a pattern matches nothing, or nothing is found at all.
    """
    if not inputs:
        raise ValueError("no photos given")
    seen: set[Path] = set()
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        for photo, base in _expand(item, recursive):
            key = photo.resolve()
            if key not in seen:
                seen.add(key)
                found.append((photo, base))
    if not found:
        raise ValueError(f"no photos found in {', '.join(str(i) for i in inputs)}")
    return found


def plan_batch(
    photos: Sequence[tuple[Path, Path]], options: BatchOptions, *, protect: Iterable[Path] = ()
) -> BatchPlan:
    """Output file of every photo, checked before any work.

    Raises:
        ValueError: two photos would get the same output, or an output would be an input
            (including ``protect``: the style photo or LUT), or 16 bits asked of an 8-bit format.
    """
    inputs = {p.resolve() for p, _ in photos} | {Path(p).resolve() for p in protect}
    owners: dict[Path, Path] = {}
    jobs = []
    for photo, base in photos:
        suffix = f".{options.format}" if options.format else photo.suffix.lower()
        if suffix not in OUTPUT_FORMATS:
            suffix = ".png"
        rel = photo.relative_to(base).parent
        out = options.out_dir / rel / f"{photo.stem}{options.suffix}{suffix}"
        key = out.resolve()
        if key in inputs:
            raise ValueError(f"{out}: output would overwrite an input; use --suffix or --out-dir")
        if key in owners:
            raise ValueError(f"{photo} and {owners[key]} would both be written to {out}")
        owners[key] = photo
        check_output(out, options.output)
        jobs.append((photo, out))
    existing = sum(out.exists() for _, out in jobs)
    return BatchPlan(tuple(jobs), existing)


def run_batch(plan: BatchPlan, look: Look, options: BatchOptions) -> Iterator[BatchItem]:
    """Reads, transforms and writes every photo of ``plan``; yields one :class:`BatchItem` each.

    Photos whose output exists are skipped (unless ``options.overwrite``); unreadable photos
    (and results that cannot be written) are reported as failed and the batch goes on. Results
    are written atomically with the photo's profile and metadata (``options.output``).

    Args:
        plan: from :func:`plan_batch`.
        look: photos -> results, e.g. ``lambda xs: stylizer.stylize_many(xs, style)``; it must
            yield one result per photo it takes, in order, and take them one at a time.
        options: the batch's options (those the plan was made with).
    """
    pending: deque[tuple[Path, Path, PhotoInfo, float]] = deque()
    failed: deque[BatchItem] = deque()
    inputs = [p for p, _ in plan.jobs]

    def photos() -> Iterator[torch.Tensor]:
        for photo, out in plan.jobs:
            if out.exists() and not options.overwrite:
                failed.append(BatchItem(photo, out, "skipped"))
                continue
            start = time.perf_counter()
            try:
                image, info = read_photo(photo)
            except ImageError as err:
                failed.append(BatchItem(photo, out, "failed", one_line(err)))
                continue
            pending.append((photo, out, info, start))
            yield image

    for result in look(photos()):
        while failed:
            yield failed.popleft()
        photo, out, info, start = pending.popleft()
        try:
            write_photo(result, out, info, options=options.output, protect=inputs)
        except (ImageError, OSError) as err:
            yield BatchItem(photo, out, "failed", one_line(err), time.perf_counter() - start)
            continue
        yield BatchItem(photo, out, "done", seconds=time.perf_counter() - start)
    while failed:
        yield failed.popleft()


@dataclass(frozen=True)
class PairResult:
    """What became of one pair of :func:`stylize_pairs`."""

    pair: Pair  # the pair
    output: Path | None  # the image written; None when the pair failed
    error: str = ""  # one line naming the problem when it failed


def pair_files(pairs: Iterable[Pair]) -> list[Path]:
    """Every file of ``pairs`` (photos and masks): the files outputs must never overwrite."""
    return [
        p
        for pair in pairs
        for p in (pair.content, pair.style, pair.content_mask, pair.style_mask)
        if p is not None
    ]


def stylize_pairs(
    stylizer: Stylizer,
    pairs: Sequence[Pair],
    out_dir: str | Path,
    *,
    options: StylizeOptions | None = None,
) -> Iterator[PairResult]:
    """Stylize each pair (with its masks) into ``out_dir/NAME.png``, in order.

    A pair that cannot be read or written is reported (``output`` None, ``error`` one line) and
    the others go on; no output overwrites a file of any pair.
    """
    protect = pair_files(pairs)
    for pair in pairs:
        try:
            out = stylizer.stylize_files(
                pair.content,
                pair.style,
                Path(out_dir) / f"{pair.name}.png",
                content_mask=pair.content_mask,
                style_mask=pair.style_mask,
                options=options,
                protect=protect,
            )
        except (ImageError, ValueError, OSError) as err:
            yield PairResult(pair, None, one_line(err))
            continue
        yield PairResult(pair, out)
