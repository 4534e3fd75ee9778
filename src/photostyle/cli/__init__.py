"""Command-line interface: wires arguments to the library API. Entry point: ``main(argv) -> int``.

Exit codes: 0 success; 1 some pairs of a folder run failed, or training diverged; 2 bad input or
usage (one-line message, no traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from photostyle.cli import (
    ablate,
    bench,
    demo,
    evaluate,
    export,
    fid,
    index,
    lut,
    speed,
    stylize,
    train,
    video,
)
from photostyle.cli.args import add_device_arg as _add_device_arg
from photostyle.cli.args import dataclass_flags as _dataclass_flags
from photostyle.cli.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    Parser,
    run_command,
)
from photostyle.io import ImageError


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="photostyle", description="Fast photorealistic style transfer.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    stylize.register(sub)
    demo.register(sub)
    evaluate.register(sub)
    train.register(sub)
    bench.register(sub)
    export.register(sub)
    fid.register(sub)
    ablate.register(sub)
    index.register(sub)
    speed.register(sub)
    video.register(sub)
    _add_train_affine_parser(sub)
    _add_serve_parsers(sub)
    lut.register(sub)
    return parser


def _add_serve_parsers(sub: argparse._SubParsersAction) -> None:
    sv = sub.add_parser("serve", help="a local web page and HTTP API (needs photostyle[serve])")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=7860, help="0 picks a free port (default 7860)")
    _add_device_arg(sv)
    sv.add_argument("--weights", type=Path, help="stylizer .safetensors (default: shipped model)")
    sv.add_argument(
        "--max-size", type=int, default=1024, help="working size when a request gives none"
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
        max_working_size=max(2048, args.max_size),
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
    from importlib import resources

    if (args.content is None) != (args.style is None):
        raise ValueError("give both --content and --style, or neither (the demo pair)")
    assets = resources.files("photostyle") / "assets"
    content = args.content or Path(str(assets / "demo_content.jpg"))
    style = args.style or Path(str(assets / "demo_style.jpg"))
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # usage error (one line, code 2) or --help (code 0)
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    commands = {
        "train-affine": _cmd_train_affine,
        "serve": _cmd_serve,
        "serve-load": _cmd_serve_load,
    }
    return run_command(getattr(args, "handler", None) or commands[args.command], args)


def _add_train_affine_parser(sub: argparse._SubParsersAction) -> None:
    from photostyle.train.affine import AffineTrainConfig

    ta = sub.add_parser(
        "train-affine",
        help="train the affine colour head (resumes from --out-dir)",
        description="Train the affine colour head along the SSIM / Gram frontier "
        "(photostyle.train.affine); running again with the same --out-dir resumes.",
    )
    _dataclass_flags(ta, AffineTrainConfig)


def _cmd_train_affine(args: argparse.Namespace) -> int:
    import dataclasses

    from tqdm import tqdm

    from photostyle.train.affine import AffineTrainConfig, train_affine

    config = AffineTrainConfig(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(AffineTrainConfig)}
    )
    with tqdm(total=config.steps, desc="train-affine", unit="step") as bar:

        def progress(step: int, terms: dict[str, float]) -> None:
            bar.n = step
            bar.set_postfix(gram=f"{terms['log_gram_ratio']:.3f}", ssim=f"{terms['ssim']:.3f}")

        path = train_affine(config, progress=progress)
    print(f"stylizer: {path}")
    return 0
