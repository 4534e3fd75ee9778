"""Stylize a whole clip from disk to disk: read, stylize frame by frame, write atomically."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import torch

from photostyle.api import Stylizer
from photostyle.lut import Lut3D, apply_lut
from photostyle.measure import frame_change
from photostyle.video.frames import (
    DEFAULT_FPS,
    Clip,
    FolderWriter,
    VideoError,
    VideoWriter,
    check_output,
    is_video_path,
    open_clip,
)
from photostyle.video.stable import ClipOptions, ClipStylizer


class _Writer(Protocol):
    def write(self, name: str, frame: torch.Tensor) -> None: ...


@dataclass(frozen=True)
class VideoResult:
    """Summary of :func:`stylize_video`."""

    output: Path  # the folder or video written
    frames: int  # frames stylized
    flicker: (
        float  # output frame change / input frame change (photostyle.eval.metrics.flicker_ratio)
    )


def stylize_video(
    stylizer: Stylizer,
    src: str | Path,
    dst: str | Path,
    style: torch.Tensor,
    *,
    options: ClipOptions | None = None,
    fps: float | None = None,
    protect: tuple[Path, ...] = (),
    progress: Callable[[int, int | None], None] | None = None,
) -> VideoResult:
    """Stylize a video file or a folder of frames into a video file or a folder of PNG frames.

    The output kind follows ``dst``: a ``.mp4``/``.mkv``/``.mov`` suffix writes a video (H.264,
    or MPEG-4 part 2 where PyAV's FFmpeg lacks libx264; no audio), anything else a folder of PNG
    frames (a folder input keeps its frame names, a video input gets ``000001.png``...). Nothing
    is written to ``dst`` unless every frame succeeds.

    Args:
        stylizer: a loaded stylizer.
        src: video file (anything FFmpeg reads) or folder of frames (sorted by file name).
        dst: output video file or folder (new or empty).
        style: (3, Hs, Ws) RGB in [0, 1].
        options: strength, working size, per-frame or smoothed statistics.
        fps: output frame rate; default the input video's, 25 for a folder of frames.
        protect: further paths ``dst`` must not be (e.g. the style photo's file).
        progress: called after every frame with (frames done, total if known).

    Returns:
        VideoResult with the frame count and the flicker ratio of the output.

    Raises:
        VideoError: unreadable input, empty folder, unreadable frame, frame size change,
            unacceptable output (see :func:`~photostyle.video.frames.check_output`).
        ValueError: bad options.
    """
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be positive, got {fps}")
    clip = open_clip(src)
    out = check_output(dst, clip, protect)
    return _run_clip(clip, out, ClipStylizer(stylizer, style, options), fps, progress)


def grade_video(
    src: str | Path,
    dst: str | Path,
    lut: Lut3D,
    *,
    fps: float | None = None,
    protect: tuple[Path, ...] = (),
    progress: Callable[[int, int | None], None] | None = None,
) -> VideoResult:
    """Applies a 3D LUT to every frame (a look from ``photostyle lut``), as :func:`stylize_video`.

    A LUT maps each colour the same way in every frame, so the result is exactly as steady as
    the input (its flicker ratio is about 1).

    Args:
        src: video file or folder of frames.
        dst: output video file or folder.
        lut: the look.
        fps: output frame rate; default the input video's, 25 for a folder of frames.
        protect: further paths ``dst`` must not be (e.g. the LUT file).
        progress: called after every frame with (frames done, total if known).

    Raises:
        VideoError: as :func:`stylize_video`.
    """
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be positive, got {fps}")
    clip = open_clip(src)
    out = check_output(dst, clip, protect)
    return _run_clip(clip, out, lambda frame: apply_lut(frame, lut), fps, progress)


def _run_clip(
    clip: Clip,
    out: Path,
    stylize: Callable[[torch.Tensor], torch.Tensor],
    fps: float | None,
    progress: Callable[[int, int | None], None] | None,
) -> VideoResult:
    """Transforms every frame of ``clip`` into ``out`` (written only if all frames succeed)."""
    rate = Fraction(fps).limit_denominator(1001) if fps else clip.fps or DEFAULT_FPS
    writer: AbstractContextManager[_Writer] = (
        VideoWriter(out, rate) if is_video_path(out) else FolderWriter(out)
    )
    change_in = change_out = 0.0
    previous: tuple[torch.Tensor, torch.Tensor] | None = None
    count = 0
    with writer as sink:
        for name, frame in clip.frames():
            if previous is not None and previous[0].shape != frame.shape:
                h, w = previous[0].shape[-2:]
                raise VideoError(
                    f"{clip.path}: frame {name} is {frame.shape[-1]}x{frame.shape[-2]}, "
                    f"the clip started at {w}x{h}"
                )
            result = stylize(frame)
            sink.write(name, result)
            if previous is not None:
                change_in += frame_change(frame, previous[0])
                change_out += frame_change(result, previous[1])
            previous = (frame, result)
            count += 1
            if progress is not None:
                progress(count, clip.count)
    flicker = change_out / change_in if change_in > 0 else math.nan
    return VideoResult(output=out, frames=count, flicker=flicker)
