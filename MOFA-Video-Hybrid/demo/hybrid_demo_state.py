"""Per-session state of the Hybrid demos: the trajectory demo's state plus a landmark mask and a driving file.

A session is the trajectory demo's dict (:mod:`demo.demo_state`: image, tracks, motion brush) with three more keys:

    {"landmark_brush": [[x, y, radius], ...],   # stamped landmark-mask circles, image pixels
     "face": (68, 2) float array or None,       # the face's landmarks found at upload, image pixels
     "driving": str or None}                    # path of the uploaded driving audio / video (kept when it
                                                # arrives before the image)

Every action returns ``(new_session, message)`` like :mod:`demo.demo_state`: ``message`` is None on success and
otherwise says why nothing changed. Nothing here knows about Gradio.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from utils.face_mask import resolve_landmark_mask
from utils.trajectories import empty_brush, stamp_brush

from . import demo_state

Session = dict
LANDMARK_TINT = (0, 200, 0)
"""RGB tint of the landmark mask in the drawing view (the motion brush is blue)."""
FACE_DOT_RGB = (255, 255, 255)
"""Colour of the face's landmarks in the drawing view."""


def new_session() -> Session:
    """The state before any upload."""
    return {**demo_state.new_session(), "landmark_brush": [], "face": None, "driving": None}


def start_session(
    image: np.ndarray, previous: Session | None = None, name: str = "image", face: np.ndarray | None = None
) -> Session:
    """A fresh session on a new first frame; the driving file of ``previous`` (if any) is kept.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, already preprocessed to the generation size.
        previous: the session being replaced.
        name: what the outputs are named after (the uploaded file's stem).
        face: ``(68, 2)`` landmarks of the face in ``image`` (pixels), or None.
    """
    driving = previous.get("driving") if previous else None
    return {**demo_state.start_session(image, name), "landmark_brush": [], "face": face, "driving": driving}


def set_driving(session: Session, path: str | Path) -> Session:
    """Records the driving file (the caller checks it is usable); before an image too, to be used once the image
    arrives."""
    return {**session, "driving": str(path)}


def reset(session: Session) -> tuple[Session, str | None]:
    """Back to the freshly uploaded image: tracks, motion brush and landmark mask removed; the face and the
    driving file stay."""
    if session["image"] is None:
        return session, demo_state.NO_IMAGE_MESSAGE
    return start_session(session["image"], session, session["name"], session["face"]), None


def undo_landmark_stamp(session: Session) -> tuple[Session, str | None]:
    """Removes the last stamped landmark-mask circle."""
    if session["image"] is None:
        return session, demo_state.NO_IMAGE_MESSAGE
    if not session["landmark_brush"]:
        return session, "There is no landmark-mask stamp to undo."
    return {**session, "landmark_brush": session["landmark_brush"][:-1]}, None


def add_landmark_stamp(session: Session, x: float, y: float, radius: int) -> tuple[Session, str | None]:
    """Stamps a filled landmark-mask circle of ``radius`` pixels centred on the click ``(x, y)``."""
    stamped, message = demo_state.add_brush_stamp({**session, "brush": session["landmark_brush"]}, x, y, radius)
    if message:
        return session, message
    return {**session, "landmark_brush": stamped["brush"]}, None


def clear_landmark_mask(session: Session) -> tuple[Session, str | None]:
    """Removes every landmark-mask circle (the automatic mask then applies in ``auto`` mode)."""
    if session["image"] is None:
        return session, demo_state.NO_IMAGE_MESSAGE
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


def planned_landmark_mask(session: Session, mode: str) -> np.ndarray | None:
    """``(H, W)`` uint8 mask a run in mask ``mode`` will use (painted, or from the face found at upload), or None
    when it is empty, by the rule of :func:`utils.face_mask.resolve_landmark_mask`."""
    if session["image"] is None:
        return None
    height, width = session["image"].shape[:2]
    mask = resolve_landmark_mask(mode, painted_landmark_mask(session), session["face"], height, width).mask
    return mask if mask.any() else None


def drawing_view(session: Session, mode: str, scale: int = 1, mask: np.ndarray | None = None) -> np.ndarray | None:
    """The editor's picture: the first frame magnified ``scale`` times with the motion brush (blue), the landmark
    mask (green: ``mask``, default the one mask ``mode`` plans), the face's landmarks (white dots) and the tracks
    (a colour each); ``(H*scale, W*scale, 3)`` uint8, or None before an upload."""
    if session["image"] is None:
        return None
    if mask is None:
        mask = planned_landmark_mask(session, mode)
    base = overlay(demo_state.brush_view(session), mask, LANDMARK_TINT)
    view = np.array(demo_state.drawing_view({**session, "image": base, "brush": [], "painted": None}, scale))
    if session["face"] is not None:
        radius = max(1, scale // 3)
        for x, y in np.asarray(session["face"]) * scale + scale // 2:
            cv2.circle(view, (int(round(x)), int(round(y))), radius, FACE_DOT_RGB, -1)
    return view


def run_problem(session: Session, kind: str) -> str | None:
    """What is missing before a run (image, driving ``kind`` file), or None when a run can start.

    Trajectories are optional: without any, the trajectory adapter is asked to keep the scene still.
    """
    if session["image"] is None:
        return f"{demo_state.NO_IMAGE_MESSAGE} Then upload the driving {kind}, draw trajectories and press Run."
    if not session["driving"]:
        return f"Upload the driving {kind} first."
    return None


def describe(session: Session, kind: str) -> str:
    """A one-line summary of the session for the status box."""
    summary = demo_state.describe(session)
    if session["image"] is None and session["driving"]:
        return f"{summary} The driving {kind} {Path(session['driving']).name} is kept for it."
    if session["image"] is None:
        return summary
    summary = summary.rstrip(".")
    if session["face"] is not None:
        summary += ", face found"
    if session["landmark_brush"]:
        summary += f", {len(session['landmark_brush'])} landmark-mask stamps"
    driving = Path(session["driving"]).name if session["driving"] else f"no {kind} yet"
    return f"{summary}; driving {kind}: {driving}."
