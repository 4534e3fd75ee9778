"""Reading and writing clips: a folder of frames or a video file (PyAV).

Readers yield ``(name, frame)`` with frames as (3, H, W) float32 RGB in [0, 1]. Writers never leave
a partial output: a folder is filled under a temporary name beside it and renamed at the end; a
video is encoded into a temporary file and moved into place with ``os.replace``. Every user-facing
failure raises :class:`VideoError` with a one-line message naming the file.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np
import torch

from photostyle.io import ImageError, load_image, save_image
from photostyle.utils import atomic_path, check_writable, one_line

IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
VIDEO_SUFFIXES: Final = (".mp4", ".mkv", ".mov")  # outputs; inputs: whatever FFmpeg reads
DEFAULT_FPS: Final = Fraction(25)  # frame rate of a video written from a folder of frames
CRF: Final = "18"  # libx264 quality (visually lossless); mpeg4 gets the matching qscale
MPEG4_QSCALE: Final = "2"


class VideoError(ValueError):
    """A user-facing clip problem; ``str(err)`` is a one-line message naming the file."""


def _av() -> Any:
    """The PyAV module (the ``video`` extra).

    Raises:
        VideoError: PyAV is not installed.
    """
    try:
        import av
    except ImportError as err:
        raise VideoError(
            f"video files need PyAV ({one_line(err)}): pip install 'photostyle[video]' "
            "(folders of frames work without it)"
        ) from err
    return av


def natural_key(name: str) -> tuple[tuple[int, str | int], ...]:
    """Sort key that orders digit runs by value: ``frame_2`` before ``frame_10``."""
    parts = re.split(r"(\d+)", name)
    return tuple((1, int(part)) if part.isdigit() else (0, part) for part in parts if part)


def is_video_path(path: Path) -> bool:
    """Whether ``path`` names a video output (by its suffix); anything else is a folder."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def video_codec() -> str:
    """H.264 (libx264) when PyAV's FFmpeg has the encoder, else MPEG-4 part 2."""
    av = _av()
    try:
        av.codec.Codec("libx264", "w")
    except av.FFmpegError:
        return "mpeg4"
    return "libx264"


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """An opened input clip (nothing decoded yet).

    Attributes:
        path: the folder or the video file.
        count: number of frames, if known (folders; videos whose header says).
        fps: frame rate of a video; None for a folder.
        files: the frame files of a folder, sorted by name; empty for a video.
    """

    path: Path
    count: int | None
    fps: Fraction | None
    files: tuple[Path, ...] = ()

    def frames(self) -> Iterator[tuple[str, torch.Tensor]]:
        """``(output name, (3, H, W) frame)`` in order; output names end in ``.png``.

        Raises:
            VideoError: a frame cannot be read or decoded, or a video has no frames.
        """
        if self.fps is None:
            for file in self.files:
                try:
                    yield f"{file.stem}.png", load_image(file)
                except ImageError as err:
                    raise VideoError(str(err)) from err
        else:
            yield from _decode_video(self.path)


def open_clip(path: str | Path) -> Clip:
    """Open a folder of frames (image files, in natural name order) or a video file.

    Raises:
        VideoError: missing path, a folder without image files or with two frames of one name
            (``a.jpg`` and ``a.png``), or a file FFmpeg cannot read or without a video stream.
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(
            (f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()),
            key=lambda f: natural_key(f.name),
        )
        files = [f for f in files if not f.name.startswith(".")]
        if not files:
            raise VideoError(f"{p}: no image frames ({' '.join(IMAGE_SUFFIXES)}) in the folder")
        stems: dict[str, Path] = {}
        for f in files:
            if f.stem in stems:
                raise VideoError(f"{p}: frames {stems[f.stem].name} and {f.name} share a name")
            stems[f.stem] = f
        return Clip(p, len(files), None, tuple(files))
    if not p.exists():
        raise VideoError(f"{p}: no such file or folder")
    av = _av()
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise VideoError(f"{p}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
            return Clip(p, stream.frames or None, Fraction(rate))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise VideoError(f"{p}: not a readable video ({one_line(err)})") from err


def _decode_video(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    av = _av()
    count = 0
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
                tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)
                count += 1
                yield f"{count:06d}.png", tensor.float().div_(255.0)
    except (av.FFmpegError, OSError) as err:
        raise VideoError(f"{path}: cannot decode frame {count + 1} ({one_line(err)})") from err
    if count == 0:
        raise VideoError(f"{path}: the video has no frames")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def check_output(out: str | Path, clip: Clip, protect: tuple[Path, ...] = ()) -> Path:
    """Refuse an output that would overwrite something; call before any work.

    A folder output must not exist or be an empty folder; a video output must not be the input,
    ``protect`` (e.g. the style photo) or a folder.

    Raises:
        VideoError: the output is not acceptable.
    """
    target = Path(out)
    protected = [clip.path, *clip.files, *protect]
    if any(target.resolve() == p.resolve() for p in protected):
        raise VideoError(f"{target}: refusing to overwrite an input")
    if is_video_path(target):
        if target.is_dir():
            raise VideoError(f"{target}: is a folder, not a video file")
        return _writable(target, folder=False)
    if target.suffix.lower() in IMAGE_SUFFIXES:
        raise VideoError(
            f"{target}: the output is a folder of frames or a video ({' '.join(VIDEO_SUFFIXES)})"
        )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise VideoError(f"{target}: already exists; give a new or empty folder")
    return _writable(target, folder=True)


def _writable(target: Path, *, folder: bool) -> Path:
    try:
        return check_writable(target, folder=folder)
    except ValueError as err:
        raise VideoError(str(err)) from None


class FolderWriter(AbstractContextManager["FolderWriter"]):
    """Writes PNG frames into a hidden folder beside ``out``, renamed to ``out`` on success."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.tmp = out.parent / f".{out.name}.{secrets.token_hex(6)}.tmp"

    def __enter__(self) -> FolderWriter:
        try:
            self.tmp.mkdir(parents=True)
        except OSError as err:
            raise VideoError(f"{self.out}: cannot create folder ({one_line(err)})") from err
        return self

    def write(self, name: str, frame: torch.Tensor) -> None:
        """Save one (3, H, W) frame as ``name`` (a ``.png`` file name)."""
        try:
            save_image(frame, self.tmp / name)
        except ImageError as err:
            raise VideoError(str(err)) from err

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                if self.out.is_dir() and not any(self.out.iterdir()):
                    self.out.rmdir()  # an empty folder given as the output
                os.replace(self.tmp, self.out)
        except OSError as err:
            raise VideoError(f"{self.out}: cannot move the frames into place ({err})") from err
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


class VideoWriter(AbstractContextManager["VideoWriter"]):
    """Encodes frames into a temporary video beside ``out``, moved onto ``out`` on success.

    Args:
        out: ``.mp4``, ``.mkv`` or ``.mov`` file.
        fps: frame rate.
        codec: FFmpeg encoder; default :func:`video_codec`.
    """

    def __init__(self, out: Path, fps: Fraction, codec: str | None = None) -> None:
        self.out, self.fps, self.codec = out, fps, codec or video_codec()
        self._stack = ExitStack()
        self._container: Any = None
        self._stream: Any = None
        self.frames = 0

    def __enter__(self) -> VideoWriter:
        av = _av()
        with ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.out))
            try:
                self._container = stack.enter_context(av.open(str(tmp), "w"))
            except (av.FFmpegError, OSError) as err:
                raise VideoError(f"{self.out}: cannot write ({one_line(err)})") from err
            self._stack = stack.pop_all()
        return self

    def write(self, name: str, frame: torch.Tensor) -> None:
        """Encode one (3, H, W) frame (``name`` is ignored)."""
        av = _av()
        h, w = frame.shape[-2:]
        if self._stream is None:
            if h % 2 or w % 2:
                raise VideoError(
                    f"{self.out}: video needs an even width and height, the frames are {w}x{h}; "
                    "write a folder of frames instead"
                )
            self._stream = self._container.add_stream(self.codec, rate=self.fps)
            self._stream.width, self._stream.height = w, h
            self._stream.pix_fmt = "yuv420p"
            if self.codec == "libx264":
                self._stream.options = {"crf": CRF}
            else:
                self._stream.codec_context.qscale = int(MPEG4_QSCALE)
        rgb = frame.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).contiguous()
        picture = av.VideoFrame.from_ndarray(rgb.numpy(), format="rgb24")
        picture.pts = self.frames
        try:
            for packet in self._stream.encode(picture):
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as err:
            raise VideoError(f"{self.out}: cannot encode frame ({one_line(err)})") from err
        self.frames += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:  # close the container, remove the temporary file
            self._stack.__exit__(exc_type, exc, tb)
            return
        try:
            self._flush()
        except BaseException as err:
            self._stack.__exit__(type(err), err, err.__traceback__)
            raise
        self._stack.close()  # closes the container, then moves the file onto ``out``

    def _flush(self) -> None:
        av = _av()
        if self._stream is None:
            raise VideoError(f"{self.out}: no frames to write")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as err:
            raise VideoError(f"{self.out}: cannot finish the video ({one_line(err)})") from err
