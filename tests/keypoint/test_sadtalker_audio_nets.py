"""Audio -> expression / pose networks: their first layers against hand computation, shapes, chunking, seeding,
blinks and smoothing."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from call_recording import CallRecorder
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


# ------------------------------------------------------------------- values against hand-computed first layers


def _randomise_batch_norms(net, seed=0):
    """Non-trivial running statistics and affine parameters, so eval-mode BatchNorm is not the identity."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(size, generator=generator) * 0.1)


def _conv_bn_relu(x, block, stride=1, padding=1, residual=False):
    """One mel-encoder block by hand: conv2d, eval BatchNorm, (+ input), ReLU."""
    conv, norm = block.conv_block[0], block.conv_block[1]
    out = F.conv2d(x, conv.weight, conv.bias, stride=stride, padding=padding)
    out = F.batch_norm(out, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)
    return F.relu(out + x if residual else out)


@torch.no_grad()
def test_mel_encoder_first_blocks_are_conv_batchnorm_relu_then_residual():
    torch.manual_seed(0)
    net = Audio2ExpNet().eval()
    _randomise_batch_norms(net)
    mels = torch.randn(2, 1, 80, 16, generator=torch.Generator().manual_seed(1))
    with CallRecorder(net.audio_encoder[0], net.audio_encoder[1]) as blocks:
        net.audio_encoder(mels)
    first = _conv_bn_relu(mels, net.audio_encoder[0])
    second = _conv_bn_relu(first, net.audio_encoder[1], residual=True)
    torch.testing.assert_close(blocks.outputs[0], first, rtol=0, atol=1e-5)
    torch.testing.assert_close(blocks.outputs[1], second, rtol=0, atol=1e-5)
    assert first.shape == (2, 32, 80, 16)


@torch.no_grad()
def test_expression_is_one_linear_layer_on_audio_then_source_expression_then_blink():
    torch.manual_seed(0)
    net = Audio2ExpNet().eval()
    _randomise_batch_norms(net)
    generator = torch.Generator().manual_seed(2)
    mels, ref_exp = torch.randn(3, 80, 16, generator=generator), torch.randn(64, generator=generator)
    blink = torch.tensor([0.0, 0.5, 1.0])
    with CallRecorder(net.audio_encoder) as encoder:
        expression = predict_expression(net, mels, ref_exp, blink)
    audio = encoder.outputs[0].flatten(1)  # (3, 512)
    inputs = torch.cat([audio, ref_exp[None].expand(3, -1), blink[:, None]], dim=1)  # the released order
    expected = F.linear(inputs, net.mapping1.weight, net.mapping1.bias)
    torch.testing.assert_close(expression, expected, rtol=0, atol=1e-5)
    # the blink column alone: closing the eyes moves the expression by the blink weights times the ratio
    torch.testing.assert_close(
        predict_expression(net, mels[:1], ref_exp, torch.ones(1))
        - predict_expression(net, mels[:1], ref_exp, torch.zeros(1)),
        net.mapping1.weight[:, -1][None],
        rtol=0,
        atol=1e-5,
    )


@torch.no_grad()
def test_pose_decoder_input_is_the_mlp_on_reference_pose_styled_latent_and_projected_audio():
    torch.manual_seed(0)
    pose_net = Audio2PoseNet().eval()
    pose_net.audio_encoder = CheapMelEncoder()  # its output is recorded; the conv stack is tested above
    generator = torch.Generator().manual_seed(3)
    decoder = pose_net.netG.decoder
    decoder.classbias.data.copy_(torch.randn(decoder.classbias.shape, generator=generator))  # trained styles differ
    ref_pose, latent = torch.randn(1, 6, generator=generator), torch.randn(1, 64, generator=generator)
    mels, style = torch.randn(1, 32, 1, 80, 16, generator=generator), torch.tensor([5])
    with CallRecorder(pose_net.audio_encoder) as encoder, CallRecorder(decoder.resunet) as resunet:
        motion = pose_net(ref_pose, mels, latent, style)
    audio = F.linear(encoder.outputs[0], decoder.linear_audio.weight, decoder.linear_audio.bias).reshape(1, -1)
    hidden = torch.cat([ref_pose, latent + decoder.classbias[5], audio], dim=-1)  # (1, 6 + 64 + 32·6)
    hidden = F.relu(F.linear(hidden, decoder.MLP.L0.weight, decoder.MLP.L0.bias))
    hidden = torch.sigmoid(F.linear(hidden, decoder.MLP.L1.weight, decoder.MLP.L1.bias))
    torch.testing.assert_close(resunet.arguments[0]["x"], hidden.reshape(1, 1, 32, 6), rtol=0, atol=1e-5)
    expected = F.linear(resunet.outputs[0].squeeze(1), decoder.pose_linear.weight, decoder.pose_linear.bias)
    torch.testing.assert_close(motion, expected, rtol=0, atol=1e-6)
