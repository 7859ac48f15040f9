"""Pose images, sparse landmark flow on the CMP grid, dense flow rescaling, landmark validation (the whole
chain: test_keypoint_landmark_condition_builder.py)."""

import numpy as np
import pytest
import torch
from torch import nn

from utils.errors import InputError
from utils.landmark_conditions import (
    FACE_POLYLINES,
    check_landmarks,
    dense_landmark_flow,
    draw_landmark_dots,
    draw_pose_image,
    landmark_preview_frames,
    render_pose_images,
    sparse_landmark_flow,
)


def _jaw_only_face(y: float, x_start: float = 20.0, x_end: float = 180.0) -> np.ndarray:
    """68 points: the jaw (points 1-17) on a horizontal line, every other point parked at (2, 2)."""
    points = np.full((68, 2), 2.0)
    points[:17, 0] = np.linspace(x_start, x_end, 17)
    points[:17, 1] = y
    return points


def test_fifteen_polylines_cover_all_68_points():
    assert len(FACE_POLYLINES) == 15
    assert set().union(*(set(indices) for indices, _ in FACE_POLYLINES)) == set(range(1, 69))


def test_quirk_pose_lines_take_the_colour_tuples_as_rgb_and_draw_no_points():
    canvas = draw_pose_image(_jaw_only_face(100.0), 200, 200)
    assert canvas.shape == (200, 200, 3) and canvas.dtype == np.float32
    np.testing.assert_array_equal(canvas[100, 50], [10, 200, 10])
    np.testing.assert_array_equal(canvas[100, 100], [10, 200, 10])
    assert not canvas[120:, :].any() and not canvas[:95, 10:].any()
    assert canvas[100, 185:].sum() == 0  # nothing past the last jaw point


def test_pose_images_are_drawn_at_320_and_resized_to_the_frame():
    landmarks = np.stack([_jaw_only_face(240.0, 40.0, 600.0), _jaw_only_face(300.0, 40.0, 600.0)])
    images = render_pose_images(landmarks, width=640, height=480)
    assert images.shape == (1, 2, 3, 480, 640) and images.dtype == torch.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    green = images[0, :, 1, :, 320]  # the green channel along the middle column
    assert abs(int(green[0].argmax()) - 240) <= 2 and abs(int(green[1].argmax()) - 300) <= 2
    # lines are 2 px wide on the 320 canvas, so 3 px on a 480-tall frame
    assert 2 <= int((green[0] > 0.3).sum()) <= 5


def test_sparse_flow_writes_displacements_at_frame_0_pixels_on_the_384_grid():
    first = np.full((68, 2), 400.0)
    first[0] = [100.0, 50.0]
    second = first.copy()
    second[0] += [10.0, -4.0]
    flow, mask = sparse_landmark_flow(np.stack([first, second]), width=768, height=768)
    assert flow.shape == mask.shape == (1, 1, 2, 384, 384)
    torch.testing.assert_close(flow[0, 0, :, 25, 50], torch.tensor([5.0, -2.0]))
    assert mask[0, 0, :, 25, 50].tolist() == [1.0, 1.0]
    assert int(mask[0, 0, 0].sum()) == 2  # point 0 and the 67 coinciding points at (200, 200)
    assert flow[0, 0, :, 200, 200].tolist() == [0.0, 0.0]


def test_quirk_landmark_hint_pixels_are_clipped_to_the_grid():
    first = np.zeros((68, 2))
    first[:] = [-10.0, 900.0]
    flow, mask = sparse_landmark_flow(np.stack([first, first + 2.0]), width=768, height=768)
    assert mask[0, 0, 0, 383, 0] == 1.0
    torch.testing.assert_close(flow[0, 0, :, 383, 0], torch.tensor([1.0, 1.0]))


def test_sparse_flow_rescales_non_square_frames_per_axis():
    first = np.full((68, 2), 10.0)
    second = first + [64.0, 48.0]
    flow, _ = sparse_landmark_flow(np.stack([first, second]), width=768, height=192)
    # x: 10 * 0.5 = 5 -> col 5; y: 10 * 2 = 20 -> row 20; displacement (32, 96) on the grid
    torch.testing.assert_close(flow[0, 0, :, 20, 5], torch.tensor([32.0, 96.0]))


class ConstantCMP(nn.Module):
    """Stands in for CMP: dense flow (dx, dy) everywhere, and records its inputs."""

    def __init__(self, dx: float, dy: float):
        super().__init__()
        self.register_buffer("value", torch.tensor([dx, dy]).view(1, 2, 1, 1))

    @property
    def device(self) -> torch.device:
        return self.value.device

    def dense_flow(self, image, sparse_flow, mask, chunk_size=None):
        self.seen = (image.shape, sparse_flow.shape, mask.shape)
        return self.value.expand(sparse_flow.shape[0], 2, *sparse_flow.shape[-2:]).clone()


def test_quirk_landmark_cmp_flow_is_upsampled_nearest_and_rescaled_per_axis():
    cmp = ConstantCMP(3.0, 4.0)
    sparse = torch.zeros(1, 5, 2, 384, 384)
    flow = dense_landmark_flow(cmp, torch.rand(3, 192, 768), sparse, sparse, width=768, height=192)
    assert flow.shape == (1, 5, 2, 192, 768)
    assert cmp.seen == ((1, 3, 384, 384), (5, 2, 384, 384), (5, 2, 384, 384))
    assert torch.all(flow[:, :, 0] == 6.0) and torch.all(flow[:, :, 1] == 2.0)


@pytest.mark.parametrize(
    "landmarks,message",
    [
        (np.zeros((3, 67, 2)), r"shape \(N, 68, 2\)"),
        (np.zeros((1, 68, 2)), "at least 2 frames"),
        (np.full((2, 68, 2), np.nan), "finite"),
    ],
)
def test_bad_landmark_arrays_are_input_errors(landmarks, message):
    with pytest.raises(InputError, match=message):
        check_landmarks(landmarks)


def test_preview_and_dots():
    image = np.full((100, 120, 3), 7, dtype=np.uint8)
    landmarks = np.stack([_jaw_only_face(50.0, 10.0, 110.0)] * 2)
    preview = landmark_preview_frames(image, landmarks)
    assert preview.shape == (2, 100, 240, 3) and preview.dtype == np.uint8
    assert (preview[:, :, :120] == 7).all() and tuple(preview[0, 50, 120 + 60]) == (10, 200, 10)
    dotted = draw_landmark_dots(image, landmarks[0])
    assert tuple(dotted[50, 60]) == (0, 0, 255) and (image == 7).all()


def test_landmark_dots_are_sized_to_the_frame():
    points = np.array([[16.0, 16.0], [100.0, 100.0]])
    small = draw_landmark_dots(np.zeros((32, 32, 3), np.uint8), points[:1])
    assert (small.any(axis=-1)).sum() == 1  # a single pixel on a tiny frame
    large = draw_landmark_dots(np.zeros((512, 512, 3), np.uint8), points)
    assert (large.any(axis=-1)).sum() == 2 * 13  # radius 2 (13 pixels a dot) at 512, as before
