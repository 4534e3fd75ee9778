"""A load check of a running server: N clients posting pairs to ``/v1/stylize`` for S seconds.

Not a benchmark of the model (``photostyle speed`` is): it shows how the server behaves when
busy (throughput, latency percentiles, and how many requests were refused with 503).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2
import numpy as np

from photostyle.serve.net import is_loopback

__all__ = ["LoadReport", "run_load"]


@dataclass(frozen=True)
class LoadReport:
    """What a load check measured."""

    clients: int  # concurrent clients
    seconds: float  # wall time from the first request to the last answer
    ok: int  # requests answered 200
    outcomes: dict[str, int]  # answers by status code ("200", "503", ...) or error name
    p50: float  # median latency of the 200 answers, seconds (nan if none)
    p95: float  # 95th percentile latency of the 200 answers, seconds (nan if none)

    @property
    def requests(self) -> int:
        """Requests sent and finished."""
        return sum(self.outcomes.values())

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def run_load(
    url: str,
    content: bytes,
    style: bytes,
    *,
    clients: int,
    seconds: float,
    fields: dict[str, str] | None = None,
    timeout: float = 600.0,
    allow_remote: bool = False,
) -> LoadReport:
    """Runs ``clients`` threads that post the pair back to back until ``seconds`` have passed.

    Requests still in flight at the deadline are waited for (up to ``timeout``) and counted.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:7860``.
        content: the content photo's bytes.
        style: the style photo's bytes.
        clients: concurrent clients, each with one connection.
        seconds: how long new requests are started.
        fields: further form fields (``alpha``, ``max_size``, ``format``).
        timeout: per-request timeout, seconds.
        allow_remote: allow a host other than this machine.

    Returns:
        The report.

    Raises:
        ValueError: bad URL, counts or durations, or a remote host without ``allow_remote``.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--url: expected http://HOST:PORT, got {url!r}")
    if not allow_remote and not is_loopback(parts.hostname):
        raise ValueError(f"--url: {parts.hostname} is not this machine; pass --allow-remote")
    if clients < 1 or not seconds > 0:
        raise ValueError("--clients must be at least 1 and --seconds positive")
    endpoint = url.rstrip("/") + "/v1/stylize"
    files = {"content": ("content", content), "style": ("style", style)}
    deadline = time.perf_counter() + seconds
    lock = threading.Lock()
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []

    def client() -> None:
        with httpx2.Client(timeout=timeout) as session:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    status = str(session.post(endpoint, files=files, data=fields).status_code)
                except httpx2.HTTPError as err:
                    status = type(err).__name__
                elapsed = time.perf_counter() - start
                with lock:
                    outcomes[status] += 1
                    if status == "200":
                        latencies.append(elapsed)
                if status == "503":  # the server asked us to come back later
                    time.sleep(0.05)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    p50, p95 = np.percentile(latencies, [50, 95]) if latencies else (float("nan"),) * 2
    return LoadReport(clients, elapsed, len(latencies), dict(outcomes), float(p50), float(p95))
