"""TrajectoryAnimator (pipeline/trajectory_animator.py): frame geometry, flow preview, results, loading."""

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.trajectory_animator import TrajectoryAnimator, fit_geometry, load_pipeline
from utils import tiny
from utils.checkpoints import SVD_DIR
from utils.errors import CheckpointError, InputError


@pytest.fixture(scope="module")
def animator():
    return TrajectoryAnimator.tiny(device="cpu", show_progress=False)


def _image(width=48, height=40, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_quirk_frame_is_short_side_512_centre_cropped_to_multiples_of_64():
    geometry = fit_geometry(1920, 1080)  # 16:9 -> 910x512 -> 896x512
    assert (geometry.width, geometry.height) == (896, 512)
    assert geometry.left == 7 and geometry.top == 0
    assert geometry.scale_x == 910 / 1920 and geometry.scale_y == 512 / 1080  # per axis, from the rounded size
    assert geometry.map_tracks([[(960, 540)]]) == [[(448.0, 256.0)]]
    square = fit_geometry(512, 512)
    assert (square.width, square.height, square.scale_x, square.left) == (512, 512, 1.0, 0)


def test_explicit_size_covers_then_centre_crops():
    geometry = fit_geometry(100, 50, width=64, height=64)  # scale 1.28 -> 128x64, crop 32 each side
    assert (geometry.width, geometry.height, geometry.left, geometry.top) == (64, 64, 32, 0)
    assert geometry.map_tracks([[(50, 25)]]) == [[(32.0, 32.0)]]
    with pytest.raises(InputError, match="cropped away"):
        geometry.map_tracks([[(5, 25)]])
    with pytest.raises(InputError, match="multiples of 64"):
        fit_geometry(100, 50, width=60, height=64)
    with pytest.raises(InputError, match="both"):
        fit_geometry(100, 50, width=64)


def test_preview_is_white_without_tracks_and_coloured_with_one(animator):
    frame = animator.prepare_image(_image())
    assert frame.size == (76, 64)  # tiny mode: short side 64, sides cropped to multiples of 4 (77 -> 76)
    blank = animator.preview_flow(frame, [[]])
    assert blank.flow is None and (blank.last_frame_rgb == 255).all()
    preview = animator.preview_flow(frame, [[(10, 10), (30, 20)]], num_frames=5)
    assert preview.flow.shape == (4, 2, frame.height, frame.width)
    assert preview.last_frame_rgb.shape == (frame.height, frame.width, 3)
    assert (preview.last_frame_rgb != 255).any()


def test_tiny_flow_follows_each_track_and_stays_still_far_from_them(animator):
    """Tiny mode spreads the hints (``HintInterpolation``) instead of a random CMP's near-constant field."""
    frame = animator.prepare_image(_image())
    flow = animator.preview_flow(frame, [[(10, 10), (30, 20)], [(60, 50), (50, 50)]], num_frames=5).flow[-1]
    # (x, y) pixels of the 76x64 frame: each start moves by its track's displacement, up to the grid's truncation
    torch.testing.assert_close(flow[:, 10, 10], torch.tensor([20.0, 10.0]), atol=2.0, rtol=0)
    torch.testing.assert_close(flow[:, 50, 60], torch.tensor([-10.0, 0.0]), atol=2.0, rtol=0)
    assert flow[:, 60, 2].abs().max() < 0.5  # the far corner does not move


def test_animate_maps_tracks_and_brush_and_records_settings(animator, tmp_path):
    image = _image()
    brush = np.zeros((40, 48), np.uint8)
    brush[:20, :20] = 255
    progress = []
    result = animator.animate(
        image, [[(10, 10), (20, 14)]], brush_mask=brush, num_frames=3, steps=2, seed=5, height=16, width=16,
        progress=lambda done, total: progress.append((done, total)),
    )  # fmt: skip
    assert progress == [(1, 2), (2, 2)]
    assert result.frames.shape == (3, 16, 16, 3) and result.frames.dtype == np.uint8
    assert result.flow.shape == (2, 2, 16, 16) and result.flow_frames.shape == (3, 16, 16, 3)
    assert result.hint_image.size == (16, 16) and result.first_frame.size == (16, 16)
    assert result.warnings[0].startswith("tiny mode")
    settings = result.settings
    assert settings.seed == 5 and settings.brush is True and settings.tracks == [[[10.0, 10.0], [20.0, 14.0]]]
    assert (settings.window_stride, settings.decode_chunk_size) == (12, animator.memory.decode_chunk_size)
    # 48x40 covers 16x16 when resized to 19x16, then 2 px (1.5 rounded) are cropped on the left
    assert settings.tracks_in_frame[0][0] == pytest.approx([10 * 19 / 48 - 2, 10 * 16 / 40])

    paths = animator.save(result, tmp_path / "run", name="clip")
    written = sorted(path.name for path in (tmp_path / "run").iterdir())
    assert written == ["clip.mp4", "clip_flow.mp4", "clip_hint.png", "input.png", "settings.json"]
    recorded = json.loads(paths.settings.read_text())
    assert recorded["outputs"]["video"] == str(tmp_path / "run" / "clip.mp4") and recorded["fps"] == 20
    assert {key: recorded[key] for key in asdict(settings)} == json.loads(json.dumps(asdict(settings)))
    with pytest.raises(InputError, match="already holds a finished run"):
        animator.save(result, tmp_path / "run", name="clip")


def test_same_seed_same_video(animator):
    runs = [animator.animate(_image(), [[(10, 10), (20, 14)]], num_frames=2, steps=1, height=16, width=16)
            for _ in range(2)]  # fmt: skip
    np.testing.assert_array_equal(runs[0].frames, runs[1].frames)


def test_missing_weights_name_the_file_and_the_fetch_command(tmp_path):
    with pytest.raises(CheckpointError, match="make fetch MODE=traj"):
        TrajectoryAnimator(ckpt_dir=tmp_path, device="cpu")


def test_pipeline_loads_from_the_released_folder_layout(tmp_path):
    """The SVD folder (fp16 variant files) and the adapter folder load through ``load_pipeline``."""
    svd = tmp_path / SVD_DIR
    unet = tiny.tiny_unet(0)
    unet.save_pretrained(svd / "unet", variant="fp16")
    tiny.tiny_vae(0).save_pretrained(svd / "vae", variant="fp16")
    tiny.tiny_image_encoder(0).save_pretrained(svd / "image_encoder", variant="fp16")
    tiny.tiny_scheduler().save_pretrained(svd / "scheduler")
    tiny.tiny_feature_extractor().save_pretrained(svd / "feature_extractor")
    tiny.tiny_flow_controlnet(0, unet).save_pretrained(tmp_path / "controlnet")
    pipe = load_pipeline(tmp_path, torch.float32)
    torch.testing.assert_close(pipe.unet.conv_in.weight, unet.conv_in.weight)
    assert pipe.scheduler.config.use_karras_sigmas and pipe.controlnet.size_multiple == 4


def test_tiny_svd_layout_animates_at_multiples_of_16():
    svd_layout = TrajectoryAnimator.tiny(device="cpu", tiny_layout="svd", show_progress=False)
    assert len(svd_layout.pipe.unet.down_blocks) == 4 and svd_layout.size_multiple == 16
    result = svd_layout.animate(_image(), [[(10, 10), (20, 14)]], num_frames=3, steps=1, height=32, width=48)
    assert result.frames.shape == (3, 32, 48, 3)
