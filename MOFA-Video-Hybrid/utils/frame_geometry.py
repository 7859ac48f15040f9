"""Input-image pixels of the headless Hybrid CLI (drags, painted masks) on the generation frame, which is the input
with its short side scaled and centre-cropped (``HybridAnimator.prepare_image``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import InputError
from .video_io import load_image


@dataclass(frozen=True)
class FrameGeometry:
    """How input-image pixels map to the generation frame (short side scaled, then centre-cropped):
    ``frame = input * scale - (left, top)``."""

    scale: float
    left: float
    top: float
    frame_size: tuple[int, int]

    @classmethod
    def between(cls, image_size: tuple[int, int], frame_size: tuple[int, int]) -> FrameGeometry:
        scale = min(frame_size) / min(image_size)
        left, top = ((image_size[axis] * scale - frame_size[axis]) / 2 for axis in (0, 1))
        return cls(scale, left, top, frame_size)

    def map_tracks(self, tracks: list) -> list[list[tuple[float, float]]]:
        """Tracks of ``[x, y]`` input pixels in frame pixels.

        Raises:
            InputError: a click lies in the border the crop cuts away.
        """
        mapped = []
        for index, track in enumerate(tracks):
            points = [(float(x) * self.scale - self.left, float(y) * self.scale - self.top) for x, y in track]
            for number, (x, y) in enumerate(points):
                if not (0 <= x < self.frame_size[0] and 0 <= y < self.frame_size[1]):
                    raise InputError(f"track {index}, click {number}: {tuple(track[number])} lies in the border "
                                     "cropped away")  # fmt: skip
            mapped.append(points)
        return mapped

    def map_mask(self, mask: np.ndarray) -> np.ndarray:
        """An ``(H, W)`` 0/255 mask of the input's size as a mask of the frame (nearest neighbour)."""
        height, width = mask.shape
        resized = Image.fromarray(mask).resize(
            (round(width * self.scale), round(height * self.scale)), Image.Resampling.NEAREST
        )
        left, top = round(self.left), round(self.top)
        return np.asarray(resized.crop((left, top, left + self.frame_size[0], top + self.frame_size[1])))


def read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A painted mask image of the input's ``size`` as ``(H, W)`` uint8 0/255 (brighter than 127 = inside).

    Raises:
        InputError: unreadable, or another size than the input image.
    """
    mask = np.asarray(load_image(path).convert("L"))
    if mask.shape != (size[1], size[0]):
        raise InputError(f"landmark mask {path} is {mask.shape[1]}x{mask.shape[0]}, the image {size[0]}x{size[1]}: "
                         "they must match")  # fmt: skip
    return np.where(mask > 127, 255, 0).astype(np.uint8)
