"""The headless CLI (inference.py): the run folder written, frame counts, bad input, overwrite refusal, job batches."""

import json
import os
import signal
import subprocess
import sys
import time

import inference
import numpy as np
import pytest
from PIL import Image

from utils.errors import STOPPED_MESSAGE
from utils.flow_viz import colour_wheel
from utils.video_io import read_video

FAST = ["--tiny", "--height", "64", "--width", "64"]  # tiny models at 64x64, 2 steps


def _image(path, width=48, height=40):
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _json(path, data):
    path.write_text(json.dumps(data))
    return path


def _cli(subproject_dir, *args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("MOFA_TINY", None)
    return subprocess.run(
        [sys.executable, "inference.py", *map(str, args)],
        cwd=subproject_dir, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_writes_a_run_folder_of_video_flow_hint_input_and_settings_with_25_frames_by_default(subproject_dir, tmp_path):
    image = _image(tmp_path / "in.png")
    tracks = _json(tmp_path / "traj.json", [[[10, 10], [30, 20], [40, 30]], [[5, 35]]])
    arguments = ["--image", image, "--trajectories", tracks, "--output", tmp_path / "o"]
    result = _cli(subproject_dir, *FAST, *arguments)
    assert result.returncode == 0, result.stderr
    assert "noise" in result.stderr  # tiny mode says so
    written = sorted(path.name for path in (tmp_path / "o").iterdir())
    assert written == ["flow.mp4", "hint.png", "input.png", "output.mp4", "settings.json"]
    video, flow = read_video(tmp_path / "o" / "output.mp4"), read_video(tmp_path / "o" / "flow.mp4")
    assert video.frames.shape == (25, 64, 64, 3) and video.fps == 20
    assert flow.frames.shape == (25, 64, 64, 3)
    assert np.abs(flow.frames[0].astype(int) - colour_wheel(64, 64)).mean() < 8  # frame 0: the colour key
    assert Image.open(tmp_path / "o" / "hint.png").size == (64, 64)
    assert Image.open(tmp_path / "o" / "input.png").size == (64, 64)
    settings = json.loads((tmp_path / "o" / "settings.json").read_text())
    assert settings["num_frames"] == 25 and settings["seed"] == 42 and settings["conditioning_scale"] == 0.6
    assert settings["steps"] == 2 and settings["tiny"] is True and settings["fps"] == 20
    assert settings["outputs"]["video"] == str(tmp_path / "o" / "output.mp4")
    assert settings["inputs"]["image"] == str(image)
    assert settings["temporal_context"] == "original"  # the released results' context by default


def test_forty_frames_with_a_brush_of_circles(subproject_dir, tmp_path):
    image = _image(tmp_path / "in.png")
    tracks = _json(tmp_path / "traj.json", {"tracks": [[[10, 10], [20, 12]]], "brush": [{"x": 10, "y": 10, "r": 6}]})
    output = tmp_path / "long"
    arguments = ["--num_frames", 40, "--image", image, "--trajectories", tracks, "--output", output]
    result = _cli(subproject_dir, *FAST, *arguments)
    assert result.returncode == 0, result.stderr
    assert read_video(output / "output.mp4").frames.shape[0] == 40
    assert read_video(output / "flow.mp4").frames.shape[0] == 40
    settings = json.loads((output / "settings.json").read_text())
    assert settings["num_frames"] == 40 and settings["brush"] is True


def test_a_non_image_file_is_refused_with_one_line_and_status_2(subproject_dir, tmp_path):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    tracks = _json(tmp_path / "traj.json", [[[1, 1], [2, 2]]])
    arguments = ["--image", not_an_image, "--trajectories", tracks, "--output", tmp_path / "o"]
    result = _cli(subproject_dir, "--tiny", *arguments)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and "is not a readable image" in lines[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("trajectories", "message"),
    [
        ("{not json", "not valid JSON"),
        (b"RIFF\xfb\x00WAVE", "traj.json is not a trajectories JSON file (not UTF-8 text)"),
        ([], "no trajectories"),
        ([[]], "track 0 is empty"),
        ([[[10, 10], [60, 10]]], "outside the 48x40 image"),
        ({"tracks": [[[1, 1]]], "brush": [{"x": 1}]}, "brush circle 0"),
        ({"tracks": [[[1, 1]]], "brush": "mask.png"}, "brush mask"),
        ({"paths": []}, "unknown keys"),
    ],
)
def test_bad_trajectories_are_refused_with_one_line_and_status_2(tmp_path, capsys, trajectories, message):
    image = _image(tmp_path / "in.png")
    Image.new("L", (10, 10)).save(tmp_path / "mask.png")  # wrong size for the 48x40 image
    path = tmp_path / "traj.json"
    if isinstance(trajectories, bytes):
        path.write_bytes(trajectories)
    else:
        path.write_text(trajectories if isinstance(trajectories, str) else json.dumps(trajectories))
    arguments = ["--image", str(image), "--trajectories", str(path), "--output", str(tmp_path / "o")]
    status = inference.main(["--tiny", *arguments])
    stderr = capsys.readouterr().err
    assert status == 2
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: ") and message in stderr
    assert not (tmp_path / "o").exists()


def test_existing_output_is_kept_unless_overwrite(tmp_path, capsys):
    image = _image(tmp_path / "in.png")
    tracks = _json(tmp_path / "traj.json", [[[10, 10], [20, 20]]])
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "hint.png").write_text("mine")
    arguments = ["--image", str(image), "--trajectories", str(tracks), "--output", str(tmp_path / "o")]
    status = inference.main(["--tiny", *arguments])
    assert status == 2 and capsys.readouterr().err == (
        f"error: {tmp_path / 'o' / 'hint.png'} already exists; pass --overwrite to replace it\n"
    )
    assert (tmp_path / "o" / "hint.png").read_text() == "mine" and not (tmp_path / "o" / "output.mp4").exists()
    assert inference.main(["--tiny", "--height", "64", "--width", "64", "--num_frames", "3", "--overwrite",
                           *arguments]) == 0  # fmt: skip
    assert Image.open(tmp_path / "o" / "hint.png").size == (64, 64)
    status = inference.main(["--tiny", *arguments])
    assert status == 2 and capsys.readouterr().err.endswith(
        f"error: {tmp_path / 'o'} already holds a finished run; choose another folder or pass --overwrite\n"
    )


def test_an_output_ending_in_mp4_is_refused_as_the_run_folder_is_meant(tmp_path, capsys):
    image = _image(tmp_path / "in.png")
    tracks = _json(tmp_path / "traj.json", [[[10, 10], [20, 20]]])
    arguments = ["--image", str(image), "--trajectories", str(tracks), "--output", str(tmp_path / "o.mp4")]
    assert inference.main(["--tiny", *arguments]) == 2
    assert capsys.readouterr().err == (
        f"error: the output is a run folder (its video is output.mp4 inside it), not a video: {tmp_path / 'o.mp4'}\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.png", "traj.json"]


def test_jobs_run_once_with_finished_ones_skipped(tmp_path, capsys):
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.png", 32, 32)
    _json(tmp_path / "traj.json", [[[8, 8], [12, 10]]])
    (tmp_path / "done" / "a").mkdir(parents=True)
    for name in ("output.mp4", "flow.mp4", "hint.png", "input.png", "settings.json"):
        (tmp_path / "done" / "a" / name).write_text("finished earlier")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        json.dumps({"image": "a.png", "trajectories": "traj.json", "output": "done/a"}) + "\n\n"
        + json.dumps({"image": "b.png", "trajectories": "traj.json", "output": "new/b", "num_frames": 3, "seed": 7,
                      "conditioning_scale": 0.4})
        + "\n"
    )  # fmt: skip
    arguments = ["--jobs", str(jobs), "--tiny", "--height", "64", "--width", "64"]
    assert inference.main(arguments) == 0
    assert "skipping 1 finished job" in capsys.readouterr().err
    assert (tmp_path / "done" / "a" / "output.mp4").read_text() == "finished earlier"
    assert read_video(tmp_path / "new" / "b" / "output.mp4").frames.shape == (3, 64, 64, 3)
    settings = json.loads((tmp_path / "new" / "b" / "settings.json").read_text())
    assert (settings["seed"], settings["conditioning_scale"]) == (7, 0.4)

    assert inference.main(arguments) == 0  # a restart finds nothing left to do
    assert "skipping 2 finished job" in capsys.readouterr().err


def test_a_jobs_line_without_an_output_is_refused(tmp_path, capsys):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"image": "a.png", "trajectories": "t.json"}) + "\n")
    assert inference.main(["--jobs", str(jobs), "--tiny"]) == 2
    assert "line 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ({"fps": "20"}, "line 1: \"fps\" must be a number, got '20'"),
        ({"num_frames": 3.5}, 'line 1: "num_frames" must be an integer, got 3.5'),
        ({"output": 5}, 'line 1: "output" must be a non-empty string, got 5'),
    ],
)
def test_a_jobs_line_with_a_wrongly_typed_value_is_refused_before_any_run(tmp_path, capsys, job, message):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"image": "a.png", "trajectories": "t.json", "output": "a", **job}) + "\n")
    assert inference.main(["--jobs", str(jobs), "--tiny"]) == 2
    stderr = capsys.readouterr().err
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: ") and message in stderr


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--fps", "0"], "fps must be positive, got 0.0"),
        (["--num_frames", "1"], "num_frames must be an integer >= 2"),
        # the released adapter's rule, also in tiny mode (the tiny models would take multiples of 4)
        (["--height", "100", "--width", "64"], "height and width must be positive multiples of 64, got 100 and 64"),
        (["--height", "64"], "give both --height and --width, or neither"),
    ],
)
def test_a_bad_fps_frame_count_or_size_is_refused_before_models_load(tmp_path, capsys, monkeypatch, option, message):
    monkeypatch.setattr(inference, "build_animator", lambda *args: pytest.fail("models loaded"))
    image = _image(tmp_path / "in.png")
    tracks = _json(tmp_path / "traj.json", [[[10, 10], [20, 20]]])
    arguments = ["--image", str(image), "--trajectories", str(tracks), "--output", str(tmp_path / "o")]
    assert inference.main(["--tiny", *option, *arguments]) == 2
    assert capsys.readouterr().err.startswith(f"error: {message}")


def test_missing_weights_are_reported_with_the_fetch_command(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MOFA_TINY", raising=False)
    image = _image(tmp_path / "in.png")
    tracks = _json(tmp_path / "traj.json", [[[10, 10], [20, 20]]])
    arguments = ["--image", str(image), "--trajectories", str(tracks), "--output", str(tmp_path / "o")]
    assert inference.main([*arguments, "--ckpt_dir", str(tmp_path / "ckpts"), "--device", "cpu"]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: missing checkpoint") and "make fetch MODE=traj" in stderr


def _save_tiny_adapter(folder, seed, layout="small"):
    from utils.tiny import tiny_flow_controlnet, tiny_unet

    adapter = tiny_flow_controlnet(seed, tiny_unet(seed, layout))
    adapter.save_pretrained(folder)
    return adapter


def test_tiny_runs_a_trained_adapter_folder_that_fits_the_tiny_svd(tmp_path, capsys):
    from pipeline.trajectory_animator import TrajectoryAnimator

    trained = _save_tiny_adapter(tmp_path / "controlnet", seed=7)  # what Training's --tiny writes
    animator = TrajectoryAnimator(tiny=True, device="cpu", adapter=tmp_path / "controlnet", show_progress=False)
    loaded = animator.pipe.controlnet.state_dict()
    assert all(np.array_equal(loaded[name].numpy(), value.numpy()) for name, value in trained.state_dict().items())
    untrained = TrajectoryAnimator(tiny=True, device="cpu").pipe.controlnet.conv_in.weight.detach().numpy()
    assert not np.array_equal(untrained, loaded["conv_in.weight"].numpy())
    image = _image(tmp_path / "in.png")
    tracks = _json(tmp_path / "traj.json", [[[10, 10], [30, 20]]])
    arguments = [
        "--image",
        str(image),
        "--trajectories",
        str(tracks),
        "--output",
        str(tmp_path / "o"),
        "--num_frames",
        "4",
    ]
    assert inference.main([*FAST, "--adapter", str(tmp_path / "controlnet"), *arguments]) == 0
    assert read_video(tmp_path / "o" / "output.mp4").frames.shape == (4, 64, 64, 3)


def test_an_adapter_that_does_not_fit_the_tiny_svd_and_an_ignored_ckpt_dir_are_each_one_line(tmp_path, capsys):
    _save_tiny_adapter(tmp_path / "wide", seed=0, layout="svd")
    image = _image(tmp_path / "in.png")
    tracks = _json(tmp_path / "traj.json", [[[10, 10], [30, 20]]])
    arguments = ["--image", str(image), "--trajectories", str(tracks), "--output", str(tmp_path / "o")]
    code = inference.main([*FAST, "--adapter", str(tmp_path / "wide"), "--ckpt_dir", str(tmp_path), *arguments])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 2
    assert lines[0] == ("warning: --tiny uses random tiny models and ignores --ckpt_dir (--adapter <folder> runs a "
                        "trained adapter on them)")  # fmt: skip
    assert lines[1].startswith(
        f"error: --adapter {tmp_path / 'wide'} does not fit the tiny SVD (drop --tiny): its block_out_channels is "
    )
    assert inference.main([*FAST, "--adapter", str(tmp_path / "nothing"), *arguments]) == 2
    assert capsys.readouterr().err.strip() == f"error: --adapter: no adapter (config.json) in {tmp_path / 'nothing'}"


def _unwritable_folder(tmp_path):
    """A folder this process cannot create files in: a read-only one, or /sys when running as root."""
    if os.geteuid() == 0:
        return "/sys"
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder)


@pytest.mark.parametrize("case", ["under a file", "unwritable folder"])
def test_an_output_location_that_cannot_be_written_is_refused_before_the_models_load(
    tmp_path, capsys, monkeypatch, case
):
    monkeypatch.setattr(inference, "build_animator", lambda *args: pytest.fail("models loaded"))
    image = _image(tmp_path / "in.png")
    tracks = _json(tmp_path / "traj.json", [[[10, 10], [20, 20]]])
    (tmp_path / "notes.txt").write_text("a file")
    if case == "under a file":
        output, message = tmp_path / "notes.txt" / "o", f"{tmp_path / 'notes.txt'} is a file, not a folder"
    else:
        folder = _unwritable_folder(tmp_path)
        output, message = f"{folder}/out/o", f"permission denied in {folder}"
    arguments = ["--image", str(image), "--trajectories", str(tracks), "--output", str(output)]
    assert inference.main(["--tiny", *arguments]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: cannot write to {output}: ") and error.count("\n") == 1
    assert error.rstrip().endswith(message)


def test_help_names_each_default_once_and_never_none(capsys):
    with pytest.raises(SystemExit):
        inference.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: best available)" in text and "(default: 0.6)" in text
    assert "today's diffusers (default: original)" not in text  # the help already says which is the default


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--device", "banana"], "error: unknown device 'banana'; use cpu, cuda, cuda:N or mps"),
        (["--device", "cuda:7"], "error: device 'cuda:7' is not available: this machine has"),
    ],
)
def test_an_unknown_or_absent_device_is_one_line(tmp_path, capsys, option, message):
    image = _image(tmp_path / "in.png")
    tracks = _json(tmp_path / "traj.json", [[[10, 10], [20, 20]]])
    arguments = ["--image", str(image), "--trajectories", str(tracks), "--output", str(tmp_path / "o")]
    assert inference.main(["--tiny", *option, *arguments]) == 2
    stderr = capsys.readouterr().err
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith(message)
    assert not (tmp_path / "o").exists()


def test_a_decode_chunk_size_below_1_is_refused(capsys):
    with pytest.raises(SystemExit) as info:
        inference.parse_args(["--jobs", "j.jsonl", "--decode_chunk_size", "0"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().endswith("--decode_chunk_size must be a positive integer, got 0")


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_a_batch_stops_with_one_line_keeping_finished_runs_and_no_partial_files(
    subproject_dir, tmp_path, stop, status
):
    _image(tmp_path / "a.png")
    _json(tmp_path / "t.json", [[[10, 10], [20, 14]]])
    jobs = tmp_path / "jobs.jsonl"
    lines = [{"image": "a.png", "trajectories": "t.json", "output": "quick", "num_frames": 2},
             {"image": "a.png", "trajectories": "t.json", "output": "long", "num_frames": 400}]  # fmt: skip
    jobs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "inference.py", "--jobs", str(jobs), "--tiny", "--height", "64", "--width", "64"],
        cwd=subproject_dir, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (tmp_path / "quick" / "settings.json").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "the first job did not finish"
        time.sleep(0.2)
    time.sleep(1)  # into the long job
    process.send_signal(stop)
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == status
    assert stderr.strip().splitlines()[-1] == STOPPED_MESSAGE and "Traceback" not in stderr
    assert (tmp_path / "quick" / "output.mp4").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.png", "jobs.jsonl", "quick", "t.json"]
