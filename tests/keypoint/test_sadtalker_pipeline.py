"""Portrait + audio -> landmarks end to end with random weights, a synthetic face model and a stub detector."""

import numpy as np
import pytest
import soundfile

from sadtalker_audio2pose import audio_to_landmarks
from sadtalker_audio2pose.face_crop import CROP_SIZE, face_box
from utils.errors import InputError
from utils.tiny_keypoint import CenteredFaceDetector, face_in_image, tiny_landmarker

WIDTH, HEIGHT = 320, 240


class TrackedFaceDetector:
    """Reports one known face: at ``landmarks`` in the full image, and where that face lands in its 256² crop."""

    def __init__(self, landmarks: np.ndarray, image_size: tuple[int, int]):
        self.landmarks = landmarks
        self.image_size = image_size
        self.box = face_box(landmarks, image_size)

    def __call__(self, image):
        if image.shape[:2] == (self.image_size[1], self.image_size[0]):
            return self.landmarks
        scale = [CROP_SIZE / self.box.width, CROP_SIZE / self.box.height]
        return (self.landmarks - [self.box.left, self.box.top]) * scale


@pytest.fixture(scope="module")
def face():
    return face_in_image(WIDTH, HEIGHT, face_fraction=0.3)


@pytest.fixture(scope="module")
def landmarker(face):
    return tiny_landmarker(detector=TrackedFaceDetector(face, (WIDTH, HEIGHT)))


@pytest.fixture(scope="module")
def portrait():
    return np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def source(landmarker, portrait):
    return landmarker.fit_image(portrait)


@pytest.fixture
def speech(tmp_path):
    """0.4 s of 22.05 kHz audio: 10 video frames."""
    path = tmp_path / "speech.wav"
    time = np.arange(int(0.4 * 22050)) / 22050
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 180 * time)).astype(np.float32), 22050)
    return path


def test_the_source_fit_projects_back_onto_the_detected_face(landmarker, source, face):
    # the tiny regressor outputs zeros: the frontal mean face, which is also the detected face
    landmarks = landmarker.landmarks(source, np.zeros((0, 70), np.float32))
    assert landmarks.shape == (1, 68, 2)
    assert np.abs(landmarks[0] - face).max() < 0.04 * np.ptp(face[:, 0])


def test_audio_gives_one_frame_per_25fps_audio_frame_after_the_source_frame(landmarker, portrait, source, speech):
    landmarks = audio_to_landmarks(portrait, speech, landmarker=landmarker)
    assert landmarks.shape == (1 + 10, 68, 2) and np.isfinite(landmarks).all()
    np.testing.assert_allclose(landmarks[0], landmarker.landmarks(source, np.zeros((0, 70)))[0])


def test_audio_coefficients_are_seeded_and_a_16khz_waveform_equals_its_file(landmarker, source, tmp_path):
    waveform = (0.3 * np.sin(2 * np.pi * 180 * np.arange(6400) / 16000)).astype(np.float32)
    soundfile.write(tmp_path / "speech16k.wav", waveform, 16000, subtype="FLOAT")
    first = landmarker.audio_coefficients(source, tmp_path / "speech16k.wav", seed=42)
    assert first.shape == (10, 70)
    np.testing.assert_array_equal(first, landmarker.audio_coefficients(source, waveform, seed=42))
    assert not np.allclose(first[:, 64:], landmarker.audio_coefficients(source, waveform, seed=1)[:, 64:])


def test_a_stereo_waveform_is_rejected(landmarker, source):
    with pytest.raises(InputError, match=r"a waveform must be mono \(L,\) samples at 16 kHz"):
        landmarker.audio_coefficients(source, np.zeros((2, 6400), np.float32))


def test_a_float_image_in_0_1_is_accepted(landmarker, portrait, source):
    as_float = landmarker.fit_image(portrait.astype(np.float32) / 255.0)
    np.testing.assert_allclose(as_float.coeffs, source.coeffs, atol=1e-5)


def test_no_face_in_the_portrait_is_a_one_line_input_error(portrait, speech):
    blind = tiny_landmarker(detector=lambda image: None)
    with pytest.raises(InputError, match="^no face found in the source image$"):
        audio_to_landmarks(portrait, speech, landmarker=blind)


def test_a_grey_image_is_rejected(landmarker):
    with pytest.raises(InputError, match=r"expected an RGB image of shape \(H, W, 3\)"):
        landmarker.fit_image(np.zeros((32, 32), np.uint8))


def test_tiny_mode_runs_without_weight_files(portrait, speech):
    landmarks = audio_to_landmarks(portrait, speech, landmarker=tiny_landmarker(detector=CenteredFaceDetector()))
    assert landmarks.shape == (11, 68, 2) and np.isfinite(landmarks).all()
