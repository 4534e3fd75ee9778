"""A bounded queue of blocking jobs (network passes) run in worker threads.

The event loop stays free while a job runs; at most ``concurrency`` jobs run at once (one per
device by default) and at most ``max_waiting`` more wait. A job that would exceed that is
refused at once (:class:`QueueFull`, the server's 503); a job not finished within ``timeout``
seconds of its submission is given up (:class:`JobTimeout`, the server's 504). A given-up job
that already runs cannot be stopped: it keeps its slot until it ends, so the bound holds.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["JobQueue", "JobTimeout", "QueueFull"]

T = TypeVar("T")


class QueueFull(RuntimeError):
    """All running and waiting slots are taken; ``retry_after`` is a wait estimate in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is busy; retry in about {retry_after} s")
        self.retry_after = retry_after


class JobTimeout(TimeoutError):
    """A job did not finish within the queue's timeout."""


class JobQueue:
    """Runs blocking callables in ``concurrency`` threads with a bounded waiting line.

    Args:
        concurrency: jobs running at once.
        max_waiting: jobs allowed to wait for a running slot; more are refused.
        timeout: seconds from submission (waiting plus running) before a job is given up.

    Raises:
        ValueError: a non-positive concurrency or timeout, or a negative ``max_waiting``.
    """

    def __init__(self, concurrency: int = 1, max_waiting: int = 8, timeout: float = 120.0) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be at least 0, got {max_waiting}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.concurrency = concurrency
        self.capacity = concurrency + max_waiting  # jobs admitted at once, running or waiting
        self.timeout = timeout
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="photostyle-job")
        self._lock = threading.Lock()  # guards the two counters below (done callbacks run in
        self._admitted = 0  # the worker threads): jobs submitted and not yet finished
        self._mean_seconds = 1.0  # running mean of a job's duration, for Retry-After

    @property
    def admitted(self) -> int:
        """Jobs running or waiting now."""
        with self._lock:
            return self._admitted

    def full(self) -> bool:
        """Whether a job submitted now would be refused."""
        return self.admitted >= self.capacity

    def retry_after(self) -> int:
        """Seconds until a slot is likely free (at least 1)."""
        with self._lock:
            rounds = self._admitted / self.concurrency
            return max(1, math.ceil(rounds * self._mean_seconds))

    async def run(self, fn: Callable[[], T]) -> T:
        """Runs ``fn()`` in a worker thread and returns its result.

        Raises:
            QueueFull: all slots are taken.
            JobTimeout: not finished within ``timeout`` seconds.
            Exception: whatever ``fn`` raised.
        """
        with self._lock:
            if self._admitted >= self.capacity:
                full = True
            else:
                full = False
                self._admitted += 1
        if full:
            raise QueueFull(self.retry_after())
        try:
            future = self._executor.submit(self._timed, fn)
        except RuntimeError:  # the executor was shut down
            self._release(None)
            raise
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError as err:  # a waiting job is cancelled; a running one finishes
            raise JobTimeout(f"no result within {self.timeout:g} s") from err

    def _timed(self, fn: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            seconds = time.perf_counter() - start
            with self._lock:
                self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * seconds

    def _release(self, _future: Future[Any] | None) -> None:
        with self._lock:
            self._admitted -= 1

    def close(self) -> None:
        """Stops accepting jobs; waiting jobs are cancelled, running ones finish."""
        self._executor.shutdown(wait=False, cancel_futures=True)
