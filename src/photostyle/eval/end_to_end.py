"""End-to-end speed: the whole job a user runs, from photo files to the result file (issue 11).

``photostyle stylize CONTENT STYLE -o OUT`` reads two photo files, stylizes and writes a JPEG.
:func:`run_end_to_end` times exactly that for each *method* on synthetic-but-photo-like JPEGs
(:func:`make_photos`: the bundled demo photos resized to each size, with a little sensor-like
grain so they compress like camera files), and reports per (method, size):

- the median wall time of ``runs`` jobs after ``warmup`` untimed ones (:func:`~.bench.time_call`),
  decode and encode included;
- the peak memory above what the process held before the timed jobs
  (:func:`~.bench.memory_probe`), and the size of the decoded float32 image buffers (content,
  style and result), so "memory above the decoded buffers" can be read off;
- the speed-up over the previous release (its median over this method's, same size, same run).

Methods (:func:`method_names`): ``photostyle`` (the default stylizer, or ``weights``),
``shipped`` (the bundled default at its own settings, whatever ``weights`` says: a candidate model
timed against the one it would replace, in the same run), ``previous`` (the previous release's
checkpoint with its settings: working size 1024, guided upsampling) and the classical colour
transfers of :mod:`photostyle.eval.baselines` (``reinhard``, ``mkl``...), which read the style at
full size as their users do.

:func:`run_profile` splits one photostyle job into stages (decode, resize, style encoding,
network, full-resolution application, encode) through :class:`~photostyle.api.Stylizer`'s own
timing hook (the same code path, nothing copied), and relates the full-resolution stage to the
machine's measured memory bandwidth (:func:`copy_bandwidth`).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from photostyle.api import STAGES, StylizeOptions, Stylizer
from photostyle.dtypes import COMPUTE_DTYPES, torch_dtype
from photostyle.eval.baselines import BASELINES, PEERS
from photostyle.eval.bench import (
    MIB,
    demo_pair,
    environment,
    format_size,
    resize_image,
    time_call,
)
from photostyle.io import MAX_PIXELS, MIN_SIDE
from photostyle.models.weights import PREVIOUS_STYLIZER
from photostyle.photo import OutputOptions, read_photo, write_photo
from photostyle.upsample import UpsampleMethod
from photostyle.utils import resolve_device

PHOTOSTYLE = "photostyle"
SHIPPED = "shipped"  # the bundled default stylizer, to time a candidate (``weights``) against
PREVIOUS = "previous"
E2E_SIZES: tuple[tuple[int, int], ...] = ((512, 1024), (3000, 4000), (4000, 6000))  # (H, W)
E2E_METHODS: tuple[str, ...] = (PHOTOSTYLE, PREVIOUS, "reinhard", "mkl")
PREVIOUS_MAX_SIZE = 1024  # the previous release's working size
PREVIOUS_UPSAMPLE: UpsampleMethod = "guided"  # and its way back to full size
DTYPES: dict[str, torch.dtype] = {name: torch_dtype(name) for name in COMPUTE_DTYPES}
PROFILE_STAGES: tuple[str, ...] = ("decode", *STAGES, "encode")
GRAIN = 2.0 / 255  # std of the synthetic photos' grain (camera JPEGs are never smooth)
FULL_RES_BYTES_PER_PIXEL = (
    24  # least traffic of the full-resolution stage: read + write float32 RGB
)

Job = Callable[[Path, Path, Path], None]  # (content file, style file, output file)


def method_names() -> tuple[str, ...]:
    """Every method :func:`run_end_to_end` accepts: the stylizers, then the colour transfers."""
    return (PHOTOSTYLE, SHIPPED, PREVIOUS, *BASELINES, *PEERS)


@dataclass(frozen=True)
class EndToEndConfig:
    """Settings of :func:`run_end_to_end` and :func:`run_profile`."""

    sizes: tuple[tuple[int, int], ...] = E2E_SIZES  # (H, W) of the content photos
    methods: tuple[str, ...] = E2E_METHODS  # see method_names(), in table order
    runs: int = 5  # timed jobs per (method, size); their median is reported
    warmup: int = 1  # untimed jobs first
    device: str = "auto"  # the stylizers' device (colour transfers: always the CPU)
    dtypes: tuple[str, ...] = ("float32",)  # photostyle's compute dtypes, one row each
    weights: str | None = None  # photostyle's checkpoint; None = the shipped default
    max_size: int | None = None  # photostyle's working size; None = StylizeOptions' default
    previous_weights: str = PREVIOUS_STYLIZER  # the previous release: a bundled name or a file
    encoder_weights: str | None = None  # VGG of photostyle and previous; None = the bundled VGG16
    draft: bool = True  # decode the style JPEG at reduced scale when the working size allows
    quality: int = 95  # JPEG quality of the results (and of the synthetic photos)
    sample_interval: float = 0.002  # seconds between two RSS samples
    workdir: str | None = None  # where the photos and results go; None = a temporary folder

    def __post_init__(self) -> None:
        if not self.sizes:
            raise ValueError("give at least one size")
        for height, width in self.sizes:
            if min(height, width) < MIN_SIDE or height * width > MAX_PIXELS:
                raise ValueError(f"size {format_size((height, width))} is out of range")
        if len(set(self.sizes)) != len(self.sizes):
            raise ValueError("each size may be given only once")
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise ValueError("give each method once, at least one")
        for method in self.methods:
            if method not in method_names():
                raise ValueError(f"unknown method {method!r}; choose from {list(method_names())}")
        if self.runs < 1 or self.warmup < 0:
            raise ValueError(f"runs must be >= 1 and warmup >= 0, got {self.runs}, {self.warmup}")
        if not self.dtypes or any(d not in DTYPES for d in self.dtypes):
            raise ValueError(f"dtypes must be among {list(DTYPES)}, got {list(self.dtypes)}")
        if self.max_size is not None and self.max_size < MIN_SIDE:
            raise ValueError(f"max_size must be at least {MIN_SIDE}, got {self.max_size}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {self.quality}")

    def to_dict(self) -> dict[str, object]:
        """JSON-able settings, sizes written ``WxH``."""
        return {**asdict(self), "sizes": [format_size(s) for s in self.sizes]}


@dataclass(frozen=True)
class EndToEndRow:
    """One method at one size, file to file."""

    method: str  # see method_names(); "photostyle (bfloat16)" for a second dtype
    size: str  # "WxH"
    height: int  # content height, pixels
    width: int  # content width, pixels
    device: str  # where the method computed
    dtype: str  # the network's dtype ("float32" for colour transfers)
    runs: int  # timed jobs
    median_s: float  # median seconds per job (decode + stylize + encode)
    spread_s: float  # interquartile range of the job times, seconds
    min_s: float  # fastest job, seconds
    max_s: float  # slowest job, seconds
    peak_mib: float  # peak memory of a job above the process's baseline, MiB
    decoded_mib: float  # float32 buffers of the decoded content, style and result, MiB
    memory: str  # what peak_mib measures ("rss_statm", "cuda_allocated"...)
    speedup: float | None = None  # the previous release's median / this median (same size)


@dataclass(frozen=True)
class Photo:
    """A synthetic photo pair on disk."""

    size: tuple[int, int]  # (H, W) of both photos
    content: Path  # JPEG file
    style: Path  # JPEG file
    content_mib: float  # file size, MiB


def make_photos(
    folder: Path, sizes: Sequence[tuple[int, int]], quality: int = 95, seed: int = 0
) -> list[Photo]:
    """Write the demo content and style photos at each size as JPEGs, with a little grain.

    The demo photos are about 1 MP; resized to 12 or 24 MP they would be far smoother than a
    camera's, and decode and compress faster. Gaussian grain of std :data:`GRAIN` (seeded) gives
    them the entropy of a real photo. Existing files of the same size are reused.

    Returns:
        One :class:`Photo` per size, in order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    content, style = demo_pair()
    gen = torch.Generator().manual_seed(seed)
    photos = []
    for size in sizes:
        paths = []
        for name, image in (("content", content), ("style", style)):
            path = folder / f"{name}_{format_size(size)}.jpg"
            paths.append(path)
            if path.is_file():
                continue
            x = resize_image(image, size)
            x = x + GRAIN * torch.randn(x.shape, generator=gen)
            hwc = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            Image.fromarray(np.ascontiguousarray(hwc)).save(path, quality=quality)
        photos.append(Photo(size, paths[0], paths[1], paths[0].stat().st_size / MIB))
    return photos


class _Decoded:
    """Bytes of the float32 buffers of the last job (set by the job, read after timing)."""

    def __init__(self) -> None:
        self.nbytes = 0

    def record(self, *tensors: torch.Tensor) -> None:
        self.nbytes = sum(t.numel() * t.element_size() for t in tensors)


def stylizer_job(
    stylizer: Stylizer,
    options: StylizeOptions,
    *,
    draft: bool,
    quality: int = 95,
    on_stage: Callable[[str, float], None] | None = None,
    decoded: _Decoded | None = None,
) -> Job:
    """The job of ``photostyle stylize CONTENT STYLE -o OUT``: read both, stylize, write.

    With ``draft`` the style is decoded at reduced scale (``read_photo(reduce_to=...)``), as it is
    only used at the working size. ``on_stage`` receives ``("decode" | "encode" | a stylizer
    stage, seconds)``.
    """
    output = OutputOptions(quality=quality)
    reduce_to = stylizer.working_max_size(options) if draft else None

    def report(name: str, start: float) -> None:
        if on_stage is not None:
            on_stage(name, time.perf_counter() - start)

    def job(content: Path, style: Path, out: Path) -> None:
        start = time.perf_counter()
        c, info = read_photo(content)
        s, _ = read_photo(style, reduce_to=reduce_to)
        report("decode", start)
        y = stylizer.stylize(c, s, options=options, on_stage=on_stage)
        if decoded is not None:
            decoded.record(c, s, y)
        start = time.perf_counter()
        write_photo(y, out, info, options=output, protect=[content, style])
        report("encode", start)

    return job


def transfer_job(name: str, *, quality: int = 95, decoded: _Decoded | None = None) -> Job:
    """The same job with a classical colour transfer (full-size style, as its users run it)."""
    transfer = BASELINES[name] if name in BASELINES else PEERS[name].transfer
    output = OutputOptions(quality=quality)

    def job(content: Path, style: Path, out: Path) -> None:
        c, info = read_photo(content)
        s, _ = read_photo(style)
        y = transfer(c, s)
        if decoded is not None:
            decoded.record(c, s, y)
        write_photo(y, out, info, options=output, protect=[content, style])

    return job


@dataclass
class _Runner:
    """A method ready to run: its job and where it computes."""

    label: str  # the row's method name
    job: Job  # (content, style, out) -> None, file to file
    device: torch.device  # where it computes (timing synchronises a CUDA device)
    dtype: str  # the network's dtype name ("float32" for colour transfers)
    decoded: _Decoded = field(default_factory=_Decoded)  # its last job's decoded buffers


def _options(config: EndToEndConfig, method: str) -> StylizeOptions:
    if method == PREVIOUS:
        return StylizeOptions(max_size=PREVIOUS_MAX_SIZE, upsample=PREVIOUS_UPSAMPLE)
    if config.max_size is None:
        return StylizeOptions()
    return StylizeOptions(max_size=config.max_size)


def _runners(config: EndToEndConfig) -> list[_Runner]:
    device = resolve_device(config.device)
    cpu = torch.device("cpu")
    runners = []
    for method in config.methods:
        if method in (PHOTOSTYLE, SHIPPED, PREVIOUS):
            dtypes = ("float32",) if method == PREVIOUS else config.dtypes
            weights = {
                PHOTOSTYLE: config.weights,
                SHIPPED: None,
                PREVIOUS: config.previous_weights,
            }[method]
            for dtype in dtypes:
                stylizer = Stylizer(
                    weights,
                    device=device,
                    dtype=DTYPES[dtype],
                    encoder_weights=None if method == SHIPPED else config.encoder_weights,
                )
                label = method if dtype == dtypes[0] else f"{method} ({dtype})"
                decoded = _Decoded()
                job = stylizer_job(
                    stylizer,
                    _options(config, method),
                    draft=config.draft,
                    quality=config.quality,
                    decoded=decoded,
                )
                runners.append(_Runner(label, job, stylizer.device, dtype, decoded))
        else:
            decoded = _Decoded()
            job = transfer_job(method, quality=config.quality, decoded=decoded)
            runners.append(_Runner(method, job, cpu, "float32", decoded))
    return runners


def add_speedups(rows: Sequence[EndToEndRow]) -> list[EndToEndRow]:
    """Set each row's ``speedup``: the previous release's median over its own, same size.

    Sizes without a ``previous`` row get None.
    """
    reference = {r.size: r.median_s for r in rows if r.method == PREVIOUS}
    out = []
    for r in rows:
        ref = reference.get(r.size)
        out.append(replace(r, speedup=ref / r.median_s if ref and r.median_s > 0 else None))
    return out


def run_end_to_end(
    config: EndToEndConfig,
    folder: Path,
    *,
    progress: Callable[[EndToEndRow], None] | None = None,
) -> list[EndToEndRow]:
    """Time every method's whole job at every size (see the module docstring).

    Args:
        config: sizes, methods, runs, device, dtypes, models.
        folder: where the synthetic photos and the results are written.
        progress: called with each row as soon as it is measured (speed-up still None).

    Returns:
        One :class:`EndToEndRow` per (size, method), sizes outer, with speed-ups.

    Raises:
        ValueError: CUDA asked for but missing, or bad settings.
        WeightsError: a stylizer cannot be loaded.
        PeerUnavailable: a peer's package is missing.
    """
    for method in config.methods:
        if method in PEERS:
            from photostyle.eval.baselines import require_peer

            require_peer(method)
    runners = _runners(config)
    photos = make_photos(folder, config.sizes, config.quality)
    rows = []
    with torch.inference_mode():
        for photo in photos:
            for runner in runners:
                out = folder / f"out_{format_size(photo.size)}.jpg"

                def call(runner: _Runner = runner, photo: Photo = photo, out: Path = out) -> None:
                    runner.job(photo.content, photo.style, out)

                timing = time_call(
                    call,
                    config.runs,
                    config.warmup,
                    runner.device,
                    measure_memory=True,
                    sample_interval=config.sample_interval,
                )
                row = EndToEndRow(
                    method=runner.label,
                    size=format_size(photo.size),
                    height=photo.size[0],
                    width=photo.size[1],
                    device=str(runner.device),
                    dtype=runner.dtype,
                    runs=config.runs,
                    **timing.row_fields(),
                    decoded_mib=runner.decoded.nbytes / MIB,
                )
                rows.append(row)
                if progress is not None:
                    progress(row)
    return add_speedups(rows)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def end_to_end_markdown(rows: Sequence[EndToEndRow]) -> str:
    """The rows as a markdown table (seconds per job, file to file; speed-up: higher is faster)."""
    lines = [
        "| method | size (WxH) | device | dtype | median s | IQR s | peak MiB | decoded MiB "
        "| above decoded MiB | speed-up vs previous |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.method} | {r.size} | {r.device} | {r.dtype} | {r.median_s:.3g} "
            f"| {r.spread_s:.2g} | {r.peak_mib:.0f} | {r.decoded_mib:.0f} "
            f"| {r.peak_mib - r.decoded_mib:.0f} | {_fmt(r.speedup, '.2f')} |"
        )
    return "\n".join(lines) + "\n"


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def end_to_end_environment(device: str) -> dict[str, object]:
    """:func:`~.bench.environment` plus the CPU model."""
    return {**environment(device), "cpu_model": cpu_model()}


def end_to_end_json(rows: Sequence[EndToEndRow], config: EndToEndConfig) -> dict[str, object]:
    """Settings, environment and rows of a run, ready for ``json.dump``."""
    return {
        "config": config.to_dict(),
        "environment": end_to_end_environment(config.device),
        "rows": [asdict(r) for r in rows],
    }


# --------------------------------------------------------------------------------------------
# Where the time goes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileRow:
    """Median seconds per stage of one stylizer's job at one size."""

    method: str  # PHOTOSTYLE or PREVIOUS
    size: str  # "WxH"
    stages: dict[str, float]  # PROFILE_STAGES -> median seconds (0 for a stage not run)
    total_s: float  # median of the jobs' summed stage times
    full_res_gbps: float | None  # FULL_RES_BYTES_PER_PIXEL * H * W / full_resolution s, 1e9 B/s
    bandwidth_fraction: float | None  # full_res_gbps / the measured copy bandwidth
    # (both None when the photo is not larger than the working size: nothing is upsampled)


def copy_bandwidth(
    device: str | torch.device = "cpu", nbytes: int = 256 << 20, runs: int = 5
) -> float:
    """Measured memory bandwidth, 1e9 bytes/s: ``dst.copy_(src)`` of ``nbytes`` float32 buffers.

    A copy reads and writes ``nbytes`` each, so ``2 * nbytes / median time`` (the STREAM "copy"
    convention). Uses all of torch's intra-op threads.
    """
    dev = torch.device(device)
    src = torch.ones(nbytes // 4, device=dev)
    dst = torch.empty_like(src)
    timing = time_call(lambda: dst.copy_(src), runs=runs, warmup=1, device=dev)
    return 2 * nbytes / timing.median / 1e9


def run_profile(
    config: EndToEndConfig,
    folder: Path,
    *,
    bandwidth_gbps: float | None = None,
    progress: Callable[[ProfileRow], None] | None = None,
) -> list[ProfileRow]:
    """Per-stage medians of the stylizers' jobs (``photostyle``, ``previous`` of ``methods``).

    Each job runs :func:`stylizer_job` with the stylizer's timing hook; the stage times of a job
    are summed per stage, and each stage's median over ``runs`` jobs is reported.

    Args:
        config: sizes, methods (colour transfers are skipped), runs, warm-up, device.
        folder: where the synthetic photos and the results are written.
        bandwidth_gbps: the machine's copy bandwidth; None = measure it (:func:`copy_bandwidth`).
        progress: called with each row as it is measured.
    """
    device = resolve_device(config.device)
    bandwidth = bandwidth_gbps if bandwidth_gbps is not None else copy_bandwidth(device)
    photos = make_photos(folder, config.sizes, config.quality)
    rows = []
    for method in (m for m in config.methods if m in (PHOTOSTYLE, PREVIOUS)):
        weights = config.weights if method == PHOTOSTYLE else config.previous_weights
        dtype = DTYPES[config.dtypes[0]] if method == PHOTOSTYLE else torch.float32
        stylizer = Stylizer(
            weights, device=device, dtype=dtype, encoder_weights=config.encoder_weights
        )
        for photo in photos:
            times: list[dict[str, float]] = []

            def on_stage(name: str, seconds: float, times: list[dict[str, float]] = times) -> None:
                times[-1][name] = times[-1].get(name, 0.0) + seconds

            job = stylizer_job(
                stylizer,
                _options(config, method),
                draft=config.draft,
                quality=config.quality,
                on_stage=on_stage,
            )
            out = folder / f"profile_{format_size(photo.size)}.jpg"
            with torch.inference_mode():
                for _ in range(config.warmup + config.runs):
                    times.append({})
                    job(photo.content, photo.style, out)
            timed = times[config.warmup :]
            stages = {s: statistics.median(t.get(s, 0.0) for t in timed) for s in PROFILE_STAGES}
            full = stages["full_resolution"]
            gbps = None
            if full > 0 and max(photo.size) > stylizer.working_max_size(_options(config, method)):
                gbps = FULL_RES_BYTES_PER_PIXEL * photo.size[0] * photo.size[1] / full / 1e9
            row = ProfileRow(
                method=method,
                size=format_size(photo.size),
                stages=stages,
                total_s=statistics.median(sum(t.values()) for t in timed),
                full_res_gbps=gbps,
                bandwidth_fraction=None if gbps is None or bandwidth <= 0 else gbps / bandwidth,
            )
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def profile_markdown(rows: Sequence[ProfileRow], bandwidth_gbps: float) -> str:
    """The profile as a markdown table (median seconds per stage), and the bandwidth line."""
    head = " | ".join(PROFILE_STAGES)
    lines = [
        f"| method | size (WxH) | {head} | total s | full-res GB/s | of bandwidth |",
        "| --- | --- |" + " ---: |" * (len(PROFILE_STAGES) + 3),
    ]
    for r in rows:
        cells = " | ".join(f"{r.stages[s]:.3g}" for s in PROFILE_STAGES)
        lines.append(
            f"| {r.method} | {r.size} | {cells} | {r.total_s:.3g} "
            f"| {_fmt(r.full_res_gbps, '.2f')} | {_fmt(r.bandwidth_fraction, '.1%')} |"
        )
    note = (
        f"\nfull-resolution stage: {FULL_RES_BYTES_PER_PIXEL} bytes/pixel at least (float32 RGB "
        f"read + written); measured copy bandwidth {bandwidth_gbps:.1f} GB/s\n"
    )
    return "\n".join(lines) + "\n" + note


def profile_json(
    rows: Sequence[ProfileRow], config: EndToEndConfig, bandwidth_gbps: float
) -> dict[str, object]:
    """Settings, environment, bandwidth and rows of a profile, ready for ``json.dump``."""
    return {
        "config": config.to_dict(),
        "environment": end_to_end_environment(config.device),
        "copy_bandwidth_gbps": bandwidth_gbps,
        "full_res_bytes_per_pixel": FULL_RES_BYTES_PER_PIXEL,
        "rows": [asdict(r) for r in rows],
    }


__all__ = [
    "E2E_METHODS",
    "E2E_SIZES",
    "PREVIOUS",
    "PROFILE_STAGES",
    "EndToEndConfig",
    "EndToEndRow",
    "ProfileRow",
    "copy_bandwidth",
    "cpu_model",
    "end_to_end_json",
    "end_to_end_markdown",
    "make_photos",
    "method_names",
    "profile_json",
    "profile_markdown",
    "run_end_to_end",
    "run_profile",
    "stylizer_job",
    "transfer_job",
]
