"""FlowControlNetPipeline end to end with tiny models (pipeline/pipeline_flow_controlnet.py)."""

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing

from utils.errors import InputError

SIZE = 16  # frame side: tiny latents are 8x8, fast on a CPU


def _image(seed=0):
    return torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _flow(num_frames, seed=0):
    return torch.randn(1, num_frames - 1, 2, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 3


def _run(pipe, num_frames=4, seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", 1)
    kwargs.setdefault("output_type", "np")
    return pipe(_image(), _flow(num_frames), generator=torch.Generator().manual_seed(seed), **kwargs)


def test_video_has_requested_frames_in_unit_range_and_returns_the_flow_used(pipe):
    flow = _flow(4)
    output = pipe(_image(), flow, num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0))
    assert output.frames.shape == (1, 4, SIZE, SIZE, 3)
    assert output.frames.min() >= 0.0 and output.frames.max() <= 1.0
    assert output.frames.std() > 0
    torch.testing.assert_close(output.controlnet_flow, flow)


def test_same_seed_gives_the_same_video_and_another_seed_a_different_one(pipe):
    first, again, other = (_run(pipe, seed=seed).frames for seed in (3, 3, 4))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


def test_output_types_pil_and_pt(pipe):
    pil = _run(pipe, num_frames=3, output_type="pil").frames
    assert len(pil) == 1 and len(pil[0]) == 3 and isinstance(pil[0][0], PIL.Image.Image)
    assert pil[0][0].size == (SIZE, SIZE)
    tensor = _run(pipe, num_frames=3, output_type="pt").frames
    assert tensor.shape == (1, 3, 3, SIZE, SIZE) and 0 <= tensor.min() and tensor.max() <= 1


def test_quirk_unconditional_half_gets_zero_embeddings_and_latents_but_the_same_adapter_inputs(pipe, record_calls):
    with record_calls(pipe.controlnet) as controlnet, record_calls(pipe.unet) as unet:
        _run(pipe, num_inference_steps=1)
    (sample, _timestep), kwargs = controlnet.calls[0]
    assert sample.shape[0] == 2  # unconditional half first
    embeddings = kwargs["encoder_hidden_states"]
    assert torch.all(embeddings[0] == 0) and embeddings[1].abs().sum() > 0
    image_latents = sample[:, :, 4:]
    assert torch.all(image_latents[0] == 0) and image_latents[1].abs().sum() > 0
    torch.testing.assert_close(kwargs["controlnet_cond"][0], kwargs["controlnet_cond"][1])
    torch.testing.assert_close(kwargs["controlnet_flow"][0], kwargs["controlnet_flow"][1])
    assert kwargs["controlnet_cond"].min() < 0  # the condition image is in [-1, 1]
    assert unet.calls[0][0][0].shape[0] == 2


def test_guidance_at_most_one_runs_without_the_unconditional_batch(pipe, record_calls):
    with record_calls(pipe.unet) as unet:
        output = _run(pipe, max_guidance_scale=1.0)
    assert output.frames.shape == (1, 4, SIZE, SIZE, 3)
    assert all(args[0].shape[0] == 1 for args, _ in unet.calls)


def test_quirk_time_ids_default_to_6_128_0_02_and_follow_the_arguments(pipe, record_calls):
    with record_calls(pipe.unet) as unet:
        _run(pipe, num_inference_steps=1)
        _run(pipe, num_inference_steps=1, fps_id=9, motion_bucket_id=60, noise_aug_strength=0.1)
    default, changed = (kwargs["added_time_ids"][0].tolist() for _, kwargs in unet.calls)
    assert default == pytest.approx([6, 128, 0.02])
    assert changed == pytest.approx([9, 60, 0.1])


def test_quirk_clip_input_is_unnormalised_by_default_and_normalised_on_request(pipe, record_calls):
    with record_calls(pipe.image_encoder) as encoder:
        _run(pipe, num_inference_steps=1)
        _run(pipe, num_inference_steps=1, normalize_clip_input=True)
    raw, normalised = (args[0] for args, _ in encoder.calls)
    torch.testing.assert_close(raw, _resize_with_antialiasing(_image()[None], (224, 224)))  # [0, 1] image, resized
    mean = torch.tensor(pipe.feature_extractor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(pipe.feature_extractor.image_std).view(1, 3, 1, 1)
    torch.testing.assert_close(normalised, (raw - mean) / std)


def test_guidance_grows_linearly_over_the_frames(pipe, monkeypatch):
    """eps = u + g_f (c - u) with g = linspace(min, max, T): seen with a UNet predicting c = 1, u = 0."""

    def conditional_one_unconditional_zero(module, args, kwargs, output):
        prediction = torch.zeros_like(output[0])
        prediction[prediction.shape[0] // 2 :] = 1.0
        return (prediction,)

    guided, step = [], pipe.scheduler.step

    def recording_step(model_output, *args, **kwargs):
        guided.append(model_output)
        return step(model_output, *args, **kwargs)

    monkeypatch.setattr(pipe.scheduler, "step", recording_step)
    handle = pipe.unet.register_forward_hook(conditional_one_unconditional_zero, with_kwargs=True)
    try:
        _run(pipe, num_frames=5, min_guidance_scale=1.0, max_guidance_scale=3.0)
    finally:
        handle.remove()
    torch.testing.assert_close(guided[0][0, :, 0, 0, 0], torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0]))


def test_fourteen_frames_run_in_one_window(pipe, record_calls):
    with record_calls(pipe.unet) as unet:
        output = _run(pipe, num_frames=14, num_inference_steps=1)
    assert output.frames.shape[1] == 14
    assert [args[0].shape[1] for args, _ in unet.calls] == [14]


def test_long_video_is_denoised_in_frame0_anchored_windows(pipe, record_calls):
    with record_calls(pipe.unet) as unet, record_calls(pipe.controlnet) as controlnet:
        output = _run(pipe, num_frames=40, decode_chunk_size=8)
    assert output.frames.shape == (1, 40, SIZE, SIZE, 3)
    # views (1, 25), (13, 37), (16, 40): three 25-frame windows per step, each frame 0 + 24 frames
    assert [args[0].shape[1] for args, _ in unet.calls] == [25] * 3
    flows = [kwargs["controlnet_flow"][1] for _, kwargs in controlnet.calls]  # conditional half
    full = _flow(40)[0]  # full[i] moves frame 0 to frame i + 1
    torch.testing.assert_close(flows[0], full[0:24])
    torch.testing.assert_close(flows[1], full[12:36])
    torch.testing.assert_close(flows[2], full[15:39])


def test_windows_of_another_size_and_stride(pipe, record_calls):
    with record_calls(pipe.unet) as unet:
        output = _run(pipe, num_frames=10, num_inference_steps=1, window_size=6, window_stride=4)
    assert output.frames.shape[1] == 10
    assert [args[0].shape[1] for args, _ in unet.calls] == [6, 6]  # views (1, 6) and (5, 10)


def test_callback_sees_every_step_and_can_replace_the_latents(pipe):
    seen = []

    def callback(pipeline, step, timestep, tensors):
        seen.append((step, tuple(tensors["latents"].shape)))
        return {"latents": torch.zeros_like(tensors["latents"])} if step == 1 else {}

    output = _run(pipe, num_frames=3, num_inference_steps=2, output_type="latent", callback_on_step_end=callback)
    assert seen == [(0, (1, 3, 4, 8, 8)), (1, (1, 3, 4, 8, 8))]
    assert torch.all(output.frames == 0)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"controlnet_flow": torch.zeros(1, 3, 2, SIZE, SIZE), "num_frames": 6}, "controlnet_flow"),
        ({"controlnet_flow": torch.zeros(1, 3, SIZE, SIZE)}, "controlnet_flow"),
        ({"controlnet_flow": None}, "controlnet_flow"),
        ({"controlnet_flow": torch.zeros(1, 1, 2, 18, 18)}, "height"),
        ({"controlnet_flow": torch.zeros(1, 0, 2, SIZE, SIZE)}, "num_frames"),
        ({"controlnet_flow": torch.zeros(1, 2, 2, SIZE, SIZE), "output_type": "gif"}, "output_type"),
        ({"controlnet_flow": torch.zeros(1, 2, 2, SIZE, SIZE), "num_inference_steps": 0}, "num_inference_steps"),
        ({"controlnet_flow": torch.zeros(1, 2, 2, SIZE, SIZE), "decode_chunk_size": 0}, "decode_chunk_size"),
        ({"controlnet_flow": torch.zeros(1, 2, 2, SIZE, SIZE), "image": "photo.png"}, "image"),
    ],
)
def test_bad_arguments_are_refused_with_a_message_naming_them(pipe, kwargs, named):
    kwargs = {"image": _image(), **kwargs}
    with pytest.raises(InputError, match=f"`{named}`"):
        pipe(**kwargs)


def test_an_error_during_denoising_releases_the_cached_adapter_state(pipe):
    def fail_at_step_one(pipeline, step, timestep, tensors):
        assert pipeline._adapter_state.warped_condition is not None  # cached during the step
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError, match="stopped"):
        _run(pipe, num_inference_steps=2, callback_on_step_end=fail_at_step_one)
    assert not hasattr(pipe, "_adapter_state")
