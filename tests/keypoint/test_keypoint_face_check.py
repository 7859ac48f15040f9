"""The portrait check of every mode: MediaPipe's 68 points, the tiny frame's detail crop, motion carried onto a face."""

from pathlib import Path

import numpy as np
import pytest
from media_helpers import portrait_pixels
from PIL import Image

from aniportrait.face_check import anchor_on_face, face_landmarks, tiny_frame
from aniportrait.projection import MEDIAPIPE_TO_68
from utils.errors import InputError

DATA = Path(__file__).parent / "data"


def test_face_landmarks_are_mediapipes_68_points_in_pixels():
    recorded = np.load(DATA / "astronaut_face.npz")["landmarks"]  # what MediaPipe 1.2.2 returned, normalised
    np.testing.assert_allclose(face_landmarks(portrait_pixels()), recorded[MEDIAPIPE_TO_68, :2] * 512, atol=0.5)


def test_a_faceless_picture_is_named_in_the_error():
    with pytest.raises(InputError, match="^no face detected in sky.jpg$"):
        face_landmarks(Image.new("RGB", (300, 200), (90, 140, 220)), "sky.jpg")


def test_the_tiny_frame_is_its_detail_crop_scaled_down_exactly():
    frame, detail = tiny_frame(Image.fromarray(portrait_pixels((700, 500))), short_side=32, multiple=4)
    assert detail.size == (704, 512) and frame.size == (44, 32)  # 717x512 cropped to multiples of 64, then 1/16
    expected = np.asarray(detail.resize(frame.size, Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(np.asarray(frame), expected)


def test_anchor_on_face_carries_the_motion_through_the_best_similarity():
    rng = np.random.default_rng(0)
    sequence = rng.uniform(0, 30, size=(5, 68, 2))
    angle, scale, shift = 0.3, 2.5, np.array([100.0, 40.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    reference = scale * sequence[0] @ rotation.T + shift
    anchored = anchor_on_face(sequence, reference)
    np.testing.assert_allclose(anchored, scale * sequence @ rotation.T + shift, atol=1e-9)
    noisy = reference + rng.normal(scale=0.5, size=reference.shape)  # frame 0 is the detected face exactly
    np.testing.assert_array_equal(anchor_on_face(sequence, noisy)[0], noisy)
