"""Per-session state of the trajectory demo, as plain dicts changed by pure functions.

A session holds the preprocessed first frame, the tracks clicked so far and the motion brush:

    {"image": (H, W, 3) uint8 RGB array or None,
     "tracks": [[[x, y], ...], ...],      # clicks in image pixels; the last track is the one being drawn
     "brush": [[x, y, radius], ...],      # stamped motion-brush circles, image pixels
     "painted": (H, W) bool array or None,  # motion brush painted freehand
     "name": str}                          # the uploaded file's stem, for the names of the outputs

The motion brush is the union of the stamped circles and the painted area.

Every action returns ``(new_session, message)``: ``message`` is None when the action did what was asked
and otherwise a sentence for the user saying why nothing changed (the session is then returned as is).
The demo shows these messages; nothing here knows about Gradio.
"""

import math
from typing import TypedDict

import numpy as np

from utils.trajectories import BRUSH_RGBA, TRACK_PALETTE, draw_tracks, empty_brush, stamp_brush

NO_IMAGE_MESSAGE = "Upload an image first."
NO_TRACK_MESSAGE = (
    "Draw a trajectory first: click points on the trajectory image (the first click is where motion starts)."
)
LONG_DRAG_PX = 60
"""Displacement (pixels at a 512-pixel short side) beyond which the adapter no longer follows a drag in full."""


class Session(TypedDict):
    """One browser session's demo state (see the module docstring)."""

    image: np.ndarray | None
    tracks: list[list[list[float]]]
    brush: list[list[float]]
    painted: np.ndarray | None
    name: str


def new_session() -> Session:
    """The state before any image is uploaded."""
    return {"image": None, "tracks": [], "brush": [], "painted": None, "name": ""}


def start_session(image: np.ndarray, name: str = "image") -> Session:
    """A fresh session on a new first frame: one empty track to click into, no brush.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, already preprocessed to the generation size.
        name: what the outputs are named after (the uploaded file's stem).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 array, got {image.shape} {image.dtype}")
    return {"image": image, "tracks": [[]], "brush": [], "painted": None, "name": name}


def reset(session: Session) -> tuple[Session, str | None]:
    """Back to the freshly uploaded image: every track and the whole motion brush removed."""
    if session["image"] is None:
        return session, NO_IMAGE_MESSAGE
    return start_session(session["image"], session["name"]), None


def image_size(session: Session) -> tuple[int, int] | None:
    """``(width, height)`` of the session's image, or None before an upload."""
    if session["image"] is None:
        return None
    height, width = session["image"].shape[:2]
    return width, height


def _inside(session: Session, x: float, y: float) -> bool:
    width, height = image_size(session)
    return 0 <= x < width and 0 <= y < height


def add_click(session: Session, x: float, y: float) -> tuple[Session, str | None]:
    """Appends the click ``(x, y)`` (image pixels) to the track being drawn (the last one)."""
    if session["image"] is None:
        return session, NO_IMAGE_MESSAGE
    if not _inside(session, x, y):
        width, height = image_size(session)
        return session, f"Click ({x:g}, {y:g}) is outside the {width}x{height} image."
    tracks = [list(track) for track in session["tracks"]] or [[]]
    tracks[-1] = tracks[-1] + [[float(x), float(y)]]
    return {**session, "tracks": tracks}, None


def undo_click(session: Session) -> tuple[Session, str | None]:
    """Removes the last trajectory click; after **Add Trajectory** it goes back into the previous track."""
    if session["image"] is None:
        return session, NO_IMAGE_MESSAGE
    tracks = [list(track) for track in session["tracks"]]
    if tracks and not tracks[-1] and len(tracks) > 1:
        tracks.pop()  # undo "Add Trajectory": the next click continues the previous track
    if not tracks or not tracks[-1]:
        return session, "There is no trajectory click to undo."
    tracks[-1] = tracks[-1][:-1]
    return {**session, "tracks": tracks}, None


def long_drag_warning(session: Session) -> str | None:
    """A warning when the last click of the track being drawn lies farther from the track's first click than
    the adapter follows (``LONG_DRAG_PX`` at a 512-pixel short side, scaled to the image), else None."""
    if session["image"] is None or not session["tracks"] or len(session["tracks"][-1]) < 2:
        return None
    (x0, y0), (x1, y1) = session["tracks"][-1][0], session["tracks"][-1][-1]
    reach = math.hypot(x1 - x0, y1 - y0)
    limit = LONG_DRAG_PX * min(session["image"].shape[:2]) / 512
    if reach <= limit:
        return None
    return (
        f"This drag reaches {reach:.0f} px from its start; the adapter follows about {limit:.0f} px, "
        "so the motion will fall short. Split it into shorter drags or accept a shorter motion."
    )


def add_trajectory(session: Session) -> tuple[Session, str | None]:
    """Finishes the track being drawn and starts a new, empty one."""
    if session["image"] is None:
        return session, NO_IMAGE_MESSAGE
    if not session["tracks"] or not session["tracks"][-1]:
        return session, "The current trajectory has no points yet: click on the trajectory image to add some."
    return {**session, "tracks": session["tracks"] + [[]]}, None


def delete_last_trajectory(session: Session) -> tuple[Session, str | None]:
    """Removes the most recent track that has points; the session keeps an empty track to click into."""
    if session["image"] is None:
        return session, NO_IMAGE_MESSAGE
    drawn = completed_tracks(session)
    if not drawn:
        return session, "There is no trajectory to delete."
    return {**session, "tracks": drawn[:-1] + [[]]}, None


def undo_brush_stamp(session: Session) -> tuple[Session, str | None]:
    """Removes the last stamped motion-brush circle."""
    if session["image"] is None:
        return session, NO_IMAGE_MESSAGE
    if not session["brush"]:
        return session, "There is no motion-brush stamp to undo."
    return {**session, "brush": session["brush"][:-1]}, None


def add_brush_stamp(session: Session, x: float, y: float, radius: int) -> tuple[Session, str | None]:
    """Stamps a filled motion-brush circle of ``radius`` pixels centred on the click ``(x, y)``."""
    if session["image"] is None:
        return session, NO_IMAGE_MESSAGE
    if not _inside(session, x, y):
        width, height = image_size(session)
        return session, f"Click ({x:g}, {y:g}) is outside the {width}x{height} image."
    if radius < 1:
        return session, f"The brush radius must be at least 1 pixel, got {radius}."
    return {**session, "brush": session["brush"] + [[float(x), float(y), int(radius)]]}, None


def set_painted_brush(session: Session, painted: np.ndarray | None) -> tuple[Session, str | None]:
    """Replaces the painted part of the motion brush.

    Args:
        painted: ``(H, W)`` bool (or 0/non-zero) array, True where the user painted; None or all False
            removes the painted area.
    """
    if session["image"] is None:
        return session, NO_IMAGE_MESSAGE
    if painted is not None:
        painted = np.asarray(painted) != 0
        if painted.shape != session["image"].shape[:2]:
            width, height = image_size(session)
            painted_size = f"{painted.shape[1]}x{painted.shape[0]}"
            return session, f"The painted brush is {painted_size}, not {width}x{height} like the image."
        if not painted.any():
            painted = None
    return {**session, "painted": painted}, None


def painted_area(layers: list[np.ndarray] | None) -> np.ndarray | None:
    """Where any paint layer is not transparent: ``(H, W)`` bool, or None without layers.

    Args:
        layers: RGBA ``(H, W, 4)`` paint layers of an image editor, all the same size.
    """
    if not layers:
        return None
    return np.any([np.asarray(layer)[..., 3] > 0 for layer in layers], axis=0)


def clear_brush(session: Session) -> tuple[Session, str | None]:
    """Removes the whole motion brush (stamped and painted)."""
    if session["image"] is None:
        return session, NO_IMAGE_MESSAGE
    if not session["brush"] and session["painted"] is None:
        return session, "There is no motion brush to clear."
    return {**session, "brush": [], "painted": None}, None


def completed_tracks(session: Session) -> list[list[list[float]]]:
    """The tracks that have at least one click (one-click tracks are static pins)."""
    return [list(track) for track in session["tracks"] if track]


def tracks_for_run(session: Session) -> tuple[list[list[list[float]]], str | None]:
    """The tracks to animate with, or a message saying what is missing before a run can start."""
    if session["image"] is None:
        return [], f"{NO_IMAGE_MESSAGE} Then click on it to draw a trajectory and press Run."
    tracks = completed_tracks(session)
    if not tracks:
        return [], NO_TRACK_MESSAGE
    return tracks, None


def brush_layers(session: Session) -> tuple[np.ndarray, np.ndarray] | None:
    """The motion brush as ``(mask, viz)``: ``(H, W)`` uint8 0/255 and ``(H, W, 4)`` uint8 RGBA, or None if empty."""
    if session["image"] is None or (not session["brush"] and session["painted"] is None):
        return None
    height, width = session["image"].shape[:2]
    mask, viz = empty_brush(height, width)
    if session["painted"] is not None:
        mask[session["painted"]] = 255
        viz[session["painted"]] = BRUSH_RGBA
    for x, y, radius in session["brush"]:
        mask, viz = stamp_brush(mask, viz, (int(x), int(y)), int(radius))
    return mask, viz


def brush_mask(session: Session) -> np.ndarray | None:
    """``(H, W)`` uint8 brush mask (255 inside), or None when nothing is stamped."""
    layers = brush_layers(session)
    return None if layers is None else layers[0]


def brush_view(session: Session, opacity: float = 0.5) -> np.ndarray | None:
    """The first frame with the brush circles blended on top at ``opacity``, ``(H, W, 3)`` uint8, or None."""
    if session["image"] is None:
        return None
    layers = brush_layers(session)
    if layers is None:
        return session["image"]
    _, viz = layers
    alpha = viz[..., 3:].astype(np.float32) / 255.0 * opacity
    blended = session["image"].astype(np.float32) * (1 - alpha) + viz[..., :3].astype(np.float32) * alpha
    return np.round(blended).astype(np.uint8)


def display_scale(session: Session, long_side: int = 512) -> int:
    """The whole-number magnification that shows the image at least ``long_side`` pixels on its long side."""
    if session["image"] is None:
        return 1
    return max(1, math.ceil(long_side / max(session["image"].shape[:2])))


def magnify(image: np.ndarray, scale: int) -> np.ndarray:
    """``(H, W, ...)`` -> ``(H*scale, W*scale, ...)``, each pixel a ``scale x scale`` block."""
    return image if scale == 1 else np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def drawing_view(session: Session, scale: int = 1, opacity: float = 0.5) -> np.ndarray | None:
    """The editor's picture: the first frame magnified ``scale`` times, the motion brush blended on at
    ``opacity`` and every track in its own colour (``TRACK_PALETTE``); ``(H*scale, W*scale, 3)`` uint8, or None
    before an upload."""
    if session["image"] is None:
        return None
    return np.asarray(
        draw_tracks(magnify(brush_view(session, opacity), scale), session["tracks"], scale, TRACK_PALETTE)
    )


def describe(session: Session) -> str:
    """A one-line summary of the session for the status box."""
    if session["image"] is None:
        return NO_IMAGE_MESSAGE
    width, height = image_size(session)
    tracks = completed_tracks(session)
    clicks = sum(len(track) for track in tracks)
    summary = f"Image {width}x{height}: {len(tracks)} trajectories ({clicks} clicks)"
    if session["brush"]:
        summary += f", {len(session['brush'])} brush stamps"
    if session["painted"] is not None:
        summary += f", painted brush of {int(session['painted'].sum())} pixels"
    return summary + "."
