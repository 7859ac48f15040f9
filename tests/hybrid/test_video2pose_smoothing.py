"""Driving-coefficient clean-up: interpolation over frames without a face, and the pose moving average."""

import numpy as np
import pytest

from sadtalker_video2pose.smoothing import interpolate_missing, moving_average


def test_missing_frames_are_interpolated_linearly_and_held_at_the_ends():
    values = np.array([[0.0, 10.0], [1.0, 20.0], [0.0, 0.0], [0.0, 0.0], [4.0, 50.0], [0.0, 0.0]], np.float32)
    valid = np.array([False, True, False, False, True, False])
    filled = interpolate_missing(values, valid)
    assert filled.dtype == np.float32
    np.testing.assert_allclose(filled, [[1, 20], [1, 20], [2, 30], [3, 40], [4, 50], [4, 50]])


def test_quirk_video_pose_smoothing_is_zero_padded_convolve_same_with_ones_over_3():
    values = np.random.default_rng(0).standard_normal((9, 6))
    expected = np.stack([np.convolve(values[:, i], np.ones(3) / 3, "same") for i in range(6)], axis=1)
    np.testing.assert_allclose(moving_average(values, "zero_padded"), expected)


def test_zero_padding_pulls_the_end_frames_towards_zero_and_unbiased_does_not():
    constant = np.full((5, 2), 0.9)
    np.testing.assert_allclose(moving_average(constant, "zero_padded")[[0, -1]], 0.6)
    np.testing.assert_allclose(moving_average(constant, "unbiased"), constant)
    ramp = np.arange(5, dtype=float)[:, None]
    np.testing.assert_allclose(moving_average(ramp, "unbiased")[:, 0], [0.5, 1, 2, 3, 3.5])


@pytest.mark.parametrize("frames", [1, 2])
def test_very_short_clips_keep_their_length(frames):
    values = np.ones((frames, 6))
    assert moving_average(values, "zero_padded").shape == (frames, 6)
    np.testing.assert_allclose(moving_average(values, "unbiased"), values)
    np.testing.assert_allclose(moving_average(values, "none"), values)


def test_unknown_smoothing_is_rejected():
    with pytest.raises(ValueError, match="unknown pose smoothing 'gaussian'"):
        moving_average(np.ones((3, 6)), "gaussian")
