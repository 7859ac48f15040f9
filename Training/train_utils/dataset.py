"""Video clips for training: a CSV of videos, decoded with PyAV, resized to the training size.

Two CSV layouts are accepted:

* WebVid metadata (columns ``videoid`` and ``page_dir``): the video lives at
  ``{data_root}/videos/{page_dir}/{videoid}.mp4``;
* any folder of videos (column ``path``): the path is relative to ``data_root`` unless absolute.
  ``python -m train_utils.make_csv`` writes such a CSV.

Rows whose file is missing or empty are left out before training (:func:`present_entries`), so an
epoch counts only clips that can exist. A video that still cannot be decoded or is too short is
skipped: the sample is replaced by another row drawn at random (the released training took the next
row, which made that row twice as likely), and the skipped names and reasons travel with the batch so
the trainer can warn once per video and list them at the end.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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


def read_video_csv(csv_path: str | Path, data_root: str | Path, flag: str = "--train_csv") -> list[VideoEntry]:
    """Read the CSV listing the training videos.

    Args:
        csv_path: CSV with either the WebVid columns ``videoid`` and ``page_dir`` or a ``path`` column.
        data_root: folder the paths are relative to (WebVid: the folder holding ``videos/``).
        flag: the option that named the CSV (for messages).

    Returns:
        One entry per row with the required columns filled in.

    Raises:
        InputError: the CSV is missing, has neither layout, or lists no video.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(f"{flag}: no such file {csv_path}")
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
            f"{flag} {csv_path}: expected a 'path' column or the WebVid columns 'videoid' and 'page_dir', "
            f"found {list(table.columns)}"
        )
    if not entries:
        raise InputError(f"{flag} {csv_path}: lists no video")
    return entries


def present_entries(entries: Sequence[VideoEntry]) -> tuple[list[VideoEntry], list[tuple[str, str]]]:
    """Split the rows into those whose file exists and is not empty, and ``(name, reason)`` of the others."""
    present, absent = [], []
    for entry in entries:
        if not entry.path.is_file():
            absent.append((entry.name, "no such file"))
        elif entry.path.stat().st_size == 0:
            absent.append((entry.name, "empty file"))
        else:
            present.append(entry)
    return present, absent


def describe_read_error(error: Exception) -> str:
    """A short reason for a video that cannot be read, without errno numbers or library prefixes."""
    if isinstance(error, UnreadableVideoError):
        return str(error)
    if isinstance(error, IndexError):
        return "has no video stream"
    reason = getattr(error, "strerror", None) or type(error).__name__
    return f"cannot be decoded ({reason})" if isinstance(error, av.FFmpegError) else f"cannot be read ({reason})"


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
    arrays = [
        np.asarray(frame.convert("RGB").resize(geometry.resized_size, Image.BICUBIC).crop(box)) for frame in frames
    ]
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
    * ``skipped``: ``(name, reason)`` of the entries tried and skipped before this one (usually empty);
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
        skipped: list[tuple[str, str]] = []
        for position in self._replacement_order(index):
            entry = self.entries[position]
            try:
                sample = self._load(entry, index)
            except VIDEO_READ_ERRORS as error:
                logger.debug("skipping video %s: %s", entry.name, error)
                skipped.append((entry.name, describe_read_error(error)))
                continue
            sample["skipped"] = skipped
            return sample
        names = ", ".join(sorted({name for name, _ in skipped})[:3])
        raise InputError(f"none of the {len(self.entries)} videos could be read ({len(skipped)} tries; e.g. {names})")

    def _replacement_order(self, index: int) -> Iterator[int]:
        """``index``, then every other row once, in an order drawn from (seed, epoch, index): a random stride
        coprime with the length, so a broken row's draw goes to a random row, not always to the next one."""
        count = len(self.entries)
        rng = random.Random(f"{self.seed}-{self.epoch}-{index}-replacement")
        stride = 1
        if count > 2:
            stride = rng.randrange(1, count)
            while math.gcd(stride, count) != 1:
                stride = rng.randrange(1, count)
        return ((index + step * stride) % count for step in range(count))

    def load(self, index: int) -> dict:
        """Entry ``index``'s clip of the current epoch without skipping (raises :data:`VIDEO_READ_ERRORS`)."""
        sample = self._load(self.entries[index], index)
        sample["skipped"] = []
        return sample

    def _load(self, entry: VideoEntry, index: int) -> dict:
        if not entry.path.is_file():
            raise UnreadableVideoError("no such file")
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


def select_validation_clips(dataset: VideoClipDataset, count: int, label: str) -> list[int]:
    """The first ``count`` readable videos of ``dataset`` in CSV order, each file once: chosen once per run,
    and the same after a resume (clips are drawn as in epoch 0).

    Returns:
        Entry indices.

    Raises:
        InputError: ``count > 0`` and no video can be read (the message starts with ``label``).
    """
    chosen, seen, failures = [], set(), []
    for index, entry in enumerate(dataset.entries):
        if len(chosen) == count:
            break
        if entry.path in seen:
            continue
        seen.add(entry.path)
        try:
            dataset.load(index)
        except VIDEO_READ_ERRORS as error:
            failures.append(f"{entry.name}: {describe_read_error(error)}")
            continue
        chosen.append(index)
    if count and not chosen:
        raise InputError(f"{label}: none of its {len(dataset.entries)} videos could be read (first: {failures[0]})")
    if len(chosen) < count:
        logger.warning("%s: only %d readable videos for --num_validation_images %d", label, len(chosen), count)
    return chosen


def collate_clips(samples: Sequence[dict]) -> dict:
    """Stack dataset items into a batch; ``video_name`` and ``skipped`` become flat lists."""
    batch = {
        "pixel_values": torch.stack([sample["pixel_values"] for sample in samples]),
        "video_name": [sample["video_name"] for sample in samples],
        "skipped": [skip for sample in samples for skip in sample["skipped"]],
    }
    if "flow" in samples[0]:
        batch["flow"] = torch.stack([sample["flow"] for sample in samples])
    return batch


SUMMARY_NAMES = 20


class SkippedVideos:
    """The videos skipped during training: each name once with its reason, plus how often any was hit."""

    def __init__(self) -> None:
        self.reasons: dict[str, str] = {}
        self.hits = 0

    def add(self, skipped: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Record ``(name, reason)`` pairs; returns those not seen before (to warn once about each)."""
        new = [(name, reason) for name, reason in dict(skipped).items() if name not in self.reasons]
        self.reasons.update(new)
        self.hits += len(skipped)
        return new

    def summary(self) -> str:
        """One line: how many, how often, and the names (the first 20, then a count)."""
        if not self.reasons:
            return "no video was skipped"
        names = sorted(self.reasons)
        listed = ", ".join(names[:SUMMARY_NAMES]) + (
            f" and {len(names) - SUMMARY_NAMES} more" if len(names) > SUMMARY_NAMES else ""
        )
        return f"skipped {len(names)} unreadable or too-short videos ({self.hits} times in all): {listed}"
