"""The Basel Face Model's 68 landmark vertices: coefficients -> 3D shape -> pinhole projection -> image pixels.

Only the 68 keypoint vertices are evaluated (the mean shape is still centred on all vertices, as the
released fits expect), so projecting a frame costs a few small matrix products.

Conventions (those of Deep3DFaceRecon):
- shape = mean + id_base · id + exp_base · exp, in decimetres, model space.
- rotation R = Rz(γ) · Ry(β) · Rx(α) from angle = (α, β, γ) radians; points move as ``p @ Rᵀ + trans``.
- camera on the +z axis at distance 10 looking back: depth = 10 − z.
- pinhole with focal 1015 and principal point (112, 112) on the 224² regressor input, y pointing up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.io import loadmat
from scipy.io.matlab import MatReadError

from utils.errors import CheckpointError

from .face_crop import CROP_SIZE, CropBox
from .face_recon import RECON_SIZE, Alignment, split_coefficients

FOCAL = 1015.0
CENTER = 112.0
CAMERA_DISTANCE = 10.0


def euler_to_rotation(angles: torch.Tensor) -> torch.Tensor:
    """angles (B, 3) radians (x, y, z) -> rotation matrices (B, 3, 3) = Rz · Ry · Rx."""
    x, y, z = angles.unbind(-1)
    ones, zeros = torch.ones_like(x), torch.zeros_like(x)
    rot_x = torch.stack([ones, zeros, zeros, zeros, x.cos(), -x.sin(), zeros, x.sin(), x.cos()], -1)
    rot_y = torch.stack([y.cos(), zeros, y.sin(), zeros, ones, zeros, -y.sin(), zeros, y.cos()], -1)
    rot_z = torch.stack([z.cos(), -z.sin(), zeros, z.sin(), z.cos(), zeros, zeros, zeros, ones], -1)
    shape = (*angles.shape[:-1], 3, 3)
    return rot_z.reshape(shape) @ rot_y.reshape(shape) @ rot_x.reshape(shape)


def project_points(
    points: torch.Tensor, focal: float = FOCAL, center: float = CENTER, camera_distance: float = CAMERA_DISTANCE
) -> torch.Tensor:
    """Model-space points (B, N, 3), already posed -> (B, N, 2) regressor-input pixels, y up."""
    depth = camera_distance - points[..., 2]
    return points[..., :2] * focal / depth[..., None] + center


class BFMLandmarks:
    """The 68 landmark vertices of ``BFM_model_front.mat`` and their projection.

    Args:
        mean_shape: (68, 3) mean positions, already centred on the whole mesh's centroid.
        id_base: (68, 3, 80) identity basis.
        exp_base: (68, 3, 64) expression basis.
    """

    def __init__(self, mean_shape: torch.Tensor, id_base: torch.Tensor, exp_base: torch.Tensor):
        self.mean_shape = mean_shape.float()
        self.id_base = id_base.float()
        self.exp_base = exp_base.float()

    @classmethod
    def from_mat(cls, path: Path) -> BFMLandmarks:
        """Read ``meanshape`` (1, 3V), ``idBase`` (3V, 80), ``exBase`` (3V, 64), ``keypoints`` (68, 1-based)."""
        try:
            model = loadmat(str(path), variable_names=["meanshape", "idBase", "exBase", "keypoints"])
            mean = np.asarray(model["meanshape"], dtype=np.float64).reshape(-1, 3)
            keypoints = np.asarray(model["keypoints"]).reshape(-1).astype(np.int64) - 1
            id_base = np.asarray(model["idBase"], dtype=np.float32).reshape(len(mean), 3, -1)[keypoints]
            exp_base = np.asarray(model["exBase"], dtype=np.float32).reshape(len(mean), 3, -1)[keypoints]
        except (OSError, ValueError, KeyError, MatReadError) as error:
            raise CheckpointError(f"cannot read the face model {path} ({error})") from error
        centred = (mean - mean.mean(axis=0, keepdims=True))[keypoints]
        return cls(torch.from_numpy(centred), torch.from_numpy(id_base), torch.from_numpy(exp_base))

    def to(self, device: str | torch.device) -> BFMLandmarks:
        return BFMLandmarks(self.mean_shape.to(device), self.id_base.to(device), self.exp_base.to(device))

    def shape(self, id_coeffs: torch.Tensor, exp_coeffs: torch.Tensor) -> torch.Tensor:
        """id (B, 80), exp (B, 64) -> the 68 landmark vertices (B, 68, 3), model space."""
        return (
            self.mean_shape
            + torch.einsum("vck,bk->bvc", self.id_base, id_coeffs)
            + torch.einsum("vck,bk->bvc", self.exp_base, exp_coeffs)
        )

    def project(self, coeffs: torch.Tensor) -> torch.Tensor:
        """coeffs (B, 257) -> landmarks (B, 68, 2) on the 224² regressor input, y up."""
        parts = split_coefficients(coeffs.float())
        vertices = self.shape(parts["id"], parts["exp"])
        rotation = euler_to_rotation(parts["angle"])
        posed = vertices @ rotation.transpose(1, 2) + parts["trans"][:, None, :]
        return project_points(posed)


def to_image_pixels(
    landmarks: torch.Tensor | np.ndarray, alignment: Alignment, box: CropBox, crop_size: int = CROP_SIZE
) -> np.ndarray:
    """Map (…, 68, 2) regressor-input landmarks (y up) back to pixels of the original image.

    Undo, in order: the y flip, the 224² cut and scale (:class:`Alignment`), and the resize of ``box`` to
    ``crop_size``².
    """
    points = torch.as_tensor(landmarks).detach().cpu().double().numpy().copy()
    points[..., 1] = RECON_SIZE - points[..., 1]
    points = (points + [alignment.left, alignment.up]) / alignment.scale
    points = points * [box.width / crop_size, box.height / crop_size] + [box.left, box.top]
    return points
