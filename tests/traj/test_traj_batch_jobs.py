"""utils.batch_jobs: reading a jobs file line by line, and a batch run that skips finished jobs and goes on
after a bad one."""

import json

import pytest

from utils.batch_jobs import read_job_lines, run_batch
from utils.errors import InputError


def test_job_lines_skip_blank_lines_and_keep_their_numbers(tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps({"a": 1}) + "\n\n   \n" + json.dumps([2]) + "\n")
    assert list(read_job_lines(path)) == [(1, {"a": 1}), (4, [2])]


@pytest.mark.parametrize(
    ("text", "message"),
    [(None, "jobs file not found"), ("\n \n", "holds no jobs"), ('{"a": 1}\n{oops\n', r"line 2: not valid JSON")],
)
def test_bad_jobs_files_are_refused(tmp_path, text, message):
    path = tmp_path / "jobs.jsonl"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InputError, match=message):
        list(read_job_lines(path))


def test_a_bad_line_is_reported_after_the_good_lines_before_it(tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"a": 1}\n{oops\n')
    lines = read_job_lines(path)
    assert next(lines) == (1, {"a": 1})
    with pytest.raises(InputError, match="line 2"):
        next(lines)


class Recorder:
    """A worker that records what it was started with and which jobs it ran; job "bad" raises InputError."""

    def __init__(self):
        self.started: list[tuple[list[str], str]] = []
        self.ran: list[str] = []

    def start(self, my_jobs: list[str], device: str):
        self.started.append((list(my_jobs), device))
        return self.run

    def run(self, job: str) -> None:
        if job == "bad":
            raise InputError("no such image")
        self.ran.append(job)


def test_finished_jobs_are_skipped_and_a_bad_job_does_not_stop_the_others(capsys):
    worker = Recorder()
    status = run_batch(
        ["done", "bad", "a", "b"], lambda job: job == "done", worker.start, lambda job: f"out/{job}.mp4", "cpu"
    )
    assert status == 2
    assert worker.started == [(["bad", "a", "b"], "cpu")]  # models loaded once, for the pending jobs only
    assert worker.ran == ["a", "b"]
    stderr = capsys.readouterr().err
    assert "skipping 1 finished job(s)" in stderr
    assert "error: out/bad.mp4: no such image\n" in stderr


def test_overwrite_runs_finished_jobs_again():
    worker = Recorder()
    assert run_batch(["done", "a"], lambda job: True, worker.start, str, "cpu", overwrite=True) == 0
    assert worker.ran == ["done", "a"]


def test_a_finished_batch_loads_nothing(capsys):
    worker = Recorder()
    assert run_batch(["a", "b"], lambda job: True, worker.start, str, "cpu") == 0
    assert worker.started == []
    assert "skipping 2 finished job(s)" in capsys.readouterr().err
