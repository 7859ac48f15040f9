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
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT, TEMPORAL_CONTEXTS
from utils.batch_jobs import check_distinct_outputs, read_jobs, run_batch
from utils.errors import InputError
from utils.memory import DTYPES, MEMORY_PRESETS
from utils.trajectory_files import load_trajectories
from utils.video_io import load_image

JOB_OPTIONS = {
    "num_frames": int, "steps": int, "seed": int, "conditioning_scale": float,
    "height": int, "width": int, "fps": float, "fast": bool,
}  # fmt: skip
"""The options a job may set (null or absent: the command line's), with their JSON types."""
JOB_PATHS = ("image", "trajectories", "output")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: ...)`` only where it tells something: not for None or False, nor when the help says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


@dataclass
class Job:
    """One run: input paths, its run folder (``output``) and the per-run options (``JOB_OPTIONS``)."""

    image: Path
    trajectories: Path
    output: Path
    options: dict


# ----------------------------------------------------------------------------------------------- parsing


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Animate an image along trajectories with MOFA-Video (no UI).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--image", type=Path, help="input image")
    parser.add_argument("--trajectories", type=Path, help="trajectories JSON (schema in the module docstring)")
    parser.add_argument(
        "--output", type=Path, help="run folder: output.mp4, flow.mp4, hint.png, input.png, settings.json"
    )
    parser.add_argument("--jobs", type=Path, help="JSON-lines file of runs (replaces --image/--trajectories/--output)")
    parser.add_argument("--num_frames", type=int, default=25, help="frames, first frame included (>25: windows)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 25; 2 in tiny mode)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--conditioning_scale", type=float, default=0.6, help="adapter strength (1.0 tends to distort)")
    parser.add_argument("--height", type=int, default=None, help="frame height (multiple of 64); with --width")
    parser.add_argument(
        "--width",
        type=int,
        default=None,
        help="frame width (multiple of 64); default: short side 512, cropped to multiples of 64",
    )
    parser.add_argument("--fps", type=float, default=20, help="playback rate of the written videos")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="fast mode: the adapter at every 4th step, residuals reused in between (~1.1x SVD time)",
    )
    parser.add_argument(
        "--temporal_context",
        choices=TEMPORAL_CONTEXTS,
        default=DEFAULT_TEMPORAL_CONTEXT,
        help="temporal cross-attention context: original = diffusers 0.24, as the released results "
        "(default); per_video = today's diffusers",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    parser.add_argument("--dtype", choices=("auto", *DTYPES), default="auto", help="auto: fp16 on GPU, fp32 on CPU")
    parser.add_argument("--memory", choices=MEMORY_PRESETS, default="high", help="memory preset (see utils/memory.py)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet and the adapter (GPUs)")
    parser.add_argument("--decode_chunk_size", type=int, default=None, help="frames per VAE decode (default: preset)")
    parser.add_argument(
        "--tiny",
        action="store_true",
        default=os.environ.get("MOFA_TINY") == "1",
        help="random tiny models, no weights needed, output is noise (also MOFA_TINY=1)",
    )
    parser.add_argument("--ckpt_dir", type=Path, default=None, help="checkpoint folder ($MOFA_CKPT_DIR or ckpts/)")
    parser.add_argument(
        "--adapter",
        type=Path,
        default=None,
        help="adapter folder instead of <ckpt_dir>/controlnet, "
        "e.g. ../Training/runs/x/controlnet; with --tiny it runs on the tiny SVD if it fits",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    single = (args.image, args.trajectories, args.output)
    if args.jobs is None and None in single:
        parser.error("give --image, --trajectories and --output, or --jobs")
    if args.jobs is not None and any(value is not None for value in single):
        parser.error("--jobs cannot be combined with --image/--trajectories/--output")
    return args


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


# ----------------------------------------------------------------------------------------------- running


def prepare_job(job: Job, overwrite: bool) -> tuple[Image.Image, list, np.ndarray | None]:
    """Load and check one job's inputs before any model work; refuse existing outputs.

    Returns:
        ``(image, tracks, brush_mask)`` for :func:`run_job`.

    Raises:
        InputError: a bad input, frame count or fps, an output folder that cannot be written to, or an existing
            output without ``overwrite``.
    """
    from pipeline.animator_base import check_num_frames
    from pipeline.trajectory_animator import run_paths
    from utils.run_output import check_run_folder
    from utils.trajectories import validate_tracks

    if job.output.suffix.lower() == ".mp4":
        raise InputError(f"the output is a run folder (its video is output.mp4 inside it), not a video: {job.output}")
    check_run_folder(run_paths(job.output), overwrite)
    check_num_frames(job.options["num_frames"])
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
    job = Job(args.image, args.trajectories, args.output, {name: getattr(args, name) for name in JOB_OPTIONS})
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
    try:
        return run_jobs(args) if args.jobs is not None else run_single(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
