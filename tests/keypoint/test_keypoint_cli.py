"""inference.sh / inference_opendomain.py end to end in tiny mode, and its one-line input errors."""

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from media_helpers import save_faceless, save_portrait
from PIL import Image

SUBPROJECT = Path(__file__).resolve().parents[2] / "MOFA-Video-Keypoint"
FPS = 25
DATA = Path(__file__).parent / "data"


def _astronaut_landmarks_in(size: int) -> np.ndarray:
    """(68, 2) the face MediaPipe 1.2.2 found in the 512-px portrait (recorded), in pixels of a ``size`` frame."""
    from aniportrait.projection import MEDIAPIPE_TO_68

    recorded = np.load(DATA / "astronaut_face.npz")["landmarks"]
    return recorded[MEDIAPIPE_TO_68, :2] * size


def _mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Per frame: distance between the inner lips' middle points (62 above, 66 below)."""
    return np.linalg.norm(landmarks[:, 66] - landmarks[:, 62], axis=-1)


def _speechlike(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    portrait = save_portrait(folder / "portrait.png")
    short, long, odd = folder / "short.wav", folder / "long.wav", folder / "odd.wav"
    soundfile.write(short, _speechlike(2.5, 48000), 48000)
    soundfile.write(long, np.stack([_speechlike(7.0, 44100)] * 2, axis=1), 44100)
    soundfile.write(odd, _speechlike(2.03, 48000), 48000)  # 50.75 frames at 25 fps
    landscape = save_faceless(folder / "landscape.jpg")
    return {"portrait": portrait, "short": short, "long": long, "odd": odd, "landscape": landscape}


def _video_info(path: Path) -> tuple[int, float | None]:
    """(decoded video frames, audio stream duration in seconds or None)."""
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:
        audio = container.streams.audio
        duration = float(audio[0].duration * audio[0].time_base) if audio else None
    return frames, duration


def _run(args: list[str], cwd: Path = SUBPROJECT) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHON=sys.executable)
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, preexec_fn=lambda: os.umask(0o022)
    )


def _single(folder: Path, pattern: str) -> Path:
    matches = sorted(folder.glob(pattern))
    assert len(matches) == 1, matches
    return matches[0]


def test_inference_sh_tiny_writes_landmarks_and_a_muxed_video_covering_the_audio(inputs, tmp_path):
    digest = hashlib.sha256(inputs["portrait"].read_bytes()).hexdigest()
    result = _run([
        "bash", "inference.sh", "--tiny", "--steps", "1", "--panels",
        "--img_path", str(inputs["portrait"]), "--audio_path", str(inputs["short"]), "--save_root", str(tmp_path),
    ])  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "synthetic" in result.stdout and "noise" in result.stdout and "MediaPipe" in result.stdout
    expected_frames = 1 + math.ceil(FPS * 2.5)  # 64
    run = _single(tmp_path, "portrait_short_*")
    landmarks = np.load(run / "landmarks.npy")
    assert landmarks.shape == (expected_frames, 68, 2) and landmarks.dtype == np.float64
    # tiny mode ran the real detector on the 512-px portrait: frame 0 is its face, scaled to the 32-px frame
    np.testing.assert_allclose(landmarks[0], _astronaut_landmarks_in(32), atol=0.05)
    opening = _mouth_opening(landmarks)
    assert opening[1:].max() > opening[0] + 0.3  # the stand-in's mouth opens with the audio, on the real face
    assert _video_info(run / "landmarks.mp4")[0] == expected_frames
    assert Image.open(run / "input.png").size == (32, 32)

    video = run / "output.mp4"
    frames, audio_seconds = _video_info(video)
    assert frames == expected_frames
    assert audio_seconds is not None and abs(audio_seconds - frames / FPS) <= 1 / FPS  # 2.5 s padded to the video
    assert abs((frames - 1) / FPS - 2.5) <= 1 / FPS  # frame i >= 1 shows audio frame i - 1
    written = sorted(path.name for path in tmp_path.rglob("*") if path.is_file())
    assert written == ["comparison.mp4", "flow.mp4", "input.png", "landmarks.mp4", "landmarks.npy", "output.mp4",
                       "settings.json"]  # fmt: skip
    assert {path.stat().st_mode & 0o777 for path in run.iterdir()} == {0o644}  # umask 022
    assert _video_info(run / "comparison.mp4") == (expected_frames, audio_seconds)
    assert _video_info(run / "flow.mp4") == (expected_frames, None)
    settings = json.loads((run / "settings.json").read_text())
    assert settings["num_frames"] == expected_frames and settings["tiny"] is True and settings["fps"] == FPS
    assert settings["renderer"] == "aniportrait" and settings["ldmk_render"] == "aniportrait"
    assert any("synthetic" in warning for warning in settings["warnings"])
    assert hashlib.sha256(inputs["portrait"].read_bytes()).hexdigest() == digest  # input untouched
    assert not list(tmp_path.rglob(".*"))  # no temporary files left behind


def test_the_video_covers_the_whole_audio_by_default(inputs, tmp_path):
    result = _run([
        "bash", "inference.sh", "--tiny", "--steps", "1", "--fast", "--temporal_context", "per_video",
        "--img_path", str(inputs["portrait"]), "--audio_path", str(inputs["long"]), "--save_root", str(tmp_path),
    ])  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "is cut to" not in result.stdout  # nothing was cut, so nothing is said
    run = _single(tmp_path, "portrait_long_*")
    landmarks = np.load(run / "landmarks.npy")
    assert landmarks.shape[0] == 1 + math.ceil(FPS * 7.0)  # 176
    frames, audio_seconds = _video_info(run / "output.mp4")
    assert frames == 1 + math.ceil(FPS * 7.0)
    assert json.loads((run / "settings.json").read_text())["temporal_context"] == "per_video"
    assert audio_seconds is not None and abs(audio_seconds - 7.0) <= 1.5 / FPS


def test_bad_input_exits_2_with_one_line_and_writes_nothing(inputs, tmp_path):
    result = _run([
        sys.executable, "inference_opendomain.py", "--tiny", "--max_frame_len", "0",
        "--img_path", str(inputs["portrait"]), "--audio_path", str(inputs["short"]),
        "--save_root", str(tmp_path / "out"),
    ])  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "error: --max_frame_len must be at least 2 (the reference and one more frame), got 0"
    )
    assert not (tmp_path / "out").exists()


@pytest.fixture
def cli_main(subproject_dir, monkeypatch):
    monkeypatch.chdir(subproject_dir)
    from inference_opendomain import main

    return main


def _bad_inputs(inputs, folder: Path) -> dict[str, tuple[list[str], str]]:
    silent, corrupt, notes = folder / "silent.wav", folder / "corrupt.wav", folder / "notes.txt"
    empty = folder / "empty.wav"
    soundfile.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 16000)
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnonsense" * 3)
    notes.write_text("not audio")
    bad_landmarks = folder / "bad.npy"
    np.save(bad_landmarks, np.zeros((5, 10, 2)))
    portrait, short = str(inputs["portrait"]), str(inputs["short"])
    return {
        "missing image": (["--img_path", str(folder / "none.png"), "--audio_path", short], "image file not found"),
        "silent audio": (["--img_path", portrait, "--audio_path", str(silent)], "is silent"),
        "empty audio": (["--img_path", portrait, "--audio_path", str(empty)], "too short"),
        "corrupt audio": (
            ["--img_path", portrait, "--audio_path", str(corrupt)],
            r"corrupt.wav is not a readable audio file \(invalid data\)$",
        ),
        "unsupported file": (
            ["--img_path", portrait, "--audio_path", str(notes)],
            "notes.txt is not a readable audio file",
        ),
        "image as audio": (["--img_path", portrait, "--audio_path", portrait], "portrait.png has no audio stream"),
        "text as landmarks": (
            ["--img_path", portrait, "--landmarks", str(notes)],
            r"notes.txt is not a landmarks .npy file \(a \(N, 68, 2\) numpy array\)$",
        ),
        "bad landmarks": (
            ["--img_path", portrait, "--audio_path", short, "--landmarks", str(bad_landmarks)],
            r"shape \(N, 68, 2\)",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing image",
        "silent audio",
        "empty audio",
        "corrupt audio",
        "unsupported file",
        "image as audio",
        "text as landmarks",
        "bad landmarks",
    ],  # fmt: skip
)
def test_each_bad_input_is_one_error_line(cli_main, inputs, tmp_path, capsys, case):
    argv, message = _bad_inputs(inputs, tmp_path)[case]
    out = tmp_path / "out"
    assert cli_main(["--tiny", "--save_root", str(out), *argv]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1
    assert re.search(message, error), error
    assert not out.exists()


def test_missing_checkpoints_name_the_file_and_the_fetch_command(cli_main, inputs, tmp_path, capsys):
    argv = ["--ckpt_dir", str(tmp_path / "ckpts"), "--device", "cpu", "--save_root", str(tmp_path / "out"),
            "--img_path", str(inputs["portrait"]), "--audio_path", str(inputs["short"])]  # fmt: skip
    assert cli_main(argv) == 2
    error = capsys.readouterr().err
    assert "make fetch MODE=keypoint" in error and str(tmp_path / "ckpts") in error
    assert not (tmp_path / "out").exists()


def test_ckpt_dir_may_name_the_adapter_folder_as_the_released_command_did(cli_main, inputs, tmp_path, capsys):
    adapter = tmp_path / "ckpts" / "mofa" / "ldmk_controlnet"
    adapter.mkdir(parents=True)
    (adapter / "config.json").write_text("{}")
    argv = ["--ckpt_dir", str(adapter), "--device", "cpu", "--save_root", str(tmp_path / "out"),
            "--img_path", str(inputs["portrait"]), "--audio_path", str(inputs["short"])]  # fmt: skip
    assert cli_main(argv) == 2
    error = capsys.readouterr().err
    assert str(tmp_path / "ckpts" / "stable-video-diffusion-img2vid-xt-1-1") in error  # the rest comes from ckpts/


def test_sadtalker_renderer_tiny_end_to_end_counts_whole_audio_frames(cli_main, inputs, tmp_path, capsys):
    argv = ["--tiny", "--steps", "1", "--ldmk_render", "sadtalker", "--max_frame_len", "13", "--save_root",
            str(tmp_path), "--img_path", str(inputs["portrait"]), "--audio_path", str(inputs["odd"])]  # fmt: skip
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "tiny_landmarker" in out  # says where the landmarks came from
    assert "the video is cut to 13 of 51 frames (0.48 s of 2.00 s)\n" in out  # and what was cut
    run = _single(tmp_path, "portrait_odd_*")
    landmarks = np.load(run / "landmarks.npy")
    assert landmarks.shape == (1 + math.floor(FPS * 2.03), 68, 2)  # 51; aniportrait would give 1 + ceil = 52
    assert np.isfinite(landmarks).all()
    np.testing.assert_allclose(landmarks[0], _astronaut_landmarks_in(32), atol=0.05)  # the real face, as above
    frames, audio_seconds = _video_info(run / "output.mp4")
    assert frames == 13  # max_frame_len cuts the video, not landmarks.npy
    assert audio_seconds is not None and abs(audio_seconds - frames / FPS) <= 1 / FPS
    settings = json.loads((run / "settings.json").read_text())
    assert settings["ldmk_render"] == "sadtalker" and any("tiny_landmarker" in n for n in settings["warnings"])
    assert (settings["num_frames"], settings["landmark_frames"], settings["max_frames"]) == (13, 51, 13)


def test_missing_sadtalker_files_name_the_file_and_make_fetch_sadtalker(cli_main, inputs, tmp_path, capsys):
    from utils.checkpoints import MODE_FILES

    ckpts = tmp_path / "ckpts"
    for relpath in MODE_FILES["keypoint"]:  # everything but the SadTalker files (empty: nothing is loaded)
        (ckpts / relpath).parent.mkdir(parents=True, exist_ok=True)
        (ckpts / relpath).touch()
    argv = ["--ldmk_render", "sadtalker", "--ckpt_dir", str(ckpts), "--device", "cpu",
            "--save_root", str(tmp_path / "out"),
            "--img_path", str(inputs["portrait"]), "--audio_path", str(inputs["short"])]  # fmt: skip
    assert cli_main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1
    assert str(ckpts / "sad_talker" / "SadTalker_V0.0.2_256.safetensors") in error
    assert "make fetch MODE=sadtalker" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("renderer", ["aniportrait", "sadtalker"])
@pytest.mark.parametrize("tiny", [True, False], ids=["tiny", "real"])
def test_a_faceless_image_is_refused_before_any_model_loads(
    cli_main, inputs, tmp_path, capsys, monkeypatch, renderer, tiny
):
    import pipeline.keypoint_animator as keypoint_animator

    def no_models(*args, **kwargs):
        raise AssertionError("models were loaded for a faceless image")

    monkeypatch.setattr(keypoint_animator.KeypointAnimator, "__init__", no_models)
    out = tmp_path / "out"
    mode = ["--tiny"] if tiny else ["--ckpt_dir", str(tmp_path / "no_ckpts"), "--device", "cpu"]
    argv = [*mode, "--ldmk_render", renderer, "--save_root", str(out),
            "--img_path", str(inputs["landscape"]), "--audio_path", str(inputs["short"])]  # fmt: skip
    assert cli_main(argv) == 2
    assert capsys.readouterr().err == "error: no face detected in landscape.jpg\n"
    assert not out.exists()


@pytest.mark.parametrize("case", ["save root is a file", "under a file", "unwritable folder"])
def test_an_output_location_that_cannot_be_written_is_refused_before_any_model_loads(
    cli_main, inputs, tmp_path, capsys, monkeypatch, case
):
    import pipeline.keypoint_animator as keypoint_animator

    monkeypatch.setattr(keypoint_animator.KeypointAnimator, "__init__", lambda *a, **k: pytest.fail("models loaded"))
    notes = tmp_path / "notes.txt"
    notes.write_text("a file")
    if case == "unwritable folder":
        folder = "/sys" if os.geteuid() == 0 else str(tmp_path / "read-only")  # root may write anywhere else
        if os.geteuid() != 0:
            (tmp_path / "read-only").mkdir(mode=0o555)
        save_root, reason = Path(folder) / "results", f"permission denied in {folder}"
    else:
        save_root = notes if case == "save root is a file" else notes / "results"
        reason = f"{notes} is a file, not a folder"
    argv = ["--tiny", "--save_root", str(save_root), "--img_path", str(inputs["portrait"]),
            "--audio_path", str(inputs["short"])]  # fmt: skip
    assert cli_main(argv) == 2
    assert capsys.readouterr().err == f"error: cannot write to {save_root}: {reason}\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"] + (
        ["read-only"] if "read" in reason else []
    )


def test_runs_started_in_the_same_second_get_different_folders_and_a_failed_one_leaves_none(cli_main, tmp_path):
    from inference_opendomain import Job, reserved_run

    def job() -> Job:
        options = {"ldmk_render": "aniportrait", "panels": False}
        return Job(Path("face.png"), Path("hi.wav"), None, tmp_path / "results", "hi_1700000000", options)

    with reserved_run(job()) as first, reserved_run(job()) as second:
        assert (first.name, second.name) == ("hi_1700000000", "hi_1700000000_2")
        assert first.run_dir.is_dir() and second.run_dir.is_dir()
    with pytest.raises(RuntimeError), reserved_run(job()) as failed:
        assert failed.name == "hi_1700000000_3"
        raise RuntimeError("generation failed")
    assert not failed.run_dir.exists() and failed.run_dir.parent.is_dir()  # the others' folders stay
    alone = job()
    alone.save_root = tmp_path / "fresh"
    with pytest.raises(RuntimeError), reserved_run(alone):
        raise RuntimeError("generation failed")
    assert not alone.save_root.exists()  # every folder it created is gone


def test_help_names_each_default_once_and_never_none(cli_main, capsys):
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: aniportrait)" in text and "(default: high)" in text
    assert "the diffusion noise, as released (default: 41)" in text
