"""Mel front-end against librosa directly, per-frame windowing, audio loading."""

import librosa
import numpy as np
import pytest
import soundfile
from scipy.signal import lfilter

from sadtalker_audio2pose.mel import audio_mel_windows, count_frames, load_audio, mel_windows, melspectrogram
from utils.errors import InputError


def test_melspectrogram_matches_librosa_directly():
    rng = np.random.default_rng(0)
    time = np.arange(8000) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 220 * time) + 0.05 * rng.standard_normal(8000)).astype(np.float32)
    power = np.abs(
        librosa.stft(lfilter([1, -0.97], [1], wav), n_fft=800, hop_length=200, win_length=800, pad_mode="constant")
    )
    mel = librosa.feature.melspectrogram(S=power, sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600, power=1.0)
    db = librosa.amplitude_to_db(mel, ref=1.0, amin=1e-5, top_db=None) - 20
    expected = np.clip(8 * (db + 100) / 100 - 4, -4, 4).T
    result = melspectrogram(wav)
    assert result.shape == (1 + 8000 // 200, 80)
    np.testing.assert_allclose(result, expected, atol=1e-4)
    assert result.min() >= -4 and result.max() <= 4


def test_silence_sits_at_the_floor():
    assert np.all(melspectrogram(np.zeros(1600, np.float32)) == -4)


def test_each_frame_takes_16_columns_starting_two_frames_earlier_clamped_at_the_edges():
    mel = np.repeat(np.arange(40, dtype=np.float32)[:, None], 80, axis=1)  # column index as value
    windows = mel_windows(mel, 12)
    assert windows.shape == (12, 80, 16)
    assert windows[0, 0].tolist() == [0] * 7 + list(range(1, 10))  # start int(80 * -2 / 25) = -6
    assert windows[1, 0].tolist() == [0] * 4 + list(range(1, 13))  # start int(-3.2) = -3
    assert windows[5, 0].tolist() == list(range(9, 25))  # start int(9.6) = 9
    assert windows[11, 0].tolist() == list(range(28, 40)) + [39] * 4  # start 28, clamped at column 39


def test_frames_are_whole_25fps_frames_of_16khz_audio():
    assert count_frames(640 * 3 + 639) == 3
    assert audio_mel_windows(np.zeros(16000, np.float32)).shape == (25, 80, 16)
    with pytest.raises(InputError, match="shorter than one video frame"):
        audio_mel_windows(np.zeros(639, np.float32))


def test_audio_is_resampled_to_16khz_mono(tmp_path):
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.zeros((48000, 2), np.float32), 48000)
    wav = load_audio(path)
    assert wav.shape == (16000,) and wav.dtype == np.float32


def test_unreadable_audio_is_an_input_error(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF not really")
    with pytest.raises(InputError, match="cannot read audio"):
        load_audio(path)
