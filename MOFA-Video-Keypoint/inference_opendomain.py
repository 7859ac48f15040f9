"""Portrait + speech -> talking-head video of any length (landmark MOFA-Adapter, periodic sampling).

    python inference_opendomain.py --img_path portrait.jpg --audio_path speech.wav --save_root results
    python inference_opendomain.py ... --ldmk_render sadtalker   # landmarks from the 3DMM path
    python inference_opendomain.py ... --tiny            # random tiny models, the real face detection, offline
    python inference_opendomain.py --jobs jobs.jsonl --save_root results   # many runs, models loaded once
    accelerate launch inference_opendomain.py --jobs jobs.jsonl            # the same, split over GPUs

Writes the run folder ``<save_root>/<run>/`` (the layout every mode shares, ``utils.run_output``), with ``<run>`` =
``<image>_<audio>_<time>`` (``<image>_<landmarks>_<time>`` without audio; in a jobs file the job's ``name``, by
default ``<image>_<audio or landmarks>``):
    input.png          the prepared reference frame (the input is never modified)
    landmarks.npy      (1 + N, 68, 2) float64 landmarks in pixels of input.png, every frame generated,
                       N = ceil(25 s) (aniportrait) or floor(25 s) (sadtalker); reusable with --landmarks
    landmarks.mp4      reference | drawn landmarks, 25 fps
    output.mp4         the video, 25 fps, with the audio (AAC, padded or cut to the video); silent when only
                       landmarks are given
    flow.mp4           the landmark flow the adapter saw, colour-coded
    comparison.mp4     with --panels: reference | flow | pose | dots | video (with the audio)
    settings.json      the settings used, written last

Jobs file (JSON lines), one run per line; relative paths are relative to the jobs file; ``img_path`` and
``audio_path`` or ``landmarks`` (or both) are needed, ``save_root`` too unless given on the command line;
``name``, ``max_frame_len``, ``steps``, ``seed``, ``ldmk_render``, ``fast`` and ``panels`` may be set per job,
else the command line's apply:

    {"img_path": "a.jpg", "audio_path": "a.wav", "save_root": "results", "seed": 1, "fast": true}

Jobs whose ``settings.json`` exists are skipped, so an interrupted batch resumes where it stopped (a job writes
nothing until its video is generated). A job with bad input prints ``error: <its run folder>: <message>`` and the
others go on; the exit status is then 2. A bad jobs file stops everything before any model loads.
A single run with bad input prints one line ``error: ...`` and exits with status 2, before any file is written.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT, TEMPORAL_CONTEXTS
from utils.batch_jobs import JobEntry, check_distinct_outputs, read_jobs, run_batch
from utils.errors import InputError
from utils.landmark_renderers import LANDMARK_RENDERERS

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

    def settings(self) -> dict:
        """The job's inputs, name and options for the settings file."""
        paths = {key: None if getattr(self, key) is None else str(getattr(self, key)) for key in JOB_PATHS}
        return {**paths, "name": self.name, **self.options}


# ----------------------------------------------------------------------------------------------- parsing


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--ldmk_render", choices=LANDMARK_RENDERERS, default="aniportrait", help="audio -> landmark generator"
    )
    parser.add_argument(
        "--ckpt_dir",
        default=None,
        help="checkpoint folder (ckpts/; default $MOFA_CKPT_DIR or <repo>/ckpts), or the landmark adapter folder "
        "itself (…/ckpts/mofa/ldmk_controlnet), whose ckpts/ is then used for the rest",
    )
    parser.add_argument("--audio_path", default=None, help="speech: wav, mp3, m4a, flac, ogg, ...")
    parser.add_argument("--img_path", default=None, help="portrait image (not modified)")
    parser.add_argument("--save_root", default=None, help="output folder (with --jobs: for jobs that set none)")
    parser.add_argument("--jobs", default=None, help="JSON-lines file of runs (replaces --img_path/--audio_path)")
    parser.add_argument(
        "--max_frame_len",
        type=int,
        default=None,
        help="most output frames, reference included (default: the whole audio or landmark file)",
    )
    parser.add_argument(
        "--landmarks", default=None, help="(N, 68, 2) .npy in pixels of the prepared frame; skips audio->landmarks"
    )
    parser.add_argument("--panels", action="store_true", help="also write the 5-panel comparison video")
    parser.add_argument(
        "--tiny",
        action="store_true",
        default=os.environ.get("MOFA_TINY") == "1",
        help="random tiny models and stand-in landmark motion on the real face (no checkpoints; the video is noise)",
    )
    parser.add_argument("--device", default=None, help="cuda, cuda:1, mps, cpu (default: the best available)")
    parser.add_argument("--dtype", choices=("auto", "fp16", "bf16", "fp32"), default="auto")
    parser.add_argument("--memory", choices=("high", "balanced", "low"), default="high", help="memory preset")
    parser.add_argument("--seed", type=int, default=41, help="seed of the diffusion noise (41, as released)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (25; 2 with --tiny)")
    parser.add_argument(
        "--fast", action="store_true", help="fast mode: the adapter at every 4th step, its residuals reused in between"
    )
    parser.add_argument(
        "--temporal_context",
        choices=TEMPORAL_CONTEXTS,
        default=DEFAULT_TEMPORAL_CONTEXT,
        help="temporal cross-attention context: original = diffusers 0.24, as the released results "
        "(default); per_video = today's diffusers",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    if args.jobs is not None and any(value is not None for value in (args.img_path, args.audio_path, args.landmarks)):
        parser.error("--jobs cannot be combined with --img_path/--audio_path/--landmarks")
    if args.jobs is None and (args.img_path is None or args.save_root is None):
        parser.error("give --img_path and --save_root (with --audio_path and/or --landmarks), or --jobs")
    if args.jobs is None and args.audio_path is None and args.landmarks is None:
        parser.error("give --audio_path, --landmarks or both")
    return args


def split_ckpt_dir(path: str | None) -> tuple[Path | None, Path | None]:
    """``(ckpt_dir, adapter_dir)`` from ``--ckpt_dir``: an adapter folder (has ``config.json``) means
    ``<ckpts>/mofa/ldmk_controlnet``, the released CLI's convention; anything else is the ``ckpts/`` root."""
    if path is None:
        return None, None
    path = Path(path)
    if (path / "config.json").is_file():
        return path.parent.parent, path
    return path, None


def single_job(args: argparse.Namespace) -> Job:
    """The job of a command line without ``--jobs``, named ``<image>_<audio or landmarks>_<time>`` (file stems, unix
    seconds)."""
    driver = Path(args.audio_path if args.audio_path is not None else args.landmarks)
    return Job(
        img_path=Path(args.img_path),
        audio_path=None if args.audio_path is None else Path(args.audio_path),
        landmarks=None if args.landmarks is None else Path(args.landmarks),
        save_root=Path(args.save_root),
        name=f"{Path(args.img_path).stem}_{driver.stem}_{int(time.time())}",
        options={name: getattr(args, name) for name in JOB_OPTIONS},
    )


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


# ----------------------------------------------------------------------------------------------- running


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
        if not job.landmarks.is_file():
            raise InputError(f"landmarks file not found: {job.landmarks}")
        try:
            array = np.load(job.landmarks, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            raise InputError(f"{job.landmarks} is not a landmarks .npy file (a (N, 68, 2) numpy array)") from None
        landmarks = check_landmarks(array)
    else:
        face_landmarks(prepare_portrait(image), job.img_path.name, ckpt_dir)
    return image, waveform, landmarks


def build_animator(args: argparse.Namespace, device: str | None, renderers: tuple[str, ...]):
    """The animator for every job of this process; ``renderers``' files are checked before anything loads."""
    from pipeline.keypoint_animator import KeypointAnimator

    ckpt_dir, adapter_dir = split_ckpt_dir(args.ckpt_dir)
    return KeypointAnimator(
        ckpt_dir=ckpt_dir,
        adapter_dir=adapter_dir,
        device=device,
        dtype=args.dtype,
        memory=args.memory,
        tiny=args.tiny,
        landmark_renderers=renderers,
    )


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


def run_single(args: argparse.Namespace) -> Path:
    """Generate and write everything for the command line's inputs; returns the video path."""
    job = single_job(args)
    inputs = load_inputs(job, split_ckpt_dir(args.ckpt_dir)[0])  # fail fast, before loading models
    renderers = (args.ldmk_render,) if args.landmarks is None else ()
    animator = build_animator(args, args.device, renderers)
    with reserved_run(job):
        return run_job(animator, job, inputs, args)


def run_jobs(args: argparse.Namespace) -> int:
    """Run every unfinished job (settings file missing), split across processes under ``accelerate launch``."""
    from tqdm.auto import tqdm

    jobs = load_jobs(Path(args.jobs), args)
    said: set[str] = set()

    def say_once(message: str) -> None:
        """Print above the progress bar; the notices every job repeats are printed once."""
        if message not in said:
            said.add(message)
            tqdm.write(message)

    def start_worker(my_jobs: list[Job], device: str) -> Callable[[Job], Path]:
        renderers = tuple(sorted({job.options["ldmk_render"] for job in my_jobs if job.landmarks is None}))
        animator = build_animator(args, device, renderers)
        return lambda job: run_job(animator, job, load_inputs(job, animator.ckpt_dir), args, say_once)

    def is_finished(job: Job) -> bool:
        return job.settings_path.exists()

    return run_batch(jobs, is_finished, start_worker, lambda job: job.run_dir, args.device, args.overwrite)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.jobs is not None:
            return run_jobs(args)
        run_single(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
