"""Tiny-mode video-driven landmarks: a schematic face that follows the driving video's motion."""

import cv2
import numpy as np

from utils.synthetic_video_landmarks import synthetic_video_landmarks, video_motion


def _panning_video(num_frames: int, step: int) -> np.ndarray:
    """A blurred noise texture moving ``step`` pixels right per frame, (T, 64, 64, 3) uint8."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur((rng.random((96, 96, 3)) * 255).astype(np.uint8), (5, 5), 0)
    return np.stack([np.roll(texture, step * index, axis=1)[16:80, 16:80] for index in range(num_frames)])


def test_video_motion_measures_the_pan_and_the_change():
    shifts, activity = video_motion(_panning_video(5, 2))
    assert shifts.shape == (5, 2) and activity.shape == (5,)
    np.testing.assert_allclose(shifts[:, 0] * 64, [0, 2, 4, 6, 8], atol=0.5)
    np.testing.assert_allclose(shifts[:, 1] * 64, 0, atol=0.5)
    assert activity[0] == 0 and activity.max() == 1 and activity[1:].min() > 0.9


def test_still_video_gives_a_still_face_with_a_closed_mouth():
    still = np.repeat(_panning_video(1, 0), 4, axis=0)
    landmarks = synthetic_video_landmarks(128, 96, still)
    assert landmarks.shape == (5, 68, 2)
    for frame in landmarks[1:]:
        np.testing.assert_allclose(frame, landmarks[0], atol=1e-9)


def test_landmarks_follow_the_pan_in_portrait_pixels():
    landmarks = synthetic_video_landmarks(128, 128, _panning_video(4, 2))
    nose = landmarks[:, 30]  # end of the nose bridge
    # 2 px per frame on a 64-px video is 4 px per frame on a 128-px portrait
    np.testing.assert_allclose(nose[1:, 0] - nose[0, 0], [0, 4, 8, 12], atol=1.0)
    inner_lip_gap = landmarks[:, 66, 1] - landmarks[:, 62, 1]
    assert inner_lip_gap[2] > inner_lip_gap[0]


def test_head_shift_is_clipped_to_a_fifth_of_the_face():
    landmarks = synthetic_video_landmarks(100, 100, _panning_video(2, 30))
    assert abs(landmarks[2, 30, 0] - landmarks[0, 30, 0]) <= 0.2 * 50 + 1e-9
