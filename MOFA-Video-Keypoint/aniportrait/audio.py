"""Audio loading: any common container/codec -> 16 kHz mono float32 waveform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr

from utils.errors import InputError, require_file

SAMPLE_RATE = 16000
MIN_DURATION_SECONDS = 0.1
SILENCE_PEAK = 1e-4


def _decode_with_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return samples.mean(axis=1), rate


def _decode_with_pyav(path: Path) -> tuple[np.ndarray, int]:
    """Decode with PyAV, keeping only the samples the stream's timeline covers: encoder padding before time 0
    (negative timestamps, as an mp4 edit list marks AAC's priming) and after the stream's duration (the last AAC
    frame's fill) is dropped, so a wav and its mp3 / m4a give the same length."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise InputError(f"{path} has no audio stream")
        stream = container.streams.audio[0]
        rate = stream.rate or stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="fltp", rate=rate)  # planar float, layout kept
        chunks, first_pts = [], None
        for frame in container.decode(stream):
            first_pts = frame.time if first_pts is None else first_pts
            chunks.extend(resampled.to_ndarray().mean(axis=0) for resampled in resampler.resample(frame))
        chunks.extend(resampled.to_ndarray().mean(axis=0) for resampled in resampler.resample(None))
        declared = None if stream.duration is None else float(stream.duration * stream.time_base)
    if not chunks:
        return np.zeros(0, dtype=np.float32), rate
    samples = np.concatenate(chunks).astype(np.float32)
    start = round(-first_pts * rate) if first_pts is not None and first_pts < 0 else 0
    end = samples.size if declared is None else min(samples.size, start + round(declared * rate))
    return samples[start:end], rate


def _reason(error: Exception) -> str:
    """What went wrong, in words (FFmpeg's description, e.g. ``invalid data``), never an exception class name."""
    text = getattr(error, "strerror", None) or str(error) or "unknown format"
    return text.removesuffix(" found when processing input").lower()


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode an audio file (wav, flac, ogg via soundfile; mp3, m4a, ... via PyAV) to mono at `sample_rate`.

    Channels are averaged; resampling uses soxr (high quality). Returns a (L,) float32 array in [-1, 1].
    Raises InputError when the file is missing, unreadable, shorter than 0.1 s or silent.
    """
    path = Path(path)
    require_file(path, "audio")
    try:
        samples, rate = _decode_with_soundfile(path)
    except Exception:  # not a format soundfile reads (mp3, m4a, ...): PyAV's turn
        try:
            samples, rate = _decode_with_pyav(path)
        except InputError:
            raise
        except Exception as error:
            raise InputError(f"{path} is not a readable audio file ({_reason(error)})") from error
    if rate != sample_rate and samples.size:
        samples = soxr.resample(samples, rate, sample_rate, quality="HQ").astype(np.float32)
    if samples.size < MIN_DURATION_SECONDS * sample_rate:
        seconds = samples.size / sample_rate
        raise InputError(f"audio file {path} is too short ({seconds:.3f} s; need >= {MIN_DURATION_SECONDS} s)")
    if not np.isfinite(samples).all() or np.abs(samples).max() < SILENCE_PEAK:
        raise InputError(f"audio file {path} is silent")
    return samples


def frame_count(num_samples: int, fps: int = 25, sample_rate: int = SAMPLE_RATE) -> int:
    """Number of video frames the audio spans: ceil(num_samples / sample_rate * fps)."""
    return int(np.ceil(num_samples / sample_rate * fps))
