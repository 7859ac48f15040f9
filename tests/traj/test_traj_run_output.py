"""utils.run_output: the run-folder layout, settings.json from the RunSettings dataclass, atomic writes with the
umask's mode, refusal to overwrite, the audio muxed in, and nothing left behind when a write fails."""

import json
import os
import stat
from dataclasses import asdict, dataclass

import av
import numpy as np
import pytest
import soundfile
from PIL import Image

from utils.errors import InputError
from utils.run_output import RunPaths, RunSettings, check_run_folder, save_run
from utils.video_io import read_video


@dataclass(frozen=True, kw_only=True)
class ExampleSettings(RunSettings):
    tracks: list


def _settings(**changes) -> ExampleSettings:
    values = dict(
        num_frames=3, steps=2, seed=7, height=16, width=24, conditioning_scale=0.6, fps_id=6, motion_bucket_id=128,
        noise_aug_strength=0.02, min_guidance_scale=1.0, max_guidance_scale=3.0, window_size=25, window_stride=12,
        decode_chunk_size=8, fast=False, adapter_schedule={"every": 1}, temporal_context="original", cmp_grid=64,
        memory={"preset": "high"}, tiny=True, ckpt_dir=None, warnings=["tiny mode"], tracks=[[[1.0, 2.0]]],
    )  # fmt: skip
    return ExampleSettings(**{**values, **changes})


def _outputs() -> dict:
    frames = np.random.default_rng(0).integers(0, 256, (3, 16, 24, 3), dtype=np.uint8)
    return {
        "video": frames,
        "flow": (frame for frame in frames[::-1]),  # an iterable works too
        "hint": Image.new("RGBA", (24, 16), (255, 0, 0, 128)),
        "landmark_mask": np.full((16, 24), 255, np.uint8),
        "landmarks": np.arange(3 * 68 * 2, dtype=np.float64).reshape(3, 68, 2),
        "input": Image.fromarray(frames[0]),
    }


def test_file_names_with_and_without_a_name():
    plain = RunPaths.in_folder("run", ["video", "flow", "trajectory_flow", "landmark_video", "hint", "input"])
    assert plain.as_dict() == {
        "video": "run/output.mp4", "flow": "run/flow.mp4", "trajectory_flow": "run/trajectory_flow.mp4",
        "landmark_video": "run/landmarks.mp4", "hint": "run/hint.png", "input": "run/input.png",
        "settings": "run/settings.json",
    }  # fmt: skip
    named = RunPaths.in_folder("run", ["video", "video_with_landmarks", "flow", "comparison", "landmarks"], "clip")
    assert [path.split("/")[1] for path in named.as_dict().values()] == [
        "clip.mp4", "clip_with_landmarks.mp4", "clip_flow.mp4", "clip_comparison.mp4", "clip_landmarks.npy",
        "settings.json",
    ]  # fmt: skip
    assert named.hint is None and named.input is None
    with pytest.raises(ValueError, match="unknown output slots"):
        RunPaths.in_folder("run", ["video", "gif"])


def test_save_writes_every_slot_and_the_settings_last_with_the_umasks_mode(tmp_path):
    old_mask = os.umask(0o027)
    try:
        paths = save_run(tmp_path / "a" / "run", _outputs(), _settings(), fps=20, extra_settings={"inputs": "x"})
    finally:
        os.umask(old_mask)
    names = sorted(path.name for path in (tmp_path / "a" / "run").iterdir())
    assert names == ["flow.mp4", "hint.png", "input.png", "landmark_mask.png", "landmarks.npy", "output.mp4",
                     "settings.json"]  # fmt: skip
    assert {stat.S_IMODE(path.stat().st_mode) for path in paths.existing()} == {0o640}
    video = read_video(paths.video)
    assert video.frames.shape == (3, 16, 24, 3) and video.fps == 20
    assert np.abs(read_video(paths.flow).frames[0].astype(int) - video.frames[2]).mean() < 8  # reversed order
    assert Image.open(paths.hint).mode == "RGBA" and Image.open(paths.landmark_mask).mode == "L"
    np.testing.assert_array_equal(np.load(paths.landmarks), _outputs()["landmarks"])
    record = json.loads(paths.settings.read_text())
    assert {key: record[key] for key in asdict(_settings())} == asdict(_settings())
    assert (record["inputs"], record["fps"], record["audio"]) == ("x", 20, None)
    assert record["outputs"] == paths.as_dict() and list(record["outputs"])[-1] == "settings"
    assert paths.settings.stat().st_mtime_ns >= max(path.stat().st_mtime_ns for path in paths.existing())


def test_an_existing_run_or_file_is_kept_unless_overwrite(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "hint.png").write_text("mine")
    with pytest.raises(InputError) as error:
        save_run(run, _outputs(), _settings(), fps=20)
    assert str(error.value) == f"{run / 'hint.png'} already exists; pass --overwrite to replace it"
    assert sorted(path.name for path in run.iterdir()) == ["hint.png"] and (run / "hint.png").read_text() == "mine"

    save_run(run, _outputs(), _settings(), fps=20, overwrite=True)
    assert Image.open(run / "hint.png").size == (24, 16)
    with pytest.raises(InputError) as error:
        check_run_folder(RunPaths.in_folder(run, ["video"]))
    assert str(error.value) == f"{run} already holds a finished run; choose another folder or pass --overwrite"
    check_run_folder(RunPaths.in_folder(run, ["video"]), overwrite=True)


def test_the_audio_is_muxed_into_the_video_and_the_comparison_only(tmp_path):
    audio = tmp_path / "speech.wav"
    soundfile.write(audio, np.sin(np.arange(16000) / 5).astype(np.float32) * 0.3, 16000)
    outputs = _outputs()
    outputs["comparison"] = np.concatenate([outputs["video"]] * 2, axis=2)
    paths = save_run(tmp_path / "run", outputs, _settings(), fps=25, audio_path=audio, name="clip")
    for path, has_audio in ((paths.video, True), (paths.comparison, True), (paths.flow, False)):
        with av.open(str(path)) as container:
            assert bool(container.streams.audio) is has_audio, path.name
            if has_audio:  # padded or cut to the video's 3 frames at 25 fps
                assert float(container.streams.audio[0].duration * container.streams.audio[0].time_base) < 0.2
    assert read_video(paths.video).frames.shape == (3, 16, 24, 3)
    assert json.loads(paths.settings.read_text())["audio"] == str(audio)
    assert not [path for path in (tmp_path / "run").iterdir() if path.name.startswith(".")]  # no scratch left


def test_a_failed_write_leaves_no_file_and_no_folder_it_created(tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("kept")
    with pytest.raises(InputError, match="cannot mux"):
        save_run(tmp_path / "runs" / "deep" / "run", _outputs(), _settings(), fps=25, audio_path=broken)
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["notes.txt"]


def test_an_unwritable_location_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "notes.txt").write_text("a file")
    with pytest.raises(InputError) as error:
        save_run(tmp_path / "notes.txt" / "run", _outputs(), _settings(), fps=25)
    assert str(error.value) == (
        f"cannot write to {tmp_path / 'notes.txt' / 'run'}: {tmp_path / 'notes.txt'} is a file, not a folder"
    )
