"""Hot-path work done once per video, and fast mode (the adapter at fewer denoising steps)."""

import numpy as np
import pytest
import torch

from models.flow_controlnet import FlowControlNet
from utils.adapter_schedule import FAITHFUL, FAST, REUSE, RUN, SKIP, AdapterSchedule, adapter_schedule
from utils.errors import InputError

SIZE = 16  # frame side: tiny latents are 8x8, adapter strides 2 and 4


def _run(pipe, num_frames=4, steps=3, **kwargs):
    image = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    flow = torch.randn(1, num_frames - 1, 2, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 3
    kwargs.setdefault("output_type", "latent")
    return pipe(image, flow, num_inference_steps=steps, generator=torch.Generator().manual_seed(0), **kwargs).frames


# ------------------------------------------------------------------------------------- precomputed condition


def test_precomputed_warped_condition_gives_bit_identical_residuals(pipe, record_calls, make_adapter_inputs):
    controlnet: FlowControlNet = pipe.controlnet
    inputs = make_adapter_inputs(size=SIZE)
    with torch.no_grad():
        direct = controlnet(**inputs)
        warped = controlnet.prepare_condition(inputs["controlnet_cond"], inputs["controlnet_flow"], torch.float32)
        with record_calls(controlnet.controlnet_cond_embedding) as embedding:
            reused = controlnet(**inputs, warped_condition=warped)
    assert embedding.calls == []  # the first frame is not encoded again
    assert len(reused.down_block_res_samples) == len(direct.down_block_res_samples) == 6
    for ours, reference in zip(reused.down_block_res_samples, direct.down_block_res_samples):
        assert torch.equal(ours, reference)
    assert torch.equal(reused.mid_block_res_sample, direct.mid_block_res_sample)


def test_prepare_condition_holds_one_batch_major_tensor_per_level_frame0_unwarped(pipe, make_adapter_inputs):
    controlnet = pipe.controlnet
    inputs = make_adapter_inputs(batch=2, frames=3, size=SIZE)
    with torch.no_grad():
        warped = controlnet.prepare_condition(inputs["controlnet_cond"], inputs["controlnet_flow"])
        levels = controlnet.encode_condition(inputs["controlnet_cond"])
    assert [tuple(level.shape) for level in warped] == [(6, 32, 8, 8), (6, 32, 4, 4)]
    for level, features in zip(warped, levels):
        assert torch.equal(level.view(2, 3, *level.shape[1:])[:, 0], features)


def test_warped_condition_of_the_wrong_shape_is_refused(pipe, make_adapter_inputs):
    inputs = make_adapter_inputs(batch=2, frames=3, size=SIZE)
    with torch.no_grad():
        warped = pipe.controlnet.prepare_condition(inputs["controlnet_cond"], inputs["controlnet_flow"])
        with pytest.raises(ValueError, match="warped_condition must hold one tensor per level"):
            pipe.controlnet(**inputs, warped_condition=warped[:1])
        with pytest.raises(ValueError, match=r"warped_condition\[1\] must be \(6, C, 4, 4\)"):
            pipe.controlnet(**inputs, warped_condition=[warped[0], warped[1][:3]])


def test_pipeline_encodes_and_warps_the_first_frame_once_per_video(pipe, record_calls):
    with record_calls(pipe.controlnet) as adapter, record_calls(pipe.controlnet.controlnet_cond_embedding) as embedding:
        _run(pipe, steps=3)
    assert len(adapter.calls) == 3
    assert len(embedding.calls) == 1
    assert all(kwargs["warped_condition"] is not None for _, kwargs in adapter.calls)


def test_long_video_windows_slice_the_features_prepared_once_with_unchanged_results(pipe, monkeypatch, record_calls):
    kwargs = {"num_frames": 10, "window_size": 4, "window_stride": 2}
    with record_calls(pipe.controlnet.controlnet_cond_embedding) as embedding:
        sliced = _run(pipe, **kwargs)
    assert len(embedding.calls) == 1

    def per_window(conditioning, frame_indices, dtype):
        """Reference: warp the window's own flows from scratch at every call."""
        flow = conditioning["controlnet_flow"][:, frame_indices[1:] - 1]
        return flow, pipe.controlnet.prepare_condition(conditioning["controlnet_cond"], flow, dtype)

    monkeypatch.setattr(pipe, "window_condition", per_window)
    assert torch.equal(sliced, _run(pipe, **kwargs))


# -------------------------------------------------------------------------------------------- schedule


def test_faithful_schedule_runs_the_adapter_at_every_step():
    assert FAITHFUL.is_faithful and adapter_schedule(False) is FAITHFUL
    assert FAITHFUL.actions(25) == [RUN] * 25


def test_fast_schedule_runs_the_adapter_every_fourth_step_and_reuses_it_in_between():
    assert adapter_schedule(True) is FAST and not FAST.is_faithful
    assert FAST.actions(9) == [RUN, REUSE, REUSE, REUSE, RUN, REUSE, REUSE, REUSE, RUN]
    assert FAST.num_runs(25) == 7
    assert FAST.actions(1) == [RUN]


def test_a_schedule_can_leave_the_adapter_out_of_the_last_steps():
    schedule = AdapterSchedule(every=1, active_fraction=0.4, after_active=SKIP)
    assert schedule.actions(25) == [RUN] * 10 + [SKIP] * 15
    assert schedule.actions(2) == [RUN, SKIP]


def test_a_strided_schedule_reuses_the_residuals_in_between():
    schedule = AdapterSchedule(every=3, active_fraction=0.5, after_active=REUSE)
    assert schedule.actions(10) == [RUN, REUSE, REUSE, RUN, REUSE, REUSE, REUSE, REUSE, REUSE, REUSE]
    assert schedule.num_runs(10) == 2
    assert schedule.as_dict() == {"every": 3, "active_fraction": 0.5, "after_active": "reuse"}


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"every": 0}, "every"), ({"active_fraction": 0.0}, "active_fraction"), ({"after_active": "run"}, "after_active")],
)
def test_bad_schedules_are_refused_with_a_message_naming_the_setting(kwargs, named):
    with pytest.raises(InputError, match=named):
        AdapterSchedule(**kwargs)


# ------------------------------------------------------------------------------------------- fast mode


def test_faithful_schedule_is_the_default(pipe):
    assert torch.equal(_run(pipe, adapter_schedule=FAITHFUL), _run(pipe))


def test_fast_mode_runs_the_adapter_every_fourth_step_and_gives_the_requested_frames(pipe, record_calls):
    with record_calls(pipe.controlnet) as adapter, record_calls(pipe.unet) as unet:
        frames = _run(pipe, steps=5, adapter_schedule=FAST, output_type="np")
    assert frames.shape == (1, 4, SIZE, SIZE, 3)
    assert len(adapter.calls) == FAST.num_runs(5) == 2  # steps 0 and 4
    assert len(unet.calls) == 5


def test_skipped_steps_run_the_unet_alone(pipe, record_calls):
    schedule = AdapterSchedule(every=1, active_fraction=0.4, after_active=SKIP)
    with record_calls(pipe.controlnet) as adapter, record_calls(pipe.unet) as unet:
        _run(pipe, steps=5, adapter_schedule=schedule)
    assert len(adapter.calls) == 2
    residuals = [kwargs["down_block_additional_residuals"] for _, kwargs in unet.calls]
    assert all(value is not None for value in residuals[:2]) and residuals[2:] == [None] * 3


def test_fast_mode_matches_faithful_until_the_first_reused_step(pipe):
    steps = 5

    def latents_per_step(schedule):
        seen = []

        def keep(pipeline, step_index, timestep, tensors):
            seen.append(tensors["latents"].clone())
            return {}

        _run(pipe, steps=steps, adapter_schedule=schedule, callback_on_step_end=keep)
        return seen

    fast, faithful = latents_per_step(FAST), latents_per_step(FAITHFUL)
    assert torch.equal(fast[0], faithful[0])
    assert (fast[1] - faithful[1]).abs().max() > 0


def test_reuse_hands_the_unet_the_residuals_of_the_last_adapter_run(pipe, record_calls):
    schedule = AdapterSchedule(every=2)
    with record_calls(pipe.controlnet) as adapter, record_calls(pipe.unet) as unet:
        _run(pipe, steps=4, adapter_schedule=schedule)
    assert len(adapter.calls) == 2  # steps 0 and 2
    residuals = [kwargs["down_block_additional_residuals"] for _, kwargs in unet.calls]
    assert residuals[1] is residuals[0] and residuals[3] is residuals[2]
    assert not torch.equal(residuals[0][0], residuals[2][0])


def test_fast_mode_on_a_long_video_runs_the_adapter_once_per_window_and_step_it_is_active(pipe, record_calls):
    with record_calls(pipe.controlnet) as adapter:
        frames = _run(pipe, num_frames=10, steps=5, window_size=4, window_stride=2, adapter_schedule=FAST,
                      output_type="np")  # fmt: skip
    num_windows = 4  # views (1, 4), (3, 6), (5, 8), (7, 10)
    assert frames.shape == (1, 10, SIZE, SIZE, 3)
    assert len(adapter.calls) == FAST.num_runs(5) * num_windows
    assert np.isfinite(frames).all()


# -------------------------------------------------------------------------------------- entry points


def test_animator_fast_mode_follows_the_fast_schedule_and_records_it(record_calls):
    from pipeline.trajectory_animator import TrajectoryAnimator

    animator = TrajectoryAnimator.tiny(device="cpu", show_progress=False)
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    with record_calls(animator.pipe.controlnet) as adapter:
        result = animator.animate(image, [[(8, 8), (20, 12)]], num_frames=4, steps=5, fast=True, height=32, width=32)
    assert len(adapter.calls) == FAST.num_runs(5) == 2
    assert result.frames.shape == (4, 32, 32, 3)
    assert result.settings.fast is True and result.settings.adapter_schedule == FAST.as_dict()


def test_cli_fast_flag_writes_the_video_and_records_the_schedule(subproject_dir, tmp_path):
    import json
    import os
    import subprocess
    import sys

    from PIL import Image

    from utils.video_io import read_video

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    (tmp_path / "traj.json").write_text(json.dumps([[[8, 8], [20, 12]]]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    arguments = ["--tiny", "--fast", "--num_frames", "5", "--image", tmp_path / "in.png", "--trajectories",
                 tmp_path / "traj.json", "--output", tmp_path / "out"]  # fmt: skip
    completed = subprocess.run([sys.executable, "inference.py", *map(str, arguments)], cwd=subproject_dir, env=env,
                               capture_output=True, text=True, timeout=600)  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert read_video(tmp_path / "out" / "output.mp4").frames.shape[0] == 5
    settings = json.loads((tmp_path / "out" / "settings.json").read_text())
    assert settings["fast"] is True and settings["adapter_schedule"]["every"] == 4
