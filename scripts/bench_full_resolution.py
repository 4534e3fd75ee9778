"""The full-resolution stage before and after its rewrite, in one process (docs/speed.md).

Times the affine head's last step as ``Stylizer.stylize`` runs it, a (1, 12, h, w) colour model at
working size 256 applied to a (1, 3, H, W) photo plus the clamp to [0, 1], for release 0.3's
:func:`apply_local_affine` (kept here only, below, as ``previous``) and the library's, interleaved
call by call (median of ``--runs``), with a fresh output buffer per call as the API allocates.
Prints per size and thread count the median seconds, the speed-up, the bytes the stage must move
(24 per pixel: float32 RGB read and written) per second against ``dst.copy_(src)``'s measured
bandwidth (:func:`photostyle.eval.end_to_end.copy_bandwidth`), and the largest difference.

With ``--end-to-end`` it times instead the whole job of ``photostyle stylize`` (decode, stylize with
the default model, encode the JPEG; :func:`photostyle.eval.end_to_end.stylizer_job` on the synthetic
photos of ``photostyle bench --end-to-end``) with release 0.3's full-resolution step and float to
8-bit conversion (``previous``, ``previous_quantize``) swapped in and out job by job, and prints
the median per stage.

Run: ``OMP_NUM_THREADS=1 python scripts/bench_full_resolution.py --threads 1,2`` and
``OMP_NUM_THREADS=1 python scripts/bench_full_resolution.py --end-to-end``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import photostyle.api
import photostyle.photo
from photostyle.api import StylizeOptions, Stylizer
from photostyle.eval.end_to_end import (
    FULL_RES_BYTES_PER_PIXEL,
    PROFILE_STAGES,
    copy_bandwidth,
    cpu_model,
    make_photos,
    stylizer_job,
)
from photostyle.photo import _quantize
from photostyle.upsample import _linear_taps, apply_local_affine


def previous(coeffs: torch.Tensor, guide: torch.Tensor, strip_rows: int = 256) -> torch.Tensor:
    """Release 0.3's apply_local_affine (gathers of whole strips), then the API's clamp."""
    b, n, h, w = coeffs.shape
    c = n // 4
    height, width = guide.shape[-2:]
    out = guide.new_empty(b, c, height, width)
    rows_lo, rows_hi, wy = _linear_taps(height, h, coeffs.device)
    cols_lo, cols_hi, wx = _linear_taps(width, w, coeffs.device)
    wy, wx = wy.to(coeffs.dtype), wx.to(coeffs.dtype)
    for y0 in range(0, height, strip_rows):
        y1 = min(height, y0 + strip_rows)
        r0, r1 = int(rows_lo[y0]), int(rows_hi[y1 - 1]) + 1
        block = coeffs[:, :, r0:r1]
        cols = torch.lerp(block.index_select(3, cols_lo), block.index_select(3, cols_hi), wx)
        strip = torch.lerp(
            cols.index_select(2, rows_lo[y0:y1] - r0),
            cols.index_select(2, rows_hi[y0:y1] - r0),
            wy[y0:y1, None],
        )
        g = guide[:, :, y0:y1]
        target = out[:, :, y0:y1]
        for k in range(c):
            acc = strip[:, 3 * c + k] + strip[:, 3 * k] * g[:, 0]
            acc.addcmul_(strip[:, 3 * k + 1], g[:, 1]).addcmul_(strip[:, 3 * k + 2], g[:, 2])
            target[:, k] = acc
    return out.clamp_(0, 1)


def previous_quantize(image: torch.Tensor, depth: int) -> np.ndarray:
    """Release 0.3's float -> integer conversion in ``write_photo`` (six full-size passes)."""
    hwc = torch.nan_to_num(image.detach().float().cpu(), nan=0.0).clamp(0, 1).permute(1, 2, 0)
    scale = 65535.0 if depth == 16 else 255.0
    samples = np.rint(np.clip(hwc.numpy(), 0.0, 1.0) * scale)
    return samples.astype(np.uint16 if depth == 16 else np.uint8)


def previous_api(coeffs: torch.Tensor, guide: torch.Tensor, **_: object) -> torch.Tensor:
    """``previous`` where the API calls ``apply_local_affine(coeffs, c_full, clamp=True)``."""
    return previous(coeffs, guide)


def end_to_end(sizes: list[tuple[int, int]], runs: int) -> None:
    """Median seconds per stage of the whole job, previous and new step, interleaved."""
    stylizer = Stylizer(device="cpu")
    steps: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., np.ndarray]]] = {
        "previous": (previous_api, previous_quantize),
        "new": (apply_local_affine, _quantize),
    }
    with tempfile.TemporaryDirectory() as tmp:
        photos = make_photos(Path(tmp), sizes)
        print("| size | full-resolution step | " + " | ".join(PROFILE_STAGES) + " | job s |")
        print("| --- | --- |" + " ---: |" * (len(PROFILE_STAGES) + 1))
        for photo in photos:
            times: dict[str, list[dict[str, float]]] = {name: [] for name in steps}
            for i in range(runs + 1):  # the first round is a warm-up
                for name, (step, quantize) in steps.items():
                    stages: dict[str, float] = {}

                    def hook(stage: str, seconds: float, stages: dict[str, float] = stages) -> None:
                        stages[stage] = stages.get(stage, 0.0) + seconds

                    photostyle.api.apply_local_affine = step
                    photostyle.photo._quantize = quantize
                    job = stylizer_job(stylizer, StylizeOptions(), draft=True, on_stage=hook)
                    start = time.perf_counter()
                    with torch.inference_mode():
                        job(photo.content, photo.style, Path(tmp) / "out.jpg")
                    stages["job"] = time.perf_counter() - start
                    if i > 0:
                        times[name].append(stages)
            photostyle.api.apply_local_affine = apply_local_affine
            photostyle.photo._quantize = _quantize
            for name, rows in times.items():
                med = {k: statistics.median(r.get(k, 0.0) for r in rows) for k in rows[0]}
                cells = " | ".join(f"{med.get(k, 0.0):.3g}" for k in PROFILE_STAGES)
                size = f"{photo.size[1]}x{photo.size[0]}"
                print(f"| {size} | {name} | {cells} | {med['job']:.3g} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="4000x3000,6000x4000", help="WxH, comma-separated")
    parser.add_argument("--threads", default="1", help="torch intra-op threads, comma-separated")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--working-size", type=int, default=256)
    parser.add_argument("--end-to-end", action="store_true", help="the whole job, per stage")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, torch {torch.__version__}")
    if args.end_to_end:
        sizes = [tuple(int(v) for v in size.split("x"))[::-1] for size in args.sizes.split(",")]
        end_to_end([(h, w) for h, w in sizes], args.runs)
        return
    for n_threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(n_threads)
        bandwidth = copy_bandwidth("cpu")
        print(f"\nthreads {n_threads}: copy bandwidth {bandwidth:.1f} GB/s")
        print("| size | previous s | new s | speed-up | new GB/s | of bandwidth | max diff |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            scale = args.working_size / max(height, width)
            h, w = round(height * scale), round(width * scale)
            gen = torch.Generator().manual_seed(0)
            coeffs = 0.3 * torch.randn(1, 12, h, w, generator=gen)
            coeffs[:, [0, 4, 8]] += 1.0  # near the identity, as trained colour models are
            guide = torch.rand(1, 3, height, width, generator=gen)
            fns = {
                "previous": lambda c=coeffs, g=guide: previous(c, g),
                "new": lambda c=coeffs, g=guide: apply_local_affine(c, g, clamp=True),
            }
            diff = float((fns["previous"]() - fns["new"]()).abs().max())
            times: dict[str, list[float]] = {name: [] for name in fns}
            for _ in range(args.runs):
                for name, fn in fns.items():
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
            old, new = (statistics.median(times[name]) for name in fns)
            gbps = FULL_RES_BYTES_PER_PIXEL * height * width / new / 1e9
            print(
                f"| {size} | {old:.3f} | {new:.3f} | {old / new:.1f} | {gbps:.2f} "
                f"| {gbps / bandwidth:.0%} | {diff:.1e} |"
            )


if __name__ == "__main__":
    main()
