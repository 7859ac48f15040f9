"""Putting the driving audio under a generated video without losing frames.

A talking-head video has one frame more than its audio has 25-fps frames (frame 0 is the still reference),
so cutting to the shorter stream would drop the last video frame. Here the audio is padded with silence up to
the video's end, and cut there when it is longer; the video stream is copied untouched.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import imageio_ffmpeg

from .errors import InputError
from .video_io import atomic_output


def mux_audio_keep_video(
    video_path: str | os.PathLike,
    audio_path: str | os.PathLike,
    output_path: str | os.PathLike,
    overwrite: bool = False,
) -> Path:
    """Adds an audio track (AAC) to an mp4, keeping every video frame; written atomically.

    Args:
        video_path: input video (any audio it has is dropped).
        audio_path: any audio file ffmpeg reads (wav, mp3, flac, ogg, m4a, ...), or a video with sound.
        output_path: destination ``.mp4``.
        overwrite: replace an existing ``output_path``.

    Returns:
        ``output_path`` as a ``Path``.

    Raises:
        InputError: an input is missing or unreadable, or the output exists (and not ``overwrite``).
    """
    for name, source in (("video", video_path), ("audio", audio_path)):
        if not Path(source).is_file():
            raise InputError(f"{name} file not found: {source}")
    output_path = Path(output_path)
    with atomic_output(output_path, overwrite) as temporary:
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error",
            "-i", str(video_path), "-i", str(audio_path),
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac",
            "-af", "apad", "-shortest",
            str(temporary),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            details = result.stderr.strip().splitlines()[-1:] or ["unknown ffmpeg error"]
            raise InputError(f"cannot mux {audio_path} into {video_path}: {details[0]}")
    return output_path
