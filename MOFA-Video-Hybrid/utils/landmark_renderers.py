# Copied from MOFA-Video-Keypoint/utils/landmark_renderers.py
"""The audio -> landmark renderers the Keypoint and Hybrid modes share: their names, their files, and their
models, each loaded on first use and kept.

    generators = LandmarkGenerators(ckpt_dir, device)
    landmarks = generators.from_audio(pixels, waveform, "sadtalker", "portrait.png")   # (1 + N, 68, 2) pixels
    fit_only = generators.get("sadtalker-video")       # the 3DMM face fit without the audio networks

``aniportrait``: MediaPipe face mesh + audio2mesh/audio2pose heads (:mod:`aniportrait`); ``sadtalker``: a 3DMM
fit of the portrait driven by Audio2Exp + Audio2Pose (:mod:`sadtalker_audio2pose`). With ``tiny=True``
``sadtalker`` runs its real code on random weights and a synthetic face model (``tiny_landmarker``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from utils.checkpoints import SOURCES, require_files, require_mode
from utils.errors import InputError

if TYPE_CHECKING:  # the entry points read the names without importing torch
    import numpy as np
    import torch

LANDMARK_RENDERERS = ("aniportrait", "sadtalker")
"""The audio -> landmark renderers."""
GENERATORS = (*LANDMARK_RENDERERS, "sadtalker-video")
"""What :meth:`LandmarkGenerators.get` loads: the renderers, and SadTalker's face fit alone (for driving videos)."""


def check_renderer(renderer: str) -> None:
    """Raise :class:`InputError` unless ``renderer`` is one of :data:`LANDMARK_RENDERERS`."""
    if renderer not in LANDMARK_RENDERERS:
        raise InputError(f"landmark renderer must be one of {', '.join(LANDMARK_RENDERERS)}, got {renderer!r}")


def require_landmark_files(ckpt_dir: Path, renderer: str) -> None:
    """Raise :class:`CheckpointError` naming the first missing file of a landmark renderer and its fetch command
    (``make fetch MODE=keypoint`` for ``aniportrait``, ``make fetch MODE=sadtalker`` for ``sadtalker``)."""
    check_renderer(renderer)
    if renderer == "sadtalker":
        require_mode(ckpt_dir, "sadtalker")
    else:
        require_files(ckpt_dir, SOURCES["aniportrait"].local_paths(), "keypoint")


class LandmarkGenerators:
    """The landmark models of a checkpoint folder, each loaded on first use (its files checked first) and kept.

    Args:
        ckpt_dir: the ``ckpts/`` folder.
        device: where the networks run.
        tiny: ``sadtalker`` on random weights and a synthetic face model instead (no files).
    """

    def __init__(self, ckpt_dir: Path | None, device: torch.device | str, tiny: bool = False):
        self.ckpt_dir, self.device, self.tiny = ckpt_dir, device, tiny
        self._loaded: dict[str, Callable[..., np.ndarray]] = {}

    def get(self, name: str) -> Callable[..., np.ndarray]:
        """The generator ``name`` (:data:`GENERATORS`), loaded on first use.

        Raises:
            CheckpointError: its weights are missing (the message names the file and the fetch command).
        """
        if name not in self._loaded:
            self._loaded[name] = self._load(name)
        return self._loaded[name]

    def _load(self, name: str) -> Callable[..., np.ndarray]:
        if name == "aniportrait":
            from aniportrait.generator import AniPortraitLandmarkGenerator

            return AniPortraitLandmarkGenerator.from_checkpoints(self.ckpt_dir, self.device)
        if self.tiny:
            from utils.tiny_keypoint import tiny_landmarker

            return tiny_landmarker(self.device)
        from sadtalker_audio2pose import FaceCoefficientLandmarker

        require_landmark_files(self.ckpt_dir, "sadtalker")
        return FaceCoefficientLandmarker.from_checkpoints(
            self.ckpt_dir, device=self.device, with_audio=name == "sadtalker"
        )

    def from_audio(
        self, pixels: np.ndarray, waveform: np.ndarray, renderer: str, image_name: str = "image"
    ) -> np.ndarray:
        """Landmarks of the face in ``pixels`` (``(H, W, 3)`` uint8) talking along with a 16 kHz mono ``waveform``:
        ``(1 + N, 68, 2)`` float64 pixels, frame 0 the portrait's own (``aniportrait``: N = ceil(L / 640),
        ``sadtalker``: floor(L / 640)).

        Raises:
            InputError: an unknown renderer, no face (named ``image_name`` by ``aniportrait``).
            CheckpointError: a landmark-model file is missing.
        """
        check_renderer(renderer)
        generator = self.get(renderer)
        if renderer == "sadtalker":
            return generator(pixels, waveform)
        return generator(pixels, waveform, image_name)
