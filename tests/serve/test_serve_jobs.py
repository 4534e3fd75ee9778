"""The bounded job queue, sockets and loopback checks of the web server."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from photostyle.serve.jobs import JobQueue, JobTimeout, QueueFull
from photostyle.serve.net import is_loopback, listen_socket


def test_jobs_run_one_at_a_time_off_the_event_loop() -> None:
    queue = JobQueue(concurrency=1, max_waiting=4, timeout=10)
    active, most = [0], [0]
    lock = threading.Lock()
    loop_thread = threading.get_ident()

    def job(i: int) -> int:
        assert threading.get_ident() != loop_thread
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        return i * i

    async def main() -> list[int]:
        return await asyncio.gather(*(queue.run(lambda i=i: job(i)) for i in range(5)))

    assert asyncio.run(main()) == [0, 1, 4, 9, 16]
    assert most[0] == 1 and queue.admitted == 0
    queue.close()


def test_a_full_queue_refuses_and_a_slot_frees_after_a_timeout() -> None:
    gate = threading.Event()
    queue = JobQueue(concurrency=1, max_waiting=1, timeout=0.1)

    async def main() -> None:
        first = asyncio.create_task(queue.run(lambda: gate.wait(5)))
        second = asyncio.create_task(queue.run(lambda: 2))
        await asyncio.sleep(0.02)
        assert queue.full() and queue.admitted == 2
        with pytest.raises(QueueFull) as busy:
            await queue.run(lambda: 3)
        assert busy.value.retry_after >= 1
        with pytest.raises(JobTimeout):
            await first  # still running in its thread: keeps its slot
        with pytest.raises(JobTimeout):
            await second  # cancelled while waiting: its slot is free
        assert queue.admitted == 1
        gate.set()
        for _ in range(100):
            if queue.admitted == 0:
                break
            await asyncio.sleep(0.01)
        assert queue.admitted == 0
        assert await queue.run(lambda: 4) == 4

    asyncio.run(main())
    queue.close()


def test_job_errors_reach_the_caller() -> None:
    queue = JobQueue()

    def fail() -> None:
        raise ValueError("bad mask")

    with pytest.raises(ValueError, match="bad mask"):
        asyncio.run(queue.run(fail))
    assert queue.admitted == 0
    queue.close()


def test_queue_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        JobQueue(concurrency=0)
    with pytest.raises(ValueError, match="timeout"):
        JobQueue(timeout=0)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.2", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_listen_socket_picks_a_port_and_reports_a_taken_one() -> None:
    with listen_socket("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
        assert port > 0
        with pytest.raises(ValueError, match=rf"^cannot listen on 127.0.0.1:{port} \("):
            listen_socket("127.0.0.1", port)
    with pytest.raises(ValueError, match=r"--port must be in 0\.\.65535"):
        listen_socket("127.0.0.1", 70000)
