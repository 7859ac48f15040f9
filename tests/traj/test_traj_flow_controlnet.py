"""FlowControlNet: flow pyramid, warping, injection order, residuals, initialisation, saving and input checks."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from models.flow_controlnet import (
    FlowControlNet,
    FlowControlNetOutput,
    flow_pyramid,
    injection_levels,
    warp_features,
)
from models.softsplat import softsplat
from models.unet_spatio_temporal_condition_controlnet import UNetSpatioTemporalConditionControlNetModel, run_down_block
from utils.errors import InputError
from utils.tiny import tiny_flow_controlnet, tiny_unet

BATCH, FRAMES, SIZE = 2, 3, 16  # tiny stack: latents are SIZE/2, adapter strides are 2 and 4


@pytest.fixture(scope="module")
def unet() -> UNetSpatioTemporalConditionControlNetModel:
    return tiny_unet(seed=0).eval()


@pytest.fixture(scope="module")
def controlnet(unet) -> FlowControlNet:
    return tiny_flow_controlnet(seed=0, unet=unet).eval()


@pytest.fixture(scope="module")
def inputs(make_adapter_inputs) -> dict:
    return make_adapter_inputs(batch=BATCH, frames=FRAMES, size=SIZE)


@pytest.fixture(scope="module")
def output(controlnet, inputs) -> FlowControlNetOutput:
    with torch.no_grad():
        return controlnet(**inputs)


# ----------------------------------------------------------------------------------------------- pieces


def test_quirk_flow_pyramid_is_nearest_stride_sampling_divided_by_the_stride():
    flow = torch.randn(2, 3, 2, 64, 64, generator=torch.Generator().manual_seed(0))
    for stride, level in zip((8, 16, 32, 64), flow_pyramid(flow, (8, 16, 32, 64))):
        nearest = F.interpolate(flow.flatten(0, 1), scale_factor=1 / stride, mode="nearest")
        torch.testing.assert_close(level, nearest.view(2, 3, 2, 64 // stride, 64 // stride) / stride, atol=0, rtol=0)


def test_quirk_frame_0_keeps_the_unwarped_feature_batch_major():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 5, 4, 6, generator=generator)
    flows = torch.randn(2, 3, 2, 4, 6, generator=generator)
    warped = warp_features(features, flows).view(2, 4, 5, 4, 6)
    for video in range(2):
        assert torch.equal(warped[video, 0], features[video])
        for frame in range(3):
            expected = softsplat(features[video : video + 1], flows[video, frame : frame + 1])[0]
            torch.testing.assert_close(warped[video, frame + 1], expected, atol=1e-6, rtol=1e-6)


def test_warp_features_splats_in_float32_and_casts_back():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(1, 4, 8, 8, generator=generator).bfloat16()
    flows = (torch.randn(1, 2, 2, 8, 8, generator=generator) * 2).bfloat16()
    warped = warp_features(features, flows)
    assert warped.dtype == torch.bfloat16
    expected = softsplat(features.float().expand(2, -1, -1, -1), flows[0].float()).bfloat16()
    assert torch.equal(warped[1:], expected)


def test_injection_levels_of_the_released_layout():
    assert injection_levels(4) == [0, 1, 2, 3, 3, 3]
    assert injection_levels(2) == [0, 1, 1, 1]


# ----------------------------------------------------------------------------------------------- forward


def test_returns_one_residual_per_unet_skip_with_matching_shapes(controlnet, unet, inputs, output):
    assert len(output.down_block_res_samples) == len(unet.residual_multipliers) == 6
    n = BATCH * FRAMES
    latent = SIZE // 2
    expected = [(n, 32, latent, latent)] * 3 + [(n, 32, latent // 2, latent // 2)] * 3
    assert [tuple(r.shape) for r in output.down_block_res_samples] == expected
    assert tuple(output.mid_block_res_sample.shape) == (n, 32, latent // 2, latent // 2)
    assert output.controlnet_flow is inputs["controlnet_flow"]
    with torch.no_grad():
        as_tuple = controlnet(**inputs, return_dict=False)
    assert len(as_tuple) == 3 and torch.equal(as_tuple[1], output.mid_block_res_sample)


def test_forward_follows_the_specified_injection_order(controlnet, inputs, output):
    """Reference written step by step from the spec: W0 after conv_in, W1 after block 0, the coarsest level
    again after the last block and before the mid block; skips taken before each addition."""
    model = controlnet
    batch, frames = inputs["sample"].shape[:2]
    with torch.no_grad():
        level0 = model.controlnet_cond_embedding(inputs["controlnet_cond"])
        level1 = model.flow_encoder.zeroconvs[0](F.silu(model.flow_encoder.encoders[0].conv_in(level0)))
        warped = []
        for feature, stride in ((level0, 2), (level1, 4)):
            flows = inputs["controlnet_flow"][..., ::stride, ::stride] / stride
            frames_of_video = [feature]
            for index in range(frames - 1):
                frames_of_video.append(softsplat(feature, flows[:, index]))
            warped.append(torch.stack(frames_of_video, dim=1).flatten(0, 1))

        t_emb = model.time_embedding(model.time_proj(inputs["timestep"][None].expand(batch)))
        ids = model.add_time_proj(inputs["added_time_ids"].flatten()).reshape(batch, -1)
        emb = (t_emb + model.add_embedding(ids)).repeat_interleave(frames, dim=0)
        context = inputs["encoder_hidden_states"].repeat_interleave(frames, dim=0)
        indicator = torch.zeros(batch, frames)

        hidden = model.conv_in(inputs["sample"].flatten(0, 1)) + warped[0]
        skips = [hidden]
        hidden, block_skips = run_down_block(model.down_blocks[0], hidden, emb, context, indicator)
        skips += block_skips
        hidden = hidden + warped[1]
        hidden, block_skips = run_down_block(model.down_blocks[1], hidden, emb, context, indicator)
        skips += block_skips
        hidden = hidden + warped[1]
        hidden = hidden + warped[1]
        mid = model.mid_block(
            hidden_states=hidden, temb=emb, encoder_hidden_states=context, image_only_indicator=indicator
        )

    for index, (skip, residual) in enumerate(zip(skips, output.down_block_res_samples)):
        torch.testing.assert_close(residual, model.controlnet_down_blocks[index](skip), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(output.mid_block_res_sample, model.controlnet_mid_block(mid), atol=1e-5, rtol=1e-5)


def test_conditioning_scale_multiplies_every_residual(controlnet, inputs, output):
    with torch.no_grad():
        half = controlnet(**inputs, conditioning_scale=0.5)
        off = controlnet(**inputs, conditioning_scale=0.0)
    for full, halved, zero in zip(
        output.down_block_res_samples, half.down_block_res_samples, off.down_block_res_samples
    ):
        assert torch.equal(halved, full * 0.5)
        assert not zero.any()
    assert torch.equal(half.mid_block_res_sample, output.mid_block_res_sample * 0.5)


def test_flow_changes_later_frames_but_not_the_first_skip_of_frame_zero(controlnet, inputs, output):
    moved = dict(inputs, controlnet_flow=inputs["controlnet_flow"] + 4.0)
    with torch.no_grad():
        other = controlnet(**moved)
    first = output.down_block_res_samples[0].view(BATCH, FRAMES, *output.down_block_res_samples[0].shape[1:])
    first_moved = other.down_block_res_samples[0].view_as(first)
    assert torch.equal(first[:, 0], first_moved[:, 0])
    assert not torch.allclose(first[:, 1:], first_moved[:, 1:])


def test_residuals_drive_the_unet(controlnet, unet, inputs, output):
    unet_inputs = {key: inputs[key] for key in ("sample", "timestep", "encoder_hidden_states", "added_time_ids")}
    with torch.no_grad():
        plain = unet(**unet_inputs).sample
        steered = unet(
            **unet_inputs,
            down_block_additional_residuals=output.down_block_res_samples,
            mid_block_additional_residual=output.mid_block_res_sample,
        ).sample
    assert steered.shape == plain.shape == inputs["sample"][:, :, :4].shape
    assert not torch.allclose(steered, plain)


def test_runs_in_bfloat16_with_float32_splatting(unet, inputs, output):
    low = tiny_flow_controlnet(seed=0, unet=unet).to(torch.bfloat16).eval()
    cast = {key: value.bfloat16() if value.is_floating_point() else value for key, value in inputs.items()}
    with torch.no_grad():
        out = low(**cast)
    assert all(r.dtype == torch.bfloat16 for r in out.down_block_res_samples)
    assert out.mid_block_res_sample.dtype == torch.bfloat16
    torch.testing.assert_close(out.mid_block_res_sample.float(), output.mid_block_res_sample, atol=0.1, rtol=0.1)


def test_trains_with_gradient_checkpointing_and_backpropagates_through_the_warp(unet, inputs):
    controlnet = tiny_flow_controlnet(seed=0, unet=unet).train()
    controlnet.enable_gradient_checkpointing()
    flow = inputs["controlnet_flow"].clone().requires_grad_(True)
    out = controlnet(**dict(inputs, controlnet_flow=flow))
    loss = sum(r.square().mean() for r in out.down_block_res_samples) + out.mid_block_res_sample.square().mean()
    loss.backward()
    assert controlnet.controlnet_cond_embedding.conv_in.weight.grad.abs().sum() > 0
    assert controlnet.down_blocks[0].resnets[0].spatial_res_block.conv1.weight.grad.abs().sum() > 0
    assert flow.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------------- building


def public_config(model: FlowControlNet) -> dict:
    return {key: value for key, value in json.loads(model.to_json_string()).items() if not key.startswith("_")}


def test_quirk_from_unet_copies_the_encoder_but_not_add_embedding(unet):
    controlnet = FlowControlNet.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    adapter = controlnet.state_dict()
    for name, tensor in unet.state_dict().items():
        if name.split(".")[0] in ("conv_in", "time_embedding", "down_blocks", "mid_block"):
            assert torch.equal(adapter[name], tensor), name
    assert not torch.equal(adapter["add_embedding.linear_1.weight"], unet.state_dict()["add_embedding.linear_1.weight"])
    zero_convs = [
        controlnet.controlnet_cond_embedding.conv_out,
        controlnet.controlnet_mid_block,
        *controlnet.controlnet_down_blocks,
        *controlnet.flow_encoder.zeroconvs,
    ]
    assert all(not p.any() for layer in zero_convs for p in layer.parameters())
    assert controlnet.config.num_attention_heads == unet.config.num_attention_heads


def test_from_unet_can_use_other_attention_heads(unet):
    controlnet = FlowControlNet.from_unet(
        unet, conditioning_embedding_out_channels=(16, 32), num_attention_heads=(4, 8)
    )
    assert controlnet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.heads == 4
    assert controlnet.mid_block.attentions[0].transformer_blocks[0].attn1.heads == 8


def test_save_and_load_round_trip_is_bit_exact(controlnet, inputs, output, tmp_path):
    controlnet.save_pretrained(tmp_path)
    loaded = FlowControlNet.from_pretrained(tmp_path).eval()
    assert public_config(loaded) == public_config(controlnet)
    with torch.no_grad():
        again = loaded(**inputs)
    for a, b in zip(again.down_block_res_samples, output.down_block_res_samples):
        assert torch.equal(a, b)
    assert torch.equal(again.mid_block_res_sample, output.mid_block_res_sample)


def test_unequal_last_block_widths_are_rejected():
    with pytest.raises(ValueError, match="block_out_channels"):
        FlowControlNet(
            down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
            block_out_channels=(32, 64),
            num_attention_heads=(2, 4),
        )


def test_released_geometry_at_512_on_fake_tensors():
    with FakeTensorMode(), torch.no_grad():
        controlnet = FlowControlNet()
        assert controlnet.pyramid_strides == (8, 16, 32, 64) and controlnet.size_multiple == 64
        out = controlnet(
            torch.randn(1, 25, 8, 64, 64),
            torch.tensor(1.0),
            torch.randn(1, 1, 1024),
            torch.randn(1, 3),
            torch.randn(1, 3, 512, 512),
            torch.randn(1, 24, 2, 512, 512),
        )
        shapes = [tuple(r.shape[1:]) for r in out.down_block_res_samples]
        with pytest.raises(InputError, match=r"576x520.*multiples of 64"):
            controlnet(
                torch.randn(1, 25, 8, 65, 72),
                torch.tensor(1.0),
                torch.randn(1, 1, 1024),
                torch.randn(1, 3),
                torch.randn(1, 3, 520, 576),
                torch.randn(1, 24, 2, 520, 576),
            )
    assert (
        shapes
        == [(320, 64, 64)] * 3
        + [(320, 32, 32)]
        + [(640, 32, 32)] * 2
        + [(640, 16, 16)]
        + [(1280, 16, 16)] * 2
        + [(1280, 8, 8)] * 3
    )
    assert tuple(out.mid_block_res_sample.shape) == (25, 1280, 8, 8)


# ----------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x: x.update(controlnet_flow=x["controlnet_flow"][:, :1]), r"controlnet_flow must hold T-1 = 2 flows"),
        (lambda x: x.update(controlnet_flow=x["controlnet_flow"][0]), r"controlnet_flow must be \(B, T-1, 2, H, W\)"),
        (lambda x: x.update(controlnet_flow=x["controlnet_flow"][..., :8]), r"controlnet_flow must be"),
        (lambda x: x.update(sample=x["sample"][0]), r"sample must be \(B, T, C, h, w\)"),
        (lambda x: x.update(sample=x["sample"][:, :, :4]), r"sample must have 8 channels"),
        (lambda x: x.update(controlnet_cond=x["controlnet_cond"][:, :1]), r"controlnet_cond must have 3 channels"),
        (lambda x: x.update(controlnet_cond=x["controlnet_cond"][:1]), r"controlnet_cond has batch size 1"),
        (lambda x: x.update(encoder_hidden_states=x["encoder_hidden_states"][:, 0]), r"encoder_hidden_states must be"),
        (
            lambda x: x.update(
                controlnet_cond=x["controlnet_cond"][..., :8, :8], controlnet_flow=x["controlnet_flow"][..., :8, :8]
            ),
            r"controlnet_cond is 8x8 .* latents are 8x8: .* 2x the latent size",
        ),
    ],
)
def test_bad_input_names_the_argument(controlnet, make_adapter_inputs, change, message):
    bad = make_adapter_inputs(batch=BATCH, frames=FRAMES, size=SIZE)
    change(bad)
    with pytest.raises(ValueError, match=message):
        controlnet(**bad)


def test_frame_size_not_a_multiple_of_the_coarsest_stride_is_an_input_error(controlnet, make_adapter_inputs):
    bad = make_adapter_inputs(batch=BATCH, frames=FRAMES, size=18)
    with pytest.raises(InputError, match=r"frame size 18x18 .* multiples of 4"):
        controlnet(**bad)
