"""The landmark MOFA-Adapter: released key layout, tiny forward, where pose images and matting act."""

import json
from pathlib import Path

import pytest
import torch

from models.ldmk_controlnet import ForegroundMatting, LandmarkFlowControlNet
from utils.tiny_keypoint import tiny_ldmk_controlnet

STATE_DICTS = Path(__file__).parent / "state_dicts"
BATCH, FRAMES, SIZE = 1, 4, 64


def _released_layout() -> dict[str, list[int]]:
    lines = (STATE_DICTS / "keypoint_ldmk_flowcontrolnet.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in lines if not line.startswith("#")]
    return {key: json.loads(shape) for key, shape, _ in rows}


def test_full_size_model_has_exactly_the_released_keys_shapes_and_order():
    with torch.device("meta"):
        model = LandmarkFlowControlNet()
    expected = _released_layout()
    actual = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert len(expected) == 765
    assert sorted(set(expected) - set(actual)) == [] and sorted(set(actual) - set(expected)) == []
    assert [key for key in expected if actual[key] != expected[key]] == []
    assert list(actual) == list(expected)


@pytest.fixture(scope="module")
def controlnet() -> LandmarkFlowControlNet:
    return tiny_ldmk_controlnet(seed=0).eval()


def _inputs(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "sample": torch.randn(BATCH, FRAMES, 8, SIZE // 2, SIZE // 2, generator=generator),
        "timestep": torch.tensor(1.0),
        "encoder_hidden_states": torch.randn(BATCH, 1, 32, generator=generator),
        "added_time_ids": torch.tensor([[6.0, 128.0, 0.02]]),
        "controlnet_cond": torch.rand(BATCH, 3, SIZE, SIZE, generator=generator) * 2 - 1,
        "controlnet_flow": torch.randn(BATCH, FRAMES - 1, 2, SIZE, SIZE, generator=generator) * 3,
        "pose_images": torch.rand(BATCH, FRAMES, 3, SIZE, SIZE, generator=generator),
    }


@torch.no_grad()
def test_tiny_forward_returns_residuals_per_skip_and_masks_per_level(controlnet):
    output = controlnet(**_inputs())
    assert [tuple(r.shape) for r in output.down_block_res_samples] == [(4, 32, 32, 32)] * 3 + [(4, 32, 16, 16)] * 3
    assert tuple(output.mid_block_res_sample.shape) == (4, 32, 16, 16)
    assert [tuple(m.shape) for m in output.occlusion_masks] == [(1, 3, 1, 32, 32), (1, 3, 1, 16, 16)]
    assert all(((m >= 0) & (m <= 1)).all() for m in output.occlusion_masks)
    as_tuple = controlnet(**_inputs(), return_dict=False)
    assert len(as_tuple) == 4
    torch.testing.assert_close(as_tuple[1], output.mid_block_res_sample)


@torch.no_grad()
def test_residuals_scale_with_conditioning_scale(controlnet):
    full = controlnet(**_inputs()).mid_block_res_sample
    half = controlnet(**_inputs(), conditioning_scale=0.5).mid_block_res_sample
    torch.testing.assert_close(half, 0.5 * full)


@torch.no_grad()
def test_pose_images_enter_at_conv_in(controlnet):
    inputs = _inputs()
    changed = dict(inputs, pose_images=torch.zeros_like(inputs["pose_images"]))
    first, other = controlnet(**inputs), controlnet(**changed)
    # the first skip is the conv_in output after the injections
    assert not torch.allclose(first.down_block_res_samples[0], other.down_block_res_samples[0])


def test_quirk_pose_embedding_is_added_after_conv_in_and_nearest_halved_after_block_0(controlnet):
    inputs = _inputs()
    recorded = {}
    handles = [
        controlnet.down_blocks[index].register_forward_pre_hook(
            lambda module, args, kwargs, name=f"block{index}_in": recorded.__setitem__(name, kwargs["hidden_states"]),
            with_kwargs=True,
        )
        for index in (0, 1)
    ]
    try:
        with torch.no_grad():
            controlnet(**inputs)
            base = dict(recorded)
            delta = torch.zeros_like(inputs["pose_images"])
            controlnet(**dict(inputs, pose_images=delta))
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        full, half = controlnet.encode_pose_images(inputs["pose_images"])
        zero_full, zero_half = controlnet.encode_pose_images(delta)
    torch.testing.assert_close(base["block0_in"] - recorded["block0_in"], full - zero_full, atol=1e-5, rtol=1e-4)
    assert torch.equal(half, full[..., ::2, ::2])
    # the block-0 output differs through the block itself; its input to block 1 also carries the half copy
    assert not torch.allclose(base["block1_in"], recorded["block1_in"])


@torch.no_grad()
def test_quirk_landmark_frame_0_keeps_the_raw_feature_without_matting(controlnet):
    inputs = _inputs()
    features = controlnet.encode_condition(inputs["controlnet_cond"])
    warped, masks = controlnet.warp_condition(features, inputs["controlnet_flow"])
    for level_feature, level_frames in zip(features, warped):
        assert level_frames.shape[0] == BATCH * FRAMES
        torch.testing.assert_close(level_frames[0], level_feature[0])


def test_quirk_matting_blends_the_warped_feature_and_a_fill_by_a_soft_mask():
    torch.manual_seed(0)
    matting = ForegroundMatting(6, block_expansion=4, max_features=16)
    reference, warped = torch.randn(2, 6, 8, 8), torch.randn(2, 6, 8, 8)
    flow = torch.randn(2, 2, 8, 8)
    with torch.no_grad():
        repaired, mask = matting(reference, flow, warped)
        hidden = matting.hourglass(torch.cat([reference, flow, warped], dim=1))
        fill = matting.matting(hidden)
    assert hidden.shape == (2, 4, 8, 8) and mask.shape == (2, 1, 8, 8)
    torch.testing.assert_close(repaired, warped * mask + fill * (1 - mask))


def test_released_config_json_with_the_trajectory_class_name_loads(tmp_path, controlnet):
    controlnet.save_pretrained(tmp_path)
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())
    config["_class_name"] = "FlowControlNet"
    config_path.write_text(json.dumps(config))
    loaded = LandmarkFlowControlNet.from_pretrained(tmp_path).eval()
    for key, value in controlnet.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_pose_images_with_the_wrong_shape_are_rejected(controlnet):
    inputs = _inputs()
    inputs["pose_images"] = inputs["pose_images"][:, 1:]
    with pytest.raises(ValueError, match="pose_images must be"):
        controlnet(**inputs)


@torch.no_grad()
def test_precomputed_warped_condition_gives_identical_residuals(controlnet):
    inputs = _inputs()
    direct = controlnet(**inputs)
    warped = controlnet.prepare_condition(inputs["controlnet_cond"], inputs["controlnet_flow"], inputs["sample"].dtype)
    cached = controlnet(**inputs, warped_condition=warped)
    for left, right in zip(direct.down_block_res_samples, cached.down_block_res_samples):
        torch.testing.assert_close(left, right, rtol=0, atol=0)
    torch.testing.assert_close(direct.mid_block_res_sample, cached.mid_block_res_sample, rtol=0, atol=0)
    assert cached.occlusion_masks is None
    with pytest.raises(ValueError, match="warped_condition"):
        controlnet(**inputs, warped_condition=warped[:1])


@torch.no_grad()
def test_warping_in_chunks_of_flows_gives_the_same_features(controlnet):
    inputs = _inputs()
    features = controlnet.encode_condition(inputs["controlnet_cond"])
    whole, whole_masks = controlnet.warp_condition(features, inputs["controlnet_flow"], chunk_size=8)
    chunked, chunked_masks = controlnet.warp_condition(features, inputs["controlnet_flow"], chunk_size=2)
    for left, right in zip(whole + whole_masks, chunked + chunked_masks):
        torch.testing.assert_close(left, right)


@torch.no_grad()
def test_temporal_context_reaches_the_landmark_adapter_and_matters_only_for_several_videos():
    controlnet = tiny_ldmk_controlnet(seed=0).eval()
    one = _inputs()
    two = {
        name: torch.cat([value, value.flip(0) if name == "encoder_hidden_states" else value])
        if name != "timestep" else value
        for name, value in one.items()
    }  # fmt: skip
    two["encoder_hidden_states"][0] = 0.0  # an unconditional and a conditional row, as with guidance
    outputs = {}
    for mode in ("original", "per_video"):
        controlnet.set_temporal_context(mode)
        outputs[mode] = (controlnet(**one).mid_block_res_sample, controlnet(**two).mid_block_res_sample)
    controlnet.set_temporal_context("original")
    torch.testing.assert_close(outputs["original"][0], outputs["per_video"][0], rtol=0, atol=1e-6)
    assert (outputs["original"][1] - outputs["per_video"][1]).abs().max() > 1e-4
