"""Deterministic stand-in for the video-driven landmark generator (tiny / offline mode).

A schematic 68-point face centred in the portrait follows two signals measured on the driving video, with no
face detector and no weights:

- the head moves with the video's global translation relative to its first frame (phase correlation),
  rescaled from video to portrait pixels and clipped to a fifth of the face size;
- the mouth opens with the frame-to-frame change (mean absolute difference), scaled so the most changing
  frame opens it fully.

Frame 0 of the result is the portrait's neutral face; frame ``i >= 1`` follows video frame ``i - 1``, the layout
of the real generator. The result only exercises the machinery.
"""

from __future__ import annotations

import cv2
import numpy as np

from aniportrait.synthetic import template_face

ANALYSIS_SIZE = 64
"""Side of the grey square every video frame is reduced to before measuring motion."""
MAX_SHIFT_FRACTION = 0.2
"""Largest head shift, as a fraction of the face size."""


def _grey_frames(frames: np.ndarray) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 -> ``(T, S, S)`` float32 grey in [0, 1] (S = ``ANALYSIS_SIZE``)."""
    return (
        np.stack(
            [
                cv2.resize(
                    cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY),
                    (ANALYSIS_SIZE, ANALYSIS_SIZE),
                    interpolation=cv2.INTER_AREA,
                )
                for frame in frames
            ]
        ).astype(np.float32)
        / 255.0
    )


def video_motion(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame motion signals of a driving video.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB.

    Returns:
        ``(shifts, activity)``: ``shifts`` ``(T, 2)`` float64 translation ``(dx, dy)`` of each frame relative to
        frame 0 as a fraction of the frame's width and height (frame 0 is ``(0, 0)``); ``activity`` ``(T,)`` in
        [0, 1], the mean absolute change from the previous frame over the largest such change (frame 0 is 0).
    """
    grey = _grey_frames(np.asarray(frames))
    change = np.concatenate([[0.0], np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2))])
    window = cv2.createHanningWindow((ANALYSIS_SIZE, ANALYSIS_SIZE), cv2.CV_32F)
    shifts = np.zeros((len(grey), 2))
    for index in range(1, len(grey)):
        (dx, dy), _ = cv2.phaseCorrelate(grey[0].copy(), grey[index].copy(), window)  # it may write into its inputs
        shifts[index] = (dx / ANALYSIS_SIZE, dy / ANALYSIS_SIZE)
    return shifts, change / max(float(change.max()), 1e-12)


def synthetic_video_landmarks(width: int, height: int, frames: np.ndarray) -> np.ndarray:
    """Landmarks of a schematic face on a ``width`` x ``height`` portrait, driven by a video's motion.

    Args:
        width, height: portrait size in pixels.
        frames: ``(T, H_v, W_v, 3)`` uint8 RGB driving frames.

    Returns:
        float64 ``(1 + T, 68, 2)`` landmarks in portrait pixels.
    """
    shifts, activity = video_motion(frames)
    face_size = 0.5 * min(width, height)
    centre = np.array([0.5 * width, 0.45 * height])
    limit = MAX_SHIFT_FRACTION * face_size
    offsets = np.clip(shifts * np.array([width, height]), -limit, limit)
    landmarks = [template_face(0.0) * face_size + centre]
    for offset, opening in zip(offsets, activity):
        landmarks.append(template_face(float(opening)) * face_size + centre + offset)
    return np.stack(landmarks)
