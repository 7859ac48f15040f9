"""The runs of the headless Hybrid CLI (``inference.py``): a job from the command line or a jobs file, its inputs
checked before any model loads, then animated and saved as a run folder like the demos'."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from models.temporal_context import TEMPORAL_CONTEXTS

from .batch_jobs import check_distinct_outputs, read_jobs
from .errors import InputError
from .frame_geometry import FrameGeometry, read_mask
from .hybrid_cli import MASK_MODES
from .landmark_renderers import LANDMARK_RENDERERS
from .trajectory_files import load_trajectories
from .video_io import check_output_folder, load_image, read_video, resize_and_center_crop

JOB_OPTIONS = {
    "renderer": str, "mask_mode": str, "num_frames": int, "steps": int, "seed": int,
    "trajectory_conditioning_scale": float, "landmark_conditioning_scale": float, "fast": bool, "comparison": bool,
    "temporal_context": str,
}  # fmt: skip
"""The options a job may set (null or absent: the command line's), with their JSON types."""
JOB_PATHS = ("image", "audio", "video", "trajectories", "landmark_mask")


@dataclass
class Job:
    """One run: input paths (``audio`` or ``video`` set, the other None), its run folder and options."""

    image: Path
    audio: Path | None
    video: Path | None
    trajectories: Path | None
    landmark_mask: Path | None
    run_dir: Path
    options: dict

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Job:
        """The command line's one run, in a new ``<date-time>-<id>`` folder under ``--output_dir``."""
        options = {name: getattr(args, name) for name in JOB_OPTIONS}
        return cls(args.image, args.audio, args.video, args.trajectories, args.landmark_mask,
                   args.output_dir / new_run_name(), options)  # fmt: skip

    def inputs(self) -> dict[str, str | None]:
        return {key: None if getattr(self, key) is None else str(getattr(self, key)) for key in JOB_PATHS}


def new_run_name() -> str:
    """``<date-time>-<id>``, the demos' run-folder name (unique: a random id)."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def load_jobs(path: Path, args: argparse.Namespace) -> list[Job]:
    """Parse a jobs file (schema in the module docstring); two jobs may not share a run folder.

    Raises:
        InputError: a missing file, a line that is not a valid job, or two jobs with the same folder.
    """

    def has_inputs(line: dict) -> bool:
        return line.get("image") is not None and (line.get("audio") is None) != (line.get("video") is None)

    needs = (has_inputs, '"image" and one of "audio" and "video"')
    entries = read_jobs(path, JOB_PATHS, JOB_OPTIONS, vars(args), needs)
    jobs = []
    for entry in entries:
        paths = entry.paths
        name = entry.name or f"{paths['image'].stem}_{(paths['audio'] or paths['video']).stem}"
        jobs.append(Job(**paths, run_dir=args.output_dir / name, options=entry.options))
    check_distinct_outputs(entries, [job.run_dir for job in jobs])
    return jobs


def prepare_job(job: Job, ckpt_dir: str | Path | None) -> dict:
    """Load and check one job's inputs before any model work: options, output folder, image with a face,
    the driving file, drags and masks. Returns the keyword arguments of :func:`run_job`."""
    from aniportrait.audio import load_audio
    from aniportrait.face_check import face_landmarks

    options = job.options
    choices = {"renderer": LANDMARK_RENDERERS, "mask_mode": MASK_MODES, "temporal_context": TEMPORAL_CONTEXTS}
    for name, allowed in choices.items():
        if options[name] not in allowed:
            raise InputError(f"{name} must be one of {', '.join(allowed)}, got {options[name]!r}")
    if options["num_frames"] is not None and options["num_frames"] < 2:
        raise InputError(f"num_frames must be at least 2, got {options['num_frames']}")
    if (job.run_dir / "settings.json").exists():
        raise InputError(f"{job.run_dir} already holds a finished run; choose another name")
    check_output_folder(job.run_dir)
    image = load_image(job.image)
    face_landmarks(resize_and_center_crop(image), job.image.name, ckpt_dir)  # the real generation frame
    if job.audio is not None:
        load_audio(job.audio)
    else:
        read_video(job.video)
    tracks, brush = ([], None) if job.trajectories is None else load_trajectories(job.trajectories, *image.size)
    painted = None if job.landmark_mask is None else read_mask(job.landmark_mask, image.size)
    return {"image": image, "tracks": tracks, "brush": brush, "painted": painted}


def run_job(animator, job: Job, image, tracks, brush, painted, say: Callable[[str], None] = print) -> Path:
    """Animate one job from its :func:`prepare_job` inputs and save its run folder; returns the folder."""
    frame = animator.prepare_image(image)
    geometry = FrameGeometry.between(image.size, frame.size)
    options = job.options
    if job.audio is not None:
        landmarks = animator.landmarks_from_audio(frame, job.audio, options["renderer"], job.image.name)
    else:
        landmarks = animator.landmarks_from_video(frame, job.video, job.image.name)
    result = animator.animate(
        frame, landmarks, tracks=geometry.map_tracks(tracks),
        brush_mask=None if brush is None else geometry.map_mask(brush),
        painted_landmark_mask=None if painted is None else geometry.map_mask(painted),
        mask_mode=options["mask_mode"], num_frames=options["num_frames"], steps=options["steps"],
        seed=options["seed"], trajectory_conditioning_scale=options["trajectory_conditioning_scale"],
        landmark_conditioning_scale=options["landmark_conditioning_scale"], fast=options["fast"],
        temporal_context=options["temporal_context"],
    )  # fmt: skip
    extra = {"driving": str(job.audio or job.video),
             "driving_kind": "audio" if job.audio is not None else "video",
             "renderer": "sadtalker" if job.video is not None else options["renderer"],
             "landmark_frames": len(landmarks), "inputs": job.inputs()}  # fmt: skip
    paths = animator.save(result, job.run_dir, audio_path=job.audio, comparison=options["comparison"],
                          extra_settings=extra)  # fmt: skip
    for message in result.warnings:
        say(message)
    say(f"video: {paths.video} ({len(result.frames)} frames, {frame.width}x{frame.height}, 25 fps)")
    return job.run_dir
