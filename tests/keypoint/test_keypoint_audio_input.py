"""Audio loading (formats, resampling, mono) and its input errors; the synthetic landmark stand-in."""

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile

from aniportrait.audio import SAMPLE_RATE, load_audio
from aniportrait.synthetic import loudness_per_frame, synthetic_landmarks, template_face
from utils.errors import InputError


def _tone(seconds: float, rate: int, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def stereo_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    tone = _tone(1.0, 48000)
    soundfile.write(path, np.stack([tone, 0.5 * tone], axis=1), 48000)
    return path


def test_wav_is_resampled_to_16k_and_mixed_to_mono(stereo_wav):
    samples = load_audio(stereo_wav)
    assert samples.dtype == np.float32 and samples.shape == (SAMPLE_RATE,)
    assert np.abs(samples).max() == pytest.approx(0.225, abs=0.01)  # mean of 0.3 and 0.15


@pytest.mark.parametrize(
    "suffix,codec", [("mp3", "libmp3lame"), ("m4a", "aac"), ("ogg", "libvorbis"), ("flac", "flac")]
)
def test_compressed_formats_decode(stereo_wav, tmp_path, suffix, codec):
    target = tmp_path / f"tone.{suffix}"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-loglevel",
            "error",
            "-i",
            str(stereo_wav),
            "-c:a",
            codec,
            str(target),
        ],
        check=True,
    )
    samples = load_audio(target)
    assert abs(samples.size - SAMPLE_RATE) < 0.1 * SAMPLE_RATE
    middle = samples[4000:-4000]  # skip encoder priming / padding
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.225 / np.sqrt(2), abs=0.01)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="audio file not found"):
        load_audio(tmp_path / "nothing.wav")


def test_corrupt_file(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    with pytest.raises(InputError, match=r"broken.wav is not a readable audio file \(invalid data\)$"):
        load_audio(path)


def test_unsupported_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(InputError, match=r"notes.txt is not a readable audio file \(invalid data\)$"):
        load_audio(path)


def test_silent_audio(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(InputError, match="is silent"):
        load_audio(path)


@pytest.mark.parametrize("seconds", [0.0, 0.05])
def test_empty_or_too_short_audio(tmp_path, seconds):
    path = tmp_path / "short.wav"
    soundfile.write(path, _tone(seconds, SAMPLE_RATE), SAMPLE_RATE)
    with pytest.raises(InputError, match="too short"):
        load_audio(path)


def test_synthetic_landmarks_cover_every_audio_frame_plus_the_reference():
    waveform = _tone(2.5, SAMPLE_RATE)
    landmarks = synthetic_landmarks(256, 192, waveform)
    assert landmarks.shape == (1 + 63, 68, 2)
    assert (landmarks[..., 0] > 0).all() and (landmarks[..., 0] < 256).all()
    assert (landmarks[..., 1] > 0).all() and (landmarks[..., 1] < 192).all()
    np.testing.assert_array_equal(landmarks, synthetic_landmarks(256, 192, waveform))


def test_synthetic_mouth_opens_with_loudness():
    waveform = np.concatenate([_tone(0.4, SAMPLE_RATE, 0.01), _tone(0.4, SAMPLE_RATE, 0.5)])
    loudness = loudness_per_frame(waveform, 20)
    assert loudness.max() == pytest.approx(1.0) and loudness[:10].max() < 0.05
    landmarks = synthetic_landmarks(256, 256, waveform)
    mouth_height = landmarks[:, 66, 1] - landmarks[:, 62, 1]  # inner lips, bottom minus top
    assert mouth_height[15] > 3 * mouth_height[5]
    reference = template_face(0.0)
    assert reference.shape == (68, 2)


def test_wav_mp3_and_m4a_of_the_same_speech_give_the_same_frame_count(tmp_path):
    from media_helpers import save_speech

    from aniportrait.audio import frame_count

    # 118940 samples at 48 kHz end 100 samples before a 25 fps frame boundary; the m4a's last AAC frame is filled
    # up to 119808 samples, past that boundary, so keeping the fill would add a frame
    seconds = 118940 / 48000
    counts = {
        suffix: frame_count(load_audio(save_speech(tmp_path / f"speech{suffix}", seconds, 48000, channels=2)).size)
        for suffix in (".wav", ".mp3", ".m4a")
    }
    assert counts == {".wav": 62, ".mp3": 62, ".m4a": 62}
