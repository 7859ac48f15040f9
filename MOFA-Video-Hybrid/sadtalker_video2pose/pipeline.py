"""Portrait + driving video -> 68-point landmark sequence: the video's expression and head pose on the portrait's face.

    driving video ──first face──> one crop box for every frame ──crop 256², detect, fit──> exp | angle | trans
        frames without a face: interpolated from their neighbours (with a warning)
        angle | trans: 3-frame moving average (see :func:`~.smoothing.moving_average`)
    portrait fit (identity, crop) + driving exp/angle/trans ──BFM──> 68 points in the portrait's pixels

Driving coefficients are used as they are (absolute, not relative to the first frame), so the head takes the
driving video's pose and expression. Frame 0 of the result is the portrait's own fit.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from sadtalker_audio2pose.face_crop import LandmarkDetector, crop_face
from sadtalker_audio2pose.pipeline import MOTION_COLUMNS, FaceCoefficientLandmarker
from utils.errors import InputError
from utils.video_io import read_video

from .smoothing import PoseSmoothing, interpolate_missing, moving_average

POSE_COLUMNS = slice(-6, None)
"""angle | trans inside the (N, 70) driving coefficients."""


def _describe(indices: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(index) for index in indices[:limit])
    return shown + (", …" if len(indices) > limit else "")


def video_coefficients(
    landmarker: FaceCoefficientLandmarker,
    frames: Sequence[np.ndarray] | np.ndarray,
    pose_smoothing: PoseSmoothing = "zero_padded",
) -> np.ndarray:
    """Per-frame driving coefficients (N, 70) exp | angle | trans of N (H, W, 3) uint8 RGB frames.

    Every frame is cut with the crop box of the first frame that shows a face, then fitted on its own.
    Frames whose crop has no face are interpolated from neighbouring frames with a warning.

    Raises:
        InputError: no frame shows a face.
    """
    box, first = None, 0
    for first, frame in enumerate(frames):  # noqa: B007 - ``first`` is read after the loop
        box = landmarker.find_face_box(frame)
        if box is not None:
            break
    if box is None:
        raise InputError("no face found in any frame of the driving video")
    if first > 0:
        warnings.warn(
            f"no face in driving frames 0–{first - 1}; cropping every frame around frame {first}'s face", stacklevel=2
        )
    coeffs = np.zeros((len(frames), MOTION_COLUMNS.size), dtype=np.float32)
    valid = np.zeros(len(frames), dtype=bool)
    for index, frame in enumerate(frames):
        fit = landmarker.fit_crops([crop_face(frame, box)])[0]
        if fit is not None:
            coeffs[index], valid[index] = fit[0][MOTION_COLUMNS], True
    if not valid.any():
        raise InputError("no face found in any frame of the driving video")
    if not valid.all():
        missing = np.flatnonzero(~valid)
        warnings.warn(
            f"no face in {len(missing)} of {len(frames)} driving frames ({_describe(missing)}); "
            "their expression and pose are interpolated from neighbouring frames",
            stacklevel=2,
        )
        coeffs = interpolate_missing(coeffs, valid)
    coeffs[:, POSE_COLUMNS] = moving_average(coeffs[:, POSE_COLUMNS], pose_smoothing)
    return coeffs


def video_to_landmarks(
    image: np.ndarray,
    video_path: str | Path,
    ckpt_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    pose_smoothing: PoseSmoothing = "zero_padded",
    detector: LandmarkDetector | None = None,
    landmarker: FaceCoefficientLandmarker | None = None,
) -> np.ndarray:
    """68-point landmarks of a portrait that follows a driving video's expression and head pose.

    Args:
        image: (H, W, 3) RGB portrait (uint8, or float in [0, 1]).
        video_path: driving video, any length and frame rate (one output frame per video frame).
        ckpt_dir: checkpoint folder (default ``ckpts/``, or ``$MOFA_CKPT_DIR``).
        device: torch device for the networks.
        pose_smoothing: ``zero_padded`` (as released; end frames pulled towards 0), ``unbiased`` or ``none``.
        detector: face landmark detector; default ``FaceAlignmentDetector`` with local weights.
        landmarker: use these networks instead of loading ``ckpt_dir`` (e.g.
            ``utils.tiny_keypoint.tiny_landmarker()``).
    Returns:
        (1 + N, 68, 2) float64 pixels of ``image``; frame 0 is the portrait's own fit, frame i ≥ 1 follows
        video frame i − 1.
    Raises:
        CheckpointError: a weight file is missing. InputError: no face in the portrait or in the whole video,
        or an unreadable video.
    """
    if landmarker is None:
        landmarker = FaceCoefficientLandmarker.from_checkpoints(
            ckpt_dir, device=device, detector=detector, with_audio=False
        )
    source = landmarker.fit_image(image)
    frames = read_video(video_path).frames
    return landmarker.landmarks(source, video_coefficients(landmarker, frames, pose_smoothing))
