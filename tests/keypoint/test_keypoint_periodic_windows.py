"""Periodic sampling as the Keypoint copy uses it: the released window schedule and the averaging rule."""

import pytest
import torch

from utils.periodic_sampling import euler_step, get_views, periodic_denoise_step


@pytest.mark.parametrize(
    "num_frames,views",
    [
        (2, [(1, 2)]),  # shorter than a window: one shorter window (the released code could not run this)
        (24, [(1, 24)]),
        (25, [(1, 25)]),  # the released schedule repeats this view; averaging a view with itself changes nothing
        (26, [(1, 25), (2, 26)]),
        (125, [(1, 25), (13, 37), (25, 49), (37, 61), (49, 73), (61, 85), (73, 97), (85, 109), (97, 121), (101, 125)]),
    ],
)
def test_views_follow_the_released_schedule(num_frames, views):
    assert get_views(num_frames, window=25) == views


def test_overlapping_windows_are_averaged_and_frame_0_comes_from_the_first_window():
    latents = torch.ones(1, 6, 1, 1, 1)
    views = get_views(6, window=4, stride=2)  # (1, 4), (3, 6)

    def denoise(frame_indices, window_latents):
        return torch.full_like(window_latents, float(frame_indices[1]))  # view (a, b) predicts a everywhere

    stepped = periodic_denoise_step(latents, views, denoise, sigma=2.0, sigma_next=1.0)
    one = euler_step(torch.ones(1), torch.full((1,), 1.0), 2.0, 1.0)
    three = euler_step(torch.ones(1), torch.full((1,), 3.0), 2.0, 1.0)
    expected = torch.stack([one, one, one, (one + three) / 2, three, three]).view(1, 6, 1, 1, 1)
    torch.testing.assert_close(stepped, expected)
