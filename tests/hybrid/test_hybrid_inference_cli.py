"""The headless Hybrid CLI (inference.py) in tiny mode on real-looking media: audio- and video-driven runs, drags,
masks, the run folder, refusals before any model loads, and a resumable jobs file."""

import json
import math
import os
from pathlib import Path

import av
import numpy as np
import pytest
from media_helpers import save_faceless, save_portrait, save_speech, save_video, talking_frames
from PIL import Image

FPS = 25
RUN_FILES = [
    "hint.png", "input.png", "landmark_flow.mp4", "landmark_mask.png", "landmarks.mp4", "landmarks.npy",
    "output.mp4", "output_with_landmarks.mp4", "settings.json", "trajectory_flow.mp4",
]  # fmt: skip


@pytest.fixture
def cli(subproject_dir, monkeypatch):
    monkeypatch.chdir(subproject_dir)
    monkeypatch.delenv("MOFA_TINY", raising=False)
    import inference

    return inference


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    drags = folder / "drags.json"  # input pixels of the 240x300 portrait
    drags.write_text(json.dumps({"tracks": [[[40, 250], [70, 240]]], "brush": [{"x": 40, "y": 250, "r": 30}]}))
    mask = np.zeros((300, 240), np.uint8)
    mask[60:200, 60:180] = 255
    Image.fromarray(mask).save(folder / "face_mask.png")
    return {
        "portrait": save_portrait(folder / "portrait.jpg", (240, 300)),
        "landscape": save_faceless(folder / "landscape.png"),
        "speech": save_speech(folder / "speech.wav", 0.3, rate=48000, channels=2),
        "drive": save_video(folder / "drive.avi", talking_frames(6), codec="mpeg4"),  # MPEG-4 Part 2
        "drags": drags,
        "mask": folder / "face_mask.png",
    }


def _streams(path: Path) -> tuple[list[str], int]:
    with av.open(str(path)) as container:
        return sorted(stream.type for stream in container.streams), sum(1 for _ in container.decode(video=0))


def _only_run(folder: Path) -> Path:
    runs = list(folder.iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def test_audio_driven_run_with_drags_brush_and_painted_mask(cli, media, tmp_path, capsys):
    previous = os.umask(0o022)
    try:
        argv = ["--tiny", "--steps", "1", "--image", media["portrait"], "--audio", media["speech"], "--trajectories",
                media["drags"], "--landmark_mask", media["mask"], "--output_dir", tmp_path / "out"]  # fmt: skip
        assert cli.main([str(arg) for arg in argv]) == 0
    finally:
        os.umask(previous)
    run = _only_run(tmp_path / "out")
    assert sorted(path.name for path in run.iterdir()) == RUN_FILES
    frames = 1 + math.ceil(FPS * 0.3)  # 9: as long as the audio by default
    assert _streams(run / "output.mp4") == (["audio", "video"], frames)
    assert capsys.readouterr().out.endswith(f"video: {run / 'output.mp4'} ({frames} frames, 64x80, 25 fps)\n")
    settings = json.loads((run / "settings.json").read_text())
    assert settings["driving_kind"] == "audio" and settings["renderer"] == "aniportrait"
    assert settings["landmark_mask_source"] == "painted" and settings["motion_brush"] is True
    # 240x300 -> short side 64 (scale 64/240), 64x80, nothing cropped: (40, 250) is (10.67, 66.67) in the frame
    np.testing.assert_allclose(settings["tracks"], np.array([[[40, 250], [70, 240]]]) * 64 / 240)
    mask = np.asarray(Image.open(run / "landmark_mask.png"))
    assert mask.shape == (80, 64) and mask[16:53, 16:48].min() == 255 and mask[:15].max() == 0
    assert Image.open(run / "input.png").size == (64, 80)
    assert {path.stat().st_mode & 0o777 for path in run.iterdir()} == {0o644}


def test_video_driven_run_follows_every_driving_frame_with_the_landmark_mask(cli, media, tmp_path):
    argv = ["--tiny", "--steps", "1", "--image", media["portrait"], "--video", media["drive"], "--mask_mode",
            "landmarks", "--fast", "--temporal_context", "per_video", "--output_dir", tmp_path / "out"]  # fmt: skip
    assert cli.main([str(arg) for arg in argv]) == 0
    run = _only_run(tmp_path / "out")
    assert _streams(run / "output.mp4") == (["video"], 1 + 6)  # the reference + one frame per driving frame
    settings = json.loads((run / "settings.json").read_text())
    assert settings["driving_kind"] == "video" and settings["renderer"] == "sadtalker"
    assert settings["landmark_mask_source"] == "landmarks" and settings["fast"] is True and settings["tracks"] == []
    assert settings["temporal_context"] == "per_video"
    landmarks = np.load(run / "landmarks.npy")
    assert landmarks.shape == (7, 68, 2) and np.ptp(landmarks[:, 30, 0]) > 0  # the face follows the video's pan


def _refusals(media, tmp_path) -> dict[str, tuple[list, str]]:
    notes = tmp_path / "notes.txt"
    notes.write_text("a file")
    small_mask = tmp_path / "small.png"
    Image.new("L", (10, 10)).save(small_mask)
    portrait, speech = media["portrait"], media["speech"]
    return {
        "faceless": (["--image", media["landscape"], "--audio", speech], "no face detected in landscape.png"),
        "output under a file": (
            ["--image", portrait, "--audio", speech, "--output_dir", notes],
            f"cannot write to {notes}/",
        ),
        "mask of another size": (
            ["--image", portrait, "--audio", speech, "--landmark_mask", small_mask],
            f"landmark mask {small_mask} is 10x10, the image 240x300: they must match",
        ),
        "text file as audio": (["--image", portrait, "--audio", notes], "notes.txt is not a readable audio file"),
        "unreadable video": (["--image", portrait, "--video", notes], "cannot read video"),
    }


@pytest.mark.parametrize(
    "case", ["faceless", "output under a file", "mask of another size", "text file as audio", "unreadable video"]
)
def test_bad_input_is_one_line_before_any_model_loads(cli, media, tmp_path, capsys, monkeypatch, case):
    monkeypatch.setattr(cli, "build_animator", lambda *args: pytest.fail("models loaded"))
    argv, message = _refusals(media, tmp_path)[case]
    argv = ["--output_dir", tmp_path / "out", *argv]
    assert cli.main(["--tiny", *map(str, argv)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and message in error, error
    assert not (tmp_path / "out").exists()


def test_a_jobs_file_runs_once_and_resumes(cli, media, tmp_path, capsys):
    jobs = tmp_path / "jobs.jsonl"
    lines = [{"image": str(media["portrait"]), "audio": str(media["speech"]), "name": "talk", "num_frames": 3},
             {"image": str(media["landscape"]), "audio": str(media["speech"])}]  # fmt: skip
    jobs.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    argv = ["--tiny", "--steps", "1", "--jobs", str(jobs), "--output_dir", str(tmp_path / "out")]
    assert cli.main(argv) == 2  # the faceless job failed, the other ran
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {tmp_path / 'out' / 'landscape_speech'}: no face detected in landscape.png"]
    assert _streams(tmp_path / "out" / "talk" / "output.mp4") == (["audio", "video"], 3)
    assert not (tmp_path / "out" / "landscape_speech").exists()
    assert cli.main(argv) == 2
    assert "skipping 1 finished job(s)" in capsys.readouterr().err


def test_help_names_each_default_once_and_never_none(cli, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "random seed (default: 42)" in text and "(default: balanced)" in text and "(default: auto)" in text
