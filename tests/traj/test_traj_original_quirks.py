"""Quirks of the original MOFA-Video that the released weights depend on, one test each (``test_quirk_*``).

Each oracle is hand-computed or a literal transcription, written here, of what the original code does; the
other ``test_quirk_*`` tests of this suite sit next to the code they check (``pytest -k quirk`` runs them all).
"""

import inspect
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from models.flow_controlnet import FlowControlNet
from models.softsplat import softsplat
from models.unet_spatio_temporal_condition_controlnet import UNetSpatioTemporalConditionControlNetModel
from pipeline.trajectory_animator import TrajectoryAnimator
from utils.memory import memory_plan
from utils.tiny import tiny_flow_controlnet, tiny_unet
from utils.trajectories import dense_flow_on_grid

SIZE = 16  # frame side of the tiny pipeline (latents 8x8)


def _image(seed=0):
    return torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _flow(num_frames, seed=0):
    return torch.randn(1, num_frames - 1, 2, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 3


class Hooks:
    """Forward (pre-)hooks that record into ``self.seen[name]``; removed when the ``with`` block ends."""

    def __init__(self):
        self.seen, self.handles = {}, []

    def inputs(self, module, name, key="hidden_states"):
        def record(_module, _args, kwargs):
            self.seen[name] = kwargs[key]

        self.handles.append(module.register_forward_pre_hook(record, with_kwargs=True))

    def outputs(self, module, name, pick=lambda output: output):
        self.handles.append(
            module.register_forward_hook(lambda _m, _a, output: self.seen.__setitem__(name, pick(output)))
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for handle in self.handles:
            handle.remove()


# ----------------------------------------------------------------------------------------------- encoding


def test_quirk_noise_augmentation_0_02_is_added_to_the_minus1_1_pixel_image(pipe, monkeypatch):
    """The original noises the first frame in pixel space ([-1, 1]), before the VAE, by 0.02·N(0, 1)."""
    seen, encode = [], pipe.vae.encode
    monkeypatch.setattr(pipe.vae, "encode", lambda pixels, *a, **k: seen.append(pixels) or encode(pixels, *a, **k))
    pipe(_image(), _flow(3), num_inference_steps=1, output_type="latent", generator=torch.Generator().manual_seed(5))
    noise = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))  # the generator's first draw
    torch.testing.assert_close(seen[0], _image()[None] * 2 - 1 + 0.02 * noise)


def test_quirk_image_latents_are_the_unscaled_vae_posterior_mode(pipe, record_calls):
    """``latent_dist.mode()`` of the noised image, not a sample and not multiplied by the VAE scaling factor."""
    with record_calls(pipe.unet) as unet:
        pipe(
            _image(), _flow(3), num_inference_steps=1, output_type="latent", generator=torch.Generator().manual_seed(5)
        )
    noise = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = pipe.vae.encode(_image()[None] * 2 - 1 + 0.02 * noise).latent_dist.mode()[0]
    sample = unet.calls[0][0][0]  # (2, T, 8, h, w): unconditional half first, image latents on channels 4..7
    assert pipe.vae.config.scaling_factor != 1.0  # so that a scaled latent would show
    for frame in range(sample.shape[1]):
        torch.testing.assert_close(sample[1, frame, 4:], expected, atol=1e-5, rtol=1e-5)


def test_quirk_guidance_is_linspace_1_3_over_the_window_positions_not_the_video_frames(pipe, monkeypatch):
    """Periodic sampling: every window gets the same ramp over its own positions (frame 0 = min, last = max).

    Seen with a UNet predicting 1 for the conditional half and 0 for the unconditional one: the guided output
    of each window is then its guidance, position by position.
    """

    def conditional_one_unconditional_zero(module, args, kwargs, output):
        prediction = torch.zeros_like(output[0])
        prediction[prediction.shape[0] // 2 :] = 1.0
        return (prediction,)

    guided, guided_prediction = [], pipe.guided_prediction
    monkeypatch.setattr(
        pipe, "guided_prediction", lambda *a, **k: guided.append(guided_prediction(*a, **k)) or guided[-1]
    )
    handle = pipe.unet.register_forward_hook(conditional_one_unconditional_zero, with_kwargs=True)
    try:
        pipe(_image(), _flow(7), num_inference_steps=1, output_type="latent", window_size=4, window_stride=2,
             generator=torch.Generator().manual_seed(0))  # fmt: skip
    finally:
        handle.remove()
    assert len(guided) >= 3  # windows (1,4) (3,6) (4,7) of 1 + 3 frames
    for window_output in guided:
        torch.testing.assert_close(window_output[0, :, 0, 0, 0], torch.tensor([1.0, 5 / 3, 7 / 3, 3.0]))


def test_quirk_vae_decodes_chunks_of_8_frames_each_as_its_own_clip(pipe, monkeypatch):
    """Latents cast to the VAE's dtype, then multiplied by the reciprocal of the scaling factor (``1 / s * z``,
    not ``z / s``: the two differ in the last bit), decoded 8 frames at a time, each chunk told it is a clip of
    its own length; the default memory presets keep the released chunk of 8."""
    assert memory_plan("high", "cpu").decode_chunk_size == memory_plan("balanced", "cpu").decode_chunk_size == 8
    latents = torch.randn(1, 10, 4, SIZE // 2, SIZE // 2, generator=torch.Generator().manual_seed(0))
    calls, decode = [], pipe.vae.decode
    monkeypatch.setattr(pipe.vae, "decode", lambda z, num_frames: calls.append(z) or decode(z, num_frames))
    with torch.no_grad():
        frames = pipe.decode_latents(latents, decode_chunk_size=8)
        scaled = 1 / 0.18215 * latents[0]
        assert not torch.equal(scaled, latents[0] / 0.18215)  # the two roundings differ on these latents
        expected = torch.cat([decode(scaled[:8], num_frames=8).sample, decode(scaled[8:], num_frames=2).sample])
    assert [len(z) for z in calls[:2]] == [8, 2]
    assert torch.equal(torch.cat(calls[:2]), scaled)
    torch.testing.assert_close(frames[0].permute(1, 0, 2, 3), expected, rtol=0, atol=0)


def test_quirk_decode_casts_latents_to_the_vae_dtype_before_scaling(pipe, monkeypatch):
    """float32 latents for a float16 VAE are rounded to float16 first, then scaled in float16."""
    latents = torch.randn(1, 3, 4, 2, 2, generator=torch.Generator().manual_seed(1))
    seen = []
    monkeypatch.setattr(type(pipe.vae), "dtype", property(lambda self: torch.float16))
    monkeypatch.setattr(
        pipe.vae, "decode", lambda z, num_frames: seen.append(z) or SimpleNamespace(sample=z.float()[:, :3])
    )
    pipe.decode_latents(latents, decode_chunk_size=8)
    expected = 1 / 0.18215 * latents[0].half()
    assert seen[0].dtype == torch.float16 and torch.equal(seen[0], expected)
    assert not torch.equal(expected, (1 / 0.18215 * latents[0]).half())  # the order matters on these latents


# ------------------------------------------------------------------------------------------------- models


def test_quirk_residual_multipliers_follow_the_original_rezipped_down_loop():
    """The original adds the residual list to every skip collected so far after each down block (``zip``
    truncating to the skips that exist). Transcribed here on the four-level layout: counts 4,4,4,4,3,3,3,2,2,2,1,1.
    """
    unet = tiny_unet(seed=0, layout="svd")
    generator = torch.Generator().manual_seed(0)
    inputs = {
        "sample": torch.randn(1, 3, 8, 8, 8, generator=generator),
        "timestep": torch.tensor(0.9),
        "encoder_hidden_states": torch.randn(1, 1, 32, generator=generator),
        "added_time_ids": torch.tensor([[6.0, 128.0, 0.02]]),
    }
    with torch.no_grad(), Hooks() as hooks:
        hooks.outputs(unet.conv_in, "conv_in")
        for index, block in enumerate(unet.down_blocks):
            hooks.outputs(block, f"block{index}", pick=lambda output: output[1])
        unet(**inputs)
        block_skips = [(hooks.seen["conv_in"],)] + [hooks.seen[f"block{i}"] for i in range(len(unet.down_blocks))]
    residuals = [torch.randn(skip.shape, generator=generator) for skips in block_skips for skip in skips]
    assert len(residuals) == 12

    collected = ()  # the original loop, literally
    for skips in block_skips:
        collected += skips
        if skips is block_skips[0]:
            continue  # conv_in's skip is only collected; additions happen after each down block
        collected = tuple(skip + residual for skip, residual in zip(collected, residuals))

    with torch.no_grad(), Hooks() as hooks:
        for index, block in enumerate(unet.up_blocks):
            hooks.inputs(block, f"up{index}", key="res_hidden_states_tuple")
        unet(**inputs, down_block_additional_residuals=residuals)
    up_blocks = [hooks.seen[f"up{i}"] for i in range(len(unet.up_blocks))]
    skips_in_encoder_order = [skip for block in reversed(up_blocks) for skip in block]
    for expected, actual in zip(collected, skips_in_encoder_order, strict=True):
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_quirk_coarsest_warped_feature_is_added_after_the_last_two_down_blocks_and_before_the_mid_block():
    """Injection on the four-level layout: W0 after conv_in, W1/W2/W3 after down blocks 0/1/2, then W3 again
    after block 3 and a third time before the mid block (the original clamps its index)."""
    unet = tiny_unet(seed=0, layout="svd")
    adapter = tiny_flow_controlnet(seed=0, unet=unet)
    generator = torch.Generator().manual_seed(0)
    inputs = {
        "sample": torch.randn(1, 3, 8, 16, 16, generator=generator),
        "timestep": torch.tensor(0.9),
        "encoder_hidden_states": torch.randn(1, 1, 32, generator=generator),
        "added_time_ids": torch.tensor([[6.0, 128.0, 0.02]]),
        "controlnet_cond": torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1,
        "controlnet_flow": torch.randn(1, 2, 2, 32, 32, generator=generator) * 4,
    }
    with torch.no_grad(), Hooks() as hooks:
        for index, block in enumerate(adapter.down_blocks):
            hooks.inputs(block, f"in{index}")
            hooks.outputs(block, f"out{index}", pick=lambda output: output[0])
        hooks.inputs(adapter.mid_block, "mid")
        adapter(**inputs)
        warped = adapter.prepare_condition(inputs["controlnet_cond"], inputs["controlnet_flow"])
        conv_in = adapter.conv_in(inputs["sample"].flatten(0, 1))
    seen = hooks.seen
    assert len(warped) == 4
    close = {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(seen["in0"], conv_in + warped[0], **close)
    torch.testing.assert_close(seen["in1"], seen["out0"] + warped[1], **close)
    torch.testing.assert_close(seen["in2"], seen["out1"] + warped[2], **close)
    torch.testing.assert_close(seen["in3"], seen["out2"] + warped[3], **close)
    torch.testing.assert_close(seen["mid"], seen["out3"] + warped[3] + warped[3], **close)


def test_quirk_adapter_attention_heads_are_5_10_10_20_unlike_the_unets_5_10_20_20():
    with torch.device("meta"):
        adapter, unet = FlowControlNet(), UNetSpatioTemporalConditionControlNetModel()
    assert tuple(adapter.config.num_attention_heads) == (5, 10, 10, 20)
    assert tuple(unet.config.num_attention_heads) == (5, 10, 20, 20)
    heads = [block.attentions[0].transformer_blocks[0].attn1.heads for block in adapter.down_blocks[:3]]
    assert heads == [5, 10, 10]
    assert unet.down_blocks[2].attentions[0].transformer_blocks[0].attn1.heads == 20


def test_quirk_average_splatting_divides_by_the_weight_plus_1e_7_and_leaves_holes_zero():
    """One source pixel moved by (d, d), d = sqrt(1e-7): its far corner gets weight d² = 1e-7, so the original's
    ``sum / (weight + 1e-7)`` gives half the value there; untouched pixels (holes) are exactly 0."""
    value, shift = 3.0, 1e-7**0.5
    features = torch.zeros(1, 1, 3, 3)
    features[0, 0, 0, 0] = value
    flow = torch.full((1, 2, 3, 3), 100.0)  # every other pixel leaves the frame
    flow[0, :, 0, 0] = shift
    out = softsplat(features, flow)[0, 0].double()
    weights = {(0, 0): (1 - shift) ** 2, (0, 1): shift * (1 - shift), (1, 0): shift * (1 - shift), (1, 1): shift**2}
    for (row, col), weight in weights.items():
        assert out[row, col].item() == pytest.approx(value * weight / (weight + 1e-7), rel=1e-4), (row, col)
    assert out[1, 1].item() == pytest.approx(value / 2, rel=1e-3)
    holes = torch.ones(3, 3, dtype=torch.bool)
    holes[:2, :2] = False
    assert torch.all(out[holes] == 0)


# ------------------------------------------------------------------------------------------------ demo


def test_quirk_demo_runs_with_seed_42_and_exports_at_20_fps():
    """The released Traj demo seeds with 42 and writes its 25 frames (conditioned at fps id 6) at 20 fps."""
    animate = inspect.signature(TrajectoryAnimator.animate).parameters
    save = inspect.signature(TrajectoryAnimator.save).parameters
    assert animate["seed"].default == 42
    assert animate["fps_id"].default == 6
    assert save["fps"].default == 20


def test_quirk_in_brush_flow_is_multiplied_by_brush_over_255():
    """CMP's in-brush flow is scaled by the (bilinearly resized, so soft-edged) brush / 255, not thresholded."""
    brush_grid = np.array([[0.0, 51.0, 127.5, 255.0]] * 4)
    sparse = torch.zeros(2, 2, 4, 4)

    def constant_cmp(image, sparse_flow, mask):
        return torch.full_like(sparse_flow, 10.0)

    flow = dense_flow_on_grid(constant_cmp, torch.rand(3, 4, 4), sparse, sparse, brush_grid)
    expected = torch.tensor([0.0, 2.0, 5.0, 10.0]).expand(2, 2, 4, 4)
    torch.testing.assert_close(flow, expected)


def test_quirk_adapter_flow_is_rounded_to_float16_under_float16_weights(pipe, monkeypatch):
    """The released pipelines cast the flow to the weights' dtype before the adapter (which splats in fp32):
    30.1234 px becomes 30.125 under fp16; bf16 and fp32 runs keep the fp32 flow."""
    flow = torch.full((1, 2, 2, SIZE, SIZE), 30.1234)
    half = pipe.adapter_flow(flow, torch.float16, torch.device("cpu"))
    assert half.dtype == torch.float32 and torch.all(half == 30.125)
    for dtype in (torch.bfloat16, torch.float32):
        assert torch.equal(pipe.adapter_flow(flow, dtype, torch.device("cpu")), flow)

    calls, adapter_flow = [], pipe.adapter_flow
    monkeypatch.setattr(
        pipe, "adapter_flow", lambda f, dtype, device: calls.append(dtype) or adapter_flow(f, dtype, device)
    )
    seen, prepare = [], pipe.controlnet.prepare_condition
    monkeypatch.setattr(
        pipe.controlnet, "prepare_condition", lambda cond, f, *a: seen.append(f) or prepare(cond, f, *a)
    )
    pipe(_image(), _flow(3), num_inference_steps=1, output_type="latent", generator=torch.Generator().manual_seed(0))
    assert calls == [pipe.image_encoder.dtype]
    torch.testing.assert_close(seen[0], adapter_flow(_flow(3), calls[0], torch.device("cpu")).repeat(2, 1, 1, 1, 1))
