"""Tests of photostyle.measure (timing and memory probes: tests/eval/test_bench.py)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from photostyle import measure


def test_available_memory_reads_meminfo() -> None:
    available = measure.available_memory_bytes()
    if os.path.exists("/proc/meminfo"):
        with open("/proc/meminfo") as f:
            line = next(x for x in f if x.startswith("MemAvailable:"))
        # the figure moves between the two reads; the same order of magnitude
        assert available is not None and 0.5 < available / (int(line.split()[1]) * 1024) < 2


def test_available_memory_falls_back_without_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_proc(*args: Any, **kwargs: Any) -> Any:
        raise FileNotFoundError("/proc/meminfo")

    monkeypatch.setattr(measure, "open", no_proc, raising=False)
    monkeypatch.setattr(measure.os, "sysconf", lambda name: {"SC_AVPHYS_PAGES": 3}.get(name, 4096))
    assert measure.available_memory_bytes() == 3 * 4096

    def no_sysconf(name: str) -> int:
        raise ValueError(name)

    monkeypatch.setattr(measure.os, "sysconf", no_sysconf)
    assert measure.available_memory_bytes() is None


def test_row_fields_are_seconds_and_mib() -> None:
    timing = measure.Timing.from_times([3.0, 1.0, 2.0], peak_bytes=3 << 20, memory="rss_statm")
    assert timing.row_fields() == {
        "median_s": 2.0,
        "spread_s": 1.0,
        "min_s": 1.0,
        "max_s": 3.0,
        "peak_mib": 3.0,
        "memory": "rss_statm",
    }
    unmeasured = measure.Timing.from_times([1.0]).row_fields()
    assert unmeasured["peak_mib"] == 0.0 and unmeasured["memory"] == ""
