"""``photostyle stylize-video``: a video or a folder of frames with one style photo (or a LUT),
steady over time."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from photostyle.cli.args import SubParsers, add_model_args, flag_config, stylizer_from_args
from photostyle.cli.errors import EXIT_OK


def register(sub: SubParsers) -> None:
    from photostyle.video import ClipOptions

    sv = sub.add_parser(
        "stylize-video",
        help="stylize a video or a folder of frames with one style photo, steady over time",
    )
    sv.add_argument("input", type=Path, help="video file or folder of frames (sorted by name)")
    sv.add_argument(
        "output", type=Path, help="video (.mp4, .mkv, .mov) or a new folder of PNG frames"
    )
    sv.add_argument("--style", type=Path, help="style photo")
    sv.add_argument(
        "--lut",
        type=Path,
        metavar="CUBE",
        help="instead of --style: apply a .cube 3D LUT to every frame (no model; exactly as "
        "steady as the input)",
    )
    sv.add_argument(
        "--per-frame",
        action="store_true",
        help="stylize every frame on its own (the baseline) instead of with clip statistics",
    )
    sv.add_argument(
        "--smoothing",
        type=float,
        default=ClipOptions.smoothing,
        help="weight of earlier frames in each frame's FA statistics, in [0, 1); 0 = the "
        f"frame's own (default {ClipOptions.smoothing})",
    )
    sv.add_argument(
        "--no-deflicker", action="store_true", help="keep exposure flicker of the input"
    )
    sv.add_argument(
        "--fps", type=float, help="output frame rate (default: the input video's; 25 for frames)"
    )
    add_model_args(sv)
    sv.set_defaults(handler=_cmd_stylize_video)


def _cmd_stylize_video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from photostyle.io import load_image
    from photostyle.video import ClipOptions, check_output, open_clip, stylize_video

    options = flag_config(  # messages name the flag (--smoothing, not smoothing)
        ClipOptions,
        alpha=args.alpha,
        max_size=args.max_size,
        per_frame=args.per_frame,
        smoothing=args.smoothing,
        deflicker=not args.no_deflicker,
        upsample=args.upsample,
    )
    if args.fps is not None and not args.fps > 0:
        raise ValueError(f"--fps must be positive, got {args.fps}")
    if (args.style is None) == (args.lut is None):
        raise ValueError("stylize-video needs --style PHOTO or --lut CUBE (one of them)")
    if args.lut is not None:
        return _grade_video(args)
    style = load_image(args.style)
    check_output(args.output, open_clip(args.input), (args.style,))  # before loading the model
    stylizer = stylizer_from_args(args)
    with tqdm(desc="stylize-video", unit="frame", file=sys.stderr, delay=1.0) as bar:

        def progress(done: int, total: int | None) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = stylize_video(
            stylizer,
            args.input,
            args.output,
            style,
            options=options,
            fps=args.fps,
            protect=(args.style,),
            progress=progress,
        )
    mode = "per-frame" if args.per_frame else "clip"
    print(
        f"wrote {result.frames} frames to {result.output} ({mode}); "
        f"flicker {result.flicker:.4f} (output / input frame change)"
    )
    return EXIT_OK


def _grade_video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from photostyle.lut import read_cube
    from photostyle.video import grade_video

    lut = read_cube(args.lut)
    with tqdm(desc="stylize-video", unit="frame", file=sys.stderr, delay=1.0) as bar:

        def progress(done: int, total: int | None) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = grade_video(
            args.input, args.output, lut, fps=args.fps, protect=(args.lut,), progress=progress
        )
    print(
        f"wrote {result.frames} frames to {result.output} (LUT {args.lut.name}); "
        f"flicker {result.flicker:.4f} (output / input frame change)"
    )
    return EXIT_OK
