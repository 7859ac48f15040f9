"""Real-looking test media made on the spot: a portrait MediaPipe finds a face in, a faceless picture, speech-like
audio (wav; mp3 / m4a made by ffmpeg) and driving videos (PyAV), so the command-line and demo tests run on what a
user would give them.

The portrait is ``skimage.data.astronaut()`` (a NASA photograph, public domain, shipped by the pinned
scikit-image), the face the face-geometry tests are checked on.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import soundfile
from PIL import Image


def portrait_pixels(size: tuple[int, int] | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB photograph of a face (512x512, or scaled to ``size`` = (width, height))."""
    from skimage import data

    pixels = data.astronaut()
    if size is None:
        return pixels
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))


def save_portrait(path: Path, size: tuple[int, int] | None = None) -> Path:
    """Write :func:`portrait_pixels` to ``path`` (format from the suffix); returns ``path``."""
    Image.fromarray(portrait_pixels(size)).save(path)
    return path


def save_faceless(path: Path, size: tuple[int, int] = (400, 300)) -> Path:
    """Write a picture without a face (a colour gradient with a green block, like a landscape); returns ``path``."""
    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None]
    pixels[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4, 1] = 180
    Image.fromarray(pixels).save(path)
    return path


def speechlike(seconds: float, rate: int = 16000) -> np.ndarray:
    """``(round(seconds * rate),)`` float32 voiced tone whose loudness varies at 3 Hz (syllable rate)."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def save_speech(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> Path:
    """Write :func:`speechlike` audio to ``path``: wav/flac with soundfile; any other suffix (mp3, m4a, ogg) is
    encoded from that wav by the ffmpeg binary of ``imageio-ffmpeg``, as a user's tools would make it."""
    samples = speechlike(seconds, rate)
    samples = np.stack([samples] * channels, axis=1) if channels > 1 else samples
    if path.suffix in (".wav", ".flac"):
        soundfile.write(path, samples, rate)
        return path
    with tempfile.TemporaryDirectory() as scratch:
        wav = Path(scratch) / "speech.wav"
        soundfile.write(wav, samples, rate)
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", "-i", str(wav), str(path)]
        subprocess.run(command, check=True, capture_output=True)
    return path


def talking_frames(num_frames: int, size: int = 128) -> np.ndarray:
    """``(T, size, size, 3)`` uint8: the portrait panning slowly right, its lower half brightening and darkening."""
    base = portrait_pixels((size + num_frames, size)).astype(np.int16)
    frames = []
    for index in range(num_frames):
        frame = base[:, index : index + size].copy()
        frame[size // 2 :] += int(30 * np.sin(index / 3))
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return np.stack(frames)


def save_video(path: Path, frames: np.ndarray, fps: int = 25, codec: str = "h264") -> Path:
    """Encode ``(T, H, W, 3)`` uint8 frames with PyAV: ``h264`` or ``mpeg4`` (MPEG-4 Part 2); returns ``path``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
