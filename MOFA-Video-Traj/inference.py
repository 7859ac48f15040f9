"""Headless trajectory animation: image + trajectories JSON -> a run folder (output.mp4, flow.mp4, hint.png,
input.png, settings.json; ``utils.run_output``).

    python inference.py --image photo.png --trajectories traj.json --output runs/photo
    python inference.py --tiny --image photo.png --trajectories traj.json --output runs/photo   # no weights
    python inference.py --tiny --adapter ../Training/runs/tiny1/controlnet ...   # a --tiny trained adapter
    python inference.py --jobs jobs.jsonl                                    # many runs, models loaded once
    accelerate launch inference.py --jobs jobs.jsonl                          # the same, split over GPUs

Trajectories file (JSON), coordinates in pixels of the input image (x = column, y = row):

    [[[x0, y0], [x1, y1], ...], ...]                            a list of tracks
    {"tracks": [...], "brush": "mask.png"}                      plus a motion brush: a mask image of the input's
                                                                size (white = brush), relative to the JSON file
    {"tracks": [...], "brush": [{"x": 120, "y": 80, "r": 30}]}  or brush circles (centre and radius in pixels)

The first point of a track is where the motion starts; a one-point track pins that point in place. Tracks
that start inside the brush only move the brushed area.

Jobs file (JSON lines), one run per line; relative paths are relative to the jobs file; any option below
(num_frames, steps, seed, conditioning_scale, height, width, fps, fast) may be set per job, else the command line's;
``output`` is the job's run folder:

    {"image": "a.png", "trajectories": "a.json", "output": "out/a", "seed": 1}

Jobs whose ``settings.json`` exists are skipped, so an interrupted batch resumes where it stopped.
Bad input prints ``error: <message>`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from utils.batch_jobs import run_batch
from utils.errors import run_command
from utils.traj_cli import parse_args
from utils.traj_jobs import Job, load_jobs, prepare_job, run_job


def build_animator(args: argparse.Namespace, device: str | None):
    from pipeline.trajectory_animator import TrajectoryAnimator

    return TrajectoryAnimator(
        ckpt_dir=args.ckpt_dir,
        device=device,
        dtype=args.dtype,
        memory=args.memory,
        tiny=args.tiny,
        compile_models=args.compile,
        adapter=args.adapter,
    )


def run_single(args: argparse.Namespace) -> int:
    job = Job.from_args(args)
    inputs = prepare_job(job, args.overwrite)  # fail fast, before loading models
    animator = build_animator(args, args.device)
    for message in run_job(animator, job, inputs, args.overwrite, args.decode_chunk_size, args.temporal_context):
        print(f"warning: {message}", file=sys.stderr)
    print(f"wrote {args.output}")
    return 0


def run_jobs(args: argparse.Namespace) -> int:
    """Run every unfinished job (``settings.json`` missing), split across processes under ``accelerate launch``."""
    from tqdm.auto import tqdm

    from pipeline.trajectory_animator import run_paths

    def is_finished(job: Job) -> bool:
        return run_paths(job.output).settings.exists()

    def start_worker(my_jobs: list[Job], device: str) -> Callable[[Job], None]:
        animator = build_animator(args, device)

        def run_and_warn(job: Job) -> None:
            inputs = prepare_job(job, args.overwrite)
            for message in run_job(
                animator, job, inputs, args.overwrite, args.decode_chunk_size, args.temporal_context
            ):
                tqdm.write(f"warning: {job.output}: {message}", file=sys.stderr)

        return run_and_warn

    jobs = load_jobs(args.jobs, args)
    return run_batch(jobs, is_finished, start_worker, lambda job: job.output, args.device, args.overwrite)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.tiny and args.ckpt_dir is not None:
        print(
            "warning: --tiny uses random tiny models and ignores --ckpt_dir (--adapter <folder> runs a trained "
            "adapter on them)",
            file=sys.stderr,
        )
    return run_command(lambda: run_jobs(args) if args.jobs is not None else run_single(args))


if __name__ == "__main__":
    sys.exit(main())
