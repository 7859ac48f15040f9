"""Flow colour-coding (utils/flow_viz.py)."""

import numpy as np
import pytest
import torch
from torchvision.utils import flow_to_image

from utils.flow_viz import colour_wheel, flow_to_rgb, flow_video_frames


def _uniform_flow(dx, dy, height=4, width=6):
    return torch.tensor([dx, dy], dtype=torch.float32).view(2, 1, 1).expand(2, height, width).clone()


def test_zero_flow_is_white():
    assert (flow_to_rgb(torch.zeros(2, 4, 6)) == 255).all()


def test_single_frame_layout_is_hwc_uint8():
    rgb = flow_to_rgb(_uniform_flow(3.0, -1.0))
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, flow_to_image(_uniform_flow(3.0, -1.0)).permute(1, 2, 0).numpy())


def test_quirk_flow_colours_are_normalised_per_frame():
    flow = torch.stack([_uniform_flow(1.0, 0.5), _uniform_flow(10.0, 5.0)])
    rgb = flow_to_rgb(flow, per_frame=True)
    assert rgb.shape == (2, 4, 6, 3)
    np.testing.assert_array_equal(rgb[0], rgb[1])


def test_video_normalisation_keeps_small_motion_paler():
    flow = torch.stack([_uniform_flow(1.0, 0.5), _uniform_flow(10.0, 5.0)])
    rgb = flow_to_rgb(flow, per_frame=False).astype(int)
    np.testing.assert_array_equal(rgb, flow_to_image(flow).permute(0, 2, 3, 1).numpy())
    assert rgb[0].min() > rgb[1].min()  # weaker motion -> closer to white


def test_half_precision_flow_on_any_device_is_accepted():
    rgb = flow_to_rgb(_uniform_flow(2.0, 2.0).half())
    assert rgb.dtype == np.uint8 and not (rgb == 255).all()


@pytest.mark.parametrize("dx, dy", [(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)])
def test_colour_wheel_shows_each_direction_in_the_colour_of_a_flow_pointing_that_way(dx, dy):
    wheel = colour_wheel(63, 63).astype(int)  # odd: pixel (31, 31) is the centre, radius 30.5
    reach = 30 if 0 in (dx, dy) else 21  # a pixel on the rim (|offset| 30 or 29.7) in direction (dx, dy)
    row, column = 31 + reach * dy, 31 + reach * dx  # image axes: y points down
    expected = flow_to_rgb(_uniform_flow(float(dx), float(dy))).astype(int)[0, 0]  # full saturation
    assert np.abs(wheel[row, column] - expected).max() <= 6  # the rim pixel is within 3 % of the largest motion


def test_colour_wheel_is_a_disc_on_white_with_still_white_at_its_centre():
    wheel = colour_wheel(64, 80)
    assert wheel.shape == (64, 80, 3) and wheel.dtype == np.uint8
    assert (wheel[:, :8] == 255).all() and (wheel[:, -8:] == 255).all()  # outside the disc of radius 31
    assert (wheel[31:33, 39:41] > 240).all()  # almost no motion near the centre
    assert (wheel.min(axis=2) < 60).sum() > 200  # a saturated ring


def test_flow_video_opens_on_the_colour_wheel_and_keeps_one_frame_per_video_frame():
    flow = torch.stack([_uniform_flow(1.0, 0.0), _uniform_flow(0.0, 3.0), _uniform_flow(-2.0, 0.0)])
    frames = flow_video_frames(flow)
    assert frames.shape == (4, 4, 6, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], colour_wheel(4, 6))
    assert not (frames[0] == 255).all()  # frame 0 does not move, yet is not a blank white frame
    np.testing.assert_array_equal(frames[1:], flow_to_rgb(flow))


def test_wrong_flow_shape_is_rejected():
    with pytest.raises(ValueError, match="flow must have shape"):
        flow_to_rgb(torch.zeros(3, 4, 6))
