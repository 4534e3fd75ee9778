"""Speed and memory benchmark of photostyle and the classical baselines (paper Table I).

The paper times its stylizer at 512x256, 768x384 and 1024x512 (width x height, PhotoWCT's
settings). :func:`run_bench` does the same on the bundled demo pair resized to each size, for
photostyle (a :class:`~photostyle.api.Stylizer` working at the benchmarked size) and for the
classical baselines of :mod:`photostyle.eval.baselines`, and reports per (method, size):

- the median wall time of ``runs`` timed calls after ``warmup`` untimed ones, with min, max and
  the interquartile range as spread (:func:`time_call`);
- the peak memory a call needs above what the process already holds (:class:`RssSampler` on the
  CPU, the CUDA caching allocator's peak statistics on a GPU);
- the ratio of its median to photostyle's median at the same size in the same run.

``photostyle-onnxruntime`` (on request, not in the default methods) is the same stylizer with its
network run by onnxruntime (:mod:`photostyle.deploy.onnx`, CPU, as many intra-op threads as
torch); its rows also give the largest absolute difference from photostyle's output.

Sizes are written ``WxH`` as in the paper and held as ``(H, W)`` tuples in code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from importlib import resources

import torch
import torch.nn.functional as F

from photostyle.api import StylizeOptions, Stylizer
from photostyle.eval.baselines import BASELINES
from photostyle.io import MAX_PIXELS, MIN_SIDE, load_image
from photostyle.measure import MIB as MIB  # re-exported
from photostyle.measure import CudaPeakMemory as CudaPeakMemory  # re-exported
from photostyle.measure import MemoryProbe as MemoryProbe  # re-exported
from photostyle.measure import RssSampler as RssSampler  # re-exported
from photostyle.measure import Timing as Timing  # re-exported
from photostyle.measure import environment, time_call
from photostyle.measure import memory_probe as memory_probe  # re-exported
from photostyle.models.layers import FAVariant, fa_variant
from photostyle.upsample import UpsampleMethod, upsampler
from photostyle.utils import resolve_device

PHOTOSTYLE = "photostyle"
PHOTOSTYLE_ONNX = "photostyle-onnxruntime"
BENCH_METHODS: tuple[str, ...] = (PHOTOSTYLE, *BASELINES)
EXTRA_METHODS: tuple[str, ...] = (PHOTOSTYLE_ONNX,)  # accepted, but not run by default
PAPER_SIZES: tuple[tuple[int, int], ...] = ((256, 512), (384, 768), (512, 1024))  # (H, W)

_SIZE_RE = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def parse_size(text: str) -> tuple[int, int]:
    """Parse one size written ``WIDTHxHEIGHT`` as in the paper ("512x256").

    Only the syntax is checked here; :class:`BenchConfig` checks the limits.

    Args:
        text: e.g. ``"512x256"`` (``X`` and spaces around the numbers are accepted).

    Returns:
        ``(height, width)``, e.g. ``(256, 512)``.

    Raises:
        ValueError: not two non-negative integers joined by ``x`` (one-line message).
    """
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"bad size {text!r}: expected WIDTHxHEIGHT, e.g. 512x256")
    width, height = int(match.group(1)), int(match.group(2))
    return height, width


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """Parse a comma-separated list of sizes, ``"512x256,768x384"`` -> ``((256, 512), (384, 768))``.

    Raises:
        ValueError: an empty list or a malformed entry (one-line message).
    """
    parts = text.split(",")
    if not text.strip():
        raise ValueError("no sizes given: expected e.g. 512x256,768x384")
    return tuple(parse_size(part) for part in parts)


def format_size(size: tuple[int, int]) -> str:
    """``(H, W)`` -> ``"WxH"``, the paper's notation: ``(256, 512)`` -> ``"512x256"``."""
    height, width = size
    return f"{width}x{height}"


@dataclass(frozen=True)
class BenchConfig:
    """Settings of :func:`run_bench` (paper Table I)."""

    sizes: tuple[tuple[int, int], ...] = PAPER_SIZES  # (H, W) each: paper's "512x256" = (256, 512)
    methods: tuple[str, ...] = BENCH_METHODS  # "photostyle" and/or baselines, in table order
    runs: int = 5  # timed calls per (method, size); their median is reported
    warmup: int = 1  # untimed calls first (lazy imports, allocator caches, cuDNN autotuning)
    device: str = "auto"  # photostyle's device: auto, cpu, cuda, cuda:N (baselines: always CPU)
    weights: str | None = None  # stylizer checkpoint (.safetensors); None = the shipped model
    encoder_weights: str | None = None  # VGG weights the stylizer was trained with; None = bundled
    fa: FAVariant | None = None  # photostyle's FA variant; None = the checkpoint's
    sample_interval: float = 0.002  # seconds between two RSS samples of the CPU memory sampler
    max_size: int | None = None  # photostyle's working size cap; None = network at full size
    upsample: UpsampleMethod = "guided"  # how a capped working size reaches the full size
    onnx: str | None = None  # ONNX file of photostyle-onnxruntime; None = export into the cache

    def __post_init__(self) -> None:
        if not self.sizes:
            raise ValueError("give at least one size")
        for height, width in self.sizes:
            name = format_size((height, width))
            if min(height, width) < MIN_SIDE:
                raise ValueError(f"size {name}: both sides must be at least {MIN_SIDE} px")
            if height * width > MAX_PIXELS:
                raise ValueError(f"size {name}: more than {MAX_PIXELS} pixels")
        if len(set(self.sizes)) != len(self.sizes):
            raise ValueError("each size may be given only once")
        if not self.methods:
            raise ValueError("give at least one method")
        for method in self.methods:
            if method not in BENCH_METHODS + EXTRA_METHODS:
                choices = list(BENCH_METHODS + EXTRA_METHODS)
                raise ValueError(f"unknown method {method!r}; choose from {choices}")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError("each method may be given only once")
        if self.runs < 1:
            raise ValueError(f"runs must be at least 1, got {self.runs}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be at least 0, got {self.warmup}")
        if self.fa is not None:
            fa_variant(self.fa)  # raises for an unknown variant
        if self.max_size is not None and self.max_size < MIN_SIDE:
            raise ValueError(f"max_size must be at least {MIN_SIDE}, got {self.max_size}")
        upsampler(self.upsample)  # raises for an unknown method
        if not self.sample_interval > 0:
            raise ValueError(f"sample_interval must be positive, got {self.sample_interval}")

    def to_dict(self) -> dict[str, object]:
        """JSON-able settings, sizes written ``WxH``."""
        return {**asdict(self), "sizes": [format_size(s) for s in self.sizes]}


@dataclass(frozen=True)
class BenchRow:
    """One method at one size."""

    method: str  # "photostyle" or a baseline name
    size: str  # "WxH", the paper's notation
    height: int  # image height in pixels
    width: int  # image width in pixels
    device: str  # where the method computed ("cpu", "cuda:0"...); baselines always on the CPU
    runs: int  # timed calls
    median_s: float  # median wall time of one call, seconds
    spread_s: float  # interquartile range of the call times, seconds
    min_s: float  # fastest call, seconds
    max_s: float  # slowest call, seconds
    peak_mib: float  # peak memory of a call above the baseline, MiB (CUDA allocated or CPU RSS)
    memory: str  # what peak_mib measures: "cuda_allocated", "rss_statm" or "rss_maxrss"
    ratio: float | None = None  # median_s / photostyle's at this size; None = none
    max_abs_diff: float | None = None  # photostyle-onnxruntime: max |output - photostyle's|


def add_ratios(rows: Sequence[BenchRow]) -> list[BenchRow]:
    """Set each row's ``ratio`` to its median over photostyle's median at the same size.

    Rows of a size without a photostyle row (or with a zero photostyle median) get None.
    """
    reference = {r.size: r.median_s for r in rows if r.method == PHOTOSTYLE}
    out = []
    for r in rows:
        ref = reference.get(r.size)
        out.append(replace(r, ratio=r.median_s / ref if ref else None))
    return out


def demo_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled demo content and style photos. Shape: (3, H, W), (3, Hs, Ws) in [0, 1]."""
    assets = resources.files("photostyle") / "assets"
    with (
        resources.as_file(assets / "demo_content.jpg") as content,
        resources.as_file(assets / "demo_style.jpg") as style,
    ):
        return load_image(content), load_image(style)


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize to exactly ``size`` = (H, W) (antialiased bilinear; aspect ratio not kept).

    Shape: (3, h, w) -> (3, H, W).
    """
    if image.ndim != 3:
        raise ValueError(f"image must be (3, H, W), got {tuple(image.shape)}")
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = F.interpolate(image[None], size=size, mode="bilinear", antialias=True)
    return out[0].clamp(0, 1)


def run_bench(
    config: BenchConfig,
    *,
    progress: Callable[[BenchRow], None] | None = None,
) -> list[BenchRow]:
    """Time every method at every size on the demo pair resized to that size (paper Table I).

    photostyle is a :class:`~photostyle.api.Stylizer` on ``config.device`` called with
    ``StylizeOptions(max_size=max(H, W))``, so the network works at the benchmarked size (with
    ``config.max_size``, at most that, and ``config.upsample`` brings the result up); a call
    takes CPU tensors and returns a CPU tensor, as in the API (host-device copies included).
    photostyle-onnxruntime is a second Stylizer on the CPU with the onnxruntime backend; with
    photostyle also run, one more untimed call of each gives the row's ``max_abs_diff``. The
    baselines run on the CPU. Peak memory is measured during the timed calls (see
    :func:`time_call`). Everything runs under ``torch.inference_mode()``.

    Args:
        config: sizes, methods, runs, device, model.
        progress: called with each row as soon as it is measured (its ``ratio`` is still None).

    Returns:
        One :class:`BenchRow` per (size, method), sizes outer, with ratios.

    Raises:
        ValueError: CUDA asked for but missing.
        WeightsError: the stylizer cannot be loaded.
        ImageError: the bundled demo photos cannot be read.
    """
    device = resolve_device(config.device)
    content, style = demo_pair()
    stylizer = None
    if PHOTOSTYLE in config.methods:
        stylizer = Stylizer(
            config.weights, device=device, encoder_weights=config.encoder_weights, fa=config.fa
        )
        device = stylizer.device
    onnx_stylizer = None
    if PHOTOSTYLE_ONNX in config.methods:
        onnx_stylizer = Stylizer(
            config.weights,
            device="cpu",
            encoder_weights=config.encoder_weights,
            fa=config.fa,
            backend="onnxruntime",
            onnx_path=config.onnx,
        )
    cpu = torch.device("cpu")
    rows = []
    with torch.inference_mode():
        for size in config.sizes:
            c, s = resize_image(content, size), resize_image(style, size)
            options = StylizeOptions(
                max_size=min(max(size), config.max_size or max(size)), upsample=config.upsample
            )
            for method in config.methods:
                diff = None
                if method == PHOTOSTYLE:
                    assert stylizer is not None
                    fn = _stylize_call(stylizer, c, s, options)
                    where = device
                elif method == PHOTOSTYLE_ONNX:
                    assert onnx_stylizer is not None
                    fn = _stylize_call(onnx_stylizer, c, s, options)
                    where = cpu
                    if stylizer is not None:
                        diff = float((fn() - stylizer.stylize(c, s, options=options)).abs().max())
                else:
                    fn = _baseline_call(method, c, s)
                    where = cpu
                timing = time_call(
                    fn,
                    config.runs,
                    config.warmup,
                    where,
                    measure_memory=True,
                    sample_interval=config.sample_interval,
                )
                row = BenchRow(
                    method=method,
                    size=format_size(size),
                    height=size[0],
                    width=size[1],
                    device=str(where),
                    runs=config.runs,
                    **timing.row_fields(),
                    max_abs_diff=diff,
                )
                rows.append(row)
                if progress is not None:
                    progress(row)
    return add_ratios(rows)


def _stylize_call(
    stylizer: Stylizer, content: torch.Tensor, style: torch.Tensor, options: StylizeOptions
) -> Callable[[], torch.Tensor]:
    return lambda: stylizer.stylize(content, style, options=options)


def _baseline_call(
    name: str, content: torch.Tensor, style: torch.Tensor
) -> Callable[[], torch.Tensor]:
    fn = BASELINES[name]
    return lambda: fn(content, style)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def bench_table_markdown(rows: Sequence[BenchRow]) -> str:
    """The rows as a markdown table (seconds per call, lower is faster).

    A last column "max abs diff" (from photostyle's output) appears when a row has one.
    """
    diffs = any(r.max_abs_diff is not None for r in rows)
    lines = [
        "| method | size (WxH) | device | median s | spread s (IQR) | min s | max s "
        "| peak MiB | x photostyle |" + (" max abs diff |" if diffs else ""),
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" * diffs),
    ]
    for r in rows:
        line = (
            f"| {r.method} | {r.size} | {r.device} | {r.median_s:.4g} | {r.spread_s:.2g} "
            f"| {r.min_s:.4g} | {r.max_s:.4g} | {r.peak_mib:.1f} | {_fmt(r.ratio, '.2f')} |"
        )
        lines.append(line + (f" {_fmt(r.max_abs_diff, '.2g')} |" if diffs else ""))
    return "\n".join(lines) + "\n"


def bench_json(rows: Sequence[BenchRow], config: BenchConfig) -> dict[str, object]:
    """Settings, environment and rows of a run, ready for ``json.dump``."""
    return {
        "config": config.to_dict(),
        "environment": environment(config.device),
        "rows": [asdict(r) for r in rows],
    }
