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
import sys
from collections.abc import Callable
from pathlib import Path

from utils.batch_jobs import run_batch
from utils.errors import run_command
from utils.keypoint_cli import parse_args, split_ckpt_dir
from utils.keypoint_jobs import Job, load_inputs, load_jobs, reserved_run, run_job


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


def run_single(args: argparse.Namespace) -> Path:
    """Generate and write everything for the command line's inputs; returns the video path."""
    job = Job.from_args(args)
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

    def work() -> int:
        if args.jobs is not None:
            return run_jobs(args)
        run_single(args)
        return 0

    return run_command(work)


if __name__ == "__main__":
    sys.exit(main())
