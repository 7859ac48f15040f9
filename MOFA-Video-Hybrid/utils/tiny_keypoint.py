# Copied from MOFA-Video-Keypoint/utils/tiny_keypoint.py
"""Tiny, seeded stand-ins for the Keypoint-only components (tests and ``--tiny`` runs); see :mod:`utils.tiny`.

- :func:`tiny_ldmk_controlnet`: the landmark adapter at toy widths.
- The SadTalker (3DMM) landmark path without weight files: a hand-made 68-point face (model units: decimetres,
  y up, +z towards the camera, centred on its centroid) serves as the face model's mean shape and the alignment
  template, and :class:`CenteredFaceDetector` "finds" that face centred in any image. Its networks are full size
  with seeded random weights; the regressor's output layers start at zero (as Deep3DFaceRecon initialises them),
  so a tiny fit is the frontal mean face. Results are geometrically consistent but carry no information about
  the real image or audio (:func:`tiny_landmarker`).

Nothing heavy is imported until a builder is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from utils.tiny import TINY_CONDITIONING_EMBEDDING_OUT_CHANNELS, randomise_zero_initialised_layers, tiny_unet

if TYPE_CHECKING:
    from models.ldmk_controlnet import LandmarkFlowControlNet
    from models.unet_spatio_temporal_condition_controlnet import UNetSpatioTemporalConditionControlNetModel
    from sadtalker_audio2pose.audio2exp import Audio2ExpNet
    from sadtalker_audio2pose.audio2pose import Audio2PoseNet
    from sadtalker_audio2pose.bfm import BFMLandmarks
    from sadtalker_audio2pose.face_crop import LandmarkDetector
    from sadtalker_audio2pose.face_recon import FaceReconNet
    from sadtalker_audio2pose.pipeline import FaceCoefficientLandmarker

TINY_LANDMARK_EMBEDDING_OUT_CHANNELS = (8, 16)  # one stride-2 conv, like the tiny condition embedding


def tiny_ldmk_controlnet(
    seed: int = 0, unet: UNetSpatioTemporalConditionControlNetModel | None = None
) -> LandmarkFlowControlNet:
    """Landmark adapter initialised from ``unet`` (default ``tiny_unet(seed)``), matting hourglass 8..32 wide.

    Layers a fresh adapter zero-initialises get small random weights, so the flow and the pose images
    visibly change its residuals.
    """
    from models.ldmk_controlnet import LandmarkFlowControlNet

    unet = tiny_unet(seed) if unet is None else unet
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 2)
        controlnet = LandmarkFlowControlNet.from_unet(
            unet,
            conditioning_embedding_out_channels=TINY_CONDITIONING_EMBEDDING_OUT_CHANNELS,
            landmark_embedding_out_channels=TINY_LANDMARK_EMBEDDING_OUT_CHANNELS,
            matting_block_expansion=8,
            matting_max_features=32,
        )
        randomise_zero_initialised_layers(
            [
                controlnet.controlnet_cond_embedding.conv_out,
                controlnet.controlnet_ldmk_embedding.conv_out,
                *controlnet.zero_outs.values(),
                *controlnet.controlnet_down_blocks,
                controlnet.controlnet_mid_block,
            ]
        )
    return controlnet.eval()


# ------------------------------------------------------------------------------------ SadTalker (3DMM) path


def _arc(center: tuple[float, float], radii: tuple[float, float], degrees: np.ndarray, z: float) -> np.ndarray:
    angles = np.deg2rad(degrees)
    return np.stack(
        [center[0] + radii[0] * np.cos(angles), center[1] + radii[1] * np.sin(angles), np.full(len(angles), z)], axis=1
    )


def _line(start: tuple[float, float, float], end: tuple[float, float, float], count: int) -> np.ndarray:
    return np.linspace(start, end, count)


def mean_face() -> np.ndarray:
    """(68, 3) iBUG-68 face in decimetres (y up, +z towards the camera), centred on its centroid."""
    parts = [
        _arc((0.0, 0.1), (0.75, 0.95), np.linspace(180, 360, 17), 0.0),  # jaw, image left to right
        _line((-0.6, 0.45, 0.15), (-0.15, 0.5, 0.2), 5),  # brow (image left)
        _line((0.15, 0.5, 0.2), (0.6, 0.45, 0.15), 5),  # brow (image right)
        _line((0.0, 0.3, 0.2), (0.0, -0.1, 0.35), 4),  # nose bridge
        _line((-0.15, -0.2, 0.22), (0.15, -0.2, 0.22), 5),  # nostrils
        _arc((-0.35, 0.25), (0.12, 0.05), np.array([180, 120, 60, 0, -60, -120]), 0.15),  # eye (image left)
        _arc((0.35, 0.25), (0.12, 0.05), np.array([180, 120, 60, 0, -60, -120]), 0.15),  # eye (image right)
        _arc((0.0, -0.45), (0.25, 0.1), 180 - np.arange(12) * 30.0, 0.2),  # outer lips
        _arc((0.0, -0.45), (0.15, 0.04), 180 - np.arange(8) * 45.0, 0.2),  # inner lips
    ]
    face = np.concatenate(parts)
    return face - face.mean(axis=0, keepdims=True)


def synthetic_bfm(num_id: int = 80, num_exp: int = 64, basis_scale: float = 0.01, seed: int = 0) -> BFMLandmarks:
    """Face model over :func:`mean_face` with small seeded random identity/expression bases."""
    from sadtalker_audio2pose.bfm import BFMLandmarks

    generator = torch.Generator().manual_seed(seed)
    id_base = torch.randn(68, 3, num_id, generator=generator) * basis_scale
    exp_base = torch.randn(68, 3, num_exp, generator=generator) * basis_scale
    return BFMLandmarks(torch.from_numpy(mean_face()), id_base, exp_base)


def synthetic_template() -> np.ndarray:
    """(5, 3) alignment template matching :func:`mean_face`."""
    from sadtalker_audio2pose.face_recon import five_points

    return five_points(mean_face())


def face_in_image(width: int, height: int, face_fraction: float = 0.5) -> np.ndarray:
    """(68, 2) pixels of :func:`mean_face` seen from the front, centred, ``face_fraction`` of the short side wide."""
    face = mean_face()
    scale = face_fraction * min(width, height) / np.ptp(face[:, 0])
    return np.stack([width / 2 + face[:, 0] * scale, height / 2 - face[:, 1] * scale], axis=1).astype(np.float32)


class CenteredFaceDetector:
    """A detector stub that reports :func:`face_in_image` for every image."""

    def __init__(self, face_fraction: float = 0.5):
        self.face_fraction = face_fraction

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return face_in_image(image.shape[1], image.shape[0], self.face_fraction)


def tiny_networks(seed: int = 0) -> tuple[FaceReconNet, Audio2ExpNet, Audio2PoseNet]:
    """Full-size networks with seeded random weights; the regressor's output layers are zero."""
    from sadtalker_audio2pose.audio2exp import Audio2ExpNet
    from sadtalker_audio2pose.audio2pose import Audio2PoseNet
    from sadtalker_audio2pose.face_recon import FaceReconNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        recon, audio2exp, audio2pose = FaceReconNet(), Audio2ExpNet(), Audio2PoseNet()
    for layer in recon.final_layers:
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    return recon, audio2exp, audio2pose


def tiny_landmarker(
    device: str | torch.device = "cpu", seed: int = 0, detector: LandmarkDetector | None = None
) -> FaceCoefficientLandmarker:
    """A :class:`FaceCoefficientLandmarker` on :func:`tiny_networks`, :func:`synthetic_bfm` and, by default,
    :class:`CenteredFaceDetector`: runs everywhere without weight files."""
    from sadtalker_audio2pose.pipeline import FaceCoefficientLandmarker

    recon, audio2exp, audio2pose = tiny_networks(seed)
    return FaceCoefficientLandmarker(
        recon,
        synthetic_bfm(seed=seed),
        synthetic_template(),
        detector if detector is not None else CenteredFaceDetector(),
        audio2exp,
        audio2pose,
        device,
    )
