"""The models and the guided loop against golden outputs of the reference stack (diffusers 0.24.0, the original's).

The fixtures in ``tests/golden/`` come from ``tests/golden/generate_golden.py``: tiny stock 0.24 models at batch 2
(zero image embedding for the unconditional row, a random one for the conditional row), the original's in-loop
residual addition and adapter injections, and a 3-step guided loop with 0.24's Euler scheduler.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel
from golden_fixtures import golden_unet_config, load_golden, numbered, prefixed

from models.flow_controlnet import FlowControlNet
from models.temporal_context import TEMPORAL_CONTEXTS, tiled_temporal_context
from models.unet_spatio_temporal_condition_controlnet import UNetSpatioTemporalConditionControlNetModel
from pipeline.pipeline_flow_controlnet import AdapterState, FlowControlNetPipeline
from utils.adapter_schedule import FAITHFUL
from utils.scheduling import build_svd_scheduler
from utils.tiny import TINY_CONDITIONING_EMBEDDING_OUT_CHANNELS, tiny_image_encoder, tiny_vae

ATOL = 1e-4


def golden_unet(temporal_context: str = "original") -> UNetSpatioTemporalConditionControlNetModel:
    unet = UNetSpatioTemporalConditionControlNetModel(**golden_unet_config()).eval()
    unet.load_state_dict(prefixed(load_golden("unet")[0], "unet"))
    unet.set_temporal_context(temporal_context)
    return unet


def golden_adapter(temporal_context: str = "original") -> FlowControlNet:
    config = {key: value for key, value in golden_unet_config().items() if key != "up_block_types"}
    adapter = FlowControlNet(**config, conditioning_embedding_out_channels=TINY_CONDITIONING_EMBEDDING_OUT_CHANNELS)
    missing, unexpected = adapter.load_state_dict(prefixed(load_golden("adapter")[0], "adapter"), strict=False)
    # the reference branch (condition embedding, flow encoder) is not run: the warped features are given
    assert unexpected == []
    assert {key.split(".")[0] for key in missing} == {"controlnet_cond_embedding", "flow_encoder"}
    adapter.set_temporal_context(temporal_context)
    return adapter.eval()


def unet_inputs(tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return tensors["sample"], tensors["timestep"], tensors["encoder_hidden_states"], tensors["added_time_ids"]


def dummy_adapter_images(sample: torch.Tensor) -> dict[str, torch.Tensor]:
    """Condition image and flow of the right shapes (the given warped features replace what they would give)."""
    batch, frames, _, height, width = sample.shape
    scale = 2 ** (len(TINY_CONDITIONING_EMBEDDING_OUT_CHANNELS) - 1)
    return {
        "controlnet_cond": torch.zeros(batch, 3, height * scale, width * scale),
        "controlnet_flow": torch.zeros(batch, frames - 1, 2, height * scale, width * scale),
    }


@torch.no_grad()
def test_unet_equals_the_diffusers_0_24_unet_at_batch_2():
    tensors, _ = load_golden("unet")
    output = golden_unet()(*unet_inputs(tensors), return_dict=False)[0]
    torch.testing.assert_close(output, tensors["output_without_residuals"], atol=ATOL, rtol=0)


@torch.no_grad()
def test_per_video_context_is_todays_diffusers_and_differs_from_the_reference():
    tensors, _ = load_golden("unet")
    output = golden_unet("per_video")(*unet_inputs(tensors), return_dict=False)[0]
    stock = UNetSpatioTemporalConditionModel(**golden_unet_config()).eval()
    stock.load_state_dict(prefixed(tensors, "unet"))
    torch.testing.assert_close(output, stock(*unet_inputs(tensors), return_dict=False)[0], atol=1e-6, rtol=0)
    assert (output - tensors["output_without_residuals"]).abs().max() > 100 * ATOL


@torch.no_grad()
def test_contexts_agree_for_a_single_video():
    tensors, _ = load_golden("unet")
    sample, timestep, encoder_hidden_states, added_time_ids = unet_inputs(tensors)
    inputs = (sample[1:], timestep, encoder_hidden_states[1:], added_time_ids[1:])
    original, per_video = (golden_unet(mode)(*inputs, return_dict=False)[0] for mode in TEMPORAL_CONTEXTS)
    torch.testing.assert_close(original, per_video, atol=1e-6, rtol=0)


@torch.no_grad()
def test_unet_residuals_equal_the_released_in_loop_addition():
    tensors, _ = load_golden("unet")
    output = golden_unet()(
        *unet_inputs(tensors),
        down_block_additional_residuals=numbered(tensors, "down_residual"),
        mid_block_additional_residual=tensors["mid_residual"],
        return_dict=False,
    )[0]
    torch.testing.assert_close(output, tensors["output_with_residuals"], atol=ATOL, rtol=0)


@torch.no_grad()
def test_adapter_forward_at_batch_2_equals_the_reference():
    tensors, _ = load_golden("adapter")
    unet_tensors, _ = load_golden("unet")
    sample = unet_tensors["sample"]
    down, mid = golden_adapter()(
        sample, unet_tensors["timestep"], unet_tensors["encoder_hidden_states"], unet_tensors["added_time_ids"],
        **dummy_adapter_images(sample), conditioning_scale=tensors["conditioning_scale"].item(),
        warped_condition=numbered(tensors, "warped"), return_dict=False,
    )[:2]  # fmt: skip
    assert len(down) == len(numbered(tensors, "down"))
    for index, (residual, expected) in enumerate(zip(down, numbered(tensors, "down"))):
        torch.testing.assert_close(residual, expected, atol=ATOL, rtol=0, msg=f"down residual {index}")
    torch.testing.assert_close(mid, tensors["mid"], atol=ATOL, rtol=0)


def run_golden_loop(temporal_context: str) -> torch.Tensor:
    """The fixture's 3-step guided loop through the pipeline's own denoising code (warped features given)."""
    loop, _ = load_golden("guided_loop")
    unet_tensors, _ = load_golden("unet")
    warped = numbered(load_golden("adapter")[0], "warped")
    pipe = FlowControlNetPipeline(
        vae=tiny_vae(), image_encoder=tiny_image_encoder(), unet=golden_unet(temporal_context),
        controlnet=golden_adapter(temporal_context), scheduler=build_svd_scheduler(),
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    noise, image_latents = loop["noise"], loop["image_latents"]
    conditioning = {
        "image_embeddings": unet_tensors["encoder_hidden_states"],
        "image_latents": torch.cat([torch.zeros_like(image_latents), image_latents]),
        "added_time_ids": unet_tensors["added_time_ids"],
        **dummy_adapter_images(torch.cat([noise] * 2)),
    }
    num_frames = noise.shape[1]
    timesteps, latents = pipe.prepare_noise(len(loop["timesteps"]), 1, num_frames, 16, 16, torch.float32,
                                            torch.device("cpu"), None, noise)  # fmt: skip
    torch.testing.assert_close(timesteps, loop["timesteps"], atol=1e-6, rtol=0)
    pipe._adapter_state = AdapterState(FAITHFUL, warped_condition=warped)
    predict = partial(
        pipe.predict_window,
        conditioning=conditioning,
        guidance_scale=pipe.guidance_ramp(*loop["guidance"].tolist(), num_frames, torch.device("cpu")),
        conditioning_scale=load_golden("adapter")[0]["conditioning_scale"].item(),
    )
    with torch.no_grad():
        return pipe.denoise(latents, timesteps, pipe.plan_windows(num_frames, 25, None), predict, None, ["latents"],
                            before_step=pipe.start_adapter_step)  # fmt: skip


def test_guided_loop_equals_the_reference():
    loop, _ = load_golden("guided_loop")
    torch.testing.assert_close(run_golden_loop("original"), loop["latents"], atol=ATOL, rtol=0)


def test_guided_loop_with_per_video_context_differs():
    loop, _ = load_golden("guided_loop")
    assert (run_golden_loop("per_video") - loop["latents"]).abs().max() > 100 * ATOL


def test_tiled_context_gives_row_r_the_context_of_video_r_mod_b():
    contexts = torch.arange(3.0).view(3, 1, 1)  # three videos, four pixels each, batch-major
    per_video = contexts.repeat_interleave(4, dim=0)
    assert tiled_temporal_context(per_video, num_pixels=4).flatten().tolist() == [r % 3 for r in range(12)]


@pytest.mark.parametrize("model_class", [UNetSpatioTemporalConditionControlNetModel, FlowControlNet])
def test_models_default_to_the_original_context_also_after_a_save_and_load(tmp_path, model_class):
    if model_class is FlowControlNet:
        model = golden_adapter()
    else:
        model = golden_unet()
    model.set_temporal_context("per_video")
    model.save_pretrained(tmp_path)
    loaded = model_class.from_pretrained(tmp_path)
    blocks = [module for name, module in loaded.named_modules() if name.endswith("temporal_transformer_blocks")]
    assert blocks and loaded.temporal_context == "original"
    assert {block.temporal_context for module in blocks for block in module} == {"original"}


def test_unknown_temporal_context_is_refused():
    with pytest.raises(ValueError, match="temporal_context must be one of original, per_video, got 'batch'"):
        golden_unet("batch")
