"""The runs of the headless Traj CLI (``inference.py``): a job from the command line or a jobs file, its inputs
checked before any model loads, then animated and saved as a run folder."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .batch_jobs import check_distinct_outputs, read_jobs
from .errors import InputError
from .trajectory_files import load_trajectories
from .video_io import load_image

JOB_OPTIONS = {
    "num_frames": int, "steps": int, "seed": int, "conditioning_scale": float,
    "height": int, "width": int, "fps": float, "fast": bool,
}  # fmt: skip
"""The options a job may set (null or absent: the command line's), with their JSON types."""
JOB_PATHS = ("image", "trajectories", "output")


@dataclass
class Job:
    """One run: input paths, its run folder (``output``) and the per-run options (``JOB_OPTIONS``)."""

    image: Path
    trajectories: Path
    output: Path
    options: dict

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Job:
        """The command line's one run."""
        return cls(args.image, args.trajectories, args.output, {name: getattr(args, name) for name in JOB_OPTIONS})


def load_jobs(path: Path, args: argparse.Namespace) -> list[Job]:
    """Parse a jobs file (:func:`utils.batch_jobs.read_jobs`); relative paths are resolved against its folder,
    missing options come from ``args``.

    Raises:
        InputError: missing file, a line that is not a JSON object, a job without image/trajectories/output
            paths, an option of the wrong type, or two jobs writing the same run folder.
    """
    needs = (lambda line: all(line.get(key) is not None for key in JOB_PATHS), '"image", "trajectories" and "output"')
    entries = read_jobs(path, JOB_PATHS, JOB_OPTIONS, vars(args), needs, named=False)
    jobs = [Job(**entry.paths, options=entry.options) for entry in entries]
    check_distinct_outputs(entries, [job.output for job in jobs])
    return jobs


def prepare_job(job: Job, overwrite: bool) -> tuple[Image.Image, list, np.ndarray | None]:
    """Load and check one job's inputs before any model work; refuse existing outputs.

    Returns:
        ``(image, tracks, brush_mask)`` for :func:`run_job`.

    Raises:
        InputError: a bad input, frame count, frame size or fps, an output folder that cannot be written to, or an
            existing output without ``overwrite``.
    """
    from pipeline.animator_base import check_num_frames
    from pipeline.trajectory_animator import check_frame_size, run_paths
    from utils.run_output import check_run_folder
    from utils.trajectories import validate_tracks

    if job.output.suffix.lower() == ".mp4":
        raise InputError(f"the output is a run folder (its video is output.mp4 inside it), not a video: {job.output}")
    check_run_folder(run_paths(job.output), overwrite)
    check_num_frames(job.options["num_frames"])
    check_frame_size(job.options["height"], job.options["width"])
    if not job.options["fps"] > 0:
        raise InputError(f"fps must be positive, got {job.options['fps']}")
    image = load_image(job.image)
    tracks, brush = load_trajectories(job.trajectories, image.width, image.height)
    validate_tracks(tracks, image.width, image.height)
    return image, tracks, brush


def run_job(
    animator,
    job: Job,
    inputs: tuple[Image.Image, list, np.ndarray | None],
    overwrite: bool,
    decode_chunk_size: int | None,
    temporal_context: str,
) -> list[str]:
    """Animate and save one job from its :func:`prepare_job` inputs; returns its warnings."""
    image, tracks, brush = inputs
    options = job.options
    result = animator.animate(
        image,
        tracks,
        brush_mask=brush,
        num_frames=options["num_frames"],
        steps=options["steps"],
        seed=options["seed"],
        conditioning_scale=options["conditioning_scale"],
        height=options["height"],
        width=options["width"],
        fast=options["fast"],
        decode_chunk_size=decode_chunk_size,
        temporal_context=temporal_context,
    )
    input_paths = {"image": str(job.image), "trajectories": str(job.trajectories)}
    animator.save(result, job.output, fps=options["fps"], overwrite=overwrite, extra_settings={"inputs": input_paths})
    return result.warnings
