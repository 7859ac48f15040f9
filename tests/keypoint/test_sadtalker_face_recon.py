"""5-point POS alignment to the 224² regressor input and the coefficient regressor's interface."""

import numpy as np
import pytest
import torch
from scipy.io import savemat

from sadtalker_audio2pose.face_recon import (
    FaceReconNet,
    align_face,
    five_points,
    load_landmark_template,
    solve_scale_translation,
    split_coefficients,
)
from utils.tiny_keypoint import mean_face


def test_five_points_are_eye_centres_nose_tip_and_mouth_corners():
    landmarks = np.arange(68 * 2, dtype=float).reshape(68, 2)
    expected = [landmarks[[36, 39]].mean(0), landmarks[[42, 45]].mean(0), landmarks[30], landmarks[48], landmarks[54]]
    np.testing.assert_allclose(five_points(landmarks), expected)


def test_template_is_read_from_the_lm_variable(tmp_path):
    savemat(tmp_path / "similarity_Lm3D_all.mat", {"lm": mean_face()})
    np.testing.assert_allclose(load_landmark_template(tmp_path / "similarity_Lm3D_all.mat"), five_points(mean_face()))


def test_pos_recovers_scale_and_translation_of_a_scaled_orthographic_view():
    template = five_points(mean_face())
    points = 37.5 * template[:, :2] + [120.0, 80.0]
    translation, scale = solve_scale_translation(points, template)
    assert scale == pytest.approx(37.5)
    np.testing.assert_allclose(translation, [120.0, 80.0], atol=1e-9)


def test_alignment_brings_the_face_to_the_template_at_scale_102_centred_in_224():
    template = five_points(mean_face())
    scale_in_crop = 60.0
    face = mean_face()
    landmarks = np.stack([128 + scale_in_crop * face[:, 0], 255 - (110 + scale_in_crop * face[:, 1])], axis=1)
    crop = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    aligned, alignment = align_face(crop, landmarks, template)
    assert aligned.shape == (224, 224, 3) and aligned.dtype == np.uint8
    assert alignment.scale == pytest.approx(102 / scale_in_crop)
    # where the 5 points land on the 224² input (y up) vs the template seen at 102 px per unit around (112, 112)
    points = five_points(landmarks) * alignment.scale - [alignment.left, alignment.up]
    points[:, 1] = 224 - points[:, 1]
    np.testing.assert_allclose(points, 102 * template[:, :2] + 112, atol=1.5)


def test_regressor_maps_a_224_image_to_257_coefficients():
    torch.manual_seed(0)
    net = FaceReconNet().eval()
    with torch.no_grad():
        coeffs = net(torch.rand(2, 3, 224, 224))
    assert coeffs.shape == (2, 257) and torch.isfinite(coeffs).all()


def test_regressor_heads_fill_id_exp_tex_angle_gamma_trans_in_order():
    net = FaceReconNet().eval()
    with torch.no_grad():
        for index, layer in enumerate(net.final_layers):  # heads: id, exp, tex, angle, gamma, (tx, ty), tz
            layer.weight.zero_()
            layer.bias.fill_(float(index))
        parts = split_coefficients(net(torch.rand(1, 3, 224, 224)))
    assert {name: part.shape[1] for name, part in parts.items()} == {
        "id": 80,
        "exp": 64,
        "tex": 80,
        "angle": 3,
        "gamma": 27,
        "trans": 3,
    }
    assert {name: sorted(set(part[0].tolist())) for name, part in parts.items()} == {
        "id": [0.0],
        "exp": [1.0],
        "tex": [2.0],
        "angle": [3.0],
        "gamma": [4.0],
        "trans": [5.0, 6.0],
    }
    assert parts["trans"][0].tolist() == [5.0, 5.0, 6.0]
