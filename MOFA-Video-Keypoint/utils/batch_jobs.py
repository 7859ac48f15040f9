# Copied from MOFA-Video-Traj/utils/batch_jobs.py
"""Batch runs from a JSON-lines jobs file: models loaded once per process, finished jobs skipped, the rest split
across the processes of ``accelerate launch`` (or ``torchrun``), one bad job reported without stopping the others.

    def start_worker(my_jobs: list[Job], device: str) -> Callable[[Job], object]:
        animator = build_animator(device)                # the models, loaded once per process
        return lambda job: run_job(animator, job)        # raises InputError for a bad job

    entries = read_jobs(path, ("image", "output"), {"seed": int}, vars(args), needs=(has_image, '"image"'))
    jobs = [make_job(entry) for entry in entries]           # entry.paths, entry.name, entry.options
    check_distinct_outputs(entries, [job.output for job in jobs])
    status = run_batch(jobs, lambda job: job.settings.exists(), start_worker, lambda job: job.output, device)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .errors import InputError, require_file

Job = TypeVar("Job")

TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
"""What an error calls each JSON type a job option may have."""


def read_job_lines(path: Path) -> Iterator[tuple[int, object]]:
    """``(line number, JSON value)`` of every non-blank line of a jobs file, read lazily (line numbers from 1).

    Raises:
        InputError: the file is missing or not text, a line is not valid JSON, or the file holds no job (after the
            last line).
    """
    require_file(path, "jobs")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a jobs file (not UTF-8 text)") from None
    found = False
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}, line {number}: not valid JSON ({error})") from None
        found = True
        yield number, entry
    if not found:
        raise InputError(f"{path} holds no jobs")


def job_options(
    entry: Mapping[str, object], kinds: Mapping[str, type], defaults: Mapping[str, object], where: str
) -> dict[str, object]:
    """A job's options: each option of ``kinds`` from ``entry`` where set there (not null), else from ``defaults``.

    Args:
        entry: the job's JSON object.
        kinds: option name -> ``int``, ``float``, ``str`` or ``bool`` (an integer counts as a number; true
            and false count only as ``bool``).
        defaults: the command line's values (e.g. ``vars(args)``).
        where: names the job in errors (e.g. ``"jobs.jsonl, line 3"``).

    Raises:
        InputError: an option of the wrong type.
    """
    options = {}
    for name, kind in kinds.items():
        value = entry.get(name)
        if value is None:
            options[name] = defaults[name]
            continue
        allowed = (int, float) if kind is float else (kind,)
        if not isinstance(value, allowed) or (kind is not bool and isinstance(value, bool)):
            raise InputError(f'{where}: "{name}" must be {TYPE_NAMES[kind]}, got {value!r}')
        options[name] = value
    return options


@dataclass
class JobEntry:
    """One checked line of a jobs file.

    Attributes:
        number: its line number (from 1); ``where`` names it in errors (``"jobs.jsonl, line 3"``).
        paths: each path key -> the path resolved against the jobs file's folder, None where the line sets none.
        name: the line's ``name``, or None.
        options: each option -> the line's value, else the command line's (:func:`job_options`).
    """

    number: int
    where: str
    paths: dict[str, Path | None]
    name: str | None
    options: dict[str, object]


def read_jobs(
    path: Path,
    path_keys: Sequence[str],
    kinds: Mapping[str, type],
    defaults: Mapping[str, object],
    needs: tuple[Callable[[Mapping[str, object]], bool], str],
    named: bool = True,
) -> list[JobEntry]:
    """Every line of a jobs file, checked: a JSON object of known keys (``path_keys``, ``name`` when ``named``, and
    the options of ``kinds``), each path and the name a non-empty string (the name without folders), the options
    typed.

    Args:
        path: the jobs file.
        path_keys: the keys holding paths (relative ones are relative to the jobs file).
        kinds: the options a line may set (:func:`job_options`), over ``defaults``.
        defaults: the command line's values.
        needs: ``(test, what)``: ``test(line)`` says whether a line has the inputs a job needs, ``what`` names
            them in the error (``'"image" and one of "audio" and "video"'``).
        named: whether a line may set ``name``.

    Raises:
        InputError: :func:`read_job_lines`' errors, ``<where>: each job needs <what>``, ``<where>: unknown keys
            [...]``, ``<where>: "<key>" must be a non-empty string, got ...``, ``<where>: "name" must be a name
            without folders, got ...``, or a wrongly typed option.
    """
    test, what = needs
    strings = (*path_keys, "name") if named else tuple(path_keys)
    entries = []
    for number, entry in read_job_lines(path):
        where = f"{path}, line {number}"
        if not isinstance(entry, dict) or not test(entry):
            raise InputError(f"{where}: each job needs {what}")
        unknown = sorted(set(entry) - {*strings, *kinds})
        if unknown:
            raise InputError(f"{where}: unknown keys {unknown}")
        for key in strings:
            if entry.get(key) is not None and (not isinstance(entry[key], str) or not entry[key]):
                raise InputError(f'{where}: "{key}" must be a non-empty string, got {entry[key]!r}')
        name = entry.get("name")
        if name is not None and Path(name).name != name:
            raise InputError(f'{where}: "name" must be a name without folders, got {name!r}')
        paths = {key: None if entry.get(key) is None else path.parent / entry[key] for key in path_keys}
        entries.append(JobEntry(number, where, paths, name, job_options(entry, kinds, defaults, where)))
    return entries


def check_distinct_outputs(entries: Sequence[JobEntry], outputs: Sequence[Path]) -> None:
    """Refuse two jobs writing the same output (``outputs[i]``, e.g. the run folder of ``entries[i]``'s job).

    Raises:
        InputError: ``<where>: writes <output> as line N does; give the jobs different "name"s``.
    """
    lines: dict[Path, int] = {}
    for entry, output in zip(entries, outputs):
        if output in lines:
            raise InputError(
                f'{entry.where}: writes {output} as line {lines[output]} does; give the jobs different "name"s'
            )
        lines[output] = entry.number


def run_batch(
    jobs: Sequence[Job],
    is_finished: Callable[[Job], bool],
    start_worker: Callable[[list[Job], str], Callable[[Job], object]],
    job_name: Callable[[Job], object],
    device: str | None = None,
    overwrite: bool = False,
) -> int:
    """Run every unfinished job, split across the processes of ``accelerate launch`` (one process otherwise).

    The main process says on stderr how many finished jobs it skips. Each process that gets jobs calls
    ``start_worker`` once, then runs its jobs under a progress bar; a job raising :class:`InputError` prints
    ``error: <job name>: <message>`` on stderr above the bar and the others go on.

    Args:
        jobs: every job of the batch, in order.
        is_finished: whether a job's outputs are complete (skipped unless ``overwrite``).
        start_worker: ``start_worker(my_jobs, device)`` loads what this process's jobs need on ``device`` (the
            given ``device``, else the process's own) and returns the function that runs one job.
        job_name: what an error line calls a job (e.g. its output path).
        device: the requested device; ``cpu`` makes CPU processes (``torchrun``) split the jobs too.
        overwrite: run finished jobs again.

    Returns:
        The exit status: 0, or 2 when a job failed.
    """
    from accelerate import PartialState
    from tqdm.auto import tqdm

    pending = [job for job in jobs if overwrite or not is_finished(job)]
    state = PartialState(cpu=device == "cpu")
    if state.is_main_process and len(pending) < len(jobs):
        print(f"skipping {len(jobs) - len(pending)} finished job(s)", file=sys.stderr)
    if not pending:
        return 0
    failures = 0
    with state.split_between_processes(pending) as my_jobs:
        if not my_jobs:
            return 0
        run_job = start_worker(my_jobs, device or str(state.device))
        for job in tqdm(my_jobs, desc=f"jobs (process {state.process_index})", disable=None):  # terminals only
            try:
                run_job(job)
            except InputError as error:
                failures += 1
                tqdm.write(f"error: {job_name(job)}: {error}", file=sys.stderr)  # on a line of its own
    return 2 if failures else 0
