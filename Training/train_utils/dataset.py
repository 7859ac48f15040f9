"""Video clips for training: a CSV of videos, decoded with PyAV, resized to the training size.

Two CSV layouts are accepted:

* WebVid metadata (columns ``videoid`` and ``page_dir``): the video lives at
  ``{data_root}/videos/{page_dir}/{videoid}.mp4``;
* any folder of videos (column ``path``): the path is relative to ``data_root`` unless absolute.
  ``python -m train_utils.make_csv`` writes such a CSV.

A video that is missing, cannot be decoded or is too short is skipped: the sample moves on to the
next row (as the released training did), the skip is logged, and the names of the skipped videos
travel with the batch so the trainer can count them and report a summary at the end.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import av
import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from train_utils.flow_estimation import resize_flow
from utils.errors import InputError

logger = logging.getLogger(__name__)

ResizeMode = Literal["squash", "center_crop"]
RESIZE_MODES: tuple[str, ...] = ("squash", "center_crop")
FLOW_SUFFIX = ".flow.npz"


class UnreadableVideoError(Exception):
    """A video that cannot be used for training (missing, corrupt, too short or without stored flow)."""


# What reading a video can raise for a bad file: ours, a missing or unreadable file, a corrupt stream,
# and ``streams.video[0]`` of a file without a video stream.
VIDEO_READ_ERRORS = (UnreadableVideoError, OSError, av.FFmpegError, IndexError)


@dataclass(frozen=True)
class VideoEntry:
    """One row of the training CSV.

    Attributes:
        path: where the video file is expected.
        name: a short relative name used in logs and validation file names.
    """

    path: Path
    name: str


def read_video_csv(csv_path: str | Path, data_root: str | Path) -> list[VideoEntry]:
    """Read the CSV listing the training videos.

    Args:
        csv_path: CSV with either the WebVid columns ``videoid`` and ``page_dir`` or a ``path`` column.
        data_root: folder the paths are relative to (WebVid: the folder holding ``videos/``).

    Returns:
        One entry per row with the required columns filled in.

    Raises:
        InputError: the CSV is missing, has neither layout, or lists no video.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(f"--train_csv/--val_csv: no such file {csv_path}")
    table = pd.read_csv(csv_path, dtype=str)
    data_root = Path(data_root)
    if "path" in table.columns:
        rows = table.dropna(subset=["path"])
        entries = [_entry_from_path(data_root, relpath) for relpath in rows["path"]]
    elif {"videoid", "page_dir"} <= set(table.columns):
        rows = table.dropna(subset=["videoid", "page_dir"])
        entries = [
            VideoEntry(data_root / "videos" / page_dir / f"{videoid}.mp4", f"{page_dir}/{videoid}.mp4")
            for videoid, page_dir in zip(rows["videoid"], rows["page_dir"])
        ]
    else:
        raise InputError(
            f"{csv_path}: expected a 'path' column or the WebVid columns 'videoid' and 'page_dir', "
            f"found {list(table.columns)}"
        )
    if not entries:
        raise InputError(f"{csv_path}: lists no video")
    return entries


def _entry_from_path(data_root: Path, relpath: str) -> VideoEntry:
    path = Path(relpath)
    return VideoEntry(path if path.is_absolute() else data_root / path, relpath)


def sample_frame_indices(num_video_frames: int, num_frames: int, stride: int, rng: random.Random) -> list[int]:
    """Pick ``num_frames`` frame indices ``start + stride * i`` with a random start.

    As in the released training, a video must hold ``stride * num_frames`` frames (one stride more
    than the clip spans) and the start is drawn from ``[0, num_video_frames - stride * num_frames]``.

    Raises:
        UnreadableVideoError: the video is too short.
    """
    required = stride * num_frames
    if num_video_frames < required:
        raise UnreadableVideoError(f"has {num_video_frames} frames, needs {required}")
    start = rng.randint(0, num_video_frames - required)
    return [start + stride * i for i in range(num_frames)]


def count_video_frames(path: Path) -> int:
    """Number of frames of the first video stream (container metadata, else counted packets)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames > 0:
            return stream.frames
        return sum(1 for packet in container.demux(stream) if packet.size > 0)


def decode_frames(path: Path, indices: Sequence[int]) -> list[Image.Image]:
    """Decode the frames at ``indices`` (increasing) of the first video stream as RGB images.

    Raises:
        UnreadableVideoError: the stream ends before the last index.
    """
    wanted = {frame_index: position for position, frame_index in enumerate(indices)}
    frames: list[Image.Image | None] = [None] * len(indices)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame_index, frame in enumerate(container.decode(stream)):
            if frame_index in wanted:
                frames[wanted[frame_index]] = frame.to_image()
            if frame_index >= indices[-1]:
                break
    if any(frame is None for frame in frames):
        raise UnreadableVideoError(f"stream ended before frame {indices[-1]}")
    return frames


@dataclass(frozen=True)
class ResizeGeometry:
    """How a source frame of ``source_size`` becomes a training frame of ``(height, width)``.

    The frame is resized to ``resized_size`` (width, height) and then cropped at ``(left, top)``.
    """

    resized_size: tuple[int, int]
    left: int
    top: int
    height: int
    width: int


def resize_geometry(source_size: tuple[int, int], height: int, width: int, mode: ResizeMode) -> ResizeGeometry:
    """Geometry for ``squash`` (stretch to the target, the released training) or ``center_crop``.

    Args:
        source_size: (width, height) of the source frame.
    """
    if mode == "squash":
        return ResizeGeometry((width, height), 0, 0, height, width)
    if mode == "center_crop":
        source_width, source_height = source_size
        scale = max(width / source_width, height / source_height)
        resized = (max(width, math.ceil(source_width * scale)), max(height, math.ceil(source_height * scale)))
        return ResizeGeometry(resized, (resized[0] - width) // 2, (resized[1] - height) // 2, height, width)
    raise InputError(f"--resize_mode must be one of {RESIZE_MODES}, got {mode!r}")


def frames_to_tensor(frames: Sequence[Image.Image], geometry: ResizeGeometry) -> torch.Tensor:
    """Resize (bicubic) and crop PIL frames into a float tensor ``[T, 3, H, W]`` in [0, 1]."""
    box = (geometry.left, geometry.top, geometry.left + geometry.width, geometry.top + geometry.height)
    arrays = [np.asarray(frame.convert("RGB").resize(geometry.resized_size, Image.BICUBIC).crop(box)) for frame in frames]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255.0)


def flow_to_geometry(flow: np.ndarray, geometry: ResizeGeometry) -> torch.Tensor:
    """Bring a stored flow covering the whole source frame onto the training frame.

    Args:
        flow: ``[T-1, 2, h, w]`` displacements in pixels of an ``h x w`` grid.

    Returns:
        ``[T-1, 2, H, W]`` float32 displacements in training-frame pixels (nearest resize, scaled).
    """
    resized_width, resized_height = geometry.resized_size
    flow_tensor = torch.from_numpy(np.asarray(flow, dtype=np.float32))
    flow_tensor = resize_flow(flow_tensor, (resized_height, resized_width), mode="nearest")
    return flow_tensor[
        ..., geometry.top : geometry.top + geometry.height, geometry.left : geometry.left + geometry.width
    ].contiguous()


def precomputed_flow_path(video_path: Path) -> Path:
    """Where the flow of ``video_path`` is stored: next to it, ``clip.mp4 -> clip.flow.npz``."""
    return video_path.with_suffix(FLOW_SUFFIX)


class VideoClipDataset(Dataset):
    """Clips of ``num_frames`` frames, ``sample_stride`` apart, from a list of videos.

    Each item is a dict:

    * ``pixel_values``: ``[T, 3, H, W]`` float32 in [0, 1];
    * ``video_name``: the entry's name;
    * ``skipped``: names of the entries tried and skipped before this one (usually empty);
    * ``flow`` (only with ``use_precomputed_flow``): ``[T-1, 2, H, W]`` pixels, frame 0 to frame t.

    The random start of a clip depends only on ``(seed, epoch, index)``, so a resumed run and a run
    with any number of loader workers see the same clips.

    Args:
        entries: the videos (see :func:`read_video_csv`).
        num_frames: frames per clip (T).
        sample_stride: distance between sampled frames.
        height, width: training size.
        resize_mode: ``squash`` (the released training) or ``center_crop`` (keeps the aspect ratio).
        seed: base seed of the clip starts.
        use_precomputed_flow: read ``<video>.flow.npz`` (see :mod:`train_utils.precompute_flow`) and
            use its frame indices instead of a random start.
    """

    def __init__(
        self,
        entries: Sequence[VideoEntry],
        num_frames: int,
        sample_stride: int,
        height: int,
        width: int,
        resize_mode: ResizeMode = "squash",
        seed: int = 0,
        use_precomputed_flow: bool = False,
    ) -> None:
        if not entries:
            raise InputError("the dataset lists no video")
        if num_frames < 2 or sample_stride < 1:
            raise InputError(f"--num_frames must be >= 2 and --sample_stride >= 1, got {num_frames}, {sample_stride}")
        if resize_mode not in RESIZE_MODES:
            raise InputError(f"--resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
        self.entries = list(entries)
        self.num_frames = num_frames
        self.sample_stride = sample_stride
        self.height = height
        self.width = width
        self.resize_mode = resize_mode
        self.seed = seed
        self.use_precomputed_flow = use_precomputed_flow
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose clip starts are drawn (call before iterating an epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        skipped: list[str] = []
        for attempt in range(len(self.entries)):
            entry = self.entries[(index + attempt) % len(self.entries)]
            try:
                sample = self._load(entry, index)
            except VIDEO_READ_ERRORS as error:
                logger.warning("skipping video %s: %s", entry.name, error)
                skipped.append(entry.name)
                continue
            sample["skipped"] = skipped
            return sample
        raise InputError(f"none of the {len(self.entries)} videos could be read (see the warnings above)")

    def _load(self, entry: VideoEntry, index: int) -> dict:
        if not entry.path.is_file():
            raise UnreadableVideoError(f"no such file {entry.path}")
        stored_flow = None
        if self.use_precomputed_flow:
            indices, stored_flow = self._read_stored_flow(entry)
        else:
            rng = random.Random(f"{self.seed}-{self.epoch}-{index}")
            indices = sample_frame_indices(count_video_frames(entry.path), self.num_frames, self.sample_stride, rng)
        frames = decode_frames(entry.path, indices)
        geometry = resize_geometry(frames[0].size, self.height, self.width, self.resize_mode)
        sample = {"pixel_values": frames_to_tensor(frames, geometry), "video_name": entry.name}
        if stored_flow is not None:
            sample["flow"] = flow_to_geometry(stored_flow, geometry)
        return sample

    def _read_stored_flow(self, entry: VideoEntry) -> tuple[list[int], np.ndarray]:
        flow_path = precomputed_flow_path(entry.path)
        if not flow_path.is_file():
            raise UnreadableVideoError(f"no precomputed flow {flow_path}")
        with np.load(flow_path) as stored:
            indices = [int(i) for i in stored["frame_indices"]]
            flow = stored["flow"]
        if len(indices) != self.num_frames or flow.shape[0] != self.num_frames - 1:
            raise UnreadableVideoError(f"{flow_path} holds {len(indices)} frames, training uses {self.num_frames}")
        return indices, flow


def collate_clips(samples: Sequence[dict]) -> dict:
    """Stack dataset items into a batch; ``video_name`` and ``skipped`` become flat lists of names."""
    batch = {
        "pixel_values": torch.stack([sample["pixel_values"] for sample in samples]),
        "video_name": [sample["video_name"] for sample in samples],
        "skipped": [name for sample in samples for name in sample["skipped"]],
    }
    if "flow" in samples[0]:
        batch["flow"] = torch.stack([sample["flow"] for sample in samples])
    return batch


class SkippedVideos:
    """Counts the videos skipped during training (each name once, plus how often it was hit)."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.hits = 0

    def add(self, names: Sequence[str]) -> None:
        self.names.update(names)
        self.hits += len(names)

    def summary(self) -> str:
        if not self.names:
            return "no video was skipped"
        return f"skipped {len(self.names)} unreadable or too-short videos ({self.hits} times in all)"
