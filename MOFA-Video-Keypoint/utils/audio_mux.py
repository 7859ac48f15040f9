"""Put the driving audio under a generated talking-head video without dropping video frames."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import imageio_ffmpeg

from utils.errors import InputError
from utils.video_io import atomic_output


def mux_audio_track(
    video_path: str | os.PathLike,
    audio_path: str | os.PathLike,
    output_path: str | os.PathLike,
    video_seconds: float,
    overwrite: bool = False,
) -> Path:
    """Copy the video stream and add the audio as AAC, cut at the video's end; atomically.

    Unlike ``-shortest`` with a copied video stream (which drops the last frames when the audio ends first),
    every video frame is kept: the audio input is read for at most ``video_seconds``.

    Args:
        video_path: silent mp4.
        audio_path: any audio file ffmpeg reads (the original file, not resampled).
        output_path: destination ``.mp4``.
        video_seconds: the video's duration (frames / fps).
        overwrite: replace an existing ``output_path``.

    Raises:
        InputError: an input is missing or ffmpeg cannot read it, or the output exists (and not ``overwrite``).
    """
    for name, source in (("video", video_path), ("audio", audio_path)):
        if not Path(source).is_file():
            raise InputError(f"{name} file not found: {source}")
    output_path = Path(output_path)
    with atomic_output(output_path, overwrite) as temporary:
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error",
            "-i", str(video_path), "-t", f"{video_seconds:.6f}", "-i", str(audio_path),
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac",
            str(temporary),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            details = result.stderr.strip().splitlines()[-1:] or ["unknown ffmpeg error"]
            raise InputError(f"cannot mux {audio_path} into {video_path}: {details[0]}")
    return output_path
