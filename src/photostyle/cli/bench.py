"""``photostyle bench``: time photostyle and the baselines (paper Table I), file to file
(--end-to-end), or per stage (--profile)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from photostyle.api import DEFAULT_MAX_SIZE
from photostyle.cli.args import SubParsers, add_device_arg, add_weights_args, flag_config
from photostyle.cli.errors import EXIT_OK
from photostyle.cli.outputs import check_output, plot_target, write_json
from photostyle.dtypes import COMPUTE_DTYPES, DEFAULT_COMPUTE_DTYPE
from photostyle.models.layers import FA_VARIANTS
from photostyle.upsample import UPSAMPLE_METHODS


def register(sub: SubParsers) -> None:
    from photostyle.eval.bench import BENCH_METHODS, PAPER_SIZES
    from photostyle.eval.end_to_end import E2E_METHODS, E2E_SIZES

    be = sub.add_parser("bench", help="time photostyle and the baselines (paper Table I)")
    be.add_argument(
        "--sizes",
        help=f"comma-separated WIDTHxHEIGHT sizes (default {_sizes(PAPER_SIZES)}; with "
        f"--end-to-end or --profile {_sizes(E2E_SIZES)})",
    )
    be.add_argument(
        "--method",
        nargs="+",
        action="extend",
        help=f"{', '.join(BENCH_METHODS)} (default: all, in that order), "
        "photostyle-onnxruntime (the network run by onnxruntime; not in the default); with "
        f"--end-to-end: {', '.join(E2E_METHODS)} (default), shipped (the bundled default "
        "model, to time a candidate --weights against) or another colour transfer",
    )
    be.add_argument(
        "--end-to-end",
        action="store_true",
        help="time the whole job, file to file (decode, stylize, encode a JPEG) on synthetic "
        "photos, against the previous release and the classical peers",
    )
    be.add_argument(
        "--profile",
        action="store_true",
        help="median seconds per stage (decode, resize, style encoding, network, full "
        "resolution, encode) of the stylizers' jobs, and the memory bandwidth reached",
    )
    be.add_argument(
        "--previous-weights",
        type=Path,
        help="with --end-to-end/--profile: the previous release's checkpoint, run at working "
        "size 1024 with guided upsampling (default: the bundled photostyle_vgg16.safetensors)",
    )
    be.add_argument(
        "--dtypes",
        default=DEFAULT_COMPUTE_DTYPE,
        help="with --end-to-end: photostyle's network dtypes, comma-separated: "
        f"{', '.join(COMPUTE_DTYPES)} (default {DEFAULT_COMPUTE_DTYPE})",
    )
    be.add_argument(
        "--draft",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --end-to-end/--profile: decode the style JPEG at reduced scale where the "
        "working size allows (default on)",
    )
    be.add_argument(
        "--workdir",
        type=Path,
        help="with --end-to-end/--profile: folder for the synthetic photos and results "
        "(default: a temporary folder)",
    )
    be.add_argument("--runs", type=int, default=5, help="timed runs per case (default 5)")
    be.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    add_device_arg(be)
    be.add_argument("--json", type=Path, help="also write the rows and settings as JSON")
    be.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="also plot time and peak memory against megapixels (needs matplotlib)",
    )
    add_weights_args(be)
    be.add_argument("--fa", choices=FA_VARIANTS, help="FA variant")
    be.add_argument(
        "--max-size",
        type=int,
        help="cap photostyle's working size, as stylize does (default "
        f"{DEFAULT_MAX_SIZE}: the paper's Table I "
        "sizes run the network at full size; with --end-to-end: stylize's default); larger "
        "sizes are brought up by --upsample",
    )
    be.add_argument(
        "--upsample",
        choices=UPSAMPLE_METHODS,
        default="guided",
        help="with --max-size: guided, change or bicubic (default guided)",
    )
    be.add_argument(
        "--onnx",
        type=Path,
        metavar="FILE",
        help="network of the photostyle-onnxruntime method (default: export once into the cache)",
    )
    be.set_defaults(handler=_cmd_bench)


def _sizes(sizes: tuple[tuple[int, int], ...]) -> str:
    from photostyle.eval.bench import format_size

    return ",".join(format_size(size) for size in sizes)


def _cmd_bench(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from photostyle.eval.bench import (
        BENCH_METHODS,
        PAPER_SIZES,
        BenchConfig,
        BenchRow,
        bench_json,
        bench_table_markdown,
        parse_sizes,
        run_bench,
    )

    check_output(args.json)
    if args.end_to_end and args.profile:
        raise ValueError("give --end-to-end or --profile, not both")
    if args.profile and args.plot is not None:
        raise ValueError("--plot goes with --end-to-end (or the plain bench), not --profile")
    plot = plot_target(args.plot, None)
    if args.end_to_end or args.profile:
        return _bench_end_to_end(args, plot)
    config = flag_config(
        BenchConfig,
        sizes=parse_sizes(args.sizes) if args.sizes else PAPER_SIZES,
        methods=tuple(args.method or BENCH_METHODS),
        runs=args.runs,
        warmup=args.warmup,
        device=args.device,
        weights=None if args.weights is None else str(args.weights),
        encoder_weights=args.encoder_weights,
        fa=args.fa,
        onnx=None if args.onnx is None else str(args.onnx),
        max_size=args.max_size if args.max_size is not None else DEFAULT_MAX_SIZE,
        upsample=args.upsample,
    )
    total = len(config.sizes) * len(config.methods)
    with tqdm(total=total, desc="bench", unit="case", file=sys.stderr, delay=1.0) as bar:

        def progress(row: BenchRow) -> None:
            bar.set_postfix_str(f"{row.method} {row.size}: {row.median_s:.3g} s")
            bar.update()

        rows = run_bench(config, progress=progress)
    print(bench_table_markdown(rows), end="")
    write_json(args.json, bench_json(rows, config), "timings")
    if plot is not None:
        from photostyle.eval.plots import plot_bench

        print(f"plot: {plot_bench(rows, plot)}")
    return EXIT_OK


def _bench_end_to_end(args: argparse.Namespace, plot: Path | None) -> int:
    """``bench --end-to-end`` (file to file) and ``bench --profile`` (stages)."""
    import tempfile
    from dataclasses import replace

    from tqdm import tqdm

    from photostyle.eval.bench import parse_sizes
    from photostyle.eval.end_to_end import (
        EndToEndConfig,
        EndToEndRow,
        copy_bandwidth,
        cpu_model,
        end_to_end_json,
        end_to_end_markdown,
        profile_json,
        profile_markdown,
        run_end_to_end,
        run_profile,
    )
    from photostyle.utils import resolve_device

    config = EndToEndConfig(
        runs=args.runs,
        warmup=args.warmup,
        device=args.device,
        dtypes=tuple(d.strip() for d in args.dtypes.split(",") if d.strip()),
        weights=None if args.weights is None else str(args.weights),
        encoder_weights=args.encoder_weights,
        max_size=args.max_size,
        draft=args.draft,
    )
    if args.sizes is not None:
        config = replace(config, sizes=parse_sizes(args.sizes))
    if args.method:
        config = replace(config, methods=tuple(args.method))
    if args.previous_weights is not None:
        if not args.previous_weights.is_file():
            raise ValueError(f"--previous-weights {args.previous_weights}: no such file")
        config = replace(config, previous_weights=str(args.previous_weights))
    if args.workdir is not None and args.workdir.exists() and not args.workdir.is_dir():
        raise ValueError(f"--workdir {args.workdir}: not a folder")
    print(f"CPU: {cpu_model()}")
    with tempfile.TemporaryDirectory(prefix="photostyle-bench-") as tmp:
        folder = args.workdir if args.workdir is not None else Path(tmp)
        if args.profile:
            bandwidth = copy_bandwidth(resolve_device(config.device))
            with tqdm(desc="profile", unit="case", file=sys.stderr, delay=1.0) as bar:
                prows = run_profile(
                    config, folder, bandwidth_gbps=bandwidth, progress=lambda _: bar.update()
                )
            print(profile_markdown(prows, bandwidth), end="")
            report = profile_json(prows, config, bandwidth)
        else:
            with tqdm(desc="bench", unit="case", file=sys.stderr, delay=1.0) as bar:

                def progress(row: EndToEndRow) -> None:
                    bar.set_postfix_str(f"{row.method} {row.size}: {row.median_s:.3g} s")
                    bar.update()

                rows = run_end_to_end(config, folder, progress=progress)
            print(end_to_end_markdown(rows), end="")
            report = end_to_end_json(rows, config)
            if plot is not None:
                from photostyle.eval.plots import plot_bench

                print(f"plot: {plot_bench(rows, plot)}")
    write_json(args.json, report, "timings")
    return EXIT_OK
