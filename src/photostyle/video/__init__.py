"""Video: stylize a clip with one style photo, steady over time (see :mod:`.stable`)."""

from photostyle.video.frames import Clip, VideoError, check_output, open_clip
from photostyle.video.pipeline import VideoResult, grade_video, stylize_video
from photostyle.video.stable import ClipOptions, ClipStylizer

__all__ = [
    "Clip",
    "ClipOptions",
    "ClipStylizer",
    "VideoError",
    "VideoResult",
    "check_output",
    "grade_video",
    "open_clip",
    "stylize_video",
]
