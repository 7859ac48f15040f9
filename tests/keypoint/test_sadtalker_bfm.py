"""Face-model geometry: Euler rotation convention, pinhole projection, .mat reading, mapping back to image pixels."""

import math

import numpy as np
import pytest
import torch
from scipy.io import savemat
from scipy.spatial.transform import Rotation

from sadtalker_audio2pose.bfm import BFMLandmarks, euler_to_rotation, project_points, to_image_pixels
from sadtalker_audio2pose.face_crop import CropBox
from sadtalker_audio2pose.face_recon import Alignment
from utils.errors import CheckpointError


def test_rotation_is_rz_ry_rx_like_scipy_extrinsic_xyz():
    angles = torch.tensor([[0.3, -0.7, 1.1], [-1.2, 0.4, 0.05]], dtype=torch.float64)
    expected = Rotation.from_euler("xyz", angles.numpy()).as_matrix()
    torch.testing.assert_close(euler_to_rotation(angles), torch.from_numpy(expected))


def test_rotation_by_a_quarter_turn_about_each_axis():
    quarter = math.pi / 2
    about_z = euler_to_rotation(torch.tensor([[0.0, 0.0, quarter]]))[0]
    about_x = euler_to_rotation(torch.tensor([[quarter, 0.0, 0.0]]))[0]
    about_y = euler_to_rotation(torch.tensor([[0.0, quarter, 0.0]]))[0]
    torch.testing.assert_close(about_z @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(about_x @ torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(about_y @ torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0]))


def test_pinhole_projection_by_hand():
    # depth = 10 - z; u = 1015 x / depth + 112
    points = torch.tensor([[[0.2, 0.1, 0.0], [-0.5, 0.3, 0.5]]])
    projected = project_points(points)
    expected = torch.tensor(
        [[[1015 * 0.2 / 10 + 112, 1015 * 0.1 / 10 + 112], [1015 * -0.5 / 9.5 + 112, 1015 * 0.3 / 9.5 + 112]]]
    )
    torch.testing.assert_close(projected, expected)
    assert projected[0, 0].tolist() == pytest.approx([132.3, 122.15])


@pytest.fixture
def small_bfm_file(tmp_path):
    """A 5-vertex model: vertex v at (v, 2v, 0) (centroid (2, 4, 0)); keypoints (1-based) pick vertices 4 and 2."""
    vertices = np.array([[v, 2.0 * v, 0.0] for v in range(5)])
    id_base = np.zeros((15, 80))
    id_base[3 * 3 + 0, 0] = 1.0  # identity 0 moves vertex 3 along x
    exp_base = np.zeros((15, 64))
    exp_base[1 * 3 + 2, 5] = 1.0  # expression 5 moves vertex 1 along z
    path = tmp_path / "BFM_model_front.mat"
    savemat(
        path,
        {
            "meanshape": vertices.reshape(1, -1),
            "idBase": id_base,
            "exBase": exp_base,
            "keypoints": np.array([[4, 2]]),
            "meantex": np.zeros((1, 15)),
            "tri": np.ones((1, 3)),
        },
    )
    return path


def test_from_mat_reads_one_based_keypoints_and_centres_on_all_vertices(small_bfm_file):
    bfm = BFMLandmarks.from_mat(small_bfm_file)
    torch.testing.assert_close(bfm.mean_shape, torch.tensor([[1.0, 2.0, 0.0], [-1.0, -2.0, 0.0]]))
    assert bfm.id_base.shape == (2, 3, 80) and bfm.exp_base.shape == (2, 3, 64)
    assert bfm.id_base[0, 0, 0] == 1 and bfm.exp_base[1, 2, 5] == 1


def test_projection_of_known_coefficients_by_hand(small_bfm_file):
    bfm = BFMLandmarks.from_mat(small_bfm_file)
    coeffs = torch.zeros(1, 257)
    coeffs[0, 0] = 0.5  # id 0: keypoint 0 (vertex 3) x += 0.5 -> (1.5, 2, 0)
    coeffs[0, 80 + 5] = 1.0  # exp 5: keypoint 1 (vertex 1) z += 1 -> (-1, -2, 1)
    coeffs[0, 226] = math.pi / 2  # rotate about z: (x, y, z) -> (-y, x, z)
    coeffs[0, 254:] = torch.tensor([0.1, -0.2, 0.5])
    landmarks = bfm.project(coeffs)[0]
    # keypoint 0: (-2, 1.5, 0) + t = (-1.9, 1.3, 0.5); keypoint 1: (2, -1, 1) + t = (2.1, -1.2, 1.5)
    expected = torch.tensor(
        [[1015 * -1.9 / 9.5 + 112, 1015 * 1.3 / 9.5 + 112], [1015 * 2.1 / 8.5 + 112, 1015 * -1.2 / 8.5 + 112]]
    )
    torch.testing.assert_close(landmarks, expected, rtol=1e-5, atol=1e-3)


def test_unreadable_face_model_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "BFM_model_front.mat"
    path.write_bytes(b"not a mat file")
    with pytest.raises(CheckpointError, match="BFM_model_front.mat"):
        BFMLandmarks.from_mat(path)


def test_to_image_pixels_undoes_flip_cut_scale_and_crop_resize():
    alignment = Alignment(scale=2.0, left=10, up=20)
    box = CropBox(left=100, top=50, right=612, bottom=306)  # 512 x 256 box, resized to 256²
    points = np.array([[[112.0, 112.0], [0.0, 224.0]]])
    # y' = 224 - y; p = (p + (10, 20)) / 2; p * (512/256, 256/256) + (100, 50)
    expected = np.array(
        [[[(112 + 10) / 2 * 2 + 100, (112 + 20) / 2 + 50], [(0 + 10) / 2 * 2 + 100, (0 + 20) / 2 + 50]]]
    )
    np.testing.assert_allclose(to_image_pixels(points, alignment, box), expected)
