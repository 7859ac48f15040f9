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
``trajectories``, ``landmark_mask``, ``name`` (default ``<image>_<driver>``) and any of ``JOB_OPTIONS``. A job whose
``settings.json`` exists is skipped, so an interrupted batch resumes. Bad input prints ``error: <message>`` on one
line and exits with status 2, before any model loads for a single run.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT, TEMPORAL_CONTEXTS
from utils.batch_jobs import check_distinct_outputs, read_jobs, run_batch
from utils.errors import InputError
from utils.landmark_renderers import LANDMARK_RENDERERS

MASK_MODES = ("auto", "painted", "landmarks", "none")  # utils.face_mask's rules
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

    def inputs(self) -> dict[str, str | None]:
        return {key: None if getattr(self, key) is None else str(getattr(self, key)) for key in JOB_PATHS}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", type=Path, help="portrait (any image; not modified)")
    driver = parser.add_mutually_exclusive_group()
    driver.add_argument("--audio", type=Path, help="speech driving the face (wav, mp3, m4a, flac, ogg, ...)")
    driver.add_argument("--video", type=Path, help="driving video whose expression and head pose the face follows")
    parser.add_argument("--trajectories", type=Path, help="drags JSON (and motion brush), input-image pixels")
    parser.add_argument("--landmark_mask", type=Path, help="painted landmark mask: image of the input's size")
    parser.add_argument("--mask_mode", choices=MASK_MODES, default="auto", help="which landmark mask is used")
    parser.add_argument(
        "--renderer",
        choices=LANDMARK_RENDERERS,
        default="aniportrait",
        help="audio -> landmarks (a driving video always uses sadtalker)",
    )
    parser.add_argument("--jobs", type=Path, help="JSON-lines file of runs (replaces --image/--audio/--video)")
    parser.add_argument("--output_dir", type=Path, default=Path("outputs"), help="parent of the run folders")
    parser.add_argument("--num_frames", type=int, default=None, help="frames (default: as long as the driver)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (25; 2 with --tiny)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--trajectory_conditioning_scale", type=float, default=0.6, help="drag adapter strength")
    parser.add_argument("--landmark_conditioning_scale", type=float, default=1.0, help="landmark adapter strength")
    parser.add_argument("--fast", action="store_true", help="both adapters at every 4th step, residuals reused")
    parser.add_argument("--comparison", action="store_true", help="also write the 7-panel comparison.mp4")
    parser.add_argument(
        "--temporal_context",
        choices=TEMPORAL_CONTEXTS,
        default=DEFAULT_TEMPORAL_CONTEXT,
        help="temporal cross-attention context: original = diffusers 0.24, as the released results "
        "(default); per_video = today's diffusers",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        default=os.environ.get("MOFA_TINY") == "1",
        help="random tiny models, stand-in landmark motion on the real face (the video is noise)",
    )
    parser.add_argument("--ckpt_dir", default=None, help="checkpoint folder (default $MOFA_CKPT_DIR or ../ckpts)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, mps, cpu (default: the best available)")
    parser.add_argument("--dtype", choices=("auto", "fp16", "bf16", "fp32"), default="auto")
    parser.add_argument("--memory", choices=("high", "balanced", "low"), default="balanced", help="memory preset")
    args = parser.parse_args(argv)
    if args.jobs is not None and any(value is not None for value in (args.image, args.audio, args.video)):
        parser.error("--jobs cannot be combined with --image/--audio/--video")
    if args.jobs is None and (args.image is None or (args.audio is None and args.video is None)):
        parser.error("give --image and --audio or --video, or --jobs")
    return args


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


# ----------------------------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class FrameGeometry:
    """How input-image pixels map to the generation frame (short side scaled, then centre-cropped):
    ``frame = input * scale - (left, top)``."""

    scale: float
    left: float
    top: float
    frame_size: tuple[int, int]

    @classmethod
    def between(cls, image_size: tuple[int, int], frame_size: tuple[int, int]) -> FrameGeometry:
        scale = min(frame_size) / min(image_size)
        left, top = ((image_size[axis] * scale - frame_size[axis]) / 2 for axis in (0, 1))
        return cls(scale, left, top, frame_size)

    def map_tracks(self, tracks: list) -> list[list[tuple[float, float]]]:
        """Tracks of ``[x, y]`` input pixels in frame pixels.

        Raises:
            InputError: a click lies in the border the crop cuts away.
        """
        mapped = []
        for index, track in enumerate(tracks):
            points = [(float(x) * self.scale - self.left, float(y) * self.scale - self.top) for x, y in track]
            for number, (x, y) in enumerate(points):
                if not (0 <= x < self.frame_size[0] and 0 <= y < self.frame_size[1]):
                    raise InputError(f"track {index}, click {number}: {tuple(track[number])} lies in the border "
                                     "cropped away")  # fmt: skip
            mapped.append(points)
        return mapped

    def map_mask(self, mask: np.ndarray) -> np.ndarray:
        """An ``(H, W)`` 0/255 mask of the input's size as a mask of the frame (nearest neighbour)."""
        height, width = mask.shape
        resized = Image.fromarray(mask).resize(
            (round(width * self.scale), round(height * self.scale)), Image.Resampling.NEAREST
        )
        left, top = round(self.left), round(self.top)
        return np.asarray(resized.crop((left, top, left + self.frame_size[0], top + self.frame_size[1])))


def read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A painted mask image of the input's ``size`` as ``(H, W)`` uint8 0/255 (brighter than 127 = inside).

    Raises:
        InputError: unreadable, or another size than the input image.
    """
    from utils.video_io import load_image

    mask = np.asarray(load_image(path).convert("L"))
    if mask.shape != (size[1], size[0]):
        raise InputError(f"landmark mask {path} is {mask.shape[1]}x{mask.shape[0]}, the image {size[0]}x{size[1]}: "
                         "they must match")  # fmt: skip
    return np.where(mask > 127, 255, 0).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- running


def prepare_job(job: Job, ckpt_dir: str | Path | None) -> dict:
    """Load and check one job's inputs before any model work: options, output folder, image with a face,
    the driving file, drags and masks. Returns the keyword arguments of :func:`run_job`."""
    from aniportrait.audio import load_audio
    from aniportrait.face_check import face_landmarks
    from utils.trajectory_files import load_trajectories
    from utils.video_io import check_output_folder, load_image, read_video, resize_and_center_crop

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


def build_animator(args: argparse.Namespace, device: str | None):
    from pipeline.hybrid_animator import HybridAnimator

    return HybridAnimator(ckpt_dir=args.ckpt_dir, device=device, dtype=args.dtype, memory=args.memory,
                          tiny=args.tiny, show_progress=True)  # fmt: skip


def run_single(args: argparse.Namespace) -> int:
    options = {name: getattr(args, name) for name in JOB_OPTIONS}
    job = Job(args.image, args.audio, args.video, args.trajectories, args.landmark_mask,
              args.output_dir / new_run_name(), options)  # fmt: skip
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
    try:
        return run_jobs(args) if args.jobs is not None else run_single(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
