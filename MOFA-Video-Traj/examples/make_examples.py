"""Draws the demo's example: ``hills.png`` (a landscape made here, no third-party media) and
``hills_tracks.json`` (its preset trajectories: the sun rises, the cloud drifts, the tree top sways).

    python examples/make_examples.py     # rewrites both files next to this script
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
TRACKS = [
    [[400, 120], [410, 95], [420, 75]],  # the sun rises to the right
    [[150, 90], [185, 88], [205, 92]],  # the cloud drifts
    [[110, 260], [125, 255]],  # the tree top sways
    [[256, 470]],  # the foreground stays put
]


def draw_hills(width: int = 512, height: int = 512) -> np.ndarray:
    """``(height, width, 3)`` uint8 RGB: sky gradient, sun, cloud, two hills, a tree."""
    rows = np.linspace(0, 1, height)[:, None, None]
    image = ((1 - rows) * np.array([110, 170, 240]) + rows * np.array([200, 225, 250])).repeat(width, axis=1)
    image = np.ascontiguousarray(image.astype(np.uint8))
    cv2.circle(image, (400, 120), 40, (255, 210, 60), -1)
    for dx, dy, r in ((-30, 5, 22), (0, -8, 28), (30, 5, 22)):
        cv2.circle(image, (150 + dx, 90 + dy), r, (250, 250, 250), -1)
    cv2.ellipse(image, (130, 520), (330, 210), 0, 180, 360, (70, 150, 60), -1)
    cv2.ellipse(image, (420, 540), (300, 190), 0, 180, 360, (90, 170, 70), -1)
    cv2.rectangle(image, (102, 280), (118, 360), (110, 70, 40), -1)
    cv2.circle(image, (110, 260), 36, (40, 110, 40), -1)
    return cv2.GaussianBlur(image, (0, 0), 1.0)


def main() -> None:
    cv2.imwrite(str(HERE / "hills.png"), draw_hills()[..., ::-1])
    (HERE / "hills_tracks.json").write_text(json.dumps(TRACKS) + "\n")


if __name__ == "__main__":
    main()
