"""Synthetic training videos (a textured square sliding over a gradient) for `--tiny` runs and tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from utils.video_io import write_video

SYNTHETIC_FPS = 8


def moving_square_frames(
    num_frames: int, height: int, width: int, velocity: tuple[float, float], seed: int = 0
) -> np.ndarray:
    """Frames of a checkered square moving at a constant ``velocity`` (dx, dy) pixels per frame.

    Returns:
        ``[T, H, W, 3]`` uint8 RGB.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    background = np.stack([cols / max(width - 1, 1), rows / max(height - 1, 1), np.full((height, width), 0.5)], axis=-1)
    side = max(4, min(height, width) // 4)
    colour_a, colour_b = rng.uniform(0.0, 1.0, size=(2, 3))
    start_x, start_y = rng.uniform(0, width - side), rng.uniform(0, height - side)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        left = int(round(start_x + velocity[0] * t)) % width
        top = int(round(start_y + velocity[1] * t)) % height
        square_rows = (rows - top) % height
        square_cols = (cols - left) % width
        inside = (square_rows < side) & (square_cols < side)
        checker = ((square_rows // 4 + square_cols // 4) % 2).astype(bool)
        image = background.copy()
        image[inside & checker] = colour_a
        image[inside & ~checker] = colour_b
        frames[t] = np.clip(image * 255.0, 0, 255).astype(np.uint8)
    return frames


def make_synthetic_dataset(
    root: str | Path, num_videos: int = 2, num_frames: int = 40, height: int = 64, width: int = 64, seed: int = 0
) -> Path:
    """Write ``num_videos`` moving-square mp4s under ``root/videos/synthetic/`` and a WebVid-style CSV.

    Returns:
        The path of ``root/train.csv`` (columns ``videoid, page_dir, name``).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(num_videos):
        velocity = tuple(float(v) for v in rng.uniform(-2.0, 2.0, size=2))
        videoid = f"clip{index:03d}"
        frames = moving_square_frames(num_frames, height, width, velocity, seed=seed + index)
        write_video(root / "videos" / "synthetic" / f"{videoid}.mp4", frames, SYNTHETIC_FPS, overwrite=True)
        rows.append({"videoid": videoid, "page_dir": "synthetic", "name": f"moving square {index}"})
    csv_path = root / "train.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["videoid", "page_dir", "name"])
        writer.writeheader()
        writer.writerows(rows)
    return csv_path
