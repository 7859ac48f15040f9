"""68-point landmark sequences -> the landmark adapter's conditions.

Given a reference image (frame 0) and landmarks ``(N, 68, 2)`` in image pixels (frame 0 = the reference's own
landmarks), as the released landmark adapter expects:

- pose images: the 15 coloured face polylines drawn on a 320x320 canvas (the training resolution, so the line
  width matches) and resized bilinearly to the frame size;
- sparse flow: each landmark's displacement from frame 0, written at its frame-0 pixel on CMP's 384x384 grid;
- dense flow: CMP propagates the sparse flow over the reference image, then it is resized (nearest) to the
  frame size and rescaled to its pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from utils.errors import InputError

if TYPE_CHECKING:
    from models.cmp import CMP

POSE_CANVAS_SIZE = 320
CMP_GRID = 384
NUM_LANDMARKS = 68

# (1-based 68-point indices of one polyline, RGB colour)
FACE_POLYLINES: tuple[tuple[tuple[int, ...], tuple[int, int, int]], ...] = (
    (tuple(range(1, 18)), (10, 200, 10)),  # face contour
    ((43, 44, 45, 46, 47, 48, 43), (180, 200, 10)),  # left eye
    ((23, 24, 25, 26, 27), (180, 220, 10)),  # left brow
    ((37, 38, 39, 40, 41, 42, 37), (10, 200, 180)),  # right eye
    ((18, 19, 20, 21, 22), (10, 220, 180)),  # right brow
    ((28, 29, 30, 31), (10, 200, 250)),  # nose bridge
    ((32, 33, 34, 35, 36), (250, 200, 10)),  # nose bottom
    ((55, 56, 57, 58), (10, 180, 20)),  # lips, outer bottom left
    ((49, 60, 59, 58), (20, 10, 180)),  # lips, outer bottom right
    ((65, 66, 67), (100, 100, 30)),  # lips, inner bottom left
    ((61, 68, 67), (100, 150, 50)),  # lips, inner bottom right
    ((52, 53, 54, 55), (20, 80, 100)),  # lips, outer top left
    ((52, 51, 50, 49), (80, 100, 20)),  # lips, outer top right
    ((63, 64, 65), (120, 100, 200)),  # lips, inner top left
    ((63, 62, 61), (150, 120, 100)),  # lips, inner top right
)


@dataclass
class LandmarkConditions:
    """What the landmark adapter needs for one video (:func:`build_landmark_conditions`).

    pose_images: ``(1, N, 3, H, W)`` float32 CPU tensor in [0, 1], frame 0 the reference pose.
    controlnet_flow: ``(1, N-1, 2, H, W)`` float32 flow from frame 0 to frames 1..N-1 in pixels (x first), on
        the CMP's device.
    sparse_flow, sparse_mask: ``(1, N-1, 2, G, G)`` CMP hints on the ``G``-pixel grid (for inspection).
    """

    pose_images: torch.Tensor
    controlnet_flow: torch.Tensor
    sparse_flow: torch.Tensor
    sparse_mask: torch.Tensor


def check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Validate a landmark sequence: float array ``(N >= 2, 68, 2)`` of finite pixel coordinates."""
    landmarks = np.asarray(landmarks)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (NUM_LANDMARKS, 2):
        raise InputError(f"landmarks must have shape (N, 68, 2), got {landmarks.shape}")
    if landmarks.shape[0] < 2:
        raise InputError(f"landmarks need at least 2 frames (the reference and one more), got {landmarks.shape[0]}")
    if not np.issubdtype(landmarks.dtype, np.number) or not np.isfinite(landmarks).all():
        raise InputError("landmarks must be finite numbers")
    return landmarks.astype(np.float64)


def draw_pose_image(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Draw the 15 face polylines (thickness 2, no points) of one frame on a black canvas.

    points: ``(68, 2)`` canvas pixels (truncated to integers, as ``int()`` does). Returns ``(height, width, 3)``
    float32 RGB in [0, 255].
    """
    canvas = np.zeros((height, width, 3), dtype=np.float32)
    for indices, colour in FACE_POLYLINES:
        polyline = points[np.asarray(indices) - 1]
        for start, end in zip(polyline[:-1], polyline[1:]):
            cv2.line(canvas, (int(start[0]), int(start[1])), (int(end[0]), int(end[1])), colour, thickness=2)
    return canvas


def render_pose_images(
    landmarks: np.ndarray, width: int, height: int, canvas_size: int = POSE_CANVAS_SIZE
) -> torch.Tensor:
    """Pose image of every frame: drawn at ``canvas_size``² then resized bilinearly to (width, height).

    landmarks: ``(N, 68, 2)`` image pixels. Returns ``(1, N, 3, height, width)`` float32 in [0, 1].
    """
    scale = np.array([canvas_size / width, canvas_size / height])
    frames = [
        cv2.resize(
            draw_pose_image(points * scale, canvas_size, canvas_size), (width, height), interpolation=cv2.INTER_LINEAR
        )
        for points in landmarks
    ]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).unsqueeze(0) / 255.0


def sparse_landmark_flow(
    landmarks: np.ndarray, width: int, height: int, grid: int = CMP_GRID, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """CMP hints on a ``grid``² canvas from a landmark sequence.

    Landmarks are scaled to the grid (in ``dtype``, the pipeline's weight dtype for parity); for every frame
    t >= 1 each landmark writes ``(dx, dy) = L_t - L_0`` at pixel ``(row, col) = (int(y_0), int(x_0))`` clipped
    to the grid, and sets the mask to 1 there. Where landmarks share a pixel the later one wins.

    Returns:
        ``(flow, mask)``, each ``(1, N-1, 2, grid, grid)`` in ``dtype``.
    """
    scaled = torch.from_numpy(landmarks).to(dtype) / torch.tensor([width, height], dtype=dtype) * grid
    displacement = (scaled[1:] - scaled[:1]).float().numpy()  # (N-1, 68, 2)
    columns = np.clip(scaled[0, :, 0].float().numpy().astype(np.int64), 0, grid - 1)
    rows = np.clip(scaled[0, :, 1].float().numpy().astype(np.int64), 0, grid - 1)
    num_flows = displacement.shape[0]
    flow = np.zeros((num_flows, grid, grid, 2), dtype=np.float32)
    mask = np.zeros((num_flows, grid, grid, 2), dtype=np.float32)
    flow[:, rows, columns] = displacement
    mask[:, rows, columns] = 1.0
    return _to_video_tensor(flow, dtype), _to_video_tensor(mask, dtype)


def _to_video_tensor(frames: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """``(T, H, W, C)`` array -> ``(1, T, C, H, W)`` tensor in ``dtype``."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).unsqueeze(0).to(dtype)


def dense_landmark_flow(
    cmp: CMP,
    image: torch.Tensor,
    sparse_flow: torch.Tensor,
    sparse_mask: torch.Tensor,
    width: int,
    height: int,
    chunk_size: int | None = 8,
) -> torch.Tensor:
    """Dense flow at the frame size from CMP hints.

    Args:
        cmp: a :class:`models.cmp.CMP` in eval mode and float32 (tiny mode: :class:`models.cmp.HintInterpolation`).
        image: ``(3, H, W)`` reference in [0, 1]; resized (nearest) to the hint grid.
        sparse_flow, sparse_mask: ``(1, N-1, 2, G, G)`` from :func:`sparse_landmark_flow`.
        width, height: frame size.
        chunk_size: hint sets per CMP call (bounds memory).

    Returns:
        ``(1, N-1, 2, height, width)`` float32 pixels of the frame: the CMP flow resized nearest, x scaled by
        ``width / G`` and y by ``height / G``.
    """
    grid = sparse_flow.shape[-1]
    device = cmp.device
    grid_image = F.interpolate(image[None].float().to(device), size=(grid, grid), mode="nearest")
    flow = cmp.dense_flow(grid_image, sparse_flow[0].to(device), sparse_mask[0].to(device), chunk_size=chunk_size)
    flow = F.interpolate(flow, size=(height, width), mode="nearest")
    flow = flow * torch.tensor([width / grid, height / grid], device=flow.device).view(1, 2, 1, 1)
    return flow.unsqueeze(0)


def landmark_hint_dtype(model_dtype: torch.dtype) -> torch.dtype:
    """The dtype landmarks are scaled to CMP's grid in: float16 when the models run in float16 (the released
    Keypoint and Hybrid runs round the scaling that way), float32 otherwise."""
    return torch.float16 if model_dtype == torch.float16 else torch.float32


def build_landmark_conditions(
    cmp: CMP,
    image: torch.Tensor,
    landmarks: np.ndarray,
    hint_dtype: torch.dtype = torch.float32,
    grid: int = CMP_GRID,
    chunk_size: int | None = 8,
) -> LandmarkConditions:
    """Pose images and landmark flow of one video: :func:`render_pose_images`, then
    :func:`sparse_landmark_flow` on a ``grid``² canvas densified by :func:`dense_landmark_flow`.

    Args:
        cmp: a :class:`models.cmp.CMP` in eval mode and float32 (tiny mode: :class:`models.cmp.HintInterpolation`).
        image: ``(3, H, W)`` reference in [0, 1]; its size is the frame size.
        landmarks: ``(N >= 2, 68, 2)`` pixels of ``image``, frame 0 the reference's own landmarks.
        hint_dtype: the dtype landmarks are scaled to the grid in (float16 gives the released fp16 run's
            rounding) and the hints' dtype.
        grid: CMP's input size ``G``.
        chunk_size: hint sets per CMP call (bounds memory).

    Returns:
        :class:`LandmarkConditions`: pose images ``(1, N, 3, H, W)`` float32 on the CPU, flow
        ``(1, N-1, 2, H, W)`` float32 on the CMP's device, hints ``(1, N-1, 2, G, G)`` in ``hint_dtype``.

    Raises:
        InputError: bad landmarks (:func:`check_landmarks`).
    """
    landmarks = check_landmarks(landmarks)
    height, width = image.shape[-2:]
    pose_images = render_pose_images(landmarks, width, height)
    sparse_flow, sparse_mask = sparse_landmark_flow(landmarks, width, height, grid, hint_dtype)
    controlnet_flow = dense_landmark_flow(cmp, image, sparse_flow, sparse_mask, width, height, chunk_size)
    return LandmarkConditions(pose_images, controlnet_flow.float(), sparse_flow, sparse_mask)


def landmark_preview_frames(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Side-by-side preview: reference image | drawn landmarks at full resolution.

    image: ``(H, W, 3)`` uint8; landmarks ``(N, 68, 2)`` pixels. Returns ``(N, H, 2W, 3)`` uint8.
    """
    height, width = image.shape[:2]
    drawings = [np.clip(draw_pose_image(points, height, width), 0, 255).astype(np.uint8) for points in landmarks]
    return np.stack([np.concatenate([image, drawing], axis=1) for drawing in drawings])


def draw_landmark_dots(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A copy of an RGB uint8 frame with each landmark as a filled dot of RGB (0, 0, 255), sized to the frame:
    radius ``round(short side / 256)`` (2 at 512 pixels; a single pixel below 128), so the dots never cover the face."""
    frame = np.ascontiguousarray(frame).copy()
    radius = round(min(frame.shape[:2]) / 256)
    for x, y in points:
        cv2.circle(frame, (int(x), int(y)), radius, (0, 0, 255), -1)
    return frame
