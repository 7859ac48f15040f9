"""The landmark pipeline (windows see their own pose images) and the animator's portrait rule."""

import numpy as np
import pytest
import torch
from media_helpers import portrait_pixels
from PIL import Image

from pipeline.keypoint_animator import KeypointAnimator, prepare_portrait
from utils.errors import InputError
from utils.periodic_sampling import get_views

SIZE, FRAMES, WINDOW = 32, 7, 4


@pytest.fixture(scope="module")
def animator() -> KeypointAnimator:
    return KeypointAnimator(tiny=True, device="cpu", show_progress=False)


def _tagged_pose_images() -> torch.Tensor:
    """(1, T, 3, H, W) pose images whose value is frame_index / 10."""
    return (torch.arange(FRAMES, dtype=torch.float32) / 10).view(1, FRAMES, 1, 1, 1).expand(1, FRAMES, 3, SIZE, SIZE)


def test_each_window_gets_its_own_frames_pose_images_in_both_guidance_halves(animator):
    pipe = animator.pipe
    seen = []
    handle = pipe.controlnet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["pose_images"][:, :, 0, 0, 0].clone()), with_kwargs=True
    )
    try:
        pipe(
            torch.rand(3, SIZE, SIZE),
            torch.randn(1, FRAMES - 1, 2, SIZE, SIZE),
            _tagged_pose_images(),
            num_inference_steps=1,
            window_size=WINDOW,
            output_type="latent",
        )
    finally:
        handle.remove()
    views = get_views(FRAMES, WINDOW)
    assert len(seen) == len(views) and len(views) > 1
    for window, (start, end) in zip(seen, views):
        expected = torch.tensor([0, *range(start, end)], dtype=torch.float32) / 10
        assert window.shape[0] == 2  # unconditional and conditional halves
        torch.testing.assert_close(window, expected.expand(2, -1))


def test_without_guidance_the_adapter_sees_one_copy_of_the_pose_images(animator):
    seen = []
    handle = animator.pipe.controlnet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["pose_images"][:, :, 0, 0, 0].clone()), with_kwargs=True
    )
    try:
        animator.pipe(
            torch.rand(3, SIZE, SIZE),
            torch.randn(1, FRAMES - 1, 2, SIZE, SIZE),
            _tagged_pose_images(),
            num_inference_steps=1,
            max_guidance_scale=1.0,
            output_type="latent",
        )
    finally:
        handle.remove()
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], (torch.arange(FRAMES, dtype=torch.float32) / 10)[None])


def test_pose_images_change_the_video(animator):
    def run(pose_images):
        return animator.pipe(
            torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)),
            torch.zeros(1, FRAMES - 1, 2, SIZE, SIZE),
            pose_images,
            num_inference_steps=1,
            window_size=WINDOW,
            output_type="np",
            generator=torch.Generator().manual_seed(0),
        ).frames

    first = run(torch.zeros(1, FRAMES, 3, SIZE, SIZE))
    assert first.shape == (1, FRAMES, SIZE, SIZE, 3)
    assert not np.allclose(first, run(torch.ones(1, FRAMES, 3, SIZE, SIZE)))


def test_pose_images_must_cover_every_frame(animator):
    with pytest.raises(InputError, match="one pose image per frame"):
        animator.pipe(
            torch.rand(3, SIZE, SIZE),
            torch.zeros(1, FRAMES - 1, 2, SIZE, SIZE),
            torch.zeros(1, FRAMES - 1, 3, SIZE, SIZE),
        )


def test_animate_returns_video_flow_pose_images_and_panels(animator):
    rng = np.random.default_rng(0)
    landmarks = 16 + rng.normal(scale=3, size=(9, 68, 2))
    frame = Image.fromarray(rng.integers(0, 255, size=(SIZE, SIZE, 3), dtype=np.uint8))
    result = animator.animate(frame, landmarks, max_frames=6, steps=1, window_size=WINDOW)
    assert result.frames.shape == (6, SIZE, SIZE, 3) and result.frames.dtype == np.uint8
    assert tuple(result.flow.shape) == (5, 2, SIZE, SIZE)
    assert result.pose_images.shape == (6, SIZE, SIZE, 3) and result.landmarks.shape == (6, 68, 2)
    assert result.panel_frames().shape == (6, SIZE, 5 * SIZE, 3)
    with pytest.raises(InputError, match="at least 2"):
        animator.animate(frame, landmarks, max_frames=1)
    with pytest.raises(InputError, match="steps must be a positive integer, got 0"):
        animator.animate(frame, landmarks, steps=0)


@pytest.mark.parametrize(
    "size,expected",
    [((512, 512), (512, 512)), ((1024, 640), (1024, 640)), ((600, 400), (768, 512)), ((500, 700), (512, 704))],
)
def test_quirk_portrait_keeps_64_aligned_sizes_and_scales_others_to_short_side_512(size, expected):
    assert prepare_portrait(Image.new("RGB", size)).size == expected


def test_fast_adapter_schedule_and_several_videos_per_image(animator):
    from utils.adapter_schedule import AdapterSchedule

    seen = []
    handle = animator.pipe.controlnet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["pose_images"][:, :, 0, 0, 0].clone()), with_kwargs=True
    )
    try:
        frames = animator.pipe(
            torch.rand(3, SIZE, SIZE),
            torch.randn(1, FRAMES - 1, 2, SIZE, SIZE),
            _tagged_pose_images(),
            num_inference_steps=2,
            window_size=WINDOW,
            num_videos_per_prompt=2,
            adapter_schedule=AdapterSchedule(active_fraction=0.5),
            output_type="np",
        ).frames
    finally:
        handle.remove()
    assert frames.shape == (2, FRAMES, SIZE, SIZE, 3)
    assert len(seen) == len(get_views(FRAMES, WINDOW))  # the adapter ran at the first of the two steps only
    assert seen[0].shape[0] == 4  # 2 videos x 2 guidance halves


def test_sadtalker_renderer_counts_whole_frames_and_is_loaded_once(animator, monkeypatch):
    import utils.tiny_keypoint as sadtalker_tiny

    tiny_landmarker, built = sadtalker_tiny.tiny_landmarker, []

    def counting_tiny_landmarker(*args, **kwargs):
        built.append(tiny_landmarker(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(sadtalker_tiny, "tiny_landmarker", counting_tiny_landmarker)
    frame = animator.prepare_image(Image.fromarray(portrait_pixels()))  # tiny mode starts from the real face
    t = np.arange(int(0.43 * 16000)) / 16000  # 10.75 frames at 25 fps
    waveform = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    landmarks = animator.landmarks_from_audio(frame, waveform, renderer="sadtalker")
    again = animator.landmarks_from_audio(frame, waveform, renderer="sadtalker")
    assert landmarks.shape == (1 + 10, 68, 2)  # floor(25 * 0.43); aniportrait counts ceil: 1 + 11
    assert animator.landmarks_from_audio(frame, waveform).shape == (1 + 11, 68, 2)
    assert len(built) == 1  # the landmarker is loaded once and kept by the animator
    np.testing.assert_array_equal(landmarks, again)  # seeded blinks and head motion
    with pytest.raises(InputError, match="landmark renderer must be one of aniportrait, sadtalker"):
        animator.landmarks_from_audio(frame, waveform, renderer="wav2lip")


def test_a_flow_that_is_not_a_tensor_is_refused_before_the_pose_images_are_checked(animator):
    with pytest.raises(InputError, match="`controlnet_flow` must be a"):
        animator.pipe(torch.rand(3, SIZE, SIZE), None, torch.zeros(1, FRAMES, 3, SIZE, SIZE))


def test_model_offload_loads_the_landmark_adapter_before_it_warps_the_first_frame():
    """Model CPU offload keeps the adapter's weights on the CPU until its offload hook runs; the repaired, warped
    features (``prepare_condition``, before the adapter's first ``forward``) must run it too, or a GPU run
    meets CUDA inputs with CPU weights."""
    from utils.memory import apply_memory_preset

    pipe = KeypointAnimator(tiny=True, device="cpu", show_progress=False).pipe
    apply_memory_preset(pipe, "balanced", "cpu", offload=True)
    hook = pipe.controlnet._hf_hook
    hook_calls = []
    load = hook.pre_forward

    def counting_pre_forward(module, *args, **kwargs):
        hook_calls.append(module)
        return load(module, *args, **kwargs)

    hook.pre_forward = counting_pre_forward
    loaded_when_embedding_ran = []
    embedding = pipe.controlnet.controlnet_cond_embedding
    embedding.register_forward_pre_hook(lambda *_: loaded_when_embedding_ran.append(len(hook_calls) > 0))
    pipe(torch.rand(3, SIZE, SIZE), torch.randn(1, FRAMES - 1, 2, SIZE, SIZE), _tagged_pose_images(),
         num_inference_steps=1, output_type="latent")  # fmt: skip
    assert loaded_when_embedding_ran == [True]
    assert hook_calls and all(module is pipe.controlnet for module in hook_calls)
