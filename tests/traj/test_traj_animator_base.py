"""pipeline.animator_base: the conversions and checks the three animators share, and its tiny SVD parts."""

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.animator_base import (
    TINY_STEPS,
    as_rgb_image,
    check_num_frames,
    image_to_tensor,
    mask_to_rgba,
    step_end_callback,
    to_uint8_video,
    window_end_callback,
)
from pipeline.trajectory_animator import TrajectoryAnimator
from utils.errors import InputError
from utils.tiny import tiny_svd_parts


def test_float_frames_become_clipped_rounded_uint8():
    frames = np.array([[-0.5, 0.0, 0.2, 0.5, 1.0, 2.0]], np.float32)
    assert to_uint8_video(frames).tolist() == [[0, 0, 51, 128, 255, 255]]


def test_images_and_arrays_become_rgb_images_and_unit_range_tensors():
    pixels = np.array([[[0, 51, 255], [255, 0, 102]]], np.uint8)  # 1 x 2 RGB
    image = as_rgb_image(pixels)
    assert image.mode == "RGB" and image.size == (2, 1)
    assert as_rgb_image(Image.new("L", (3, 2), 7)).getpixel((0, 0)) == (7, 7, 7)
    tensor = image_to_tensor(image)
    assert tensor.shape == (3, 1, 2) and tensor.dtype == torch.float32
    torch.testing.assert_close(tensor[:, 0, 0], torch.tensor([0.0, 0.2, 1.0]))


def test_a_mask_is_drawn_in_its_colour_and_transparent_outside():
    rgba = mask_to_rgba(np.array([[0, 255], [1, 0]], np.uint8), (1, 2, 3, 4))
    assert rgba.shape == (2, 2, 4) and rgba.dtype == np.uint8
    assert rgba[0, 1].tolist() == [1, 2, 3, 4] and rgba[1, 0].tolist() == [1, 2, 3, 4]
    assert rgba[0, 0].tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("num_frames", [1, 0, 2.5])
def test_fewer_than_two_or_fractional_frames_are_refused(num_frames):
    with pytest.raises(InputError, match="num_frames must be an integer >= 2"):
        check_num_frames(num_frames)


def test_the_step_callback_reports_done_and_total_steps():
    assert step_end_callback(None, 5) is None
    calls = []
    callback = step_end_callback(lambda done, total: calls.append((done, total)), 5)
    assert callback(None, 0, 999, {"latents": 1}) == {}
    callback(None, 4, 1, {})
    assert calls == [(1, 5), (5, 5)]


def test_the_window_callback_reports_the_fraction_of_the_step_done():
    assert window_end_callback(None, 2) is None
    calls = []
    callback = window_end_callback(lambda done, total: calls.append((done, total)), 2)
    for step_index, window_index in ((0, 0), (0, 1), (0, 3), (1, 1)):
        callback(step_index, window_index, 4)
    assert calls == [(0.25, 2), (0.5, 2), (1.0, 2), (1.5, 2)]


def test_tiny_svd_parts_are_seeded_pipeline_arguments():
    first, second = tiny_svd_parts(3), tiny_svd_parts(3)
    assert set(first) == {"vae", "image_encoder", "unet", "scheduler", "feature_extractor"}
    torch.testing.assert_close(first["unet"].conv_in.weight, second["unet"].conv_in.weight)
    assert len(tiny_svd_parts(0, "svd")["unet"].down_blocks) == 4


def test_the_animator_resolves_steps_and_records_how_it_was_loaded():
    animator = TrajectoryAnimator.tiny(device="cpu", show_progress=False)
    assert animator.resolve_steps(None) == TINY_STEPS and animator.resolve_steps(3) == 3
    for steps in (0, 1.5):
        with pytest.raises(InputError, match="steps must be a positive integer"):
            animator.resolve_steps(steps)
    settings = animator.model_settings()
    assert settings["tiny"] is True and settings["ckpt_dir"] is None and settings["memory"]["preset"] == "high"
    animator.set_memory("low")
    assert animator.memory.decode_chunk_size == 2 and animator.model_settings()["memory"]["preset"] == "low"


def test_a_run_longer_than_one_window_reports_progress_after_every_window():
    animator = TrajectoryAnimator.tiny(device="cpu", show_progress=False)
    image = Image.new("RGB", (16, 16), "gray")
    reported = []
    animator.animate(
        image, [[(4, 4), (8, 6)]], num_frames=30, steps=2, height=16, width=16,
        progress=lambda done, total: reported.append((done, total)),
    )  # fmt: skip
    # windows (1-24) and (6-29) with frame 0: two per step, then the step's own report
    assert reported == [(0.5, 2), (1.0, 2), (1, 2), (1.5, 2), (2.0, 2), (2, 2)]
