"""``photostyle stylize``: one photo, a shoot with one look (--style, --lut), or pairs (--pairs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from photostyle.cli.args import (
    SubParsers,
    add_backend_args,
    add_model_args,
    options_from_args,
    stylizer_from_args,
)
from photostyle.cli.errors import EXIT_OK, EXIT_PARTIAL
from photostyle.cli.outputs import check_output
from photostyle.io import ImageError

if TYPE_CHECKING:
    from photostyle.batch import Look


def register(sub: SubParsers) -> None:
    st = sub.add_parser(
        "stylize",
        help="stylize a photo, a whole shoot (--style/--lut) or a folder of pairs with a look",
    )
    st.add_argument(
        "inputs",
        nargs="*",
        type=Path,
        metavar="PHOTO",
        help="CONTENT STYLE (one photo, with -o); or, with --style or --lut, the photos: files, "
        "folders, glob patterns",
    )
    st.add_argument("-o", "--output", type=Path, help="output image (.png, .jpg, .webp, .tif)")
    _add_batch_args(st)
    st.add_argument("--content-mask", type=Path, help="DPST-style colour mask of the content")
    st.add_argument("--style-mask", type=Path, help="DPST-style colour mask of the style")
    st.add_argument(
        "--pairs", type=Path, help="folder with content/, style/ [content_mask/, style_mask/]"
    )
    st.add_argument("--out-dir", type=Path, help="output folder for --pairs, --style, --lut")
    st.add_argument("--no-masks", action="store_true", help="ignore masks in --pairs mode")
    st.add_argument(
        "--sheet", type=Path, help="with --pairs: also write a contact sheet content|style|result"
    )
    add_model_args(st)
    add_backend_args(st)
    st.set_defaults(handler=_cmd_stylize)


def _add_batch_args(p: argparse.ArgumentParser) -> None:
    from photostyle.photo import OUTPUT_FORMATS, OUTPUT_PROFILES

    formats: dict[str, str] = {}  # Pillow format -> its first suffix: jpg, png, tif, webp
    for suffix, (name, _) in OUTPUT_FORMATS.items():
        formats.setdefault(name, suffix[1:])
    p.add_argument("--style", type=Path, help="the look: a style photo applied to every PHOTO")
    p.add_argument(
        "--lut", type=Path, metavar="CUBE", help="the look: a .cube 3D LUT applied to every PHOTO"
    )
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument(
        "--suffix", default="", help="appended to output names: IMG_1.jpg -> IMG_1SUFFIX.jpg"
    )
    p.add_argument(
        "--format",
        choices=list(formats.values()),
        help="output format (default: each photo's own, png for others)",
    )
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality 1-100 (95)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs (default: skip them)"
    )
    p.add_argument(
        "--output-profile",
        choices=OUTPUT_PROFILES,
        default="same",
        help="colour profile of the outputs: same (the photo's own ICC profile) or srgb "
        "(default same)",
    )
    p.add_argument(
        "--bit-depth",
        type=int,
        choices=[8, 16],
        help="bits per sample of the outputs (default: the photo's, 16 only for png/tif)",
    )
    p.add_argument(
        "--strip-metadata",
        action="store_true",
        help="drop the photos' EXIF (camera, date, GPS) from the outputs",
    )


def _cmd_stylize(args: argparse.Namespace) -> int:
    batch = args.style is not None or args.lut is not None
    if args.pairs is not None:
        if args.inputs or args.output or batch:
            raise ValueError("--pairs takes no PHOTO, -o, --style or --lut; use --out-dir")
        if args.out_dir is None:
            raise ValueError("--pairs needs --out-dir")
        check_output(args.out_dir, folder=True)
        return _stylize_folder(args)
    if batch:
        return _stylize_batch(args)
    if len(args.inputs) != 2 or args.output is None:
        raise ValueError(
            "stylize needs CONTENT STYLE -o OUTPUT, or PHOTOS... --style LOOK --out-dir DIR "
            "(or --lut CUBE), or --pairs DIR --out-dir DIR"
        )
    args.content, args.style = args.inputs
    from photostyle.api import check_output_path
    from photostyle.photo import OUTPUT_FORMATS

    plain = args.content_mask is None and args.style_mask is None
    if plain and args.content.is_file() and args.output.suffix.lower() in OUTPUT_FORMATS:
        args.inputs = [args.content]  # colour-managed, with metadata: the one-photo batch path
        return _stylize_batch(args)

    options = options_from_args(args)
    inputs = [args.content, args.style, args.content_mask, args.style_mask]
    if (args.content_mask is None) != (args.style_mask is None):
        raise ValueError("give both --content-mask and --style-mask, or neither")
    if args.content_mask is not None and args.backend == "onnxruntime":
        raise ValueError("--backend onnxruntime does not support masks; use --backend torch")
    for path in inputs:
        if path is not None and not path.is_file():
            raise ImageError(f"{path}: no such file")
    check_output_path(args.output, protect=[p for p in inputs if p is not None])
    out = stylizer_from_args(args).stylize_files(
        args.content,
        args.style,
        args.output,
        content_mask=args.content_mask,
        style_mask=args.style_mask,
        options=options,
    )
    print(f"wrote {out}")
    return EXIT_OK


def _stylize_batch(args: argparse.Namespace) -> int:
    """PHOTOS... with one look (--style photo or --lut file) into --out-dir (or -o for one)."""
    import time

    from tqdm import tqdm

    from photostyle.batch import BatchOptions, BatchPlan, collect_photos, plan_batch, run_batch
    from photostyle.photo import OutputOptions, check_output

    if args.style is not None and args.lut is not None:
        raise ValueError("give --style or --lut, not both")
    if args.content_mask is not None or args.style_mask is not None:
        raise ValueError("masks belong to the single-photo form CONTENT STYLE -o OUT")
    if not args.inputs:
        raise ValueError("no photos given: stylize PHOTOS... --style LOOK --out-dir DIR")
    if (args.output is None) == (args.out_dir is None):
        raise ValueError("give --out-dir DIR (or -o OUT for a single photo)")
    look_file = args.style if args.style is not None else args.lut
    if not look_file.is_file():
        raise ImageError(f"{look_file}: no such file")
    photos = collect_photos(args.inputs, recursive=args.recursive)
    output = OutputOptions(
        profile=args.output_profile,
        bit_depth=args.bit_depth,
        quality=args.quality,
        strip_metadata=args.strip_metadata,
    )
    if args.output is not None:  # one photo, one named output; errors are exit 2
        if len(photos) != 1:
            raise ValueError(f"-o takes one photo, got {len(photos)}; use --out-dir")
        photo = photos[0][0]
        options = BatchOptions(out_dir=args.output.parent, overwrite=True, output=output)
        check_output(args.output, output, protect=[photo, look_file])
        plan = BatchPlan(((photo, args.output),), 0)
    else:
        options = BatchOptions(
            out_dir=args.out_dir,
            suffix=args.suffix,
            format=args.format,
            overwrite=args.overwrite,
            output=output,
        )
        plan = plan_batch(photos, options, protect=[look_file])
    if plan.existing == len(plan.jobs) and not options.overwrite:  # nothing left: no model load
        print(f"all {len(plan.jobs)} outputs exist in {args.out_dir}; --overwrite redoes them")
        return EXIT_OK
    look = _batch_look(args)
    done = skipped = 0
    failures = []
    start = time.perf_counter()
    single = args.output is not None  # errors are raised (exit 2) instead of listed
    bar = tqdm(
        total=len(plan.jobs),
        desc="stylize",
        unit="photo",
        file=sys.stderr,
        delay=1.0,
        disable=single,
    )
    with bar:
        for item in run_batch(plan, look, options):
            bar.update()
            if item.status == "done":
                done += 1
            elif item.status == "skipped":
                skipped += 1
            else:
                failures.append(item)
                if not single:
                    tqdm.write(f"photostyle: {item.error}", file=sys.stderr)
    seconds = time.perf_counter() - start
    if single:
        if failures:
            raise ImageError(failures[0].error)
        print(f"wrote {args.output}")
        return EXIT_OK
    rate = done / seconds if seconds > 0 else 0.0
    print(
        f"stylized {done} of {len(plan.jobs)} photos into {args.out_dir} in {seconds:.1f} s "
        f"({rate:.2f} photos/s); {skipped} existing skipped, {len(failures)} failed"
    )
    for item in failures:
        print(f"  failed: {item.source}", file=sys.stderr)
    return EXIT_PARTIAL if failures else EXIT_OK


def _batch_look(args: argparse.Namespace) -> Look:
    """The look of a batch: the stylizer with the style encoded once, or a LUT."""
    if args.lut is not None:
        from photostyle.lut import apply_lut, read_cube

        lut = read_cube(args.lut)
        return lambda photos: (apply_lut(x, lut) for x in photos)
    from photostyle.photo import read_photo

    style, _ = read_photo(args.style)
    options = options_from_args(args)
    stylizer = stylizer_from_args(args)
    return lambda photos: stylizer.stylize_many(photos, style, options=options)


def _stylize_folder(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from photostyle.api import check_output_path
    from photostyle.batch import pair_files, stylize_pairs
    from photostyle.data.pairs import find_pairs
    from photostyle.eval.sheet import thumbnail, write_sheet

    pairs = find_pairs(args.pairs, use_masks=not args.no_masks)
    if args.backend == "onnxruntime" and any(p.content_mask is not None for p in pairs):
        raise ValueError("--backend onnxruntime does not support masks; pass --no-masks")
    inputs = pair_files(pairs)
    if args.sheet is not None:
        check_output_path(args.sheet, protect=inputs)
    options = options_from_args(args)
    stylizer = stylizer_from_args(args)
    failed = 0
    rows = []
    results = stylize_pairs(stylizer, pairs, args.out_dir, options=options)
    for result in tqdm(results, total=len(pairs), desc="stylize", unit="pair", file=sys.stderr):
        if result.output is None:
            failed += 1
            tqdm.write(f"photostyle: {result.pair.name}: {result.error}", file=sys.stderr)
        elif args.sheet is not None:
            pair = result.pair
            rows.append([thumbnail(p) for p in (pair.content, pair.style, result.output)])
    done = len(pairs) - failed
    print(f"stylized {done} of {len(pairs)} pairs into {args.out_dir}; {failed} failed")
    if args.sheet is not None and rows:
        labels = ["content", "style", "result"]
        print(f"contact sheet: {write_sheet(rows, args.sheet, labels=labels, protect=inputs)}")
    return EXIT_PARTIAL if failed else EXIT_OK
