"""What the video-driven demo shows of a driving video before a run: a player Chromium can play and a line of
clip facts.

Phones and older tools often write MPEG-4 Part 2 video, which Chromium does not play; such a clip is transcoded
to H.264 (with the project's :func:`utils.video_io.write_video`) for the preview only. The run reads the
uploaded file itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from utils.errors import InputError
from utils.video_io import write_video

BROWSER_CODECS = ("h264",)
"""Video codecs the preview plays as uploaded (in yuv420p); anything else is transcoded."""


@dataclass(frozen=True)
class ClipInfo:
    """Facts of a driving video: ``frames`` decoded frames at ``fps``, ``width`` x ``height``, its ``codec``."""

    frames: int
    fps: float
    width: int
    height: int
    codec: str
    pixel_format: str

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    def describe(self) -> str:
        return (
            f"{self.seconds:.2f} s, {self.fps:g} fps, {self.frames} frames, {self.width}x{self.height} ({self.codec})"
        )


def unreadable_video(path: str | Path, error: Exception | None = None) -> InputError:
    """The one-line error for a video that cannot be decoded: its file name and the reason in words, never the
    server's temporary folder or an errno."""
    if error is None:
        reason = "no video frames"
    elif isinstance(error, av.error.InvalidDataError):
        reason = "invalid data"
    else:
        reason = (getattr(error, "strerror", None) or type(error).__name__).lower()
    return InputError(f"{Path(path).name} is not a readable video ({reason})")


def _frames(path: Path) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def read_clip_info(path: str | Path) -> ClipInfo:
    """Decodes the whole clip once and returns its facts.

    Raises:
        InputError: the file is not a video Pyav decodes, or has no video frames.
    """
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path.name} has no video stream")
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(video=0))
            rate = stream.average_rate or stream.guessed_rate or 25
            info = ClipInfo(frames, float(rate), stream.width, stream.height, stream.codec_context.name,
                            stream.codec_context.format.name if stream.codec_context.format else "")  # fmt: skip
    except av.error.FFmpegError as error:
        raise unreadable_video(path, error) from None
    if not info.frames:
        raise unreadable_video(path)
    return info


def browser_preview(path: str | Path, info: ClipInfo, folder: str | Path) -> Path:
    """A file the browser plays: ``path`` itself when it is H.264 in yuv420p, else an H.264 copy written to
    ``folder`` (named after the upload, never over an existing file)."""
    path = Path(path)
    if info.codec in BROWSER_CODECS and info.pixel_format == "yuv420p":
        return path
    target = Path(folder) / f"{path.stem}_preview_{uuid.uuid4().hex[:8]}.mp4"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        return write_video(target, _frames(path), fps=info.fps, crf=23)
    except av.error.FFmpegError as error:
        raise unreadable_video(path, error) from None
