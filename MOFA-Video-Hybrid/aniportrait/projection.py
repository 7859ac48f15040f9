# Copied from MOFA-Video-Keypoint/aniportrait/projection.py
"""Mesh sequence -> 2D landmarks: head-pose transform, MediaPipe perspective camera, 68-point subset."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from aniportrait.face_mesh import FAR_PLANE, NEAR_PLANE, VERTICAL_FOV_DEGREES

# MediaPipe face-mesh vertex for each of the 68 iBUG-style points, in 68-point order.
MEDIAPIPE_TO_68 = np.array(
    [234, 93, 132, 58, 172, 136, 150, 176, 152, 400, 379, 365, 397, 288, 361, 323, 454]  # jaw
    + [70, 63, 105, 66, 107]  # right brow
    + [336, 296, 334, 293, 300]  # left brow
    + [168, 6, 195, 4]  # nose bridge
    + [239, 241, 19, 461, 459]  # nose bottom
    + [33, 160, 158, 133, 153, 144]  # right eye
    + [362, 385, 387, 263, 373, 380]  # left eye
    + [61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91]  # outer lips
    + [78, 81, 13, 311, 308, 402, 14, 178],  # inner lips
    dtype=np.int64,
)


def perspective_matrix(aspect_ratio: float) -> np.ndarray:
    """(4, 4) camera matrix applied to row vectors: `clip = [x, y, z, 1] @ P`.

    OpenGL-style perspective (vertical FOV 63 deg, near 1, far 10000, `aspect_ratio` = width / height)
    with y flipped for a top-left image origin. As the released landmark generator does, the
    column-convention matrix is applied to row vectors, so `w = z * far * near / (near - far)`, which
    is -1.0001 * z rather than exactly -z; the entries are float32-rounded like the original's.
    """
    focal = 1.0 / np.tan(np.deg2rad(VERTICAL_FOV_DEGREES) / 2.0)
    depth_scale = 1.0 / (NEAR_PLANE - FAR_PLANE)
    matrix = np.zeros((4, 4), dtype=np.float32)
    matrix[0, 0] = focal / aspect_ratio
    matrix[1, 1] = -focal
    matrix[2, 2] = (NEAR_PLANE + FAR_PLANE) * depth_scale
    matrix[3, 2] = -1.0
    matrix[2, 3] = FAR_PLANE * NEAR_PLANE * depth_scale
    return matrix.astype(np.float64)


def pose_to_matrix(pose: np.ndarray) -> np.ndarray:
    """(T, 6) head poses (rx, ry, rz in degrees as extrinsic 'xyz' Euler angles; tx, ty, tz) -> (T, 4, 4)."""
    pose = np.atleast_2d(pose)
    matrices = np.tile(np.eye(4), (pose.shape[0], 1, 1))
    matrices[:, :3, :3] = Rotation.from_euler("xyz", pose[:, :3], degrees=True).as_matrix()
    matrices[:, :3, 3] = pose[:, 3:6]
    return matrices


def project_mesh_sequence(
    vertices: np.ndarray, pose_matrix: np.ndarray, head_poses: np.ndarray, width: int, height: int
) -> np.ndarray:
    """Project per-frame meshes into the image.

    vertices: (T, V, 3) meshes in the canonical (pose-free) frame; pose_matrix: (4, 4) reference head
    pose; head_poses: (T, 6) per-frame pose deltas. Returns (T, V, 2) pixel coordinates (x, y).
    """
    clip_from_row = perspective_matrix(width / height)
    transforms = pose_matrix[None] @ pose_to_matrix(head_poses)  # (T, 4, 4)
    homogeneous = np.concatenate([vertices, np.ones(vertices.shape[:2] + (1,))], axis=2)
    clip = homogeneous @ transforms.transpose(0, 2, 1) @ clip_from_row
    ndc = clip[..., :2] / clip[..., 3:4]
    return (ndc + 1.0) * 0.5 * np.array([width, height])


def moving_average(sequence: np.ndarray, window: int = 7) -> np.ndarray:
    """Centred moving average along axis 0, the window truncated at both ends. (T, D) -> (T, D)."""
    half = window // 2
    length = sequence.shape[0]
    return np.stack([sequence[max(0, i - half) : min(length, i + half + 1)].mean(axis=0) for i in range(length)])


def to_68_points(mesh_points: np.ndarray) -> np.ndarray:
    """(T, 468 or 478, 2) MediaPipe points -> (T, 68, 2)."""
    return mesh_points[:, MEDIAPIPE_TO_68]
