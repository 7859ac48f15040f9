# Copied from MOFA-Video-Keypoint/sadtalker_audio2pose/mel.py
"""Audio front-end of the audio-to-coefficient networks: 16 kHz audio -> normalised log-mel -> per-frame windows.

Constants are those the released networks were trained with (Wav2Lip's front-end): 80 mel bands over
55–7600 Hz, 800-sample FFT and window, 200-sample hop (80 mel columns per second), pre-emphasis 0.97,
dB referenced to 20 dB, floor −100 dB, scaled and clipped to [−4, 4]. Video runs at 25 fps, so one video
frame spans 640 samples and 3.2 mel columns; each frame sees a 16-column window that starts two frames
earlier.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import librosa
import numpy as np
from scipy.signal import lfilter

from utils.errors import InputError

SAMPLE_RATE = 16000
FPS = 25
N_FFT = 800
HOP_LENGTH = 200
WIN_LENGTH = 800
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
MIN_LEVEL_DB = -100.0
REF_LEVEL_DB = 20.0
MAX_ABS_VALUE = 4.0
MEL_WINDOW = 16
"""Mel columns seen per video frame."""
MEL_COLUMNS_PER_SECOND = SAMPLE_RATE / HOP_LENGTH


def load_audio(path: Path) -> np.ndarray:
    """Read any audio file librosa can, as mono float32 at 16 kHz. Raises InputError if unreadable or silent-empty."""
    try:
        with warnings.catch_warnings():  # librosa warns before falling back from soundfile to audioread
            warnings.simplefilter("ignore", (UserWarning, FutureWarning))
            wav, _ = librosa.load(str(path), sr=SAMPLE_RATE, mono=True)
    except Exception as error:  # noqa: BLE001 - librosa/soundfile/audioread raise many types for a bad file
        raise InputError(f"cannot read audio {path}: {error}") from error
    if wav.size == 0:
        raise InputError(f"audio {path} is empty")
    return wav.astype(np.float32)


def count_frames(num_samples: int) -> int:
    """Video frames (25 fps) covered by ``num_samples`` of 16 kHz audio (whole frames only)."""
    return int(num_samples / (SAMPLE_RATE / FPS))


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """wav (L,) float at 16 kHz -> normalised log-mel (1 + L // 200, 80) in [−4, 4], time first."""
    emphasised = lfilter([1.0, -PREEMPHASIS], [1.0], wav)
    spectrum = np.abs(
        librosa.stft(y=emphasised, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, pad_mode="constant")
    )
    basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)
    min_level = np.exp(MIN_LEVEL_DB / 20 * np.log(10))
    decibels = 20 * np.log10(np.maximum(min_level, basis @ spectrum)) - REF_LEVEL_DB
    normalised = 2 * MAX_ABS_VALUE * (decibels - MIN_LEVEL_DB) / -MIN_LEVEL_DB - MAX_ABS_VALUE
    return np.clip(normalised, -MAX_ABS_VALUE, MAX_ABS_VALUE).T.astype(np.float32)


def mel_windows(mel: np.ndarray, num_frames: int) -> np.ndarray:
    """Per-frame mel windows (num_frames, 80, 16) from a (T, 80) mel.

    Frame i takes columns ``int(80 · (i − 2) / 25)`` + 0..15, clamped to the mel's range (edge columns
    repeat), i.e. audio from 80 ms before the frame to 120 ms after it.
    """
    starts = np.array([int(MEL_COLUMNS_PER_SECOND * ((i - 2) / FPS)) for i in range(num_frames)], dtype=np.int64)
    columns = np.clip(starts[:, None] + np.arange(MEL_WINDOW), 0, len(mel) - 1)
    return np.ascontiguousarray(mel[columns].transpose(0, 2, 1))


def audio_mel_windows(wav: np.ndarray) -> np.ndarray:
    """16 kHz audio -> (num_frames, 80, 16) mel windows, one per 25 fps video frame (the tail is dropped)."""
    num_frames = count_frames(len(wav))
    if num_frames == 0:
        raise InputError(f"the audio is shorter than one video frame ({1000 / FPS:.0f} ms)")
    usable = wav[: int(num_frames * SAMPLE_RATE / FPS)]
    return mel_windows(melspectrogram(usable), num_frames)
