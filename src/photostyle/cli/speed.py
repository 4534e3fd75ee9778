"""``photostyle speed``: time the network under each speed knob (bf16, channels_last...) against
the device's matmul peak."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from photostyle.cli.args import SubParsers, add_weights_args, device_type
from photostyle.cli.errors import EXIT_OK
from photostyle.cli.outputs import check_output, write_json


def register(sub: SubParsers) -> None:
    from photostyle.eval.speed import KNOBS

    sp = sub.add_parser(
        "speed",
        help="time the network under each speed knob (bf16, channels_last...) and report the "
        "fraction of the device's matmul peak it reaches",
    )
    sp.add_argument(
        "--sizes",
        default="512x256,1024x512",
        help="comma-separated working sizes WIDTHxHEIGHT (default 512x256,1024x512)",
    )
    sp.add_argument(
        "--knobs",
        default=",".join(k for k in KNOBS if k != "compile"),
        help="comma-separated knobs: float32 (baseline), inference_mode, channels_last, "
        "bfloat16, compile, threads=N, batch=N (default: all but compile)",
    )
    sp.add_argument("--runs", type=int, default=3, help="timed runs per knob (default 3)")
    add_weights_args(sp)
    sp.add_argument("--json", type=Path, help="also write the rows as JSON")
    sp.add_argument(
        "--device",
        type=device_type,
        default="cpu",
        help="cpu, cuda or cuda:N (default cpu); the peak is that device's matmul rate",
    )
    sp.set_defaults(handler=_cmd_speed)


def _cmd_speed(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from photostyle.api import Stylizer
    from photostyle.eval.bench import demo_pair, parse_sizes, resize_image
    from photostyle.eval.speed import (
        SpeedRow,
        check_knobs,
        run_speed,
        speed_json,
        speed_table_markdown,
    )
    from photostyle.utils import cpu_has_fast_bfloat16, resolve_device

    check_output(args.json)
    if args.runs < 1:
        raise ValueError(f"--runs must be at least 1, got {args.runs}")
    sizes = parse_sizes(args.sizes)
    knobs = [k.strip() for k in args.knobs.split(",") if k.strip()]
    check_knobs(knobs)
    device = resolve_device(args.device)
    if "bfloat16" in knobs and device.type == "cpu" and not cpu_has_fast_bfloat16():
        knobs.remove("bfloat16")  # reference kernels: minutes per pass, nothing to learn
        print("photostyle: skipping bfloat16: this CPU has no bfloat16 units", file=sys.stderr)
    stylizer = Stylizer(args.weights, device="cpu", encoder_weights=args.encoder_weights)
    content, style = demo_pair()
    rows: list[SpeedRow] = []
    with tqdm(total=len(sizes) * len(knobs), desc="speed", file=sys.stderr, delay=1.0) as bar:

        def progress(row: SpeedRow) -> None:
            bar.set_postfix_str(f"{row.knob} {row.size}: {row.median_s:.3g} s")
            bar.update()

        for size in sizes:
            c, s = resize_image(content, size)[None], resize_image(style, size)[None]
            rows += run_speed(
                stylizer.model, c, s, knobs=knobs, runs=args.runs, progress=progress, device=device
            )
    print(speed_table_markdown(rows), end="")
    if args.json is not None:  # (the environment is probed only when asked for)
        write_json(args.json, speed_json(rows, device), "timings")
    return EXIT_OK
