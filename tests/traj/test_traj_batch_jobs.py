"""utils.batch_jobs: reading a jobs file line by line, and a batch run that skips finished jobs and goes on
after a bad one."""

import json
from pathlib import Path

import pytest

from utils.batch_jobs import check_distinct_outputs, job_options, read_job_lines, read_jobs, run_batch
from utils.errors import InputError


def test_job_lines_skip_blank_lines_and_keep_their_numbers(tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps({"a": 1}) + "\n\n   \n" + json.dumps([2]) + "\n")
    assert list(read_job_lines(path)) == [(1, {"a": 1}), (4, [2])]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "jobs file not found"),
        ("\n \n", "holds no jobs"),
        ('{"a": 1}\n{oops\n', r"line 2: not valid JSON"),
        (b"RIFF\xfb\x00WAVE", r"jobs.jsonl is not a jobs file \(not UTF-8 text\)$"),  # e.g. a wav given by mistake
    ],
)
def test_bad_jobs_files_are_refused(tmp_path, text, message):
    path = tmp_path / "jobs.jsonl"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
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


KINDS = {"frames": int, "scale": float, "fast": bool, "render": str}
DEFAULTS = {"frames": 25, "scale": 0.6, "fast": False, "render": "a"}


def test_job_options_take_set_values_and_fill_the_rest_from_the_defaults():
    entry = {"frames": 40, "scale": 1, "fast": None, "image": "a.png"}
    assert job_options(entry, KINDS, DEFAULTS, "line 1") == {"frames": 40, "scale": 1, "fast": False, "render": "a"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"frames": "40"}, "line 3: \"frames\" must be an integer, got '40'"),
        ({"frames": 2.5}, '"frames" must be an integer, got 2.5'),
        ({"frames": True}, '"frames" must be an integer, got True'),
        ({"scale": "0.6"}, "\"scale\" must be a number, got '0.6'"),
        ({"scale": False}, '"scale" must be a number, got False'),
        ({"fast": 1}, '"fast" must be true or false, got 1'),
        ({"render": 3}, '"render" must be a string, got 3'),
    ],
)
def test_job_options_of_the_wrong_type_are_refused(entry, message):
    with pytest.raises(InputError) as error:
        job_options(entry, KINDS, DEFAULTS, "line 3")
    assert str(error.value).endswith(message)


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


NEEDS = (lambda line: line.get("image") is not None, '"image"')


def _jobs_file(tmp_path, *lines):
    path = tmp_path / "sub" / "jobs.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_read_jobs_resolves_paths_against_the_jobs_file_and_types_the_options(tmp_path):
    path = _jobs_file(tmp_path, {"image": "a.png", "name": "first", "frames": 3}, {"image": "/abs/b.png", "out": "o"})
    first, second = read_jobs(path, ("image", "out"), KINDS, DEFAULTS, NEEDS)
    assert (first.number, first.where, first.name) == (1, f"{path}, line 1", "first")
    assert first.paths == {"image": tmp_path / "sub" / "a.png", "out": None}
    assert first.options == {**DEFAULTS, "frames": 3}
    assert second.paths == {"image": Path("/abs/b.png"), "out": tmp_path / "sub" / "o"} and second.name is None


@pytest.mark.parametrize(
    ("line", "named", "message"),
    [
        ({"out": "o"}, True, 'line 1: each job needs "image"'),
        ({"image": "a.png", "colour": 1}, True, "line 1: unknown keys ['colour']"),
        ({"image": "a.png", "name": "x"}, False, "line 1: unknown keys ['name']"),
        ({"image": 5}, True, 'line 1: "image" must be a non-empty string, got 5'),
        ({"image": "a.png", "name": ""}, True, """line 1: "name" must be a non-empty string, got ''"""),
        ({"image": "a.png", "name": "a/b"}, True, """line 1: "name" must be a name without folders, got 'a/b'"""),
        ({"image": "a.png", "frames": "3"}, True, """line 1: "frames" must be an integer, got '3'"""),
    ],
)
def test_read_jobs_refuses_a_bad_line_with_its_number(tmp_path, line, named, message):
    with pytest.raises(InputError) as error:
        read_jobs(_jobs_file(tmp_path, line), ("image", "out"), KINDS, DEFAULTS, NEEDS, named=named)
    assert str(error.value).endswith(message)


def test_two_jobs_writing_the_same_output_are_refused(tmp_path):
    path = _jobs_file(tmp_path, {"image": "a.png"}, {"image": "b.png"}, {"image": "a.png"})
    entries = read_jobs(path, ("image",), KINDS, DEFAULTS, NEEDS)
    check_distinct_outputs(entries[:2], [entry.paths["image"] for entry in entries[:2]])
    with pytest.raises(InputError) as error:
        check_distinct_outputs(entries, [entry.paths["image"] for entry in entries])
    assert str(error.value) == (
        f'{path}, line 3: writes {tmp_path / "sub" / "a.png"} as line 1 does; give the jobs different "name"s'
    )
