"""What one training step feeds the adapter, under the released and the fixed conventions, in both stages."""

import numpy as np
import pytest
import torch
from call_recording import CallRecorder

from train_utils.arguments import parse_args
from train_utils.components import load_components
from train_utils.conditioning import ConditioningDropout, TrainingConventions
from train_utils.training_step import AdapterTrainingStep, StepConfig, TrainingRandomness


def constant_flow(value):
    def estimate(frames):
        return torch.full((frames.shape[0], frames.shape[1] - 1, 2, *frames.shape[-2:]), value)

    return estimate


@pytest.fixture(scope="module")
def components(tiny_stage2_components):
    return tiny_stage2_components


def run_step(components, stage, conventions, flow_value=1.0):
    step = AdapterTrainingStep(
        components,
        StepConfig(stage=stage, conventions=conventions, s2d_size=64),
        constant_flow(flow_value),
        ConditioningDropout(0.0),
        TrainingRandomness(0),
        torch.device("cpu"),
        torch.float32,
    )
    pixel_values = torch.rand(2, 3, 3, 16, 16) * 0.5 + 0.5  # frames in [0.5, 1]
    with CallRecorder(components.controlnet) as adapter:
        output = step({"pixel_values": pixel_values}, components.controlnet)
    return output, adapter.arguments[0], pixel_values


def test_quirk_training_feeds_the_adapter_a_0_1_first_frame(components):
    output, call, pixel_values = run_step(components, 1, TrainingConventions())
    assert torch.isfinite(output.loss)
    assert torch.equal(call["controlnet_cond"], pixel_values[:, 0])
    assert call["added_time_ids"].tolist() == [[6.0, pytest.approx(0.02), 127.0]] * 2
    assert call["sample"].shape == (2, 3, 8, 8, 8)  # scaled noisy latents + first-frame latents
    assert torch.allclose(call["timestep"], output.sigmas.log() / 4)
    assert torch.equal(call["controlnet_flow"], torch.ones(2, 2, 2, 16, 16))  # stage 1: the dense flow itself


def test_fixed_conventions_feed_a_signed_image_and_svd_time_ids(components):
    output, call, pixel_values = run_step(components, 1, TrainingConventions.from_flags(True))
    assert torch.isfinite(output.loss)
    assert torch.allclose(call["controlnet_cond"], pixel_values[:, 0] * 2 - 1)
    assert call["added_time_ids"].tolist() == [[6.0, 127.0, pytest.approx(0.02)]] * 2


def test_stage2_feeds_cmp_flow_from_hints_not_the_dense_flow(components):
    output, call, _ = run_step(components, 2, TrainingConventions(), flow_value=200.0)
    flow = call["controlnet_flow"]
    assert flow.shape == (2, 2, 2, 16, 16) and torch.isfinite(output.loss)
    # CMP's flow is bounded by its bins (tiny CMP: +-50*(1-1/9) px on its 64-px grid = +-11.1 px at 16 px)
    assert flow.abs().max() <= 50 * (1 - 1 / 9) * 16 / 64 + 1e-4
    assert not np.allclose(flow.numpy(), 200.0)


@pytest.mark.parametrize("argv, mode", [([], "original"), (["--temporal_context", "per_video"], "per_video")])
def test_temporal_context_reaches_the_unet_and_the_adapter(argv, mode):
    parts = load_components(parse_args(1, ["--tiny", "--output_dir", "unused", *argv]))
    blocks = [
        block
        for model in (parts.unet, parts.controlnet)
        for name, module in model.named_modules()
        if name.endswith("temporal_transformer_blocks")
        for block in module
    ]
    assert parts.unet.temporal_context == parts.controlnet.temporal_context == mode
    assert blocks and {block.temporal_context for block in blocks} == {mode}
