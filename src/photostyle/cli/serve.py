"""``photostyle serve`` (a local web page and HTTP API) and ``serve-load`` (its load check)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from photostyle.cli.args import SubParsers, add_device_arg, add_weights_args
from photostyle.cli.errors import EXIT_FAILED, EXIT_OK
from photostyle.io import ImageError


def register(sub: SubParsers) -> None:
    sv = sub.add_parser("serve", help="a local web page and HTTP API (needs photostyle[serve])")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=7860, help="0 picks a free port (default 7860)")
    add_device_arg(sv)
    add_weights_args(sv, encoder=False)
    sv.add_argument(
        "--max-size",
        type=int,
        help="working size when a request gives none (default: the model's own)",
    )
    sv.add_argument("--concurrency", type=int, default=1, help="network passes at once (1)")
    sv.add_argument(
        "--max-queue", type=int, default=8, help="requests that may wait; more get 503 (8)"
    )
    sv.add_argument("--timeout", type=float, default=300.0, help="seconds per request (300)")
    sv.add_argument("--max-upload-mb", type=float, default=64.0, help="request body limit (64)")

    ld = sub.add_parser("serve-load", help="load check of a running photostyle serve")
    ld.add_argument("--url", default="http://127.0.0.1:7860", help="the server's base URL")
    ld.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    ld.add_argument("--seconds", type=float, default=30.0, help="duration (default 30)")
    ld.add_argument("--content", type=Path, help="content photo (default: the demo pair)")
    ld.add_argument("--style", type=Path, help="style photo (default: the demo pair)")
    ld.add_argument("--max-size", type=int, help="working size asked for (default: server's)")
    ld.add_argument("--alpha", type=float, help="strength asked for (default 1)")
    ld.add_argument("--allow-remote", action="store_true", help="allow a server on another machine")
    sv.set_defaults(handler=_cmd_serve)
    ld.set_defaults(handler=_cmd_serve_load)


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from photostyle.serve import ServeConfig, create_app
        from photostyle.serve.net import is_loopback, listen_socket
    except ImportError as err:
        raise ValueError(
            f"serve needs the serve extra ({err}): pip install 'photostyle[serve]'"
        ) from err
    from photostyle.api import Stylizer

    config = ServeConfig(
        concurrency=args.concurrency,
        max_queue=args.max_queue,
        timeout=args.timeout,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        default_max_size=args.max_size,
        max_working_size=max(ServeConfig.max_working_size, args.max_size or 0),
    )
    if not is_loopback(args.host):
        print(
            f"photostyle: warning: --host {args.host} lets other machines use this server; it "
            "has no authentication or encryption",
            file=sys.stderr,
        )
    sock = listen_socket(args.host, args.port)  # a taken port fails before the model loads
    with sock:
        stylizer = Stylizer(args.weights, device=args.device)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(
            f"photostyle: serving http://{shown}:{port} (model on {stylizer.device}; Ctrl+C stops)"
        )
        server = uvicorn.Server(
            uvicorn.Config(create_app(stylizer, config), log_level="warning", access_log=False)
        )
        server.run(sockets=[sock])
    return EXIT_OK


def _cmd_serve_load(args: argparse.Namespace) -> int:
    try:
        from photostyle.serve.load import run_load
    except ImportError as err:
        raise ValueError(
            f"serve-load needs the serve extra ({err}): pip install 'photostyle[serve]'"
        ) from err
    from photostyle.io import demo_files

    if (args.content is None) != (args.style is None):
        raise ValueError("give both --content and --style, or neither (the demo pair)")
    content, style = (args.content, args.style) if args.content is not None else demo_files()
    for path in (content, style):
        if not path.is_file():
            raise ImageError(f"{path}: no such file")
    fields = {}
    if args.max_size is not None:
        fields["max_size"] = str(args.max_size)
    if args.alpha is not None:
        fields["alpha"] = str(args.alpha)
    report = run_load(
        args.url,
        content.read_bytes(),
        style.read_bytes(),
        clients=args.clients,
        seconds=args.seconds,
        fields=fields,
        allow_remote=args.allow_remote,
    )
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(report.outcomes.items()))
    print(
        f"{report.clients} clients, {report.seconds:.1f} s: {report.requests} requests "
        f"({outcomes}); {report.throughput:.2f} results/s; latency of 200s "
        f"p50 {report.p50:.2f} s, p95 {report.p95:.2f} s"
    )
    return EXIT_OK if report.ok else EXIT_FAILED
