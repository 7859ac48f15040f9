"""The runs of the Keypoint CLI (``inference_opendomain.py``): a job from the command line or a jobs file, its inputs
checked before any model loads, then animated and written as a run folder."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .batch_jobs import JobEntry, check_distinct_outputs, read_jobs
from .errors import InputError, require_file
from .landmark_renderers import LANDMARK_RENDERERS

JOB_OPTIONS = {"max_frame_len": int, "steps": int, "seed": int, "ldmk_render": str, "fast": bool, "panels": bool}
JOB_PATHS = ("img_path", "audio_path", "landmarks", "save_root")


@dataclass
class Job:
    """One run: input paths (``audio_path`` or ``landmarks`` may be None), where it writes, and its options
    (``JOB_OPTIONS``)."""

    img_path: Path
    audio_path: Path | None
    landmarks: Path | None
    save_root: Path
    name: str
    options: dict

    @property
    def run_dir(self) -> Path:
        return self.save_root / self.name

    @property
    def settings_path(self) -> Path:
        """Written last: its presence marks the job finished."""
        return self.run_dir / "settings.json"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Job:
        """The command line's one run, named ``<image>_<audio or landmarks>_<time>`` (file stems, unix seconds)."""
        driver = Path(args.audio_path if args.audio_path is not None else args.landmarks)
        return cls(
            img_path=Path(args.img_path),
            audio_path=None if args.audio_path is None else Path(args.audio_path),
            landmarks=None if args.landmarks is None else Path(args.landmarks),
            save_root=Path(args.save_root),
            name=f"{Path(args.img_path).stem}_{driver.stem}_{int(time.time())}",
            options={name: getattr(args, name) for name in JOB_OPTIONS},
        )

    def settings(self) -> dict:
        """The job's inputs, name and options for the settings file."""
        paths = {key: None if getattr(self, key) is None else str(getattr(self, key)) for key in JOB_PATHS}
        return {**paths, "name": self.name, **self.options}


@contextlib.contextmanager
def reserved_run(job: Job) -> Iterator[Job]:
    """The job under a name no other run has: its run folder is created exclusively, the name getting ``_2``,
    ``_3``, ... when a run started in the same second has it. If the block fails, the folders created here are
    removed again when nothing was written into them."""
    base = job.name
    for count in itertools.count(1):
        job.name = base if count == 1 else f"{base}_{count}"
        created = [folder for folder in (job.run_dir, *job.run_dir.parents) if not folder.exists()]
        try:
            job.run_dir.mkdir(parents=True)
        except FileExistsError:
            continue
        break
    try:
        yield job
    except BaseException:
        for folder in created:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _job_from_entry(entry: JobEntry, args: argparse.Namespace) -> Job:
    """One checked jobs-file line as a :class:`Job` (its run folder ``<save_root>/<name>``)."""
    if entry.options["ldmk_render"] not in LANDMARK_RENDERERS:
        raise InputError(f'{entry.where}: "ldmk_render" must be one of {", ".join(LANDMARK_RENDERERS)}')
    paths = entry.paths
    if paths["save_root"] is None and args.save_root is None:
        raise InputError(f'{entry.where}: no "save_root" (set it in the job or pass --save_root)')
    driver = paths["audio_path"] or paths["landmarks"]
    name = entry.name or f"{paths['img_path'].stem}_{driver.stem}"
    paths["save_root"] = paths["save_root"] or Path(args.save_root)
    return Job(**paths, name=name, options=entry.options)


def load_jobs(path: Path, args: argparse.Namespace) -> list[Job]:
    """Parse a jobs file (schema in the module docstring); missing options come from ``args``.

    Raises:
        InputError: missing file, a line that is not a valid job, or two jobs writing the same run folder.
    """

    def has_inputs(line: dict) -> bool:
        driven = line.get("audio_path") is not None or line.get("landmarks") is not None
        return line.get("img_path") is not None and driven

    needs = (has_inputs, '"img_path" and "audio_path" and/or "landmarks"')
    entries = read_jobs(path, JOB_PATHS, JOB_OPTIONS, vars(args), needs)
    jobs = [_job_from_entry(entry, args) for entry in entries]
    check_distinct_outputs(entries, [job.run_dir for job in jobs])
    return jobs


def load_inputs(job: Job, ckpt_dir: Path | None = None) -> tuple:
    """``(image, waveform, landmarks)``, validated before any model work: waveform is None without audio,
    landmarks None without a landmark file (then the portrait must show a face, in every mode)."""
    from aniportrait.audio import load_audio
    from aniportrait.face_check import face_landmarks
    from pipeline.keypoint_animator import prepare_portrait
    from utils.landmark_conditions import check_landmarks
    from utils.video_io import check_output_folder, load_image

    check_output_folder(job.save_root)
    max_frame_len, steps = job.options["max_frame_len"], job.options["steps"]
    if max_frame_len is not None and max_frame_len < 2:
        raise InputError(f"--max_frame_len must be at least 2 (the reference and one more frame), got {max_frame_len}")
    if steps is not None and steps < 1:
        raise InputError(f"--steps must be positive, got {steps}")
    image = load_image(job.img_path)
    waveform = None if job.audio_path is None else load_audio(job.audio_path)
    landmarks = None
    if job.landmarks is not None:
        require_file(job.landmarks, "landmarks")
        try:
            array = np.load(job.landmarks, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            raise InputError(f"{job.landmarks} is not a landmarks .npy file (a (N, 68, 2) numpy array)") from None
        landmarks = check_landmarks(array)
    else:
        face_landmarks(prepare_portrait(image), job.img_path.name, ckpt_dir)
    return image, waveform, landmarks


def run_job(animator, job: Job, inputs: tuple, args: argparse.Namespace, say: Callable[[str], None] = print) -> Path:
    """Generate one job from its :func:`load_inputs` and write its run folder (nothing before the video is generated,
    the settings last).

    Returns:
        The video path.

    Raises:
        InputError: a bad input, or an existing output without ``--overwrite``.
    """
    from pipeline.keypoint_animator import OUTPUT_SLOTS
    from utils.run_output import RunPaths, check_run_folder

    image, waveform, landmarks = inputs
    options = job.options
    check_run_folder(RunPaths.in_folder(job.run_dir, OUTPUT_SLOTS), args.overwrite)
    frame = animator.prepare_image(image)
    renderer = None
    if landmarks is None:
        renderer = options["ldmk_render"]
        landmarks = animator.landmarks_from_audio(frame, waveform, job.img_path.name, renderer)
    result = animator.animate(
        frame, landmarks, max_frames=options["max_frame_len"], steps=options["steps"], seed=options["seed"],
        fast=options["fast"], temporal_context=args.temporal_context, renderer=renderer,
    )  # fmt: skip
    for warning in result.warnings:
        say(warning)
    extra = {**job.settings(), "device": str(animator.device)}
    paths = animator.save(result, job.run_dir, job.audio_path, options["panels"], extra, overwrite=args.overwrite)
    sound = "with audio" if job.audio_path is not None else "silent"
    say(f"landmarks: {paths.landmarks}")
    say(f"video: {paths.video} ({len(result.frames)} frames, {frame.width}x{frame.height}, 25 fps, {sound})")
    return paths.video
