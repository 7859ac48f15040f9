"""Putting the driving audio under a generated video without losing frames.

Kept only as the name ``pipeline.hybrid_animator`` imports; the muxing itself is ``utils.video_io.mux_audio``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .video_io import mux_audio


def mux_audio_keep_video(
    video_path: str | os.PathLike,
    audio_path: str | os.PathLike,
    output_path: str | os.PathLike,
    overwrite: bool = False,
) -> Path:
    """``mux_audio`` with ``keep_all_frames=True``: every video frame kept, the audio padded or cut to fit."""
    return mux_audio(video_path, audio_path, output_path, overwrite=overwrite, keep_all_frames=True)
