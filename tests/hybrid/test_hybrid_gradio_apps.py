"""Both Hybrid demos served in tiny mode, driven with gradio_client: uploads, clicks, masks, runs, messages."""

import json
import re
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from PIL import Image
from ui_helpers import select, served_demo

from utils.video_io import write_video

SUBPROJECT = Path(__file__).resolve().parents[2] / "MOFA-Video-Hybrid"
PORTRAIT = SUBPROJECT / "examples" / "portrait.png"
"""A face drawn by examples/make_examples.py, which MediaPipe's face landmarker finds."""


@pytest.fixture(scope="module")
def audio_app(tmp_path_factory):
    """The audio-driven demo started without weights (empty --ckpt_dir): it must fall back to tiny mode."""
    work = tmp_path_factory.mktemp("audio_app")
    with served_demo(SUBPROJECT, "run_gradio_audio_driven.py", ["--ckpt_dir", str(work / "no_weights")], work) as app:
        yield app


@pytest.fixture(scope="module")
def video_app(tmp_path_factory):
    work = tmp_path_factory.mktemp("video_app")
    with served_demo(SUBPROJECT, "run_gradio_video_driven.py", ["--tiny"], work) as app:
        yield app


def _client(app, tmp_path):
    from gradio_client import Client

    return Client(app.url, verbose=False, download_files=str(tmp_path))


def _run(client, renderer, num_frames, comparison=True, mode="auto", *advanced):
    """Run with the page's inputs; ``advanced`` (Fast Mode, then the temporal context) is left out unless given."""
    return client.predict(
        mode, renderer, 0.6, 1.0, num_frames, 2, 7, "balanced", comparison, *advanced, api_name="/run"
    )


def _path(value) -> str:
    return value["video"] if isinstance(value, dict) else value


def _streams(path) -> tuple[list[str], int]:
    with av.open(str(path)) as container:
        return sorted(stream.type for stream in container.streams), sum(1 for _ in container.decode(video=0))


def _portrait(path: Path) -> Path:
    """The example portrait cropped to 480x512 (4:5 after the tiny mode's resize), saved as ``path``."""
    Image.open(PORTRAIT).crop((16, 0, 496, 512)).resize((240, 300)).save(path)
    return path


def _faceless(path: Path) -> Path:
    image = np.zeros((300, 240, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, 240, dtype=np.uint8)[None]
    image[60:240, 50:190, 1] = 180
    Image.fromarray(image).save(path)
    return path


def _speech_flac(path: Path, seconds: float = 0.5) -> Path:
    rate = 44100
    times = np.arange(int(seconds * rate)) / rate
    soundfile.write(
        path, (0.3 * np.sin(2 * np.pi * 200 * times) * (1 + np.sin(2 * np.pi * 5 * times))).astype(np.float32), rate
    )
    return path


def test_audio_app_without_weights_falls_back_to_tiny_mode_with_a_banner(audio_app, tmp_path):
    notices = [line for line in audio_app.stderr.read_text().splitlines() if "starting in tiny mode" in line]
    assert len(notices) == 1 and "make fetch MODE=hybrid" in notices[0]
    client = _client(audio_app, tmp_path)
    markdown = [c["props"].get("value") or "" for c in client.config["components"] if c["type"] == "markdown"]
    banner = next(text for text in markdown if "Tiny mode" in text)
    assert "noise" in banner and "synthetic" in banner and "make fetch MODE=hybrid" in banner
    assert "64-px short side (512 with the real weights)" in banner  # the How-to's 512 is the real mode's size


def test_audio_app_answers_out_of_order_actions_with_messages(audio_app, tmp_path):
    from gradio_client import handle_file

    client = _client(audio_app, tmp_path)
    assert _run(client, "aniportrait", 4)[-1].startswith("Upload an image first.")
    audio = _speech_flac(tmp_path / "speech.flac")
    assert select(client, "/click", 5, 5, "Trajectory points", 10, "auto")[-1] == "Upload an image first."
    assert select(client, "/click", 5, 5, "Landmark mask", 10, "auto")[-1] == "Upload an image first."
    assert client.predict("auto", api_name="/clear_landmark_mask")[-1] == "Upload an image first."
    assert client.predict("Trajectory points", "auto", api_name="/undo")[-1] == "Upload an image first."
    assert client.predict("auto", api_name="/reset")[-1] == "Upload an image first."
    status = client.predict(handle_file(audio), api_name="/upload_audio")[-1]
    assert status == "Upload an image first. The driving audio speech.flac is kept for it."  # kept, not refused
    status = client.predict(handle_file(_portrait(tmp_path / "face.png")), "auto", api_name="/upload_image")[-1]
    assert status == "Image 64x80: 0 trajectories (0 clicks), face found; driving audio: speech.flac."


def test_audio_app_refuses_bad_uploads_with_messages(audio_app, tmp_path):
    from gradio_client import handle_file

    client = _client(audio_app, tmp_path)
    (tmp_path / "notes.png").write_text("not an image")
    status = client.predict(handle_file(tmp_path / "notes.png"), "auto", api_name="/upload_image")[-1]
    assert status == "Cannot use this portrait: notes.png is not a readable image (unknown format)"
    status = client.predict(handle_file(_faceless(tmp_path / "gradient.png")), "auto", api_name="/upload_image")[-1]
    assert status == "Cannot use this portrait: no face detected in gradient.png"
    client.predict(handle_file(_portrait(tmp_path / "face.png")), "auto", api_name="/upload_image")
    soundfile.write(tmp_path / "silence.wav", np.zeros(16000, np.float32), 16000)
    status = client.predict(handle_file(tmp_path / "silence.wav"), api_name="/upload_audio")[-1]
    assert status == "Cannot use this file: audio file silence.wav is silent"  # the name, not the upload's folder
    (tmp_path / "noise.mp3").write_bytes(b"\x00\x01garbage" * 50)
    status = client.predict(handle_file(tmp_path / "noise.mp3"), api_name="/upload_audio")[-1]
    assert status == "Cannot use this file: noise.mp3 is not a readable audio file (invalid data)"


def test_audio_app_upload_trajectory_mask_and_run_write_a_video_with_the_audio(audio_app, tmp_path):
    from gradio_client import handle_file

    client = _client(audio_app, tmp_path)
    outputs = client.predict(handle_file(_portrait(tmp_path / "face.png")), "auto", api_name="/upload_image")
    *results, drawing, preview, mask_status, status = outputs
    assert results == [None] * 7 and preview is None
    assert Image.open(drawing).size == (448, 560)  # tiny mode's 64x80 frame shown 7 times larger (long side >= 512)
    assert mask_status.startswith("Landmark mask: automatic")
    status = client.predict(handle_file(_speech_flac(tmp_path / "speech.flac")), api_name="/upload_audio")[-1]
    assert status.endswith("driving audio: speech.flac.")
    select(client, "/click", 10 * 7, 60 * 7, "Trajectory points", 10, "auto")
    _, preview, _, status = select(client, "/click", 30 * 7 + 6, 70 * 7 + 6, "Trajectory points", 10, "auto")
    assert status.startswith("Image 64x80: 1 trajectories (2 clicks), face found")
    assert "Last click at (30, 70). This drag reaches 22 px from its start" in status  # 64 px frame: ~8 px limit
    assert np.asarray(Image.open(preview)).shape == (80, 64, 3)
    _, _, mask_status, _ = select(client, "/click", 32 * 7, 30 * 7, "Landmark mask", 12, "auto")
    assert mask_status.startswith("Landmark mask: painted")

    outputs = _run(client, "aniportrait", 4)
    video, overlay, comparison, trajectory_flow, landmark_flow, landmark_video, hint, _, mask_status, status = outputs
    assert status.startswith("Done: 4 frames written to ")
    assert mask_status.startswith("Landmark mask: painted")
    assert _streams(_path(video)) == _streams(_path(comparison)) == (["audio", "video"], 4)
    for path in (overlay, trajectory_flow, landmark_flow, landmark_video):
        assert _streams(_path(path)) == (["video"], 4)
    assert Image.open(hint).size == (64, 80)
    assert re.fullmatch(r"face_hybrid_\d{8}-\d{6}", Path(_path(video)).stem)  # named after the image
    assert Path(_path(overlay)).name == f"{Path(_path(video)).stem}_with_landmarks.mp4"
    shown = status.removeprefix("Done: 4 frames written to ").rstrip(".")
    assert re.fullmatch(r"outputs/\d{8}-\d{6}-[0-9a-f]{6}", shown)  # no server path on the page
    run_dir = audio_app.outputs.parent / shown
    settings = json.loads((run_dir / "settings.json").read_text())
    assert settings["num_frames"] == 4 and settings["seed"] == 7 and settings["renderer"] == "aniportrait"
    assert settings["landmark_mask_source"] == "painted" and settings["driving_kind"] == "audio"
    assert settings["tracks"] == [[[10.0, 60.0], [30.0, 70.0]]]
    assert settings["landmark_frames"] == 1 + 13  # 0.5 s of audio at 25 fps, plus the reference
    assert settings["fast"] is False  # a call without the Fast Mode input keeps the faithful schedule
    assert settings["temporal_context"] == "original"


def test_video_app_runs_as_long_as_the_driving_video_and_refuses_a_corrupt_one(video_app, tmp_path):
    from gradio_client import handle_file

    client = _client(video_app, tmp_path)
    client.predict(handle_file(_portrait(tmp_path / "face.png")), "auto", api_name="/upload_image")
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    status = client.predict(handle_file(tmp_path / "broken.mp4"), api_name="/upload_video")[-1]
    assert status == "Cannot use this file: broken.mp4 is not a readable video (invalid data)"
    texture = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    driving = write_video(tmp_path / "drive.mp4", [np.roll(texture, 3 * i, axis=1) for i in range(5)], fps=25)
    *_, player, clip_info, status = client.predict(handle_file(driving), api_name="/upload_video")
    assert status.endswith("driving video: drive.mp4.")
    assert clip_info == "drive.mp4: 0.20 s, 25 fps, 5 frames, 64x48 (h264)."  # H.264 plays as uploaded
    mpeg4 = SUBPROJECT / "examples" / "driving.mp4"
    *_, player, clip_info, _ = client.predict(handle_file(mpeg4), api_name="/upload_video")
    assert clip_info == "driving.mp4: 0.96 s, 25 fps, 24 frames, 256x256 (mpeg4) (preview transcoded to H.264)."
    with av.open(_path(player)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == 24
    client.predict(handle_file(driving), api_name="/upload_video")
    select(client, "/click", 5 * 8, 5 * 8, "Trajectory points", 10, "auto")
    outputs = _run(client, "sadtalker", 0, False, "none", True, "per_video")  # Fast Mode on, today's context
    video, _, comparison, *_, mask_status, status = outputs
    assert status.startswith("Done: 6 frames written to ")  # the reference + one frame per driving frame
    run_dir = video_app.outputs.parent / status.removeprefix("Done: 6 frames written to ").rstrip(".")
    settings = json.loads((run_dir / "settings.json").read_text())
    assert settings["fast"] is True and settings["temporal_context"] == "per_video"
    assert _streams(_path(video)) == (["video"], 6)
    assert comparison is None and mask_status.startswith("Landmark mask: none")
