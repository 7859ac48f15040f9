"""HybridFlowControlNetPipeline end to end with tiny models: two adapters, fused residuals, any length."""

from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from call_recording import CallRecorder

from pipeline.pipeline_flow_controlnet import FlowControlNetPipeline
from pipeline.pipeline_hybrid_flow_controlnet import HybridFlowControlNetPipeline
from utils.adapter_schedule import FAITHFUL, FAST
from utils.errors import InputError
from utils.tiny import tiny_flow_controlnet, tiny_svd_parts
from utils.tiny_keypoint import tiny_ldmk_controlnet

SIZE = 32  # frame side: tiny latents are 16x16


@pytest.fixture(scope="module")
def parts():
    svd_parts = tiny_svd_parts(0)
    return {**svd_parts, "controlnet": tiny_flow_controlnet(0, svd_parts["unet"])}


@pytest.fixture(scope="module")
def pipe(parts):
    pipeline = HybridFlowControlNetPipeline(ldmk_controlnet=tiny_ldmk_controlnet(0, parts["unet"]), **parts)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _inputs(num_frames, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        "image": torch.rand(3, SIZE, SIZE, generator=generator),
        "trajectory_flow": torch.randn(1, num_frames - 1, 2, SIZE, SIZE, generator=generator) * 3,
        "landmark_flow": torch.randn(1, num_frames - 1, 2, SIZE, SIZE, generator=generator) * 3,
        "pose_images": torch.rand(1, num_frames, 3, SIZE, SIZE, generator=generator),
    }


def _mask(kind):
    mask = np.zeros((SIZE, SIZE), np.uint8)
    if kind == "full":
        mask[:] = 255
    elif kind == "left":
        mask[:, : SIZE // 2] = 255
    return mask


def _run(pipe, mask="left", num_frames=4, inputs=None, **kwargs):
    inputs = inputs or _inputs(num_frames)
    kwargs.setdefault("num_inference_steps", 2)
    kwargs.setdefault("output_type", "np")
    return pipe(**inputs, landmark_mask=_mask(mask), generator=torch.Generator().manual_seed(7), **kwargs)


def test_video_has_the_requested_frames_and_returns_its_conditions(pipe):
    inputs = _inputs(4)
    output = _run(pipe, inputs=inputs)
    assert output.frames.shape == (1, 4, SIZE, SIZE, 3)
    assert 0.0 <= output.frames.min() and output.frames.max() <= 1.0 and output.frames.std() > 0
    torch.testing.assert_close(output.trajectory_flow, inputs["trajectory_flow"])
    torch.testing.assert_close(output.landmark_flow, inputs["landmark_flow"])
    assert output.landmark_mask.shape == (SIZE, SIZE) and output.landmark_mask[:, 0].eq(1).all()


def test_empty_mask_gives_the_trajectory_pipeline(pipe, parts):
    inputs = _inputs(4)
    hybrid = _run(pipe, mask="empty", inputs=inputs, trajectory_conditioning_scale=0.6).frames
    trajectory_only = FlowControlNetPipeline(**parts)
    trajectory_only.set_progress_bar_config(disable=True)
    reference = trajectory_only(
        inputs["image"], inputs["trajectory_flow"], num_inference_steps=2, output_type="np",
        conditioning_scale=0.6, generator=torch.Generator().manual_seed(7),
    ).frames  # fmt: skip
    # equal up to float rounding: the warped features are computed once per video without the CFG copy
    np.testing.assert_allclose(hybrid, reference, rtol=0, atol=1e-4)


def test_each_adapter_only_matters_where_the_mask_gives_it_weight(pipe):
    inputs = _inputs(4)
    moved_drags = {**inputs, "trajectory_flow": -inputs["trajectory_flow"]}
    moved_landmarks = {**inputs, "landmark_flow": -inputs["landmark_flow"]}
    full, full_other_drags = (_run(pipe, "full", inputs=given).frames for given in (inputs, moved_drags))
    np.testing.assert_array_equal(full, full_other_drags)
    empty, empty_other_landmarks = (_run(pipe, "empty", inputs=given).frames for given in (inputs, moved_landmarks))
    np.testing.assert_array_equal(empty, empty_other_landmarks)
    half = _run(pipe, "left", inputs=inputs).frames
    assert np.abs(half - full).max() > 1e-3 and np.abs(half - empty).max() > 1e-3


@contextmanager
def capture_residuals(pipe):
    """Records the residuals of both adapters (``.traj``, ``.face``) and those the UNet receives (``.unet``), as
    ``(down, mid)`` per call, filled when the block ends."""
    captured = SimpleNamespace(traj=[], face=[], unet=[])
    with (
        CallRecorder(pipe.controlnet) as traj,
        CallRecorder(pipe.ldmk_controlnet) as face,
        CallRecorder(pipe.unet) as unet,
    ):
        yield captured
    captured.traj = [output[:2] for output in traj.outputs]
    captured.face = [output[:2] for output in face.outputs]
    captured.unet = [
        (kwargs["down_block_additional_residuals"], kwargs["mid_block_additional_residual"]) for _, kwargs in unet.calls
    ]


def test_unet_receives_face_residuals_left_and_trajectory_residuals_right(pipe):
    with capture_residuals(pipe) as capture:
        _run(pipe, "left", trajectory_conditioning_scale=0.5, landmark_conditioning_scale=0.9)
    assert len(capture.unet) == len(capture.traj) == len(capture.face) == 2  # one window, two steps
    for (face_down, face_mid), (traj_down, traj_mid), (down, mid) in zip(capture.face, capture.traj, capture.unet):
        assert len(down) == len(face_down) == 6  # the tiny UNet's encoder skips
        for face, traj, fused in zip((*face_down, face_mid), (*traj_down, traj_mid), (*down, mid)):
            half = fused.shape[-1] // 2
            torch.testing.assert_close(fused[..., :half], face[..., :half], rtol=0, atol=0)
            torch.testing.assert_close(fused[..., half:], traj[..., half:], rtol=0, atol=0)


def test_both_cfg_halves_get_the_same_adapter_conditions(pipe):
    with CallRecorder(pipe.ldmk_controlnet) as recorder:
        _run(pipe, "left")
    kwargs = recorder.calls[0][1]
    for name in ("controlnet_flow", "pose_images", "controlnet_cond"):
        uncond, cond = kwargs[name].chunk(2)
        torch.testing.assert_close(uncond, cond)
    assert kwargs["conditioning_scale"] == 1.0


def test_fifty_frames_run_by_periodic_sampling_with_windows_of_the_right_conditions(pipe):
    with CallRecorder(pipe.ldmk_controlnet) as recorder:
        output = _run(pipe, "left", num_frames=50, num_inference_steps=1, max_guidance_scale=1.0)
    assert output.frames.shape == (1, 50, SIZE, SIZE, 3)
    # views for 50 frames and windows of 25: (1, 25) (13, 37) (25, 49) (26, 50)
    assert len(recorder.calls) == 4
    inputs = _inputs(50)
    last = recorder.calls[-1][1]
    assert last["pose_images"].shape == (1, 25, 3, SIZE, SIZE)
    torch.testing.assert_close(last["pose_images"][0, 1:], inputs["pose_images"][0, 26:50])
    torch.testing.assert_close(last["pose_images"][0, 0], inputs["pose_images"][0, 0])
    torch.testing.assert_close(last["controlnet_flow"][0], inputs["landmark_flow"][0, 25:49])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"landmark_flow": torch.zeros(1, 2, 2, SIZE, SIZE)}, "`landmark_flow` must have the drag flow's shape"),
        ({"pose_images": torch.zeros(1, 3, 3, SIZE, SIZE)}, r"`pose_images` must be \(B, T, 3, H, W\)"),
        ({"trajectory_flow": torch.zeros(1, 3, 2, SIZE, 18)}, "`height` and `width` must be multiples of 4"),
    ],
)
def test_mismatched_inputs_are_refused_naming_the_argument(pipe, change, message):
    with pytest.raises(InputError, match=message):
        _run(pipe, inputs={**_inputs(4), **change})


def test_mask_of_the_wrong_size_is_refused(pipe):
    with pytest.raises(InputError, match="`landmark_mask` must be"):
        pipe(**_inputs(4), landmark_mask=np.zeros((8, 8), np.uint8), num_inference_steps=1)


def test_warped_features_are_computed_once_in_chunks_and_sliced_per_window(pipe):
    inputs = _inputs(7)
    reference = inputs["image"][None] * 2 - 1
    for adapter, flow in (
        (pipe.controlnet, inputs["trajectory_flow"]),
        (pipe.ldmk_controlnet, inputs["landmark_flow"]),
    ):
        whole = adapter.prepare_condition(reference, flow, torch.float32)
        chunked = pipe.prepare_warped_condition(adapter, reference, flow, torch.float32, chunk_size=4)
        assert [level.shape[:2] for level in chunked] == [(1, 7)] * len(whole)
        for level_whole, level_chunked in zip(whole, chunked):
            torch.testing.assert_close(level_chunked.flatten(0, 1), level_whole, rtol=0, atol=1e-5)
        window = pipe.window_features(chunked, torch.tensor([0, 3, 4, 5]), copies=2)
        for level_window, level_chunked in zip(window, chunked):
            expected = level_chunked[0, [0, 3, 4, 5]]
            assert torch.equal(level_window[:4], expected) and torch.equal(level_window[4:], expected)


def test_faithful_schedule_gives_the_default_video_bit_for_bit(pipe):
    inputs = _inputs(4)
    default = _run(pipe, "left", inputs=inputs, num_inference_steps=3).frames
    faithful = _run(pipe, "left", inputs=inputs, num_inference_steps=3, adapter_schedule=FAITHFUL).frames
    np.testing.assert_array_equal(faithful, default)


def test_fast_schedule_runs_both_adapters_every_fourth_step_and_reuses_the_fused_residuals(pipe):
    inputs = _inputs(4)
    with capture_residuals(pipe) as capture:
        fast = _run(pipe, "left", inputs=inputs, num_inference_steps=6, adapter_schedule=FAST).frames
    assert fast.shape == (1, 4, SIZE, SIZE, 3)
    assert len(capture.traj) == len(capture.face) == 2  # steps 0 and 4 of 6
    assert len(capture.unet) == 6
    run_steps = {0: 0, 4: 1}
    for step, (down, mid) in enumerate(capture.unet):
        source = capture.unet[4 if step >= 4 else 0]
        assert all(torch.equal(got, kept) for got, kept in zip((*down, mid), (*source[0], source[1])))
        if step in run_steps:  # the fused residuals of that step's own adapter calls
            face_mid, traj_mid = capture.face[run_steps[step]][1], capture.traj[run_steps[step]][1]
            half = mid.shape[-1] // 2
            assert torch.equal(mid[..., :half], face_mid[..., :half])
            assert torch.equal(mid[..., half:], traj_mid[..., half:])
    assert not torch.equal(capture.unet[4][1], capture.unet[0][1])
    faithful = _run(pipe, "left", inputs=inputs, num_inference_steps=6).frames
    assert np.abs(fast - faithful).max() > 0


def test_fast_schedule_keeps_the_fused_residuals_of_every_window_apart(pipe):
    views = 4  # 10 frames in windows of 5: (1, 5) (3, 7) (5, 9) (6, 10)
    with capture_residuals(pipe) as capture:
        output = _run(
            pipe, "left", num_frames=10, num_inference_steps=5, window_size=5, max_guidance_scale=1.0,
            adapter_schedule=FAST,
        )  # fmt: skip
    assert output.frames.shape == (1, 10, SIZE, SIZE, 3)
    assert len(capture.traj) == len(capture.face) == 2 * views  # steps 0 and 4, every window
    assert len(capture.unet) == 5 * views
    per_step = [capture.unet[step * views : (step + 1) * views] for step in range(5)]
    for step in (1, 2, 3):
        for window in range(views):
            assert torch.equal(per_step[step][window][1], per_step[0][window][1])
    assert not torch.equal(per_step[0][0][1], per_step[0][-1][1])  # the windows' residuals differ
    assert not torch.equal(per_step[4][0][1], per_step[0][0][1])


def _original_blend(face_residuals, traj_residuals, mask_uint8):
    """A literal transcription of the released Hybrid pipeline's fusion: the painted mask / 255 as
    ``[1, 1, H, W]``, nearest-resized to each residual and broadcast, ``face * m + traj * (1 - m)``."""
    ldmk_mask = torch.from_numpy(mask_uint8).float()[None, None] / 255.0
    fused = []
    for face, traj in zip(face_residuals, traj_residuals):
        mask = torch.nn.functional.interpolate(ldmk_mask, size=face.shape[-2:], mode="nearest")
        fused.append(face * mask + traj * (1 - mask))
    return fused


def test_unet_residuals_are_the_original_blend_through_the_nearest_resized_mask(pipe):
    rows, cols = np.mgrid[:SIZE, :SIZE]
    mask = (((rows - 13.3) / 9.1) ** 2 + ((cols - 18.7) / 6.4) ** 2 < 1).astype(np.uint8) * 255  # off-grid ellipse
    inputs = _inputs(4)
    with capture_residuals(pipe) as capture:
        pipe(**inputs, landmark_mask=mask, num_inference_steps=2, output_type="np",
             generator=torch.Generator().manual_seed(7))  # fmt: skip
    assert len(capture.unet) == 2
    for (face_down, face_mid), (traj_down, traj_mid), (down, mid) in zip(capture.face, capture.traj, capture.unet):
        expected = _original_blend((*face_down, face_mid), (*traj_down, traj_mid), mask)
        for index, (fused, reference) in enumerate(zip((*down, mid), expected)):
            torch.testing.assert_close(fused, reference, rtol=0, atol=1e-6, msg=f"residual {index}")


def test_an_error_during_denoising_releases_the_cached_adapter_state(pipe):
    def fail_at_step_one(pipeline, step, timestep, tensors):
        assert pipeline._adapter_state is not None
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError, match="stopped"):
        _run(pipe, callback_on_step_end=fail_at_step_one)
    assert not hasattr(pipe, "_adapter_state")


@pytest.mark.parametrize("fails", [False, True])
def test_both_adapters_warped_features_are_released_after_denoising_or_an_error(pipe, monkeypatch, fails):
    seen = {}
    denoise_and_decode = pipe.denoise_and_decode

    def recording(conditioning, *args, **kwargs):
        seen["conditioning"] = conditioning
        return denoise_and_decode(conditioning, *args, **kwargs)

    def at_step_end(pipeline, step, timestep, tensors):
        seen["cached"] = [name for name in ("trajectory_warped", "landmark_warped") if name in seen["conditioning"]]
        if fails:
            raise RuntimeError("stopped")
        return {}

    monkeypatch.setattr(pipe, "denoise_and_decode", recording)
    if fails:
        with pytest.raises(RuntimeError, match="stopped"):
            _run(pipe, callback_on_step_end=at_step_end)
    else:
        _run(pipe, callback_on_step_end=at_step_end)
    assert seen["cached"] == ["trajectory_warped", "landmark_warped"]  # the "left" mask uses both adapters
    assert "trajectory_warped" not in seen["conditioning"] and "landmark_warped" not in seen["conditioning"]
    assert not hasattr(pipe, "_adapter_state")
