"""Quirks of the original MOFA-Video Keypoint code that the released weights depend on, one test each.

Each oracle is hand-computed or a literal transcription, written here, of what the original code does; the
other ``test_quirk_*`` tests of this suite sit next to the code they check (``pytest -k quirk`` runs them all).
"""

import cv2
import numpy as np
import torch
from inference_opendomain import parse_args

from aniportrait.generator import predict_head_poses
from models.softsplat import softsplat
from utils.landmark_conditions import draw_pose_image, render_pose_images
from utils.tiny_keypoint import tiny_ldmk_controlnet


@torch.no_grad()
def test_quirk_landmark_adapter_repairs_every_warped_feature_by_matting_then_its_zero_out():
    """Per level (stride s): flow sampled every s pixels / s, the feature splatted by it, then the level's matting
    net (unwarped feature, scaled flow, warped feature) and its zero conv; frame 0 keeps the raw feature."""
    adapter = tiny_ldmk_controlnet(seed=0).eval()
    generator = torch.Generator().manual_seed(0)
    cond = torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1
    flow = torch.randn(1, 2, 2, 32, 32, generator=generator) * 4
    features = [adapter.controlnet_cond_embedding(cond), *adapter.flow_encoder(adapter.controlnet_cond_embedding(cond))]
    actual = adapter.prepare_condition(cond, flow)
    assert len(actual) == len(features) == len(adapter.pyramid_strides)
    for feature, stride, level in zip(features, adapter.pyramid_strides, actual):
        frames = [feature]
        for index in range(flow.shape[1]):
            scaled = flow[:, index, :, ::stride, ::stride] / stride
            warped = softsplat(feature, scaled)
            repaired, _ = adapter.occlusions[str(stride)](feature, scaled, warped)
            frames.append(adapter.zero_outs[str(stride)](repaired))
        torch.testing.assert_close(level, torch.cat(frames), atol=1e-5, rtol=1e-5)


def test_quirk_pose_images_are_resized_bilinearly_from_the_320_canvas():
    """The original passes ``cv2.INTER_NEAREST`` where ``cv2.resize`` expects ``dst``: the resize is bilinear."""
    points = np.full((68, 2), 10.0)
    points[:17, 0] = np.linspace(40.0, 600.0, 17)
    points[:17, 1] = 241.0
    images = render_pose_images(points[None], width=640, height=480)[0, 0].permute(1, 2, 0).numpy()
    canvas = draw_pose_image(points * [320 / 640, 320 / 480], 320, 320)
    bilinear = cv2.resize(canvas, (640, 480), interpolation=cv2.INTER_LINEAR) / 255
    nearest = cv2.resize(canvas, (640, 480), interpolation=cv2.INTER_NEAREST) / 255
    np.testing.assert_allclose(images, bilinear, atol=1e-6)
    assert np.abs(images - nearest).max() > 0.1  # the two resizes really differ here
    green = images[:, 320, 1]
    assert 0 < green[green > 0].min() < 200 / 255  # soft edges: partial intensities across the line


def test_quirk_head_poses_halve_rotations_per_chunk_then_smooth_with_a_truncated_window_of_7():
    """AniPortrait's pose head runs per 5 s chunk from a zero pose; rotations x 0.5; then a centred moving average
    of 7 frames whose window is cut at the ends."""
    calls = []

    def pose_model(input_values, num_frames, identity):
        calls.append((int(input_values[0, 0]), num_frames))
        ramp = torch.arange(num_frames, dtype=torch.float32)[:, None] * torch.tensor([1.0, -2.0, 3.0, 0.5, 1.0, -1.0])
        return (ramp + input_values[0, 0] / 1000).unsqueeze(0)

    num_samples, num_frames = 200_000, 313  # 12.5 s at 16 kHz: pieces of 5 s, the last two merged
    poses = predict_head_poses(pose_model, torch.arange(num_samples, dtype=torch.float32)[None], num_frames)
    assert calls == [(0, 125), (80_000, 188)]

    raw = []
    for start, frames in calls:
        chunk = (np.arange(frames)[:, None] * np.array([1.0, -2.0, 3.0, 0.5, 1.0, -1.0]) + start / 1000).astype(
            np.float32
        )
        chunk = chunk.astype(np.float64)
        chunk[:, :3] *= 0.5
        raw.append(chunk)
    raw = np.concatenate(raw)
    expected = np.stack([raw[max(0, i - 3) : i + 4].mean(axis=0) for i in range(len(raw))])
    np.testing.assert_allclose(poses, expected, rtol=1e-6, atol=1e-6)


def test_quirk_keypoint_cli_seeds_the_diffusion_noise_with_41():
    """The released driver seeds its landmark step with 42 but runs the diffusion with ``--seed=41``."""
    assert parse_args(["--img_path", "a.png", "--audio_path", "a.wav", "--save_root", "out"]).seed == 41
