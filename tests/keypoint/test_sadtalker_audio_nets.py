"""Audio -> expression / pose networks: shapes, chunking, seeding, blinks and smoothing."""

import random

import numpy as np
import pytest
import torch
from scipy.signal import savgol_filter

from sadtalker_audio2pose.audio2exp import BLINK_SHAPE, Audio2ExpNet, predict_expression, random_blinks
from sadtalker_audio2pose.audio2pose import Audio2PoseNet, predict_pose
from sadtalker_audio2pose.pipeline import smooth_pose


class CheapMelEncoder(torch.nn.Module):
    """(B, T, 1, 80, 16) -> (B, T, 512) with one linear layer: the chunking tests need speed, not the conv stack."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(80 * 16, 512)

    def forward(self, mels):
        return self.linear(mels.flatten(2))


@pytest.fixture(scope="module")
def pose_net():
    """The full pose decoder behind a cheap mel encoder."""
    torch.manual_seed(0)
    net = Audio2PoseNet().eval()
    net.audio_encoder = CheapMelEncoder()
    return net


def test_expression_is_per_frame_so_batching_does_not_change_it():
    torch.manual_seed(0)
    net = Audio2ExpNet().eval()
    mels = torch.randn(7, 80, 16)
    ref_exp = torch.randn(64)
    blink = torch.linspace(0, 1, 7)
    expression = predict_expression(net, mels, ref_exp, blink)
    assert expression.shape == (7, 64)
    torch.testing.assert_close(predict_expression(net, mels[3:4], ref_exp, blink[3:4]), expression[3:4])


def test_pose_net_maps_one_chunk_to_32_frames_of_motion():
    torch.manual_seed(0)
    net = Audio2PoseNet().eval()
    motion = net(torch.zeros(2, 6), torch.randn(2, 32, 1, 80, 16), torch.randn(2, 64), torch.tensor([0, 45]))
    assert motion.shape == (2, 32, 6)


@pytest.mark.parametrize("frames", [1, 10, 40])
def test_pose_has_one_row_per_frame_and_frame_0_is_the_reference(pose_net, frames):
    ref = torch.tensor([0.1, -0.2, 0.05, 0.01, 0.02, 0.3])
    pose = predict_pose(pose_net, torch.randn(frames, 80, 16), ref, 0, torch.Generator().manual_seed(1))
    assert pose.shape == (frames, 6) and torch.isfinite(pose).all()
    torch.testing.assert_close(pose[0], ref)


def test_pose_is_seeded_by_the_generator(pose_net):
    mels, ref = torch.randn(12, 80, 16), torch.zeros(6)
    first = predict_pose(pose_net, mels, ref, 3, torch.Generator().manual_seed(7))
    again = predict_pose(pose_net, mels, ref, 3, torch.Generator().manual_seed(7))
    other = predict_pose(pose_net, mels, ref, 3, torch.Generator().manual_seed(8))
    torch.testing.assert_close(first, again)
    assert not torch.allclose(first[1:], other[1:])


def test_a_short_last_chunk_reuses_the_last_32_windows_and_keeps_its_tail(pose_net):
    mels, ref = torch.randn(1 + 32 + 5, 80, 16), torch.zeros(6)
    pose = predict_pose(pose_net, mels, ref, 0, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    first_latent = torch.randn(1, 64, generator=generator)
    last_latent = torch.randn(1, 64, generator=generator)
    style = torch.tensor([0])
    with torch.no_grad():
        head = pose_net(ref[None], mels[1:33, None][None], first_latent, style)[0]
        tail = pose_net(ref[None], mels[-32:, None][None], last_latent, style)[0, -5:]
    torch.testing.assert_close(pose[1:], torch.cat([head, tail]))


def test_pose_style_must_be_one_of_the_trained_styles(pose_net):
    with pytest.raises(ValueError, match=r"pose style must be in \[0, 46\)"):
        predict_pose(pose_net, torch.randn(3, 80, 16), torch.zeros(6), 46, torch.Generator())


def test_blinks_are_seeded_shaped_and_absent_from_short_clips():
    assert not random_blinks(20, random.Random(0)).any()
    assert not random_blinks(21, random.Random(0)).any()  # no room to draw a gap: no blink, no error
    ratio = random_blinks(200, random.Random(42))
    np.testing.assert_array_equal(ratio, random_blinks(200, random.Random(42)))
    starts = np.flatnonzero((ratio > 0) & (np.r_[0.0, ratio[:-1]] == 0))
    assert len(starts) >= 2 and starts[0] >= 10
    for start in starts:
        assert ratio[start : start + 5].tolist() == pytest.approx(BLINK_SHAPE)


def test_pose_smoothing_is_savitzky_golay_with_window_13_or_the_largest_odd_length():
    rng = np.random.default_rng(0)
    long, short = rng.standard_normal((20, 6)), rng.standard_normal((6, 6))
    np.testing.assert_allclose(smooth_pose(long), savgol_filter(long, 13, 2, axis=0))
    np.testing.assert_allclose(smooth_pose(short), savgol_filter(short, 5, 2, axis=0))
    np.testing.assert_array_equal(smooth_pose(short[:2]), short[:2])
