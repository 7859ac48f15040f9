"""build_landmark_conditions: the pose images and landmark flow both landmark animators feed the adapter."""

import numpy as np
import pytest
import torch
from torch import nn

from utils.errors import InputError
from utils.landmark_conditions import build_landmark_conditions, landmark_hint_dtype

FRAME = 320  # the pose canvas size: pose images are drawn 1:1
GRID = 64  # one hint pixel covers 5x5 frame pixels


class HintEchoCMP(nn.Module):
    """Stands in for CMP: its dense flow is the sparse hints themselves; records what it was given."""

    device = torch.device("cpu")

    def dense_flow(self, image, sparse_flow, mask, chunk_size=None):
        self.seen = (tuple(image.shape), sparse_flow.dtype, chunk_size)
        return sparse_flow.float()


def _face(jaw_y: float) -> np.ndarray:
    """68 points: the jaw (points 1-17) on a row from x = 20 to 180 step 10, every other point parked at (2, 2)."""
    points = np.full((68, 2), 2.0)
    points[:17, 0] = np.arange(20.0, 181.0, 10.0)
    points[:17, 1] = jaw_y
    return points


def test_a_lowered_jaw_gives_its_pose_lines_and_its_flow_at_the_frame0_jaw():
    landmarks = np.stack([_face(100.0), _face(110.0), _face(90.0)])
    cmp = HintEchoCMP()
    conditions = build_landmark_conditions(cmp, torch.rand(3, FRAME, FRAME), landmarks, grid=GRID, chunk_size=3)

    pose = conditions.pose_images
    assert pose.shape == (1, 3, 3, FRAME, FRAME) and pose.dtype == torch.float32
    jaw_colour = torch.tensor([10.0, 200.0, 10.0]) / 255
    for index, row in enumerate((100, 110, 90)):
        torch.testing.assert_close(pose[0, index, :, row, 60], jaw_colour)
        assert not pose[0, index, :, row + 10, 60].any()

    assert cmp.seen == ((1, 3, GRID, GRID), torch.float32, 3)
    assert conditions.sparse_flow.shape == conditions.sparse_mask.shape == (1, 2, 2, GRID, GRID)
    # jaw point 1 at (20, 100) -> hint pixel (row 20, col 4), displacement (0, +-10) px = (0, +-2) hint pixels
    torch.testing.assert_close(conditions.sparse_flow[0, :, :, 20, 4], torch.tensor([[0.0, 2.0], [0.0, -2.0]]))
    assert torch.all(conditions.sparse_mask[0, :, :, 20, 4] == 1)

    flow = conditions.controlnet_flow
    assert flow.shape == (1, 2, 2, FRAME, FRAME) and flow.dtype == torch.float32
    # the echoed hints come back at the frame size in frame pixels: the jaw's 5x5 blocks carry its motion
    torch.testing.assert_close(flow[0, 0, :, 102, 22], torch.tensor([0.0, 10.0]))
    raised_block = torch.tensor([0.0, -10.0]).view(2, 1, 1).expand(2, 5, 5)
    torch.testing.assert_close(flow[0, 1, :, 100:105, 180:185], raised_block)
    assert not flow[0, :, :, 150:, :].any()


def test_quirk_landmark_hints_are_scaled_to_the_grid_in_float16_under_float16_weights():
    frame0, frame1 = np.full((68, 2), 2.0), np.full((68, 2), 2.0)
    frame0[0] = (33.3, 100.0)
    frame1[0] = (34.4, 100.0)
    landmarks = np.stack([frame0, frame1])
    image = torch.rand(3, FRAME, FRAME)

    half = build_landmark_conditions(HintEchoCMP(), image, landmarks, torch.float16, GRID)
    single = build_landmark_conditions(HintEchoCMP(), image, landmarks, torch.float32, GRID)

    # 1.1 px moved in x: 0.22 hint pixels in float32, 0.21875 when 33.3 and 34.4 are scaled in float16
    assert half.sparse_flow.dtype == torch.float16 and single.sparse_flow.dtype == torch.float32
    assert half.sparse_flow[0, 0, 0, 20, 6].item() == 0.21875
    assert single.sparse_flow[0, 0, 0, 20, 6].item() == pytest.approx(0.22, abs=1e-5)
    assert half.controlnet_flow.dtype == torch.float32
    assert half.controlnet_flow[0, 0, 0, 100, 30].item() == pytest.approx(0.21875 * FRAME / GRID)


def test_landmarks_are_validated_first():
    with pytest.raises(InputError, match="at least 2 frames"):
        build_landmark_conditions(HintEchoCMP(), torch.rand(3, 64, 64), np.zeros((1, 68, 2)), grid=GRID)


def test_hints_are_scaled_in_float16_only_for_float16_models():
    assert landmark_hint_dtype(torch.float16) == torch.float16
    assert landmark_hint_dtype(torch.bfloat16) == torch.float32
    assert landmark_hint_dtype(torch.float32) == torch.float32
