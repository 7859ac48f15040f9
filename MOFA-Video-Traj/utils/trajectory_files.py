"""Trajectories files of the headless CLIs: drags (and an optional motion brush) in pixels of the input image.

[[[x0, y0], [x1, y1], ...], ...]                            a list of tracks
{"tracks": [...], "brush": "mask.png"}                      plus a motion brush: a mask image of the input's
                                                            size (white = brush), relative to the JSON file
{"tracks": [...], "brush": [{"x": 120, "y": 80, "r": 30}]}  or brush circles (centre and radius in pixels)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from utils.errors import InputError, require_file
from utils.video_io import load_image


def _read_json(path: Path) -> object:
    require_file(path, "trajectories")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a trajectories JSON file (not UTF-8 text)") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path} is not valid JSON: {error}") from None


def _brush_from_circles(circles: object, width: int, height: int, path: Path) -> np.ndarray:
    """``(H, W)`` uint8 0/255 mask from ``[{"x":..,"y":..,"r":..}, ...]``."""
    import cv2

    if not isinstance(circles, list) or not circles:
        raise InputError(f'{path}: "brush" must be a mask image path or a non-empty list of {{x, y, r}} circles')
    mask = np.zeros((height, width), np.uint8)
    for index, circle in enumerate(circles):
        try:
            x, y, radius = (float(circle[key]) for key in ("x", "y", "r"))
        except (TypeError, KeyError, ValueError):
            raise InputError(f"{path}: brush circle {index} must be an object with numbers x, y and r") from None
        if radius <= 0 or not np.isfinite([x, y, radius]).all():
            raise InputError(f"{path}: brush circle {index} needs a finite centre and a positive radius")
        cv2.circle(mask, (round(x), round(y)), round(radius), 255, -1)
    return mask


def _brush_from_image(relative: str, width: int, height: int, path: Path) -> np.ndarray:
    """``(H, W)`` uint8 0/255 mask from a mask image next to the trajectories file (> 127 = brush)."""
    mask_path = path.parent / relative
    mask = np.asarray(load_image(mask_path).convert("L"))
    if mask.shape != (height, width):
        raise InputError(
            f"brush mask {mask_path} is {mask.shape[1]}x{mask.shape[0]}, the image {width}x{height}: they must match"
        )
    return np.where(mask > 127, 255, 0).astype(np.uint8)


def load_trajectories(path: Path, width: int, height: int) -> tuple[list, np.ndarray | None]:
    """Read a trajectories file (schema in the module docstring) for an image of ``width`` x ``height``.

    Returns:
        ``(tracks, brush_mask)``: tracks as lists of ``[x, y]``; the brush as an ``(H, W)`` uint8 0/255 mask or None.

    Raises:
        InputError: missing file, invalid JSON, wrong structure, or a brush that does not fit the image.
    """
    data = _read_json(path)
    brush = None
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"tracks", "brush"})
        if unknown:
            raise InputError(f'{path}: unknown keys {unknown}; expected "tracks" and optionally "brush"')
        if "tracks" not in data:
            raise InputError(f'{path}: missing "tracks"')
        if data.get("brush") is not None:
            source = data["brush"]
            brush = (
                _brush_from_image(source, width, height, path)
                if isinstance(source, str)
                else _brush_from_circles(source, width, height, path)
            )
        data = data["tracks"]
    if not isinstance(data, list):
        raise InputError(f'{path}: expected a list of tracks or an object with "tracks", got {type(data).__name__}')
    return data, brush
