"""``photostyle serve`` and ``photostyle serve-load`` wiring, and the load check itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from photostyle import cli
from photostyle.serve import ServeConfig, create_app
from photostyle.serve.load import run_load
from photostyle.serve.net import listen_socket


@pytest.fixture
def live_url(fake_stylizer: Any) -> Iterator[str]:
    """A server with the fake stylizer on a free loopback port, in a thread."""
    sock = listen_socket("127.0.0.1", 0)
    app = create_app(fake_stylizer, ServeConfig(max_queue=1))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_load_check_counts_answers(live_url: str, make_png: Any) -> None:
    report = run_load(
        live_url, make_png(), make_png(seed=1), clients=4, seconds=0.5, fields={"alpha": "0.5"}
    )
    assert report.ok > 0 and report.outcomes["200"] == report.ok
    assert set(report.outcomes) <= {"200", "503"}  # 4 clients, 2 slots: some are refused
    assert report.requests == sum(report.outcomes.values())
    assert 0 < report.p50 <= report.p95 and report.throughput > 0


def test_serve_load_cli(live_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["serve-load", "--url", live_url, "--clients", "2", "--seconds", "0.3"]
    assert cli.main([*argv, "--max-size", "64"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 clients, ") and "200: " in out and "p95" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--url", "http://192.168.0.9:7860"], "192.168.0.9 is not this machine"),
        (["--url", "ftp://127.0.0.1"], "--url: expected http://HOST:PORT"),
        (["--clients", "0"], "--clients must be at least 1"),
        (["--content", "missing.jpg"], "give both --content and --style"),
        (["--content", "missing.jpg", "--style", "x.jpg"], "missing.jpg: no such file"),
    ],
)
def test_serve_load_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve-load", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_serve_refuses_a_taken_port_before_loading(capsys: pytest.CaptureFixture[str]) -> None:
    with listen_socket("127.0.0.1", 0) as sock:
        port = str(sock.getsockname()[1])
        assert cli.main(["serve", "--port", port]) == 2
    err = capsys.readouterr().err
    assert err == f"photostyle: error: cannot listen on 127.0.0.1:{port} (Address already in use)\n"


def test_serve_warns_on_all_interfaces_and_runs_uvicorn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: served.append(sockets))
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("photostyle: warning: --host 0.0.0.0 lets other machines")
    assert captured.out.startswith("photostyle: serving http://0.0.0.0:")
    assert len(served) == 1


def test_serve_bad_settings_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--concurrency", "0", "--port", "0"]) == 2
    assert capsys.readouterr().err == "photostyle: error: concurrency must be at least 1, got 0\n"
