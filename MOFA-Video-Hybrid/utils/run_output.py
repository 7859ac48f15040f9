# Copied from MOFA-Video-Traj/utils/run_output.py
"""One run's outputs, for every mode: the settings it used (:class:`RunSettings`), where its files go
(:class:`RunPaths`, one folder per run) and :func:`save_run`, which writes them.

A run folder holds the slots its mode has (``<name>`` is the run's name, ``output`` by default; ``<name>_`` prefixes
the other files only when a name is given, so that downloads say what they are)::

    <name>.mp4                   video            the generated video (with the driving audio, if any)
    <name>_with_landmarks.mp4    video_with_landmarks   the video with the landmarks as dots
    <name>_flow.mp4              flow             the flow the adapter saw, colour-coded (Traj, Keypoint)
    <name>_trajectory_flow.mp4   trajectory_flow  Hybrid's drag flow
    <name>_landmark_flow.mp4     landmark_flow    Hybrid's landmark flow
    <name>_landmarks.mp4         landmark_video   the landmarks drawn
    <name>_comparison.mp4        comparison       the panels side by side (with the audio, if any)
    <name>_hint.png              hint             the frame with the drags, brush and masks drawn
    <name>_landmark_mask.png     landmark_mask    where the face follows the landmarks (0/255)
    <name>_landmarks.npy         landmarks        (N, 68, 2) float64 landmark points, pixels of input.png
    input.png                    input            the frame the video starts from
    settings.json                settings         every setting used; written last, it marks a finished run

Usage::

    paths = save_run(run_dir, {"video": frames, "input": first_frame}, settings, fps=25, audio_path="speech.wav")
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import InputError
from .video_io import atomic_output, check_output_folder, mux_audio, save_png, write_video

FILE_NAMES = {
    "video": "{name}.mp4",
    "video_with_landmarks": "{name}_with_landmarks.mp4",
    "flow": "{prefix}flow.mp4",
    "trajectory_flow": "{prefix}trajectory_flow.mp4",
    "landmark_flow": "{prefix}landmark_flow.mp4",
    "landmark_video": "{prefix}landmarks.mp4",
    "comparison": "{prefix}comparison.mp4",
    "hint": "{prefix}hint.png",
    "landmark_mask": "{prefix}landmark_mask.png",
    "landmarks": "{prefix}landmarks.npy",
    "input": "input.png",
    "settings": "settings.json",
}
"""Slot -> file name in the run folder (``{name}``: the run's name or ``output``; ``{prefix}``: ``<name>_`` or "")."""
AUDIO_SLOTS = ("video", "comparison")
"""The videos the driving audio is muxed into."""


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """The settings every mode's run records (a mode's subclass adds its own); ``settings.json`` holds
    ``dataclasses.asdict`` of it.

    Attributes:
        num_frames, steps, seed, height, width: the video's length and size, denoising steps, the noise seed.
        conditioning_scale: adapter strength (Hybrid records one per adapter instead, and leaves this None).
        fps_id, motion_bucket_id, noise_aug_strength: SVD's micro-conditioning.
        min_guidance_scale, max_guidance_scale: the per-frame guidance ramp.
        window_size, window_stride: periodic-sampling windows.
        decode_chunk_size: frames per VAE decode.
        fast, adapter_schedule: fast mode and the adapter schedule it gives (:mod:`utils.adapter_schedule`).
        temporal_context: :mod:`models.temporal_context`'s choice.
        cmp_grid: CMP's input size.
        memory, tiny, ckpt_dir: the animator's memory preset, tiny mode and checkpoint folder.
        warnings: what the run warned about.
    """

    num_frames: int
    steps: int
    seed: int
    height: int
    width: int
    conditioning_scale: float | None = None
    fps_id: int
    motion_bucket_id: int
    noise_aug_strength: float
    min_guidance_scale: float
    max_guidance_scale: float
    window_size: int
    window_stride: int
    decode_chunk_size: int
    fast: bool
    adapter_schedule: dict
    temporal_context: str
    cmp_grid: int
    memory: dict
    tiny: bool
    ckpt_dir: str | None
    warnings: list[str]


@dataclass(frozen=True)
class RunPaths:
    """The files of one run, all in one folder; a slot the run does not write is None (see the module docstring)."""

    folder: Path
    settings: Path
    video: Path | None = None
    video_with_landmarks: Path | None = None
    flow: Path | None = None
    trajectory_flow: Path | None = None
    landmark_flow: Path | None = None
    landmark_video: Path | None = None
    comparison: Path | None = None
    hint: Path | None = None
    landmark_mask: Path | None = None
    landmarks: Path | None = None
    input: Path | None = None

    @classmethod
    def in_folder(cls, folder: str | Path, slots: list[str] | tuple[str, ...], name: str | None = None) -> RunPaths:
        """The paths of ``slots`` in ``folder`` (``settings`` always); ``name`` starts the file names (module
        docstring), e.g. ``clip.mp4``, ``clip_flow.mp4``; without it the video is ``output.mp4``."""
        folder = Path(folder)
        unknown = sorted(set(slots) - set(FILE_NAMES))
        if unknown:
            raise ValueError(f"unknown output slots {unknown}; known: {', '.join(FILE_NAMES)}")
        words = {"name": name or "output", "prefix": f"{name}_" if name else ""}
        paths = {slot: folder / FILE_NAMES[slot].format(**words) for slot in (*slots, "settings")}
        return cls(folder=folder, **paths)

    def as_dict(self) -> dict[str, str]:
        """Slot -> path of every file of the run, ``settings`` last (JSON-ready)."""
        slots = [field.name for field in fields(self) if field.name not in ("folder", "settings")]
        files = {slot: str(getattr(self, slot)) for slot in slots if getattr(self, slot) is not None}
        return {**files, "settings": str(self.settings)}

    def existing(self) -> list[Path]:
        """The run's files already on disk."""
        return [Path(path) for path in self.as_dict().values() if Path(path).exists()]


def check_run_folder(paths: RunPaths, overwrite: bool = False) -> None:
    """Refuses, before any work, a run folder that cannot be written: one that holds a finished run or any of this
    run's files (unless ``overwrite``), or that cannot be created or written to.

    Raises:
        InputError: ``<folder> already holds a finished run; ...``, ``<file> already exists; ...`` or
            ``cannot write to <folder>: ...``.
    """
    if not overwrite:
        if paths.settings.exists():
            raise InputError(f"{paths.folder} already holds a finished run; choose another folder or pass --overwrite")
        existing = paths.existing()
        if existing:
            raise InputError(f"{existing[0]} already exists; pass --overwrite to replace it")
    check_output_folder(paths.folder)


def save_run(
    folder: str | Path,
    outputs: Mapping[str, Any],
    settings: RunSettings,
    fps: float,
    name: str | None = None,
    audio_path: str | Path | None = None,
    overwrite: bool = False,
    extra_settings: Mapping[str, Any] | None = None,
) -> RunPaths:
    """Write one run's files into ``folder`` (created), ``settings.json`` last.

    Each file is written under a temporary name and renamed (with the umask's mode), so nothing is left
    half-written. The folder is checked first (:func:`check_run_folder`); when a write fails, the files written so
    far and the folders this call created are removed again (files that were there before are kept).

    Args:
        folder: the run folder.
        outputs: slot -> content: ``(T, H, W, 3)`` uint8 frames (an array or an iterable of frames) for the
            ``.mp4`` slots, a PIL image or ``(H, W[, 3])`` uint8 array for the ``.png`` ones, an array for
            ``landmarks``.
        settings: the run's settings; ``settings.json`` holds them, then ``extra_settings``, ``fps``, ``audio``
            and ``outputs`` (slot -> path).
        fps: playback rate of the videos.
        name: starts the file names (:meth:`RunPaths.in_folder`).
        audio_path: audio muxed into the video and the comparison (AAC, padded with silence or cut to the
            video's length).
        overwrite: replace this run's existing files.
        extra_settings: more entries for ``settings.json`` (e.g. the input paths).

    Returns:
        :class:`RunPaths`.

    Raises:
        InputError: the folder holds a finished run or one of the files (without ``overwrite``), cannot be
            written to, or the audio cannot be muxed.
    """
    paths = RunPaths.in_folder(folder, list(outputs), name)
    check_run_folder(paths, overwrite)
    created = [parent for parent in (paths.folder, *paths.folder.parents) if not parent.exists()]
    existing = set(paths.existing())
    paths.folder.mkdir(parents=True, exist_ok=True)
    try:
        for slot, content in outputs.items():
            _write_file(getattr(paths, slot), content, fps, audio_path if slot in AUDIO_SLOTS else None, overwrite)
        record = {
            **asdict(settings),
            **(extra_settings or {}),
            "fps": fps,
            "audio": None if audio_path is None else str(audio_path),
            "outputs": paths.as_dict(),
        }
        with atomic_output(paths.settings, overwrite) as temporary:
            temporary.write_text(json.dumps(record, indent=2) + "\n")
    except BaseException:
        for path in paths.as_dict().values():
            if Path(path) not in existing:
                Path(path).unlink(missing_ok=True)
        for parent in created:  # deepest first; only if nothing else was put there
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise
    return paths


def _write_file(path: Path, content: Any, fps: float, audio_path: str | Path | None, overwrite: bool) -> None:
    """One file, atomically, by its suffix: an mp4 (silent, then with ``audio_path`` muxed in), a png or an npy."""
    if path.suffix == ".npy":
        with atomic_output(path, overwrite) as temporary:
            with open(temporary, "wb") as handle:
                np.save(handle, np.asarray(content))
    elif path.suffix == ".png":
        save_png(path, content if isinstance(content, Image.Image) else Image.fromarray(content), overwrite)
    elif audio_path is None:
        write_video(path, content, fps=fps, overwrite=overwrite)
    else:
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".silent.") as scratch:
            silent = write_video(os.path.join(scratch, path.name), content, fps=fps)
            mux_audio(silent, audio_path, path, overwrite=overwrite, keep_all_frames=True)
