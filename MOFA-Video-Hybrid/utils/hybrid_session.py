"""Per-session state of the Hybrid demos: the trajectory demo's state plus a landmark mask and a driving file.

A session is the trajectory demo's dict (:mod:`utils.ui_state`: image, tracks, motion brush) with two more keys:

    {"landmark_brush": [[x, y, radius], ...],   # stamped landmark-mask circles, image pixels
     "driving": str or None}                    # path of the uploaded driving audio / video

Every action returns ``(new_session, message)`` like :mod:`utils.ui_state`: ``message`` is None on success and
otherwise says why nothing changed. Nothing here knows about Gradio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import ui_state
from .trajectories import empty_brush, stamp_brush

Session = dict
LANDMARK_TINT = (0, 200, 0)
"""RGB tint of the landmark mask in the landmark view (the motion brush is blue)."""


def new_session() -> Session:
    """The state before any upload."""
    return {**ui_state.new_session(), "landmark_brush": [], "driving": None}


def start_session(image: np.ndarray, previous: Session | None = None) -> Session:
    """A fresh session on a new first frame; the driving file of ``previous`` (if any) is kept.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, already preprocessed to the generation size.
        previous: the session being replaced.
    """
    driving = previous.get("driving") if previous else None
    return {**ui_state.start_session(image), "landmark_brush": [], "driving": driving}


def set_driving(session: Session, path: str | Path, kind: str) -> tuple[Session, str | None]:
    """Records the driving ``kind`` file (``audio`` or ``video``; the caller checks it is usable); needs an
    image first."""
    if session["image"] is None:
        return session, f"{ui_state.NO_IMAGE_MESSAGE} Then upload the driving {kind}."
    return {**session, "driving": str(path)}, None


def add_landmark_stamp(session: Session, x: float, y: float, radius: int) -> tuple[Session, str | None]:
    """Stamps a filled landmark-mask circle of ``radius`` pixels centred on the click ``(x, y)``."""
    stamped, message = ui_state.add_brush_stamp({**session, "brush": session["landmark_brush"]}, x, y, radius)
    if message:
        return session, message
    return {**session, "landmark_brush": stamped["brush"]}, None


def clear_landmark_mask(session: Session) -> tuple[Session, str | None]:
    """Removes every landmark-mask circle (the automatic mask then applies in ``auto`` mode)."""
    if session["image"] is None:
        return session, ui_state.NO_IMAGE_MESSAGE
    if not session["landmark_brush"]:
        return session, "There is no painted landmark mask to clear."
    return {**session, "landmark_brush": []}, None


def painted_landmark_mask(session: Session) -> np.ndarray | None:
    """``(H, W)`` uint8 painted landmark mask (255 inside the stamped circles), or None when nothing is painted."""
    if session["image"] is None or not session["landmark_brush"]:
        return None
    mask, drawing = empty_brush(*session["image"].shape[:2])
    for x, y, radius in session["landmark_brush"]:
        mask, drawing = stamp_brush(mask, drawing, (int(x), int(y)), int(radius))
    return mask


def overlay(image: np.ndarray, mask: np.ndarray | None, tint: tuple[int, int, int], opacity: float = 0.5) -> np.ndarray:
    """``image`` with ``tint`` blended at ``opacity`` where ``mask`` is set; ``(H, W, 3)`` uint8."""
    if mask is None or not mask.any():
        return image
    alpha = (np.asarray(mask) > 0)[..., None].astype(np.float32) * opacity
    blended = image.astype(np.float32) * (1 - alpha) + np.asarray(tint, np.float32) * alpha
    return np.round(blended).astype(np.uint8)


def landmark_view(session: Session, mask: np.ndarray | None = None) -> np.ndarray | None:
    """The first frame with a landmark mask tinted green (default: the painted one), or None before an upload."""
    if session["image"] is None:
        return None
    if mask is None:
        mask = painted_landmark_mask(session)
    return overlay(session["image"], mask, LANDMARK_TINT)


def run_problem(session: Session, kind: str) -> str | None:
    """What is missing before a run (image, driving ``kind`` file), or None when a run can start.

    Trajectories are optional: without any, the trajectory adapter is asked to keep the scene still.
    """
    if session["image"] is None:
        return f"{ui_state.NO_IMAGE_MESSAGE} Then upload the driving {kind}, draw trajectories and press Run."
    if not session["driving"]:
        return f"Upload the driving {kind} first."
    return None


def describe(session: Session, kind: str) -> str:
    """A one-line summary of the session for the status box."""
    summary = ui_state.describe(session)
    if session["image"] is None:
        return summary
    summary = summary.rstrip(".")
    if session["landmark_brush"]:
        summary += f", {len(session['landmark_brush'])} landmark-mask stamps"
    driving = Path(session["driving"]).name if session["driving"] else f"no {kind} yet"
    return f"{summary}; driving {kind}: {driving}."
