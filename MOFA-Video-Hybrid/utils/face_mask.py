"""The landmark mask: where the landmark adapter, rather than the trajectories, drives the video.

Three sources, and the rule that picks one (:func:`planned_source`, applied by :func:`resolve_landmark_mask`):

- ``painted``: circles the user stamped on the image;
- ``landmarks``: computed from the reference frame's 68 facial landmarks: their convex hull, dilated so the
  whole head (hairline, ears, chin edge) follows the face (:func:`face_mask_from_landmarks`);
- ``none``: no landmark control; only the trajectories drive the video.

In ``auto`` mode (the default) a painted mask wins and an empty one falls back to the landmarks' mask, so an
unpainted image still gets its face animated.

Masks are ``(H, W)`` uint8, 0 outside and 255 inside.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from .errors import InputError

MASK_MODES = ("auto", "painted", "landmarks", "none")
DEFAULT_DILATION_RATIO = 0.15
"""Default dilation of the automatic mask, as a fraction of the larger side of the landmarks' bounding box."""


class LandmarkMask(NamedTuple):
    """The mask in force and where it came from.

    Attributes:
        mask: ``(H, W)`` uint8 0/255.
        source: ``painted``, ``landmarks`` or ``none`` (an all-zero mask).
    """

    mask: np.ndarray
    source: str


def face_mask_from_landmarks(landmarks: np.ndarray, height: int, width: int, dilation: int | None = None) -> np.ndarray:
    """The filled convex hull of one frame's facial landmarks, dilated.

    Args:
        landmarks: ``(K, 2)`` points ``(x, y)`` in image pixels (K = 68 for the iBUG layout; at least 3).
        height, width: mask size.
        dilation: radius in pixels of the elliptical dilation; None = ``DEFAULT_DILATION_RATIO`` times the
            larger side of the landmarks' bounding box; 0 = the bare hull.

    Returns:
        ``(H, W)`` uint8 mask, 255 inside the (dilated) hull.

    Raises:
        InputError: fewer than 3 finite points, or a negative dilation.
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) < 3:
        raise InputError(f"a face mask needs at least 3 finite landmarks, got {len(points)}")
    if dilation is None:
        extent = points.max(axis=0) - points.min(axis=0)
        dilation = int(round(DEFAULT_DILATION_RATIO * float(extent.max())))
    if dilation < 0:
        raise InputError(f"dilation must be >= 0 pixels, got {dilation}")
    mask = np.zeros((height, width), np.uint8)
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    if dilation > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilation + 1, 2 * dilation + 1))
        mask = cv2.dilate(mask, kernel)
    return mask


def planned_source(mode: str, has_paint: bool) -> str:
    """The rule of the module docstring: ``painted``, ``landmarks`` or ``none``, the mask a run in ``mode`` uses
    (``landmarks`` still needs the reference frame's landmarks).

    Raises:
        InputError: an unknown mode.
    """
    if mode not in MASK_MODES:
        raise InputError(f"landmark mask mode must be one of {', '.join(MASK_MODES)}; got {mode!r}")
    if mode == "none" or (mode == "painted" and not has_paint):
        return "none"
    if mode == "painted" or (mode == "auto" and has_paint):
        return "painted"
    return "landmarks"


def resolve_landmark_mask(
    mode: str,
    painted: np.ndarray | None,
    reference_landmarks: np.ndarray | None,
    height: int,
    width: int,
    dilation: int | None = None,
) -> LandmarkMask:
    """Picks the landmark mask for a run.

    Args:
        mode: ``auto`` (painted if anything is painted, else from the landmarks), ``painted`` (the painted mask,
            possibly empty), ``landmarks`` (from the landmarks, ignoring paint) or ``none``.
        painted: ``(H, W)`` uint8 0/255 painted mask, or None when nothing is painted.
        reference_landmarks: ``(68, 2)`` landmarks of the reference frame in image pixels, or None.
        height, width: frame size.
        dilation: see :func:`face_mask_from_landmarks`.

    Returns:
        :class:`LandmarkMask`; ``source`` says which mask is in force (``none`` when it is empty).

    Raises:
        InputError: an unknown mode, a painted mask of the wrong size, or ``landmarks`` mode without landmarks.
    """
    if painted is not None:
        painted = np.asarray(painted)
        if painted.shape != (height, width):
            raise InputError(f"painted landmark mask is {painted.shape}, expected ({height}, {width})")
        painted = np.where(painted > 0, 255, 0).astype(np.uint8)
    source = planned_source(mode, painted is not None and bool(painted.any()))
    if source == "painted":
        return LandmarkMask(painted, "painted")
    if source == "landmarks" and reference_landmarks is not None:
        return LandmarkMask(face_mask_from_landmarks(reference_landmarks, height, width, dilation), "landmarks")
    if source == "landmarks" and mode == "landmarks":
        raise InputError("no landmarks to build the face mask from")
    return LandmarkMask(np.zeros((height, width), np.uint8), "none")


NO_MASK_DESCRIPTION = "Landmark mask: none (only the trajectories drive the video)."


def describe_mask_choice(mode: str, has_paint: bool) -> str:
    """One sentence for the UI, before a run, saying which landmark mask the run will use."""
    source = planned_source(mode, has_paint)
    if source == "painted":
        return "Landmark mask: painted (the green area follows the landmarks)."
    if source == "landmarks":
        return "Landmark mask: automatic (the face found by the landmarks, dilated, follows them; paint to override)."
    return NO_MASK_DESCRIPTION


def describe_mask(mask: LandmarkMask) -> str:
    """One sentence for the UI saying which landmark mask is in force and how much of the frame it covers."""
    coverage = 100.0 * float((mask.mask > 0).mean())
    if mask.source == "painted":
        return f"Landmark mask: painted ({coverage:.0f}% of the frame follows the landmarks)."
    if mask.source == "landmarks":
        return f"Landmark mask: automatic from the face landmarks ({coverage:.0f}% of the frame follows the landmarks)."
    return NO_MASK_DESCRIPTION
