"""float32 against bfloat16 for the default stylizer, in one process (docs/speed.md, "bfloat16").

For each size, the synthetic photos of ``photostyle bench --end-to-end`` are decoded once (the style
at reduced scale, as the bench does) and stylized by two :class:`~photostyle.api.Stylizer`'s of the
default model, ``dtype=float32`` and ``dtype=bfloat16``, call by call interleaved (median of
``--runs`` after a warm-up). Prints the median seconds of the whole call and of its network
stages (style encoding + network, from the stage hook), the ratio, and how far the bfloat16 result
is from the float32 one: PSNR over the float results in [0, 1], and the largest difference in
8-bit levels after rounding.

Run: ``OMP_NUM_THREADS=1 python scripts/compare_dtypes.py``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch

from photostyle.api import StylizeOptions, Stylizer
from photostyle.eval.end_to_end import cpu_model, make_photos
from photostyle.photo import read_photo
from photostyle.utils import cpu_has_fast_bfloat16

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
NETWORK_STAGES = ("style_encoding", "network")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1024x512,4000x3000", help="WxH, comma-separated")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(
        f"CPU: {cpu_model()}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"capability {torch.backends.cpu.get_cpu_capability()}, "
        f"bfloat16 units: {cpu_has_fast_bfloat16()}"
    )
    stylizers = {name: Stylizer(device="cpu", dtype=dtype) for name, dtype in DTYPES.items()}
    options = StylizeOptions()
    reduce_to = stylizers["float32"].working_max_size(options)
    sizes = [tuple(int(v) for v in size.split("x"))[::-1] for size in args.sizes.split(",")]
    print(
        "| size | float32 call s | bfloat16 call s | ratio | float32 network s "
        "| bfloat16 network s | ratio | PSNR dB | max diff (8-bit levels) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for photo in make_photos(Path(tmp), [(h, w) for h, w in sizes]):
            content, _ = read_photo(photo.content)
            style, _ = read_photo(photo.style, reduce_to=reduce_to)
            calls: dict[str, list[float]] = {name: [] for name in DTYPES}
            nets: dict[str, list[float]] = {name: [] for name in DTYPES}
            outputs: dict[str, torch.Tensor] = {}
            for i in range(args.runs + 1):  # the first round is a warm-up
                for name, stylizer in stylizers.items():
                    stages: dict[str, float] = {}

                    def hook(stage: str, seconds: float, stages: dict[str, float] = stages) -> None:
                        stages[stage] = stages.get(stage, 0.0) + seconds

                    start = time.perf_counter()
                    outputs[name] = stylizer.stylize(content, style, options=options, on_stage=hook)
                    if i > 0:
                        calls[name].append(time.perf_counter() - start)
                        nets[name].append(sum(stages.get(s, 0.0) for s in NETWORK_STAGES))
            call = {name: statistics.median(t) for name, t in calls.items()}
            net = {name: statistics.median(t) for name, t in nets.items()}
            a, b = outputs["float32"].double(), outputs["bfloat16"].double()
            mse = float(((a - b) ** 2).mean())
            psnr = math.inf if mse == 0 else 10 * math.log10(1 / mse)
            levels = float(((a * 255).round() - (b * 255).round()).abs().max())
            size = f"{photo.size[1]}x{photo.size[0]}"
            print(
                f"| {size} | {call['float32']:.3g} | {call['bfloat16']:.3g} "
                f"| {call['bfloat16'] / call['float32']:.2f} | {net['float32']:.3g} "
                f"| {net['bfloat16']:.3g} | {net['bfloat16'] / net['float32']:.2f} "
                f"| {psnr:.1f} | {levels:.0f} |"
            )


if __name__ == "__main__":
    main()
