"""HybridAnimator in tiny mode: landmarks from audio / video, animation, the run folder, audio muxing."""

import json

import av
import numpy as np
import pytest
import soundfile
import torch
from media_helpers import portrait_pixels
from PIL import Image

from pipeline.hybrid_animator import FPS, HybridAnimator, fit_landmarks_length
from utils.adapter_schedule import FAST
from utils.errors import InputError
from utils.video_io import write_video


@pytest.fixture(scope="module")
def animator():
    return HybridAnimator.tiny(device="cpu", show_progress=False)


@pytest.fixture(scope="module")
def frame(animator):
    return animator.prepare_image(Image.fromarray(portrait_pixels((480, 360))))


def _speech(path, seconds=0.3, rate=22050):
    times = np.arange(int(seconds * rate)) / rate
    soundfile.write(
        path, (0.3 * np.sin(2 * np.pi * 220 * times) * (1 + np.sin(2 * np.pi * 4 * times))).astype(np.float32), rate
    )
    return path


def _stream_info(path):
    with av.open(str(path)) as container:
        kinds = sorted(stream.type for stream in container.streams)
        num_frames = sum(1 for _ in container.decode(video=0))
        width = container.streams.video[0].width
    return kinds, num_frames, width


def test_prepare_image_gives_the_tiny_generation_frame(frame):
    assert frame.size == (84, 64)  # short side 64, sides cut to multiples of 4


def test_audio_driven_run_writes_every_output_with_the_audio_under_all_frames(animator, frame, tmp_path):
    audio = _speech(tmp_path / "speech.wav")
    landmarks = animator.landmarks_from_audio(frame, audio)
    assert landmarks.shape == (1 + 8, 68, 2)  # 0.3 s at 25 fps -> 8 frames after the reference
    result = animator.animate(frame, landmarks, tracks=[[(5, 5), (20, 20)]], num_frames=4, seed=1)
    assert result.frames.shape == (4, 64, 84, 3) and result.frames.dtype == np.uint8
    assert result.landmark_mask.source == "landmarks" and result.warnings[0].startswith("tiny mode")
    assert result.trajectory_flow.shape == result.landmark_flow.shape == (3, 2, 64, 84)

    paths = animator.save(result, tmp_path / "run", audio_path=audio)
    assert _stream_info(paths.video) == (["audio", "video"], 4, 84)
    for video in (paths.trajectory_flow, paths.landmark_flow, paths.landmark_video, paths.video_with_landmarks):
        assert _stream_info(video) == (["video"], 4, 84)
    assert _stream_info(paths.comparison) == (["audio", "video"], 4, 7 * 84)
    assert np.load(paths.landmarks).shape == (4, 68, 2)
    assert np.asarray(Image.open(paths.landmark_mask)).shape == (64, 84)
    settings = json.loads(paths.settings.read_text())
    assert settings["num_frames"] == 4 and settings["fps"] == FPS and settings["audio"] == str(audio)
    assert settings["landmark_mask_source"] == "landmarks" and settings["tracks"] == [[[5.0, 5.0], [20.0, 20.0]]]
    assert (settings["trajectory_conditioning_scale"], settings["landmark_conditioning_scale"]) == (0.6, 1.0)
    assert settings["conditioning_scale"] is None  # one per adapter instead
    assert np.array_equal(np.asarray(Image.open(paths.input)), np.asarray(frame))
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == sorted(
        path.name for path in map(type(tmp_path), settings["outputs"].values())
    )  # nothing else, no temporary files left
    with pytest.raises(InputError, match="already holds a finished run"):
        animator.save(result, tmp_path / "run")


def test_without_trajectories_the_drag_flow_is_zero_the_painted_mask_wins_and_progress_is_reported(
    animator, frame, tmp_path
):
    landmarks = animator.landmarks_from_audio(frame, _speech(tmp_path / "speech.wav"))[:3]
    painted = np.zeros((64, 84), np.uint8)
    painted[10:20, 10:20] = 255
    steps = []
    result = animator.animate(
        frame, landmarks, painted_landmark_mask=painted, num_frames=3, progress=lambda *done: steps.append(done)
    )
    assert steps == [(1, 2), (2, 2)]
    assert torch.count_nonzero(result.trajectory_flow) == 0
    assert result.landmark_mask.source == "painted" and np.array_equal(result.landmark_mask.mask, painted)


def test_fast_mode_runs_both_adapters_every_fourth_step_and_is_recorded(animator, frame, tmp_path):
    landmarks = animator.landmarks_from_audio(frame, _speech(tmp_path / "speech.wav"))[:3]
    calls, time_ids = [], []
    hooks = [
        adapter.register_forward_pre_hook(lambda module, args: calls.append(module))
        for adapter in (animator.pipe.controlnet, animator.pipe.ldmk_controlnet)
    ]
    hooks.append(
        animator.pipe.unet.register_forward_pre_hook(
            lambda module, args, kwargs: time_ids.append(kwargs["added_time_ids"]), with_kwargs=True
        )
    )
    try:
        result = animator.animate(frame, landmarks, tracks=[[(5, 5), (20, 20)]], num_frames=3, steps=5, fast=True)
    finally:
        for hook in hooks:
            hook.remove()
    assert result.frames.shape == (3, 64, 84, 3)
    assert calls.count(animator.pipe.controlnet) == calls.count(animator.pipe.ldmk_controlnet) == 2  # steps 0, 4
    assert result.settings.fast is True and result.settings.adapter_schedule == FAST.as_dict()
    recorded = [getattr(result.settings, name) for name in ("fps_id", "motion_bucket_id", "noise_aug_strength")]
    assert recorded == [6, 128, 0.02]  # the micro-conditioning recorded is the one the UNet received
    torch.testing.assert_close(time_ids[0], torch.tensor([recorded] * 2, dtype=time_ids[0].dtype))


def test_frame_count_defaults_to_the_landmarks_and_a_longer_request_holds_the_last_pose(frame):
    landmarks = np.random.default_rng(0).random((3, 68, 2)) * 50
    held, message = fit_landmarks_length(landmarks, 5)
    assert held.shape == (5, 68, 2) and np.array_equal(held[4], landmarks[2]) and "held for the 2 more" in message
    cut, message = fit_landmarks_length(landmarks, 2)
    assert np.array_equal(cut, landmarks[:2]) and message is None


def test_video_driven_tiny_landmarks_follow_the_driving_frames(animator, frame, tmp_path):
    rng = np.random.default_rng(1)
    texture = (rng.random((48, 48, 3)) * 255).astype(np.uint8)
    video = write_video(tmp_path / "drive.mp4", [np.roll(texture, 2 * i, axis=1) for i in range(6)], fps=25)
    landmarks = animator.landmarks_from_video(frame, video)
    assert landmarks.shape == (7, 68, 2)
    assert np.all(landmarks[:, :, 0] < 84) and np.all(landmarks[:, :, 1] < 64)


def test_bad_inputs_are_refused_with_messages(animator, frame, tmp_path):
    landmarks = np.zeros((3, 68, 2)) + 10
    with pytest.raises(InputError, match="renderer must be one of"):
        animator.landmarks_from_audio(frame, _speech(tmp_path / "a.wav"), renderer="wav2lip")
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(8000, np.float32), 16000)
    with pytest.raises(InputError, match="silent"):
        animator.landmarks_from_audio(frame, silent)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video at all")
    with pytest.raises(InputError, match="cannot read video"):
        animator.landmarks_from_video(frame, corrupt)
    with pytest.raises(InputError, match="landmarks must have shape"):
        animator.animate(frame, np.zeros((3, 5, 2)))
    with pytest.raises(InputError, match="num_frames must be an integer >= 2"):
        animator.animate(frame, landmarks, num_frames=1)
    with pytest.raises(InputError, match="outside the 84x64 image"):
        animator.animate(frame, landmarks, tracks=[[(100, 5)]])
    with pytest.raises(InputError, match="brush_mask is 8x8, the frame 84x64"):
        animator.animate(frame, landmarks, brush_mask=np.zeros((8, 8)))
    with pytest.raises(InputError, match="multiples of 4"):
        animator.animate(Image.new("RGB", (30, 30)), landmarks)


@pytest.mark.parametrize(
    "generate, fetch",
    [
        (lambda animator, frame, audio, video: animator.landmarks_from_audio(frame, audio, "aniportrait"), "keypoint"),
        (lambda animator, frame, audio, video: animator.landmarks_from_audio(frame, audio, "sadtalker"), "sadtalker"),
        (lambda animator, frame, audio, video: animator.landmarks_from_video(frame, video), "sadtalker"),
    ],
)
def test_real_landmark_generators_name_their_missing_weights(frame, tmp_path, generate, fetch):
    from utils.errors import CheckpointError
    from utils.landmark_renderers import LandmarkGenerators

    animator = HybridAnimator.tiny(device="cpu", show_progress=False)
    animator.is_tiny = False  # the real generators, without weights
    animator.landmark_generators = LandmarkGenerators(tmp_path / "no_weights", "cpu")
    video = write_video(tmp_path / "drive.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps=25)
    with pytest.raises(CheckpointError, match=f"make fetch MODE={fetch}"):
        generate(animator, frame, _speech(tmp_path / "a.wav"), video)


def test_checkpoint_layout_loads_both_adapters_unchanged(tmp_path, monkeypatch):
    """``load_components`` on a ckpts/ tree of saved tiny models (CMP replaced: its released file is 100 MB)."""
    from models.cmp import build_tiny_cmp
    from pipeline import hybrid_animator
    from utils import tiny
    from utils.tiny_keypoint import tiny_ldmk_controlnet

    unet = tiny.tiny_unet(0)
    svd = tmp_path / "stable-video-diffusion-img2vid-xt-1-1"
    for name, model in (("vae", tiny.tiny_vae(0)), ("unet", unet), ("image_encoder", tiny.tiny_image_encoder(0))):
        model.save_pretrained(svd / name, variant="fp16")
    tiny.tiny_scheduler().save_pretrained(svd / "scheduler")
    tiny.tiny_feature_extractor().save_pretrained(svd / "feature_extractor")
    adapters = {"controlnet": tiny.tiny_flow_controlnet(0, unet), "ldmk_controlnet": tiny_ldmk_controlnet(0, unet)}
    adapters["controlnet"].save_pretrained(tmp_path / "mofa" / "traj_controlnet")
    adapters["ldmk_controlnet"].save_pretrained(tmp_path / "mofa" / "ldmk_controlnet")
    monkeypatch.setattr(
        hybrid_animator.CMP, "from_checkpoint", classmethod(lambda cls, path, **kwargs: build_tiny_cmp())
    )

    pipe, _ = hybrid_animator.load_components(tmp_path, torch.float32)
    for name, saved in adapters.items():
        loaded = getattr(pipe, name)
        assert type(loaded) is type(saved)
        for key, value in saved.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), f"{name}.{key}"


@pytest.mark.parametrize(("dtype", "hint_dtype"), [("fp16", torch.float16), ("fp32", torch.float32)])
def test_landmark_hints_are_scaled_as_in_the_keypoint_path(frame, dtype, hint_dtype):
    animator = HybridAnimator.tiny(device="cpu", dtype=dtype, show_progress=False)
    hint_dtypes = []
    dense_flow = animator.cmp.dense_flow

    def recording_dense_flow(image, sparse_flow, mask, chunk_size=None):
        hint_dtypes.append(sparse_flow.dtype)
        return dense_flow(image, sparse_flow.float(), mask.float(), chunk_size=chunk_size)

    animator.cmp.dense_flow = recording_dense_flow
    rng = np.random.default_rng(1)
    landmarks = rng.uniform(4, min(frame.width, frame.height) - 4, (3, 68, 2)).astype(np.float32)
    pose, flow = animator.landmark_flow(frame, landmarks)
    assert hint_dtypes == [hint_dtype]
    assert pose.shape[0] == 3 and flow.shape[0] == 2 and flow.dtype == torch.float32


def test_tiny_landmarks_start_from_the_portraits_real_face_and_move_it(animator, frame, tmp_path):
    from aniportrait.face_check import face_landmarks

    # the oracle: MediaPipe on the 480x360 upload itself, mapped into the 84x64 frame (scaled 512/360, the
    # 683-px width centre-cropped to 672, then 1/8)
    scale = 512 / 360
    upload = face_landmarks(portrait_pixels((480, 360)))
    expected = (upload * scale - [(round(480 * scale) - 672) / 2, 0]) / 8
    audio = animator.landmarks_from_audio(frame, _speech(tmp_path / "speech.wav", seconds=1.0))
    np.testing.assert_allclose(audio[0], expected, atol=0.3)
    assert np.linalg.norm(audio[1:, 66] - audio[1:, 62], axis=-1).max() > np.linalg.norm(audio[0, 66] - audio[0, 62])
    frames = [np.roll(portrait_pixels((64, 64)), 2 * i, axis=1) for i in range(4)]
    video = write_video(tmp_path / "drive.mp4", frames, fps=25)
    np.testing.assert_allclose(animator.landmarks_from_video(frame, video)[0], expected, atol=0.3)


def test_a_faceless_portrait_is_refused_in_tiny_mode_too(animator, tmp_path):
    landscape = np.zeros((90, 120, 3), np.uint8)
    landscape[..., 0] = np.linspace(0, 255, 120, dtype=np.uint8)[None]
    frame = animator.prepare_image(Image.fromarray(landscape))
    with pytest.raises(InputError, match="^no face detected in landscape.png$"):
        animator.face_landmarks(frame, "landscape.png")
    with pytest.raises(InputError, match="^no face detected in landscape.png$"):
        animator.landmarks_from_audio(frame, _speech(tmp_path / "speech.wav"), image_name="landscape.png")
    video = write_video(tmp_path / "drive.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps=25)
    with pytest.raises(InputError, match="^no face detected in image$"):
        animator.landmarks_from_video(frame, video)


def test_save_refuses_a_folder_it_cannot_write_and_a_failed_save_leaves_no_folder(animator, frame, tmp_path):
    landmarks = animator.landmarks_from_audio(frame, _speech(tmp_path / "speech.wav"))[:3]
    result = animator.animate(frame, landmarks, num_frames=3, seed=1)
    notes = tmp_path / "notes.txt"
    notes.write_text("a file")
    with pytest.raises(InputError, match=f"^cannot write to {notes}/run: {notes} is a file, not a folder$"):
        animator.save(result, notes / "run")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnonsense")
    with pytest.raises(InputError, match="cannot mux"):
        animator.save(result, tmp_path / "runs" / "one", audio_path=broken)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.wav", "notes.txt", "speech.wav"]
