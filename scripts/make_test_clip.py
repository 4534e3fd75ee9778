"""Make a synthetic but realistic test clip from one photo: a pan and zoom with exposure flicker.

A crop window slides across the photo and slowly zooms in (the camera moves), each frame gets a
random global gain and a small white-balance wobble (auto-exposure flicker), Gaussian sensor noise,
and 8-bit quantisation. Frames are written as ``frame_0000.png``... into a new temporary folder
(or ``--out``, which must be outside the repository); the folder is printed.

    python scripts/make_test_clip.py --photo ../shared/data/photos/house_frontal/100_frontal.jpg
    photostyle stylize-video CLIP_DIR out_clip --style STYLE.jpg
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = REPO.parent / "shared/data/photos/house_frontal/100_frontal.jpg"


def make_clip(
    photo: Image.Image,
    *,
    frames: int = 36,
    size: tuple[int, int] = (256, 176),
    pan: float = 0.6,
    zoom: float = 1.15,
    exposure: float = 0.04,
    white_balance: float = 0.01,
    noise: float = 0.01,
    seed: int = 0,
    passer: Image.Image | None = None,
) -> list[np.ndarray]:
    """The frames, each (H, W, 3) uint8.

    Args:
        photo: the source photo (RGB).
        frames: number of frames.
        size: (width, height) of the frames.
        pan: fraction of the free horizontal range the window travels.
        zoom: magnification at the last frame relative to the first.
        exposure: standard deviation of the per-frame global gain (1 + N(0, exposure)).
        white_balance: standard deviation of the extra per-channel gain.
        noise: standard deviation of the Gaussian noise, in [0, 1] units.
        seed: random seed.
        passer: optional second photo; an elliptical cut-out of it (60% of the frame height)
            crosses the frame from left to right, like something passing in front of the camera.
    """
    rng = np.random.default_rng(seed)
    pw, ph = photo.size
    w, h = size
    base = min(pw / w, ph / h) * 0.85  # source pixels per frame pixel at the first frame
    out = []
    for t in range(frames):
        u = t / max(frames - 1, 1)
        scale = base / zoom**u  # (source px per frame px) shrinks: zoom in
        cw, ch = w * scale, h * scale
        x0 = (pw - cw) * (0.5 - pan / 2 + pan * u)
        y0 = (ph - ch) * (0.5 + 0.1 * np.sin(2 * np.pi * u))  # a slight vertical drift
        crop = photo.transform(
            (w, h),
            Image.Transform.EXTENT,
            (x0, y0, x0 + cw, y0 + ch),
            resample=Image.Resampling.BICUBIC,
        )
        if passer is not None:
            crop = _pass_in_front(crop, passer, u)
        pixels = np.asarray(crop, dtype=np.float32) / 255.0
        gain = 1.0 + exposure * rng.standard_normal() + white_balance * rng.standard_normal(3)
        pixels = pixels * gain + noise * rng.standard_normal(pixels.shape)
        out.append(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8))
    return out


def _pass_in_front(frame: Image.Image, passer: Image.Image, u: float) -> Image.Image:
    """``frame`` with an elliptical cut-out of ``passer`` at horizontal progress ``u`` in [0, 1]."""
    w, h = frame.size
    side = int(0.6 * h)
    patch = passer.resize((side, side), Image.Resampling.BICUBIC)
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, side - 1, side - 1), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(side / 40))
    out = frame.copy()
    out.paste(patch, (int(-side + u * (w + side)), (h - side) // 2), mask)
    return out


def _load(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="source photo")
    parser.add_argument(
        "--out", type=Path, help="new folder outside the repo (default: a temp dir)"
    )
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--size", default="256x176", help="WIDTHxHEIGHT (default 256x176)")
    parser.add_argument("--pan", type=float, default=0.6, help="pan fraction (default 0.6)")
    parser.add_argument("--zoom", type=float, default=1.15, help="final zoom (default 1.15)")
    parser.add_argument("--exposure", type=float, default=0.04, help="gain std (default 0.04)")
    parser.add_argument("--noise", type=float, default=0.01, help="noise std (default 0.01)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--passer", type=Path, help="photo whose cut-out crosses the frame")
    args = parser.parse_args(argv)
    if args.out is not None and args.out.resolve().is_relative_to(REPO):
        parser.error(f"{args.out}: write the clip outside the repository")
    width, height = (int(v) for v in args.size.lower().split("x"))
    photo = _load(args.photo)
    frames = make_clip(
        photo,
        frames=args.frames,
        size=(width, height),
        pan=args.pan,
        zoom=args.zoom,
        exposure=args.exposure,
        noise=args.noise,
        seed=args.seed,
        passer=_load(args.passer) if args.passer is not None else None,
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="photostyle_clip_"))
    out.mkdir(parents=True, exist_ok=True)
    for t, pixels in enumerate(frames):
        Image.fromarray(pixels).save(out / f"frame_{t:04d}.png")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
