"""Headless Hybrid animation: portrait + (speech | driving video) [+ drags] -> a run folder like the demos'.

    python inference.py --image portrait.jpg --audio speech.wav
    python inference.py --image portrait.jpg --video drive.mp4 --trajectories drags.json --landmark_mask face.png
    python inference.py --tiny --image portrait.jpg --audio speech.wav        # no weights; the video is noise
    python inference.py --jobs jobs.jsonl                                      # many runs, models loaded once
    accelerate launch inference.py --jobs jobs.jsonl                           # the same, split over GPUs

Each run writes ``<output_dir>/<date-time>-<id>/`` (a job: ``<output_dir>/<name>/``) with the demos' files:
``output.mp4`` (with the audio), ``trajectory_flow.mp4``, ``landmark_flow.mp4``, ``landmarks.mp4``,
``output_with_landmarks.mp4``, ``hint.png``, ``landmark_mask.png``, ``input.png``, ``landmarks.npy``, optionally
``comparison.mp4``, and ``settings.json`` last.

Coordinates are pixels of the input image. The trajectories file is the Traj CLI's (``utils.trajectory_files``:
a list of tracks, or ``{"tracks": [...], "brush": "mask.png" | [{"x", "y", "r"}, ...]}``); ``--landmark_mask`` is an
image of the input's size, white where the face follows the landmarks. ``--mask_mode`` is the demos' rule:
``auto`` (the painted mask if any, else the dilated hull of the portrait's landmarks), ``painted``, ``landmarks``
or ``none``.

Jobs file (JSON lines), paths relative to it; each job needs ``image`` and ``audio`` or ``video``, and may set
``trajectories``, ``landmark_mask``, ``name`` (default ``<image>_<driver>``) and any of
``utils.hybrid_jobs.JOB_OPTIONS``. A job whose ``settings.json`` exists is skipped, so an interrupted batch resumes.
Bad input prints ``error: <message>`` on one line and exits with status 2, before any model loads for a single run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from utils.batch_jobs import run_batch
from utils.errors import run_command
from utils.hybrid_cli import parse_args
from utils.hybrid_jobs import Job, load_jobs, prepare_job, run_job


def build_animator(args: argparse.Namespace, device: str | None):
    from pipeline.hybrid_animator import HybridAnimator

    return HybridAnimator(ckpt_dir=args.ckpt_dir, device=device, dtype=args.dtype, memory=args.memory,
                          tiny=args.tiny, show_progress=True)  # fmt: skip


def run_single(args: argparse.Namespace) -> int:
    job = Job.from_args(args)
    inputs = prepare_job(job, args.ckpt_dir)  # fail fast, before loading models
    run_job(build_animator(args, args.device), job, **inputs)
    return 0


def run_jobs(args: argparse.Namespace) -> int:
    """Run every unfinished job (``settings.json`` missing), split across processes under ``accelerate launch``."""
    from tqdm.auto import tqdm

    said: set[str] = set()

    def say_once(message: str) -> None:
        if message not in said or message.startswith("video: "):
            said.add(message)
            tqdm.write(message)

    def start_worker(my_jobs: list[Job], device: str) -> Callable[[Job], Path]:
        animator = build_animator(args, device)
        return lambda job: run_job(animator, job, **prepare_job(job, animator.ckpt_dir), say=say_once)

    jobs = load_jobs(args.jobs, args)
    is_finished = lambda job: (job.run_dir / "settings.json").exists()  # noqa: E731
    return run_batch(jobs, is_finished, start_worker, lambda job: job.run_dir, args.device)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command(lambda: run_jobs(args) if args.jobs is not None else run_single(args))


if __name__ == "__main__":
    sys.exit(main())
