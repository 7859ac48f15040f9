"""Portrait + driving video -> landmarks with random weights, a synthetic face model and a stub detector.

Driving frames are flat grey: bright frames "show a face" to the stub detector, dark ones do not.
"""

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from sadtalker_audio2pose.face_crop import CROP_SIZE, face_box
from sadtalker_audio2pose.pipeline import FaceCoefficientLandmarker
from sadtalker_video2pose import video_coefficients, video_to_landmarks
from utils.errors import CheckpointError, InputError
from utils.tiny_keypoint import face_in_image, synthetic_bfm, synthetic_template
from utils.video_io import read_video

WIDTH, HEIGHT = 160, 120
BRIGHT, DARK = 200, 20


class BrightFaceDetector:
    """One known face in bright images (at ``landmarks`` in full frames, mapped into 256² crops), none in dark ones."""

    def __init__(self, landmarks: np.ndarray):
        self.landmarks = landmarks
        self.box = face_box(landmarks, (WIDTH, HEIGHT))

    def __call__(self, image):
        if image.mean() < 100:
            return None
        if image.shape[:2] == (HEIGHT, WIDTH):
            return self.landmarks
        return (self.landmarks - [self.box.left, self.box.top]) * [
            CROP_SIZE / self.box.width,
            CROP_SIZE / self.box.height,
        ]


def write_video(path, levels):
    """An mp4 whose frame i is flat grey at ``levels[i]`` with a little frame-specific texture."""
    writer = imageio_ffmpeg.write_frames(str(path), (WIDTH, HEIGHT), fps=25, macro_block_size=8)
    writer.send(None)
    for index, level in enumerate(levels):
        texture = np.random.default_rng(index).integers(-15, 15, (HEIGHT, WIDTH, 3))
        writer.send(np.clip(level + texture, 0, 255).astype(np.uint8).tobytes())
    writer.close()
    return path


class MeanColourRegressor(torch.nn.Module):
    """(B, 3, 224, 224) -> (B, 257) by a fixed linear map of the mean colour: a fast stand-in for the ResNet-50
    regressor (whose own tests live with the Keypoint suite) that still tells frames apart."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 257)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(257, 3, generator=generator) * 0.1)
            self.linear.bias.zero_()

    def forward(self, images):
        return self.linear(images.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def landmarker():
    detector = BrightFaceDetector(face_in_image(WIDTH, HEIGHT, face_fraction=0.3))
    return FaceCoefficientLandmarker(MeanColourRegressor(), synthetic_bfm(), synthetic_template(), detector)


@pytest.fixture(scope="module")
def portrait():
    return np.full((HEIGHT, WIDTH, 3), BRIGHT, np.uint8)


def test_frames_without_a_face_are_interpolated_from_their_neighbours_with_a_warning(landmarker, tmp_path):
    video = write_video(tmp_path / "drive.mp4", [BRIGHT, 180, DARK, 240, DARK])
    with pytest.warns(UserWarning, match=r"no face in 2 of 5 driving frames \(2, 4\); .* interpolated"):
        coeffs = video_coefficients(landmarker, read_video(video).frames, pose_smoothing="none")
    assert coeffs.shape == (5, 70)
    assert not np.allclose(coeffs[1], coeffs[3])
    np.testing.assert_allclose(coeffs[2], (coeffs[1] + coeffs[3]) / 2, atol=1e-6)
    np.testing.assert_allclose(coeffs[4], coeffs[3])


def test_the_crop_comes_from_the_first_frame_with_a_face(landmarker, tmp_path):
    video = write_video(tmp_path / "late.mp4", [DARK, BRIGHT, BRIGHT])
    with pytest.warns(UserWarning) as caught:
        coeffs = video_coefficients(landmarker, read_video(video).frames, pose_smoothing="none")
    messages = [str(warning.message) for warning in caught]
    assert any("no face in driving frames 0–0; cropping every frame around frame 1's face" in m for m in messages)
    np.testing.assert_allclose(coeffs[0], coeffs[1])


def test_a_video_without_any_face_is_a_one_line_input_error(landmarker, tmp_path):
    video = write_video(tmp_path / "empty.mp4", [DARK, DARK, DARK])
    with pytest.raises(InputError, match="^no face found in any frame of the driving video$"):
        video_coefficients(landmarker, read_video(video).frames)


def test_landmarks_have_the_source_frame_then_one_frame_per_video_frame(landmarker, portrait, tmp_path):
    video = write_video(tmp_path / "drive.mp4", [BRIGHT] * 4)
    landmarks = video_to_landmarks(portrait, video, landmarker=landmarker, pose_smoothing="unbiased")
    assert landmarks.shape == (1 + 4, 68, 2) and np.isfinite(landmarks).all()
    source = landmarker.fit_image(portrait)
    np.testing.assert_allclose(landmarks[0], landmarker.landmarks(source, np.zeros((0, 70)))[0])


def test_pose_smoothing_touches_only_angle_and_translation(landmarker, tmp_path):
    frames = read_video(write_video(tmp_path / "drive.mp4", [BRIGHT, 150, BRIGHT, 120])).frames
    raw = video_coefficients(landmarker, frames, pose_smoothing="none")
    smoothed = video_coefficients(landmarker, frames, pose_smoothing="zero_padded")
    np.testing.assert_allclose(smoothed[:, :64], raw[:, :64])
    np.testing.assert_allclose(smoothed[1:3, 64:], (raw[0:2, 64:] + raw[1:3, 64:] + raw[2:4, 64:]) / 3, rtol=1e-5)
    np.testing.assert_allclose(smoothed[0, 64:], (raw[0, 64:] + raw[1, 64:]) / 3, rtol=1e-5)


def test_an_unreadable_video_is_an_input_error(landmarker, portrait, tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"not a video")
    with pytest.raises(InputError, match="cannot read video"):
        video_to_landmarks(portrait, path, landmarker=landmarker)


def test_missing_checkpoints_are_reported_before_any_work(portrait, tmp_path):
    with pytest.raises(CheckpointError, match=r"SadTalker_V0.0.2_256.safetensors.*make fetch MODE=sadtalker"):
        video_to_landmarks(portrait, tmp_path / "drive.mp4", ckpt_dir=tmp_path)
