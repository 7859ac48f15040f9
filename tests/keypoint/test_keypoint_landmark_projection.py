"""Projection of face meshes to pixels, the 68-point table, pose smoothing and pose chunking."""

import numpy as np
import pytest

from aniportrait.audio import frame_count
from aniportrait.generator import PoseChunk, pose_chunks
from aniportrait.projection import MEDIAPIPE_TO_68, moving_average, pose_to_matrix, project_mesh_sequence, to_68_points

FOCAL = 1.0 / np.tan(np.deg2rad(31.5))
W_SCALE = 10000.0 / 9999.0  # w = -z * far * near / (far - near)


def _hand_projection(point, width, height):
    x, y, z = point
    w = -z * W_SCALE
    ndc_x = x * FOCAL / (width / height) / w
    ndc_y = -y * FOCAL / w
    return np.array([(ndc_x + 1) / 2 * width, (ndc_y + 1) / 2 * height])


@pytest.mark.parametrize("width,height", [(512, 512), (640, 384)])
def test_projection_matches_hand_computed_pixels(width, height):
    points = np.array([[0.0, 0.0, -50.0], [10.0, 5.0, -50.0], [-3.0, 7.0, -40.0]])
    projected = project_mesh_sequence(points[None], np.eye(4), np.zeros((1, 6)), width, height)[0]
    np.testing.assert_allclose(projected[0], [width / 2, height / 2], atol=1e-6)
    for point, pixel in zip(points, projected):
        np.testing.assert_allclose(pixel, _hand_projection(point, width, height), rtol=1e-6)
    assert projected[1, 1] < height / 2  # +y (up in the camera frame) is above the centre in the image


def test_projection_applies_reference_pose_then_per_frame_pose():
    point = np.array([[1.0, 0.0, 0.0]])
    reference = np.eye(4)
    reference[:3, 3] = [0.0, 0.0, -50.0]
    poses = np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 2.0, 0, 0], [0, 0, 90.0, 0, 0, 0]], dtype=np.float64)
    projected = project_mesh_sequence(np.repeat(point[None], 3, axis=0), reference, poses, 512, 512)
    np.testing.assert_allclose(projected[0, 0], _hand_projection([1.0, 0.0, -50.0], 512, 512), rtol=1e-6)
    np.testing.assert_allclose(projected[1, 0], _hand_projection([3.0, 0.0, -50.0], 512, 512), rtol=1e-6)
    np.testing.assert_allclose(projected[2, 0], _hand_projection([0.0, 1.0, -50.0], 512, 512), rtol=1e-6, atol=1e-9)


def test_pose_to_matrix_uses_extrinsic_xyz_degrees_and_translation():
    matrix = pose_to_matrix(np.array([[0.0, 0.0, 90.0, 1.0, 2.0, 3.0]]))[0]
    np.testing.assert_allclose(matrix[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(matrix[:3, 3], [1, 2, 3])
    combined = pose_to_matrix(np.array([[30.0, 20.0, 0, 0, 0, 0]]))[0][:3, :3]
    rx = pose_to_matrix(np.array([[30.0, 0, 0, 0, 0, 0]]))[0][:3, :3]
    ry = pose_to_matrix(np.array([[0, 20.0, 0, 0, 0, 0]]))[0][:3, :3]
    np.testing.assert_allclose(combined, ry @ rx, atol=1e-12)  # x applied first


def test_68_point_table_follows_the_mediapipe_index_order():
    assert MEDIAPIPE_TO_68.shape == (68,)
    assert list(MEDIAPIPE_TO_68[:3]) == [234, 93, 132] and MEDIAPIPE_TO_68[8] == 152  # chin
    assert list(MEDIAPIPE_TO_68[60:]) == [78, 81, 13, 311, 308, 402, 14, 178]
    points = np.stack([np.arange(478), -np.arange(478)], axis=1)[None].astype(float)
    np.testing.assert_array_equal(to_68_points(points)[0, :, 0], MEDIAPIPE_TO_68)


def test_moving_average_truncates_its_window_at_the_ends():
    sequence = np.arange(10, dtype=float)[:, None]
    smoothed = moving_average(sequence, 7)[:, 0]
    assert smoothed[0] == pytest.approx(np.mean([0, 1, 2, 3]))
    assert smoothed[5] == pytest.approx(np.mean([2, 3, 4, 5, 6, 7, 8]))
    assert smoothed[9] == pytest.approx(np.mean([6, 7, 8, 9]))


def test_demo_audio_length_gives_126_frames_in_one_pose_chunk():
    assert frame_count(80248) == 126
    assert pose_chunks(80248, 126) == [PoseChunk(0, 80248, 126)]


def test_audio_up_to_five_seconds_is_one_chunk():
    assert pose_chunks(40000, frame_count(40000)) == [PoseChunk(0, 40000, 63)]
    assert pose_chunks(80000, frame_count(80000)) == [PoseChunk(0, 80000, 125)]


def test_quirk_pose_chunks_are_5_seconds_with_the_last_two_merged():
    # 12 s: pieces of 5, 5, 2 s -> [5 s: 125 frames] + [7 s merged: 125 + 300 % 125 = 175 frames]
    assert pose_chunks(192000, 300) == [PoseChunk(0, 80000, 125), PoseChunk(80000, 192000, 175)]
    # 7 s -> one merged chunk of 125 + 50 frames
    assert pose_chunks(112000, 175) == [PoseChunk(0, 112000, 175)]


def test_lengths_with_frames_a_multiple_of_125_are_not_cut_short():
    # 14.99 s: 375 frames; the released split would give 125 + (125 + 375 % 125) = 250 poses
    num_samples = 239840
    num_frames = frame_count(num_samples)
    assert num_frames == 375
    chunks = pose_chunks(num_samples, num_frames)
    assert chunks == [PoseChunk(0, 80000, 125), PoseChunk(80000, 239840, 250)]
    assert sum(chunk.num_frames for chunk in chunks) == num_frames
