"""Measuring helpers: wall time of calls, peak memory, available memory, the environment, the
change between two video frames.

Used by the benchmark commands (:mod:`photostyle.eval.bench`, :mod:`photostyle.eval.speed`,
:mod:`photostyle.eval.quality`) and by :mod:`photostyle.io` to refuse images that would not fit
in memory once decoded.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TypedDict

import numpy as np
import torch

from photostyle.utils import resolve_device
from photostyle.version import __version__


def available_memory_bytes() -> int | None:
    """Memory the system can give this process now without swapping; None when unknown.

    ``MemAvailable`` of ``/proc/meminfo`` (Linux), else free physical pages times the page size
    (``os.sysconf``), else None.
    """
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/meminfo", "rb") as f:
        for line in f:
            if line.startswith(b"MemAvailable:"):
                return int(line.split()[1]) * 1024  # the figure is in kB
    with contextlib.suppress(OSError, ValueError, AttributeError):
        pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and size > 0:
            return int(pages) * int(size)
    return None


MIB = float(1 << 20)  # bytes in a mebibyte


class TimingFields(TypedDict):
    """What a result row keeps of a :class:`Timing` (see :meth:`Timing.row_fields`)."""

    median_s: float  # median wall time of one call, seconds
    spread_s: float  # interquartile range of the call times, seconds
    min_s: float  # fastest call, seconds
    max_s: float  # slowest call, seconds
    peak_mib: float  # peak memory of a call above the baseline, MiB (0: not measured)
    memory: str  # what peak_mib measures ("cuda_allocated", "rss_statm"...; "": not measured)


@dataclass(frozen=True)
class Timing:
    """Wall times of the timed calls of :func:`time_call`, in seconds."""

    times: tuple[float, ...]  # each timed call, in call order
    median: float  # median of ``times``
    min: float  # fastest call
    max: float  # slowest call
    spread: float  # interquartile range (75th - 25th percentile, linear interpolation)
    peak_bytes: int | None = None  # peak memory above the baseline; None = not measured
    memory: str | None = None  # what peak_bytes measures (MemoryProbe.kind)

    @classmethod
    def from_times(
        cls, times: Sequence[float], peak_bytes: int | None = None, memory: str | None = None
    ) -> Timing:
        """Summarise call times (at least one), with an optional memory measurement.

        Raises:
            ValueError: ``times`` is empty.
        """
        if not times:
            raise ValueError("no times to summarise")
        q1, q3 = np.percentile(np.asarray(times, dtype=np.float64), [25.0, 75.0])
        return cls(
            times=tuple(float(t) for t in times),
            median=float(statistics.median(times)),
            min=float(min(times)),
            max=float(max(times)),
            spread=float(q3 - q1),
            peak_bytes=peak_bytes,
            memory=memory,
        )

    def row_fields(self) -> TimingFields:
        """The times in seconds and the peak in MiB, as the benchmarks' result rows keep them."""
        return TimingFields(
            median_s=self.median,
            spread_s=self.spread,
            min_s=self.min,
            max_s=self.max,
            peak_mib=(self.peak_bytes or 0) / MIB,
            memory=self.memory or "",
        )


class MemoryProbe(Protocol):
    """A context manager that measures peak memory while it is entered."""

    peak_bytes: int  # peak above the baseline taken on entry; valid after exit
    kind: str  # what is measured: "cuda_allocated", "rss_statm" or "rss_maxrss"

    def __enter__(self) -> MemoryProbe: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def _statm_rss_bytes() -> int | None:
    """Resident set size of this process from ``/proc/self/statm``; None where there is none."""
    try:
        with open("/proc/self/statm", "rb") as f:
            fields = f.read().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _maxrss_bytes() -> int:
    """The process's lifetime peak RSS (``getrusage``; KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _release_free_heap() -> None:
    """Hand memory that malloc keeps after ``free`` back to the OS (glibc only; else a no-op).

    Without this, blocks the warm-up freed would stay resident, sit in the baseline and be
    reused unseen by the measured calls.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


class RssSampler:
    """Peak resident set size (RSS) of this process above a baseline, while entered.

    What it measures: physical memory of the whole process (every thread, every allocator: torch,
    numpy, Python), sampled from ``/proc/self/statm`` on entry (the baseline, after asking
    glibc to return freed heap memory to the OS), every ``interval`` seconds by a background
    thread, and on exit. ``peak_bytes`` is the largest sample minus the baseline: the extra
    memory the work needs on top of what the process already holds (model weights, inputs,
    warmed-up caches). Allocations that live shorter than ``interval`` can be missed, and memory
    that other threads allocate meanwhile is counted.

    Without ``/proc`` (macOS...) it falls back to ``resource.getrusage``'s lifetime peak RSS:
    ``peak_bytes`` is then how far the work pushed that lifetime peak up, a lower bound (0 when
    the process had already been larger).

    Args:
        interval: seconds between two samples.
    """

    def __init__(self, interval: float = 0.002) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = interval
        self.peak_bytes = 0
        self.baseline_bytes = 0
        self.kind = "rss_statm"  # "rss_statm", or "rss_maxrss" for the fallback
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        rss = _statm_rss_bytes()
        if rss is not None and rss > self._peak:
            self._peak = rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> RssSampler:
        _release_free_heap()
        rss = _statm_rss_bytes()
        if rss is None:
            self.kind = "rss_maxrss"
            self.baseline_bytes = _maxrss_bytes()
            return self
        self.kind = "rss_statm"
        self.baseline_bytes = self._peak = rss
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="photostyle-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is None:
            self.peak_bytes = max(0, _maxrss_bytes() - self.baseline_bytes)
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._sample()
        self.peak_bytes = max(0, self._peak - self.baseline_bytes)


class CudaPeakMemory:
    """Peak CUDA memory allocated by tensors above what was allocated on entry, while entered.

    Uses ``torch.cuda.reset_peak_memory_stats`` and ``max_memory_allocated``: memory held by
    tensors of the caching allocator (not its cache, not the CUDA context or cuDNN workspaces
    outside it). Weights and other tensors already on the GPU form the baseline.

    Args:
        device: a CUDA device.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda_allocated"
        self.peak_bytes = 0
        self.baseline_bytes = 0

    def __enter__(self) -> CudaPeakMemory:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self.baseline_bytes = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        torch.cuda.synchronize(self.device)
        peak = torch.cuda.max_memory_allocated(self.device)
        self.peak_bytes = max(0, peak - self.baseline_bytes)


def memory_probe(device: str | torch.device, interval: float = 0.002) -> MemoryProbe:
    """:class:`CudaPeakMemory` for a CUDA device, else :class:`RssSampler`."""
    dev = torch.device(device)
    return CudaPeakMemory(dev) if dev.type == "cuda" else RssSampler(interval)


def time_call(
    fn: Callable[[], object],
    runs: int = 5,
    warmup: int = 1,
    device: str | torch.device = "cpu",
    *,
    clock: Callable[[], float] = time.perf_counter,
    measure_memory: bool = False,
    sample_interval: float = 0.002,
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``runs`` timed ones.

    On a CUDA device the device is synchronised before the clock starts and before it stops, so
    each time covers the kernels the call launched. With ``measure_memory`` the timed calls (not
    the warm-up) run inside :func:`memory_probe`; its sampler thread, if any, wakes every
    ``sample_interval`` seconds.

    Args:
        fn: the work to time; its result is dropped at once.
        runs: timed calls (at least 1).
        warmup: untimed calls before them (at least 0).
        device: where ``fn`` computes (``"cpu"``, ``"cuda"``...).
        clock: seconds as a float; injectable for tests.
        measure_memory: also measure peak memory above the baseline (``Timing.peak_bytes``).
        sample_interval: seconds between two RSS samples on the CPU.

    Returns:
        :class:`Timing` of the ``runs`` timed calls.

    Raises:
        ValueError: ``runs < 1`` or ``warmup < 0``.
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    if warmup < 0:
        raise ValueError(f"warmup must be at least 0, got {warmup}")
    dev = torch.device(device)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(warmup):
        fn()
    sync()
    probe: MemoryProbe | None = None
    if measure_memory:
        gc.collect()
        probe = memory_probe(dev, sample_interval)
    times = []
    with probe if probe is not None else contextlib.nullcontext():
        for _ in range(runs):
            sync()
            start = clock()
            fn()
            sync()
            times.append(clock() - start)
    if probe is None:
        return Timing.from_times(times)
    return Timing.from_times(times, peak_bytes=probe.peak_bytes, memory=probe.kind)


def environment(device: str | torch.device = "cpu") -> dict[str, object]:
    """Where the numbers come from: versions, CPU, threads, GPU name (JSON-able)."""
    dev = resolve_device(device)
    env: dict[str, object] = {
        "photostyle": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(dev),
    }
    if dev.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(dev)
    return env


def frame_change(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two frames of equal shape, e.g. (3, H, W), in [0, 1] units."""
    if a.shape != b.shape:
        raise ValueError(f"frames differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    return float((a.detach().double() - b.detach().double()).abs().mean())
