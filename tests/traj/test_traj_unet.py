"""The residual-accepting SVD UNet: stock behaviour without residuals, the released residual multipliers with."""

from types import SimpleNamespace

import pytest
import torch
from call_recording import CallRecorder
from diffusers.models.unets.unet_spatio_temporal_condition import UNetSpatioTemporalConditionModel

from models.unet_spatio_temporal_condition_controlnet import (
    UNetSpatioTemporalConditionControlNetModel,
    down_residual_multipliers,
)
from utils.tiny import tiny_unet

BATCH, FRAMES, LATENT = 1, 4, 8


@pytest.fixture(scope="module")
def unet() -> UNetSpatioTemporalConditionControlNetModel:
    return tiny_unet(seed=0).eval()


@pytest.fixture(scope="module")
def inputs() -> dict:
    generator = torch.Generator().manual_seed(0)
    return {
        "sample": torch.randn(BATCH, FRAMES, 8, LATENT, LATENT, generator=generator),
        "timestep": torch.tensor(1.2),
        "encoder_hidden_states": torch.randn(BATCH, 1, 32, generator=generator),
        "added_time_ids": torch.tensor([[6.0, 128.0, 0.02]]),
    }


def run_and_record(unet, inputs, **residuals) -> SimpleNamespace:
    """Runs the UNet; ``.skips`` are the skips its up blocks received, in encoder order (the up path consumes them
    last to first), ``.mid_output`` the hidden state entering the first up block."""
    with torch.no_grad(), CallRecorder(*unet.up_blocks) as up_blocks:
        unet(**inputs, **residuals)
    received = [arguments["res_hidden_states_tuple"] for arguments in up_blocks.arguments]
    return SimpleNamespace(
        skips=[skip for block in reversed(received) for skip in block],
        mid_output=up_blocks.arguments[0]["hidden_states"],
    )


def test_released_layout_multipliers_are_4_4_4_4_3_3_3_2_2_2_1_1():
    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionControlNetModel()
    assert unet.residual_multipliers == (4, 4, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1)


def test_tiny_layout_multipliers_follow_the_blocks(unet):
    assert down_residual_multipliers(unet.down_blocks) == (2, 2, 2, 2, 1, 1)


def test_without_residuals_output_equals_stock_unet(unet, inputs):
    stock = UNetSpatioTemporalConditionModel(**unet.config).eval()
    stock.load_state_dict(unet.state_dict())
    with torch.no_grad():
        expected = stock(**inputs).sample
        assert torch.equal(unet(**inputs).sample, expected)
        zeros = [torch.zeros_like(skip) for skip in run_and_record(unet, inputs).skips]
        mid = torch.zeros(BATCH * FRAMES, 32, LATENT // 2, LATENT // 2)
        with_zero_residuals = unet(
            **inputs, down_block_additional_residuals=zeros, mid_block_additional_residual=mid
        ).sample
    assert torch.equal(with_zero_residuals, expected)


def test_each_residual_reaches_its_skip_scaled_by_its_multiplier(unet, inputs):
    plain = run_and_record(unet, inputs)
    generator = torch.Generator().manual_seed(1)
    for index, multiplier in enumerate(unet.residual_multipliers):
        residuals = [torch.zeros_like(skip) for skip in plain.skips]
        residuals[index] = torch.randn(plain.skips[index].shape, generator=generator)
        steered = run_and_record(unet, inputs, down_block_additional_residuals=residuals)
        for other, (before, after) in enumerate(zip(plain.skips, steered.skips)):
            if other == index:
                torch.testing.assert_close(after - before, multiplier * residuals[index], atol=1e-5, rtol=1e-5)
            else:
                assert torch.equal(after, before)
        assert torch.equal(steered.mid_output, plain.mid_output)


def test_mid_residual_is_added_once_after_the_mid_block(unet, inputs):
    plain = run_and_record(unet, inputs)
    mid = torch.randn(plain.mid_output.shape, generator=torch.Generator().manual_seed(2))
    steered = run_and_record(unet, inputs, mid_block_additional_residual=mid)
    torch.testing.assert_close(steered.mid_output - plain.mid_output, mid, atol=1e-5, rtol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(steered.skips, plain.skips))


def test_wrong_number_of_residuals_is_rejected(unet, inputs):
    residuals = [torch.zeros(1)] * 5
    with pytest.raises(ValueError, match=r"down_block_additional_residuals must hold 6 tensors"):
        unet(**inputs, down_block_additional_residuals=residuals)


def test_wrongly_shaped_residual_is_rejected(unet, inputs):
    residuals = [torch.zeros_like(skip) for skip in run_and_record(unet, inputs).skips]
    residuals[3] = torch.zeros(BATCH * FRAMES, 32, 3, 3)
    with pytest.raises(ValueError, match=r"down_block_additional_residuals\[3\]"):
        unet(**inputs, down_block_additional_residuals=residuals)
    with pytest.raises(ValueError, match="mid_block_additional_residual"):
        unet(**inputs, mid_block_additional_residual=torch.zeros(1, 2, 3, 4))


def test_svd_unet_folder_loads_unchanged(unet, inputs, tmp_path):
    stock = UNetSpatioTemporalConditionModel(**unet.config)
    stock.load_state_dict(unet.state_dict())
    stock.half().save_pretrained(tmp_path / "unet", variant="fp16")
    loaded = UNetSpatioTemporalConditionControlNetModel.from_pretrained(tmp_path / "unet", variant="fp16")
    assert isinstance(loaded, UNetSpatioTemporalConditionControlNetModel)
    assert list(loaded.config.block_out_channels) == list(unet.config.block_out_channels)
    for name, tensor in stock.state_dict().items():
        assert torch.equal(loaded.state_dict()[name].to(tensor.dtype), tensor), name


def test_runs_in_bfloat16(unet, inputs):
    low = tiny_unet(seed=0).to(torch.bfloat16).eval()
    cast = {key: value.to(torch.bfloat16) if value.is_floating_point() else value for key, value in inputs.items()}
    residuals = [torch.full_like(skip, 0.1) for skip in run_and_record(unet, inputs).skips]
    with torch.no_grad():
        out = low(**cast, down_block_additional_residuals=[r.bfloat16() for r in residuals]).sample
        reference = unet(**inputs, down_block_additional_residuals=residuals).sample
    assert out.dtype == torch.bfloat16
    assert out.shape == (BATCH, FRAMES, 4, LATENT, LATENT)
    torch.testing.assert_close(out.float(), reference, atol=0.1, rtol=0.1)
