"""What makes the network faster, and how close it gets to the hardware (issue: real photo sizes).

:func:`run_speed` times one network pass (encoder on content and style, decoder with FA) at a
working size under each *knob* — a way of running the same model — in one process, against a
float32 baseline, and reports per knob the median time, its ratio to the baseline and the largest
absolute difference of the output from the baseline's (a knob that changes the picture is not
free). It also counts the pass's floating-point operations (``torch.utils.flop_counter``) and
reports the achieved FLOP rate as a fraction of the machine's matmul peak, measured in the same
process with a large ``torch.mm`` in the same dtype on the same device (CPU or CUDA GPU): the
physical limit of this model on this machine.

Knobs:

- ``float32``: ``torch.no_grad``, contiguous tensors (the baseline);
- ``inference_mode``: ``torch.inference_mode`` instead of ``no_grad``;
- ``channels_last``: NHWC model and inputs;
- ``bfloat16``: model and inputs in bfloat16 (AMX/AVX-512 BF16 CPUs, recent GPUs);
- ``compile``: ``torch.compile`` of the decoder and encoder (compile time reported apart);
- ``threads=1``: one intra-op thread instead of all (the cost of not using the cores);
- ``batch=N``: N pairs in one batch, time per pair (folder mode).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from photostyle.measure import environment, time_call
from photostyle.models.stylizer import PhotoStylizer, build_stylizer

KNOBS: tuple[str, ...] = (
    "float32",
    "inference_mode",
    "channels_last",
    "bfloat16",
    "compile",
    "threads=1",
    "batch=4",
)


@dataclass
class SpeedRow:
    """One knob at one working size."""

    knob: str  # see KNOBS
    size: str  # working size, "WxH"
    median_s: float  # median seconds per pair (per call; per pair for batch=N)
    ratio: float  # median_s / the float32 baseline's at this size (< 1: faster)
    max_abs_diff: float  # largest |output - baseline output| over the image, in [0, 1] units
    gflop: float  # floating-point operations of one pair's pass, 1e9
    gflops: float  # achieved rate, 1e9 FLOP/s
    peak_fraction: float  # gflops / the measured matmul peak in the knob's dtype
    note: str = ""  # e.g. compile time


def check_knobs(knobs: Sequence[str]) -> None:
    """Raise ValueError for a knob not in :data:`KNOBS` (``batch=N``, ``threads=N``: N >= 1)."""
    for knob in knobs:
        name, _, n = knob.partition("=")
        if n and name in ("batch", "threads"):
            if not n.isdigit() or int(n) < 1:
                raise ValueError(f"{knob}: {name} must be a positive integer")
        elif knob not in KNOBS:
            raise ValueError(f"unknown knob {knob!r}; choose from {KNOBS}")


def count_flops(model: PhotoStylizer, content: torch.Tensor, style: torch.Tensor) -> int:
    """FLOPs of one network pass (convolutions and matmuls; the rest is memory-bound).

    Shape: content (B, 3, H, W), style (B, 3, Hs, Ws).
    """
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(content, style)
    return int(counter.get_total_flops())


def matmul_peak(
    dtype: torch.dtype = torch.float32,
    n: int = 2048,
    runs: int = 5,
    device: str | torch.device = "cpu",
) -> float:
    """Measured FLOP/s of a square ``torch.mm`` on ``device``: the practical peak of the machine."""
    a = torch.randn(n, n).to(device, dtype)
    b = torch.randn(n, n).to(device, dtype)
    timing = time_call(lambda: torch.mm(a, b), runs=runs, warmup=1, device=device)
    return 2.0 * n**3 / timing.median


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_speed(
    model: PhotoStylizer,
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    knobs: Sequence[str] = KNOBS,
    runs: int = 3,
    warmup: int = 1,
    peak_n: int = 2048,
    progress: Callable[[SpeedRow], None] | None = None,
    device: str | torch.device = "cpu",
) -> list[SpeedRow]:
    """Time the network under each knob on ``device`` against the float32 baseline.

    Args:
        model: a stylizer in float32 on the CPU, in any memory layout (left unchanged: knobs
            work on contiguous copies).
        content: (1, 3, H, W) in [0, 1], already at the working size.
        style: (1, 3, Hs, Ws) in [0, 1].
        knobs: names from :data:`KNOBS` (``batch=N`` and ``threads=N`` take any N); the
            baseline ``float32`` is always run first.
        runs: timed calls per knob (median reported).
        warmup: untimed calls first (compile happens here for ``compile``).
        peak_n: matrix side of the peak measurement.
        progress: called with each row when measured.
        device: where the knobs run (``cpu``, ``cuda``, ``cuda:N``); CUDA calls are synchronised
            and the peak is the GPU's matmul rate (the ``threads=N`` knob concerns only the CPU).

    Returns:
        One :class:`SpeedRow` per knob, baseline first.
    """
    if content.ndim != 4 or content.shape[:2] != (1, 3) or style.ndim != 4:
        raise ValueError(f"content must be (1, 3, H, W), got {tuple(content.shape)}")
    check_knobs(knobs)
    # A contiguous float32 copy is the baseline, whatever layout the caller's model has (the
    # Stylizer keeps its model channels_last): every knob starts from the same model.
    dev = torch.device(device)
    model = _copy(model).to(dev)
    content, style = content.contiguous().to(dev), style.contiguous().to(dev)
    size = f"{content.shape[-1]}x{content.shape[-2]}"
    flops = count_flops(model, content, style)
    peaks = {torch.float32: matmul_peak(torch.float32, peak_n, device=dev)}
    rows: list[SpeedRow] = []
    reference: torch.Tensor | None = None
    base_s = 1.0
    for knob in ["float32", *(k for k in knobs if k != "float32")]:
        fn, per_call, dtype, note = _prepare(knob, model, content, style)
        n_threads = int(knob.split("=")[1]) if knob.startswith("threads=") else None
        with _threads(n_threads):
            start = time.perf_counter()
            out = fn()  # first call: compiles where it compiles
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            first = time.perf_counter() - start
            timing = time_call(fn, runs=runs, warmup=max(0, warmup - 1), device=dev)
        if knob == "compile":
            note = f"first call {first:.1f} s (compilation)"
        median = timing.median / per_call
        image = out[:1].float().clamp(0, 1).cpu()
        if reference is None:
            reference, base_s = image, median
        if dtype not in peaks:
            peaks[dtype] = matmul_peak(dtype, peak_n, device=dev)
        rate = flops / median
        row = SpeedRow(
            knob=knob,
            size=size,
            median_s=median,
            ratio=median / base_s,
            max_abs_diff=float((image - reference).abs().max()),
            gflop=flops / 1e9,
            gflops=rate / 1e9,
            peak_fraction=rate / peaks[dtype],
            note=note,
        )
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def _prepare(
    knob: str, model: PhotoStylizer, content: torch.Tensor, style: torch.Tensor
) -> tuple[Callable[[], torch.Tensor], int, torch.dtype, str]:
    """The call for one knob, pairs per call, compute dtype and a note."""
    if knob.startswith("batch="):
        n = int(knob.split("=")[1])
        c, s = content.expand(n, -1, -1, -1).contiguous(), style.expand(n, -1, -1, -1).contiguous()
        return _call(model, c, s, torch.inference_mode), n, torch.float32, ""
    if knob == "float32" or knob.startswith("threads="):
        return _call(model, content, style, torch.no_grad), 1, torch.float32, ""
    if knob == "inference_mode":
        return _call(model, content, style, torch.inference_mode), 1, torch.float32, ""
    if knob == "channels_last":
        m = _copy(model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        c = content.contiguous(memory_format=torch.channels_last)
        s = style.contiguous(memory_format=torch.channels_last)
        return _call(m, c, s, torch.inference_mode), 1, torch.float32, ""
    if knob == "bfloat16":
        m = _copy(model).to(torch.bfloat16)
        c, s = content.to(torch.bfloat16), style.to(torch.bfloat16)
        return _call(m, c, s, torch.inference_mode), 1, torch.bfloat16, ""
    if knob == "compile":
        m = _copy(model)
        m.encoder = torch.compile(m.encoder, dynamic=False)  # type: ignore[assignment]
        m.decoder = torch.compile(m.decoder, dynamic=False)  # type: ignore[assignment]
        return _call(m, content, style, torch.inference_mode), 1, torch.float32, ""
    raise ValueError(f"unknown knob {knob!r}")


def _copy(model: PhotoStylizer) -> PhotoStylizer:
    device = next(model.parameters()).device
    clone = build_stylizer(model.config).to(device)
    clone.load_state_dict(model.state_dict())
    return clone.eval()


def _call(
    model: PhotoStylizer,
    content: torch.Tensor,
    style: torch.Tensor,
    mode: Callable[[], contextlib.AbstractContextManager[object]],
) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        with mode():
            return model(content, style).image

    return run


def speed_table_markdown(rows: Sequence[SpeedRow]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| knob | working size | s / pair | x float32 | max abs diff | GFLOP | GFLOP/s "
        "| of matmul peak | note |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.knob} | {r.size} | {r.median_s:.3f} | {r.ratio:.2f} | {r.max_abs_diff:.2g} "
            f"| {r.gflop:.1f} | {r.gflops:.1f} | {r.peak_fraction:.0%} | {r.note} |"
        )
    return "\n".join(lines) + "\n"


def speed_json(rows: Sequence[SpeedRow], device: str | torch.device) -> dict[str, object]:
    """Environment and rows of a run, ready for ``json.dump``."""
    return {"environment": environment(str(device)), "rows": [asdict(r) for r in rows]}
