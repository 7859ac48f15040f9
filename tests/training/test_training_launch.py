"""train_stage1.sh as a user runs it: a signal stops every process at a checkpoint, a kill while saving leaves a
resumable run, and bad arguments are one error line before anything is built."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train_utils.synthetic import make_synthetic_dataset

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

TINY = ["--tiny", "--num_frames", "3", "--height", "16", "--width", "16", "--report_to", "none"]
STARTUP_TIMEOUT = 600  # a loaded 2-core machine: imports alone can take a minute
STOP_LINE = "stopped at step {}; resume with --resume_from_checkpoint latest"


def environment(**extra: str) -> dict:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def two_process_config(folder: Path) -> Path:
    """The repository's 2-process CPU config on a free port (other test runs may be using the default one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = (Path(__file__).resolve().parents[2] / "Training/configs/accelerate_cpu_2proc.yaml").read_text()
    path = folder / "two_processes.yaml"
    path.write_text(source.replace("main_process_port: 29517", f"main_process_port: {port}"))
    return path


def run_script(script: Path, args: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script), *[str(arg) for arg in args]],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env or environment(),
        timeout=STARTUP_TIMEOUT,
    )


def wait_for(log: Path, marker: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while marker not in log.read_text():
        assert process.poll() is None, f"ended before {marker!r}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {marker!r} in the log:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def complete_checkpoints(output_dir: Path) -> list[str]:
    return sorted(path.name for path in output_dir.glob("checkpoint-*") if (path / "checkpoint.json").is_file())


def test_sigterm_to_the_script_stops_both_processes_at_a_checkpoint_and_latest_resumes(tmp_path, subproject_dir):
    config = two_process_config(tmp_path)
    log = tmp_path / "run.log"
    args = [
        *TINY,
        "--output_dir",
        "run",
        "--max_train_steps",
        500,
        "--checkpointing_steps",
        500,
        "--validation_steps",
        500,
        "--num_workers",
        1,
    ]  # the loader workers are not signalled: they serve the last step
    with log.open("w") as output:  # relative --output_dir: relative to the caller's folder
        process = subprocess.Popen(
            ["bash", str(subproject_dir / "train_stage1.sh"), *map(str, args)],
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment(ACCELERATE_CONFIG=str(config)),
        )
        wait_for(log, "validation at step 1:", process)  # step 1 is done on every process
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STARTUP_TIMEOUT) == 143
    text = log.read_text()
    assert "Traceback" not in text and "ChildFailedError" not in text
    last = text.strip().splitlines()[-1]
    step = int(last.split()[3].rstrip(";"))
    assert last == STOP_LINE.format(step) and 1 <= step < 500
    output_dir = tmp_path / "run"
    assert complete_checkpoints(output_dir) == [f"checkpoint-{step}"]
    checkpoint = output_dir / f"checkpoint-{step}"
    assert json.loads((checkpoint / "checkpoint.json").read_text()) == {"step": step, "num_processes": 2}
    assert {path.name for path in checkpoint.glob("trainer_state_*.pt")} == {"trainer_state_0.pt", "trainer_state_1.pt"}
    assert not (output_dir / "controlnet").exists()  # a stopped run has no final adapter

    resumed = run_script(
        subproject_dir / "train_stage1.sh",
        [
            *TINY,
            "--output_dir",
            "run",
            "--max_train_steps",
            step + 1,
            "--validation_steps",
            0,
            "--resume_from_checkpoint",
            "latest",
        ],
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from run/checkpoint-{step}" in resumed.stderr
    warnings = [line for line in resumed.stderr.splitlines() if "written by 2 process(es) and is resumed by 1" in line]
    assert len(warnings) == 1 and "clip order and random draws" in warnings[0]
    assert f"finished at step {step + 1}" in resumed.stderr
    assert (output_dir / "controlnet/config.json").is_file()


KILL_WHILE_SAVING = """
import os, signal
if os.environ.get("KILL_WHILE_SAVING"):
    import torch
    _save = torch.save

    def save(obj, f, *args, **kwargs):
        if str(f).endswith(os.environ["KILL_WHILE_SAVING"]):  # after the adapter, before the optimizer
            os.kill(os.getpid(), signal.SIGKILL)
        return _save(obj, f, *args, **kwargs)

    torch.save = save
"""


def test_a_kill_while_saving_leaves_no_checkpoint_and_latest_resumes_from_the_previous_one(tmp_path, subproject_dir):
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks/sitecustomize.py").write_text(KILL_WHILE_SAVING)
    args = [
        *TINY,
        "--output_dir",
        tmp_path / "run",
        "--max_train_steps",
        4,
        "--checkpointing_steps",
        2,
        "--validation_steps",
        0,
    ]
    killed = run_script(
        subproject_dir / "train_stage1.sh",
        args,
        tmp_path,
        environment(PYTHONPATH=str(tmp_path / "hooks"), KILL_WHILE_SAVING="checkpoint-4.partial/optimizer.bin"),
    )
    assert killed.returncode != 0
    output_dir = tmp_path / "run"
    assert complete_checkpoints(output_dir) == ["checkpoint-2"]
    assert not (output_dir / "checkpoint-4").exists()
    assert (output_dir / "checkpoint-4.partial/controlnet/config.json").is_file()  # killed half-way
    (output_dir / "checkpoint-15").mkdir()  # an empty folder, as older versions left behind

    resumed = run_script(subproject_dir / "train_stage1.sh", [*args, "--resume_from_checkpoint", "latest"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {output_dir}/checkpoint-2" in resumed.stderr
    assert "finished at step 4" in resumed.stderr
    assert complete_checkpoints(output_dir) == ["checkpoint-2", "checkpoint-4"]
    assert not (output_dir / "checkpoint-4.partial").exists()

    explicit = run_script(
        subproject_dir / "train_stage1.sh", [*args, "--resume_from_checkpoint", output_dir / "checkpoint-15"], tmp_path
    )
    assert explicit.returncode == 2
    assert explicit.stderr.strip().splitlines() == [
        f"error: --resume_from_checkpoint: {output_dir}/checkpoint-15 is incomplete (no checkpoint.json; interrupted "
        "while saving?); use --resume_from_checkpoint latest for the newest complete one"
    ]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Two readable clips, and a validation CSV whose videos are all broken or missing."""
    root = tmp_path_factory.mktemp("data")
    make_synthetic_dataset(root, num_videos=2, num_frames=12, height=32, width=32)
    (root / "broken.mp4").write_text("not a video")
    (root / "val.csv").write_text("path\nbroken.mp4\nmissing.mp4\n")
    (root / "a_file").write_text("")
    return root


def bad_arguments(data: Path) -> list[tuple[list, str]]:
    train = ["--train_csv", data / "train.csv", "--data_root", data, "--output_dir", data / "out"]
    return [
        ([*train, "--learning_rate=-1e-4"], "error: --learning_rate must be positive, got -0.0001"),
        ([*train, "--learning_rate", "-1e-4"], "error: --learning_rate must be positive, got -0.0001"),
        (
            [*train[:4], "--output_dir", data / "a_file"],
            f"error: --output_dir {data}/a_file: {data}/a_file is a file, not a folder",
        ),
        ([*train, "--max_train_steps", "0"], "error: --max_train_steps must be positive, got 0"),
        ([*train, "--max_train_steps", "-5"], "error: --max_train_steps must be positive, got -5"),
        ([*train, "--checkpointing_steps", "0"], "error: --checkpointing_steps must be positive, got 0"),
        ([*train, "--per_gpu_batch_size", "0"], "error: --per_gpu_batch_size must be positive, got 0"),
        (
            [*train[:2], "--data_root", data / "nowhere", *train[4:]],
            f"error: --data_root: no such folder {data}/nowhere",
        ),
        (
            [*train, "--val_csv", data / "val.csv"],
            f"error: validation set (--val_csv {data}/val.csv): none of its 2 videos could be read "
            "(first: broken.mp4: ",
        ),
    ]


def test_every_bad_argument_is_one_error_line_and_exit_2_before_anything_is_built(tmp_path, subproject_dir, data):
    for args, expected in bad_arguments(data):
        completed = run_script(subproject_dir / "train_stage1.sh", [*TINY[:1], *args, "--report_to", "none"], tmp_path)
        lines = completed.stderr.strip().splitlines()
        assert completed.returncode == 2, (args, completed.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith(expected), (args, completed.stderr[-2000:])
        assert completed.stdout == ""
        assert not (data / "out").exists()  # nothing was started: not even args.json


def test_without_accelerate_the_script_says_how_to_get_it(tmp_path, subproject_dir):
    shutil.copy(subproject_dir / "train_stage1.sh", tmp_path)  # no ../.venv next to this copy
    completed = subprocess.run(
        ["bash", str(tmp_path / "train_stage1.sh"), "--tiny"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")},
        timeout=60,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip() == (
        "error: accelerate not found: run `make` in the repository (creates .venv) or put your environment's bin "
        "folder on PATH"
    )
