"""inference_opendomain.py --jobs: many runs with the models loaded once, finished jobs skipped, bad jobs reported."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from media_helpers import save_portrait

TINY = ["--tiny", "--steps", "1", "--max_frame_len", "4"]


@pytest.fixture
def cli_main(subproject_dir, monkeypatch):
    monkeypatch.chdir(subproject_dir)
    from inference_opendomain import main

    return main


def _wav(path: Path, seconds: float, pitch: float) -> None:
    t = np.arange(int(seconds * 16000)) / 16000
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32), 16000)


def _video_info(path: Path) -> tuple[int, bool]:
    """(decoded video frames, whether the file has an audio stream)."""
    with av.open(str(path)) as container:
        has_audio = bool(container.streams.audio)
        return sum(1 for _ in container.decode(video=0)), has_audio


def _write_jobs(path: Path, entries: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(entry) for entry in entries) + "\n")
    return path


@pytest.fixture
def batch(tmp_path):
    """A jobs file (relative paths) with two audio jobs, one landmark-only job and one job with silent audio."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    save_portrait(inputs / "face.png")
    _wav(inputs / "hello.wav", 0.4, 220)
    _wav(inputs / "bye.wav", 0.4, 330)
    soundfile.write(inputs / "quiet.wav", np.zeros(8000, dtype=np.float32), 16000)
    landmarks = 16 + np.random.default_rng(1).uniform(-10, 10, size=(5, 68, 2))
    np.save(inputs / "nod.npy", landmarks)
    jobs = _write_jobs(tmp_path / "jobs.jsonl", [
        {"img_path": "inputs/face.png", "audio_path": "inputs/hello.wav"},
        {"img_path": "inputs/face.png", "audio_path": "inputs/quiet.wav"},
        {"img_path": "inputs/face.png", "audio_path": "inputs/bye.wav", "seed": 3, "fast": True,
         "save_root": "elsewhere", "name": "bye_fast"},
        {"img_path": "inputs/face.png", "landmarks": "inputs/nod.npy", "max_frame_len": 3},
    ])  # fmt: skip
    return tmp_path, jobs


def test_jobs_run_with_models_loaded_once_and_a_restart_skips_finished_ones(cli_main, batch, capsys, monkeypatch):
    import pipeline.keypoint_animator as keypoint_animator

    folder, jobs = batch
    results = folder / "results"
    built = []
    original_init = keypoint_animator.KeypointAnimator.__init__
    monkeypatch.setattr(
        keypoint_animator.KeypointAnimator,
        "__init__",
        lambda self, *args, **kwargs: built.append(kwargs) or original_init(self, *args, **kwargs),
    )
    assert cli_main(["--jobs", str(jobs), "--save_root", str(results), *TINY]) == 2  # the silent job failed
    captured = capsys.readouterr()
    assert len(built) == 1 and built[0]["landmark_renderers"] == ("aniportrait",)
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    quiet_run = results / "face_quiet"
    assert errors == [f"error: {quiet_run}: audio file {folder / 'inputs' / 'quiet.wav'} is silent"]
    assert not quiet_run.exists()
    assert captured.out.count("tiny mode: random tiny weights") == 1  # notices once per process, not per job
    assert "\x1b[" not in captured.err  # not a terminal: no progress bars, no cursor escapes

    hello = results / "face_hello" / "output.mp4"
    assert _video_info(hello) == (4, True)
    assert np.load(results / "face_hello" / "landmarks.npy").shape == (1 + 10, 68, 2)
    hello_settings = json.loads((results / "face_hello" / "settings.json").read_text())
    assert (hello_settings["seed"], hello_settings["fast"], hello_settings["num_frames"]) == (41, False, 4)

    bye = folder / "elsewhere" / "bye_fast" / "output.mp4"  # save_root of the job
    assert _video_info(bye) == (4, True)
    bye_settings = json.loads((bye.parent / "settings.json").read_text())
    assert (bye_settings["seed"], bye_settings["fast"], bye_settings["name"]) == (3, True, "bye_fast")

    nod = results / "face_nod" / "output.mp4"
    assert _video_info(nod) == (3, False)  # landmarks only: a silent video, cut to the job's max_frame_len
    nod_settings = json.loads((nod.parent / "settings.json").read_text())
    assert nod_settings["audio_path"] is None and nod_settings["renderer"] is None

    finished = {path: path.stat().st_mtime_ns for path in (hello, bye, nod)}
    assert cli_main(["--jobs", str(jobs), "--save_root", str(results), *TINY]) == 2
    captured = capsys.readouterr()
    assert "skipping 3 finished job(s)" in captured.err
    assert sum(line.startswith("error: ") for line in captured.err.splitlines()) == 1  # only the silent one ran
    assert {path: path.stat().st_mtime_ns for path in finished} == finished


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"img_path": "a.png"}], 'line 1: each job needs "img_path" and "audio_path" and/or "landmarks"'),
        ([{"img_path": "a.png", "audio_path": "a.wav", "steps": "two"}], "\"steps\" must be an integer, got 'two'"),
        ([{"img_path": "a.png", "audio_path": "a.wav", "ldmk_render": "x"}], '"ldmk_render" must be one of'),
        ([{"img_path": "a.png", "audio_path": "a.wav", "colour": 1}], "unknown keys ['colour']"),
        (
            [{"img_path": "a.png", "audio_path": "a.wav"}, {"img_path": "b/a.png", "audio_path": "b/a.wav"}],
            "line 2: writes",
        ),
    ],
)
def test_a_bad_jobs_file_is_refused_before_any_model_loads(cli_main, tmp_path, capsys, entries, message):
    jobs = _write_jobs(tmp_path / "jobs.jsonl", entries)
    assert cli_main(["--jobs", str(jobs), "--save_root", str(tmp_path / "out"), "--tiny"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and message in error, error
    assert not (tmp_path / "out").exists()


def test_jobs_need_a_save_root_from_the_job_or_the_command_line(cli_main, tmp_path, capsys):
    jobs = _write_jobs(tmp_path / "jobs.jsonl", [{"img_path": "a.png", "audio_path": "a.wav"}])
    assert cli_main(["--jobs", str(jobs), "--tiny"]) == 2
    assert 'no "save_root"' in capsys.readouterr().err
