"""Periodic sampling windows, the functional Euler step and window averaging (utils/periodic_sampling.py)."""

import math

import pytest
import torch

from utils.errors import InputError
from utils.periodic_sampling import (
    euler_step,
    get_views,
    periodic_denoise_step,
    weighted_views,
    window_frame_indices,
)
from utils.scheduling import build_svd_scheduler

# ---------------------------------------------------------------------------------------------- views


def test_quirk_windows_of_25_stride_12_anchored_on_frame_0_with_the_tail_always_appended():
    assert get_views(125) == [
        (1, 25), (13, 37), (25, 49), (37, 61), (49, 73), (61, 85), (73, 97), (85, 109), (97, 121), (101, 125)
    ]  # fmt: skip


@pytest.mark.parametrize(
    "num_frames, views",
    [
        (2, [(1, 2)]),
        (24, [(1, 24)]),
        (25, [(1, 25)]),
        (26, [(1, 25), (2, 26)]),
        (37, [(1, 25), (13, 37), (13, 37)]),  # (N - W) % S == 0: the tail repeats the last view, as released
    ],  # fmt: skip
)
def test_views_for_short_videos(num_frames, views):
    assert get_views(num_frames) == views


def test_views_with_other_window_and_stride():
    assert get_views(30, window=14, stride=7) == [(1, 14), (8, 21), (15, 28), (17, 30)]


@pytest.mark.parametrize("window, stride", [(25, None), (14, 7), (5, 4), (3, 1), (2, 1)])
def test_views_cover_every_frame_with_full_windows(window, stride):
    for num_frames in range(2, 130):
        views = get_views(num_frames, window, stride)
        covered = set()
        for start, end in views:
            assert 1 <= start < end <= num_frames
            assert end - start == min(window, num_frames) - 1  # every window holds W frames with frame 0
            covered.update(range(start, end))
        assert covered == set(range(1, num_frames)), (num_frames, views)
        repeats_tail = num_frames > window and (num_frames - window) % (stride or window // 2) == 0
        assert len(set(views)) == len(views) - repeats_tail
        assert not repeats_tail or views[-1] == views[-2]


@pytest.mark.parametrize(
    "args, message",
    [
        ((1,), "num_frames must be at least 2"),
        ((30, 1), "window must be"),
        ((30, 5, 5), "stride"),
        ((30, 5, 0), "stride"),
    ],
)
def test_invalid_view_arguments(args, message):
    with pytest.raises(InputError, match=message):
        get_views(*args)


def test_window_frame_indices_prepend_frame_zero():
    assert window_frame_indices((13, 17)).tolist() == [0, 13, 14, 15, 16]


# ---------------------------------------------------------------------------------------------- euler step


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_euler_step_equals_diffusers_scheduler_step_for_svd(dtype):
    scheduler = build_svd_scheduler()
    scheduler.set_timesteps(25)
    assert math.isclose(float(scheduler.sigmas[0]), 700.0, rel_tol=1e-5)
    generator = torch.Generator().manual_seed(0)
    sample = (torch.randn(1, 3, 4, 8, 8, generator=generator) * 700).to(dtype)
    for index, timestep in enumerate(scheduler.timesteps):
        model_output = torch.randn(1, 3, 4, 8, 8, generator=generator).to(dtype)
        expected = scheduler.step(model_output, timestep, sample).prev_sample
        ours = euler_step(sample, model_output, scheduler.sigmas[index], scheduler.sigmas[index + 1])
        assert ours.dtype == expected.dtype == dtype
        torch.testing.assert_close(ours, expected, rtol=0, atol=0)
        sample = expected


def test_euler_step_with_python_floats_matches_formula():
    sample, velocity = torch.tensor([2.0]), torch.tensor([0.5])
    sigma, sigma_next = 3.0, 1.0
    denoised = 0.5 * (-3 / math.sqrt(10)) + 2 / 10
    expected = 2 + (2 - denoised) / 3 * (1 - 3)
    assert euler_step(sample, velocity, sigma, sigma_next).item() == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------------------------------------- averaging


def _denoiser_that_steps_to(calls):
    """With sigma = 1 and sigma_next = 0 the step returns x0 = -v / sqrt(2) + x / 2; with x = 0 and
    v = -sqrt(2) * c the window's new latents are c. Here c = 10 * a + position in the window."""

    def denoise(frame_indices, window_latents):
        calls.append((frame_indices.tolist(), window_latents[0, :, 0, 0, 0].tolist()))
        start = frame_indices[1].item()
        target = 10.0 * start + torch.arange(len(frame_indices), dtype=torch.float32)
        return -math.sqrt(2) * target.view(1, -1, 1, 1, 1).expand_as(window_latents)

    return denoise


def test_quirk_periodic_frame_0_is_updated_by_the_first_window_only():
    latents = torch.zeros(1, 5, 2, 3, 3)
    calls = []
    views = get_views(5, window=3, stride=1)
    assert views == [(1, 3), (2, 4), (3, 5), (3, 5)]
    new = periodic_denoise_step(latents, views, _denoiser_that_steps_to(calls), 1.0, 0.0)
    assert [indices for indices, _ in calls] == [[0, 1, 2], [0, 2, 3], [0, 3, 4]]
    # view (1,3) gives frames 0,1,2 -> 10,11,12; view (2,4) frames 2,3 -> 21,22; view (3,5), listed twice,
    # frames 3,4 -> 31,32
    expected = [10.0, 11.0, (12 + 21) / 2, (22 + 2 * 31) / 3, 32.0]
    torch.testing.assert_close(new[0, :, 0, 0, 0], torch.tensor(expected), rtol=0, atol=1e-4)
    assert new.shape == latents.shape and new.dtype == latents.dtype
    assert (new == new[:, :, :1, :1, :1]).all()  # the value is uniform inside each frame


def test_periodic_step_passes_each_window_its_own_latents():
    latents = torch.arange(5, dtype=torch.float32).view(1, 5, 1, 1, 1).expand(1, 5, 2, 3, 3).clone()
    calls = []
    periodic_denoise_step(latents, [(1, 3), (3, 5)], _denoiser_that_steps_to(calls), 1.0, 0.0)
    assert [values for _, values in calls] == [[0.0, 1.0, 2.0], [0.0, 3.0, 4.0]]


def test_a_repeated_view_changes_nothing_and_one_view_is_a_plain_step():
    latents = torch.randn(2, 4, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    velocity = torch.randn(2, 4, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    denoise = lambda indices, window: velocity[:, indices]  # noqa: E731
    single = periodic_denoise_step(latents, [(1, 4)], denoise, 5.0, 2.0)
    repeated = periodic_denoise_step(latents, [(1, 4), (1, 4)], denoise, 5.0, 2.0)
    torch.testing.assert_close(single, euler_step(latents, velocity, 5.0, 2.0))
    torch.testing.assert_close(repeated, single)


def test_views_that_miss_a_frame_are_a_programming_error():
    with pytest.raises(ValueError, match=r"frames \[3\]"):
        periodic_denoise_step(torch.zeros(1, 4, 1, 1, 1), [(1, 3)], lambda i, w: torch.zeros_like(w), 1.0, 0.5)


# ---------------------------------------------------------------------------------------------- repeated tail


def test_quirk_repeated_tail_view_is_run_once_and_weighs_twice():
    views = get_views(7, window=3, stride=1)
    assert views == [(1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (5, 7)]
    assert weighted_views(views) == [((1, 3), 1), ((2, 4), 1), ((3, 5), 1), ((4, 6), 1), ((5, 7), 2)]
    calls = []
    new = periodic_denoise_step(torch.zeros(1, 7, 1, 1, 1), views, _denoiser_that_steps_to(calls), 1.0, 0.0)
    assert [indices for indices, _ in calls] == [[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 5], [0, 5, 6]]
    # view (a, b) steps frame a+k to 10a+1+k; frame 5 is held by (4, 6) once and by (5, 7) twice
    expected = [10, 11, (12 + 21) / 2, (22 + 31) / 2, (32 + 41) / 2, (42 + 2 * 51) / 3, 52]
    torch.testing.assert_close(new[0, :, 0, 0, 0], torch.tensor(expected, dtype=torch.float32), rtol=0, atol=1e-4)


def test_default_windows_weigh_the_repeated_tail_twice_at_37_frames():
    views = get_views(37)
    assert weighted_views(views) == [((1, 25), 1), ((13, 37), 2)]
    calls = []
    new = periodic_denoise_step(torch.zeros(1, 37, 1, 1, 1), views, _denoiser_that_steps_to(calls), 1.0, 0.0)
    assert len(calls) == 2
    # frames 13..24 are held by (1, 25) (value 10 + k) and twice by (13, 37) (value 130 + 1 + k - 13)
    frame = 20
    torch.testing.assert_close(new[0, frame, 0, 0, 0], torch.tensor((10.0 + frame + 2 * (131 + frame - 13)) / 3))


def _window_model(frame_indices: torch.Tensor, scaled_window: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    """A v-prediction that depends on the whole window, each frame's place in the video and the timestep."""
    place = frame_indices.float().view(1, -1, 1, 1, 1)
    return torch.tanh(0.3 * scaled_window + scaled_window.mean(dim=1, keepdim=True)) * (1 + place / 10) + timestep


def _original_periodic_loop(latents, num_steps, window, stride):
    """A literal transcription of the released loop: every view, in order, including a repeated tail; one stock
    scheduler step per view with its step index rewound after all but the last; ``value / count``."""
    scheduler = build_svd_scheduler()
    scheduler.set_timesteps(num_steps)
    num_frames = latents.shape[1]
    views = [(1 + i * stride, i * stride + window) for i in range((num_frames - window) // stride + 1)]
    views.append((num_frames - window + 1, num_frames))
    latents = latents * scheduler.init_noise_sigma
    for timestep in scheduler.timesteps:
        value, count = torch.zeros_like(latents), torch.zeros_like(latents)
        for view_index, (start, end) in enumerate(views):
            window_latents = torch.cat([latents[:, 0:1], latents[:, start:end]], dim=1)
            model_input = scheduler.scale_model_input(window_latents, timestep)
            frame_indices = torch.tensor([0, *range(start, end)])
            model_output = _window_model(frame_indices, model_input, timestep)
            stepped = scheduler.step(model_output, timestep, window_latents).prev_sample
            if view_index != len(views) - 1:
                scheduler._step_index -= 1
            if view_index == 0:
                value[:, 0:end] += stepped
                count[:, 0:end] += 1
            else:
                value[:, start:end] += stepped[:, 1:]
                count[:, start:end] += 1
        latents = torch.where(count > 0, value / count, value)
    return latents


@pytest.mark.parametrize("num_frames, window, stride", [(7, 3, 1), (37, 25, 12), (30, 14, 7)])
def test_pipeline_periodic_loop_equals_the_original_loop(pipe, num_frames, window, stride):
    noise = torch.randn(1, num_frames, 4, 4, 4, generator=torch.Generator().manual_seed(num_frames))
    timesteps, latents = pipe.prepare_noise(3, 1, num_frames, 8, 8, torch.float32, torch.device("cpu"), None, noise)
    views = pipe.plan_windows(num_frames, window, stride)
    ours = pipe.denoise(latents, timesteps, views, _window_model, None, ["latents"])
    torch.testing.assert_close(ours, _original_periodic_loop(noise, 3, window, stride), rtol=0, atol=1e-4)


def test_each_window_of_a_periodic_step_is_reported_and_the_latents_do_not_change(pipe):
    noise = torch.randn(1, 37, 4, 4, 4, generator=torch.Generator().manual_seed(37))
    timesteps, latents = pipe.prepare_noise(2, 1, 37, 8, 8, torch.float32, torch.device("cpu"), None, noise)
    views = pipe.plan_windows(37, 25, 12)  # (1, 25), (13, 37), (13, 37): the repeated tail runs once
    calls = []
    reported = pipe.denoise(
        latents, timesteps, views, _window_model, None, ["latents"], callback_on_window_end=lambda *c: calls.append(c)
    )
    assert calls == [(0, 0, 2), (0, 1, 2), (1, 0, 2), (1, 1, 2)]
    assert torch.equal(reported, pipe.denoise(latents, timesteps, views, _window_model, None, ["latents"]))
