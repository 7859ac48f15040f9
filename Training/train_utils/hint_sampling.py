"""Sparse motion hints sampled from dense flow (stage 2), with the numbers the released weights saw.

Two strategies are combined:

* **grid**: one point every 80 px (a background ratio of 1/6400), centred in the frame;
* **watershed**: points far from motion boundaries. The boundary map is the summed Sobel gradient
  magnitude of the two flow channels, normalised by its maximum and thresholded at 0.1; the points
  are the 15x15 local maxima of its Euclidean distance transform, off the 1-px border, with points
  closer than 7 px (in both axes) thinned at random.

The hints are single pixels: ``sparse`` holds the flow at the chosen points and zero elsewhere;
``mask`` is 1 at the points. For a clip, the points are chosen once from the last flow (frame 0 to
frame T-1) and shared by every frame's flow.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage, signal

BACKGROUND_RATIO = 1.0 / 6400
NMS_KERNEL = 15
EDGE_THRESHOLD = 0.1
SOBEL_X = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float32)


def grid_stride(background_ratio: float = BACKGROUND_RATIO) -> int:
    """Grid spacing in pixels for a background sampling ratio (80 for 1/6400)."""
    return int(math.sqrt(1.0 / background_ratio))


def grid_points(height: int, width: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a centred grid: start ``(size - size // stride * stride) // 2``, step ``stride``."""
    start_row = (height - height // stride * stride) // 2
    start_col = (width - width // stride * stride) // 2
    rows, cols = np.meshgrid(np.arange(start_row, height, stride), np.arange(start_col, width, stride), indexing="ij")
    return rows.ravel(), cols.ravel()


def flow_edges(flow_hw2: np.ndarray) -> np.ndarray:
    """Sum over the flow channels of the Sobel gradient magnitude (symmetric boundary), ``[h, w]``."""
    total = np.zeros(flow_hw2.shape[:2], dtype=np.float64)
    for channel in range(flow_hw2.shape[2]):
        grad_x = signal.convolve2d(flow_hw2[:, :, channel], SOBEL_X, boundary="symm", mode="same")
        grad_y = signal.convolve2d(flow_hw2[:, :, channel], SOBEL_X.T, boundary="symm", mode="same")
        total += np.sqrt(grad_x**2 + grad_y**2)
    return total


def local_maxima(score: np.ndarray, kernel: int) -> np.ndarray:
    """``score`` where it equals its ``kernel x kernel`` neighbourhood maximum, zero elsewhere."""
    neighbourhood_max = ndimage.maximum_filter(score, footprint=np.ones((kernel, kernel)))
    return np.where(score < neighbourhood_max, 0.0, score)


def thin_neighbours(
    rows: np.ndarray, cols: np.ndarray, distance: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Drop one point (50/50) of every pair closer than ``distance`` in both axes, pairs taken in order."""
    close = (np.abs(rows[:, None] - rows[None, :]) < distance) & (np.abs(cols[:, None] - cols[None, :]) < distance)
    keep = np.ones(len(rows), dtype=bool)
    for first, second in zip(*np.nonzero(close)):
        if first != second and keep[first] and keep[second]:
            keep[first if rng.random() > 0.5 else second] = False
    return rows[keep], cols[keep]


def watershed_points(
    flow_hw2: np.ndarray, rng: np.random.Generator, nms_kernel: int = NMS_KERNEL, edge_threshold: float = EDGE_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Points far from motion boundaries (see the module docstring); none for a constant flow."""
    edges = flow_edges(flow_hw2)
    edges = edges / max(edges.max(), 0.01)
    boundary = edges > edge_threshold
    if not boundary.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    distance = ndimage.distance_transform_edt(~boundary)
    peaks = local_maxima(distance, nms_kernel)
    peaks[[0, -1], :] = 0
    peaks[:, [0, -1]] = 0
    rows, cols = np.nonzero(peaks > 0)
    return thin_neighbours(rows, cols, (nms_kernel - 1) / 2, rng)


def sample_hint_points(
    flow_hw2: np.ndarray,
    rng: np.random.Generator,
    strategies: tuple[str, ...] = ("grid", "watershed"),
    background_ratio: float = BACKGROUND_RATIO,
    nms_kernel: int = NMS_KERNEL,
) -> tuple[np.ndarray, np.ndarray]:
    """Hint locations for one dense flow.

    Large flows are analysed on a grid subsampled by ``max(1, max(h, w) // 400)``. Points of all
    strategies are concatenated (duplicates possible) and shuffled.

    Args:
        flow_hw2: ``[h, w, 2]`` flow in pixels.
        rng: source of the random thinning and order.

    Returns:
        (rows, cols) int64 arrays of the same length.
    """
    height, width = flow_hw2.shape[:2]
    step = max(1, max(height, width) // 400)
    all_rows, all_cols = [], []
    for strategy in strategies:
        if strategy == "grid":
            rows, cols = grid_points(height, width, grid_stride(background_ratio))
        elif strategy == "watershed":
            rows, cols = watershed_points(flow_hw2[::step, ::step], rng, nms_kernel)
            rows, cols = rows * step, cols * step
        else:
            raise ValueError(f"unknown hint strategy {strategy!r}; expected 'grid' or 'watershed'")
        all_rows.append(rows.astype(np.int64))
        all_cols.append(cols.astype(np.int64))
    rows, cols = np.concatenate(all_rows), np.concatenate(all_cols)
    order = rng.permutation(len(rows))
    return rows[order], cols[order]


def sample_clip_hints(flows: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse hints for a batch of clips, the points chosen from each clip's last flow.

    Args:
        flows: ``[B, T-1, 2, H, W]`` dense flow in pixels, frame 0 to frame t.
        rng: numpy generator (the trainer checkpoints its state).

    Returns:
        ``sparse`` ``[B, T-1, 2, H, W]`` (flow at the points, zero elsewhere) and ``mask`` of the same
        shape and dtype (1 at the points in both channels, for every frame).
    """
    mask = torch.zeros_like(flows)
    last_flows = flows[:, -1].permute(0, 2, 3, 1).float().cpu().numpy()
    for index, last_flow in enumerate(last_flows):
        rows, cols = sample_hint_points(last_flow, rng)
        mask[index, :, :, torch.from_numpy(rows), torch.from_numpy(cols)] = 1
    return flows * mask, mask
