"""3DMM coefficients from a face crop: 5-point POS alignment to 224², then the Deep3DFaceRecon regressor.

The regressor is a torchvision ResNet-50 without its classifier, followed by seven 1×1 convolutions whose
outputs are concatenated into 257 coefficients:

    id 80 | exp 64 | tex 80 | angle 3 (radians) | gamma 27 | trans 3
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from PIL import Image
from scipy.io import loadmat
from scipy.io.matlab import MatReadError
from torch import nn

from utils.errors import CheckpointError

RECON_SIZE = 224
"""Side of the aligned crop the regressor sees (pixels)."""
RESCALE_FACTOR = 102.0
"""Target scale of the POS fit: the template face spans this many pixels per template unit."""
COEFF_SLICES = {
    "id": slice(0, 80),
    "exp": slice(80, 144),
    "tex": slice(144, 224),
    "angle": slice(224, 227),
    "gamma": slice(227, 254),
    "trans": slice(254, 257),
}
NUM_COEFFS = 257
_HEAD_SIZES = (80, 64, 80, 3, 27, 2, 1)
_FIVE_POINT_SOURCES = ((36, 39), (42, 45), (30,), (48,), (54,))
"""68-point indices averaged into the 5 alignment points: eye centres, nose tip, mouth corners."""


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """The 5 alignment points (left eye, right eye, nose tip, left and right mouth corner) of (68, D) landmarks."""
    landmarks = np.asarray(landmarks)
    return np.stack([landmarks[list(indices)].mean(axis=0) for indices in _FIVE_POINT_SOURCES])


def load_landmark_template(path: Path) -> np.ndarray:
    """The 5-point 3D template (5, 3) from ``similarity_Lm3D_all.mat`` (variable ``lm``, 68×3)."""
    try:
        template = loadmat(str(path), variable_names=["lm"])["lm"]
    except (OSError, ValueError, KeyError, MatReadError) as error:
        raise CheckpointError(f"cannot read the landmark template {path} ({error})") from error
    return five_points(np.asarray(template, dtype=np.float64))


def solve_scale_translation(points: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares affine fit (POS) of 3D ``template`` (N, 3) onto 2D ``points`` (N, 2), y up.

    Returns:
        translation (2,) pixels and scale (pixels per template unit), the mean norm of the two projection rows.
    """
    count = len(points)
    system = np.zeros([2 * count, 8])
    system[0::2, 0:3] = template
    system[0::2, 3] = 1
    system[1::2, 4:7] = template
    system[1::2, 7] = 1
    target = np.asarray(points, dtype=np.float64).reshape(-1)
    solution = np.linalg.lstsq(system, target, rcond=None)[0]
    scale = (np.linalg.norm(solution[0:3]) + np.linalg.norm(solution[4:7])) / 2
    return np.array([solution[3], solution[7]]), float(scale)


@dataclass(frozen=True)
class Alignment:
    """How a face crop was scaled and cut to the regressor's 224² input.

    A point p of the 224² input (y down) sits at ``(p + (left, up)) / scale`` in the face crop.
    """

    scale: float
    left: int
    up: int


def align_face(
    crop: np.ndarray,
    landmarks: np.ndarray,
    template: np.ndarray,
    size: int = RECON_SIZE,
    rescale_factor: float = RESCALE_FACTOR,
) -> tuple[np.ndarray, Alignment]:
    """Scale and cut a face crop so its 5 points match the template.

    Args:
        crop: (H, W, 3) uint8 RGB face crop.
        landmarks: (68, 2) pixels of ``crop``, y down.
        template: (5, 3) from :func:`load_landmark_template`.
    Returns:
        the (size, size, 3) uint8 regressor input (zero where it leaves the crop) and its :class:`Alignment`.
    """
    height, width = crop.shape[:2]
    points = five_points(landmarks).astype(np.float64)
    points[:, 1] = height - 1 - points[:, 1]
    translation, pos_scale = solve_scale_translation(points, template)
    scale = rescale_factor / pos_scale
    scaled_w, scaled_h = int(width * scale), int(height * scale)
    left = int(np.round(scaled_w / 2 - size / 2 + (translation[0] - width / 2) * scale))
    up = int(np.round(scaled_h / 2 - size / 2 + (height / 2 - translation[1]) * scale))
    resized = Image.fromarray(crop).resize((scaled_w, scaled_h), resample=Image.BICUBIC)
    aligned = np.array(resized.crop((left, up, left + size, up + size)))
    return aligned, Alignment(scale=float(scale), left=left, up=up)


class FaceReconNet(ModelMixin, ConfigMixin):
    """Deep3DFaceRecon coefficient regressor. Attribute names follow the released ``face_3drecon`` weights."""

    @register_to_config
    def __init__(self, num_coeffs: int = NUM_COEFFS):
        super().__init__()
        if num_coeffs != sum(_HEAD_SIZES):
            raise ValueError(f"num_coeffs must be {sum(_HEAD_SIZES)}")
        backbone = torchvision.models.resnet50(weights=None)
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.final_layers = nn.ModuleList(nn.Conv2d(2048, size, kernel_size=1) for size in _HEAD_SIZES)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, 224, 224) RGB in [0, 1] -> coefficients (B, 257)."""
        features = self.backbone(images)[:, :, None, None]  # (B, 2048, 1, 1)
        return torch.cat([layer(features) for layer in self.final_layers], dim=1).flatten(1)


def split_coefficients(coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Named views of (B, 257) coefficients: id, exp, tex, angle, gamma, trans."""
    return {name: coeffs[:, part] for name, part in COEFF_SLICES.items()}
