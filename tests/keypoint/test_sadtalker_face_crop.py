"""Face crop box (FFHQ quad), detector weights lookup, and the two detector wrappers (mocked networks)."""

import sys
import types

import numpy as np
import pytest
import torch
from skimage import data

from sadtalker_audio2pose import face_crop
from sadtalker_audio2pose.face_crop import (
    CropBox,
    FaceAlignmentDetector,
    FacexlibDetector,
    crop_face,
    face_alignment_weights,
    face_box,
    face_quad,
)
from utils.errors import CheckpointError


def upright_face(
    eye_left=(90.0, 100.0), eye_right=(110.0, 100.0), mouth_left=(92.0, 130.0), mouth_right=(108.0, 130.0)
) -> np.ndarray:
    """68 points whose eye centres and mouth corners are the given ones (the rest do not affect the crop)."""
    landmarks = np.zeros((68, 2))
    landmarks[36:42] = eye_left
    landmarks[42:48] = eye_right
    landmarks[48] = mouth_left
    landmarks[54] = mouth_right
    return landmarks


def test_quad_of_an_upright_face_by_hand():
    # eye_avg (100, 100), eye_to_eye (20, 0), eye_to_mouth (0, 30): half side max(2*20, 1.8*30) = 54,
    # centre eye_avg + 0.1 * eye_to_mouth = (100, 103)
    np.testing.assert_allclose(face_quad(upright_face()), [[46, 49], [46, 157], [154, 157], [154, 49]])


def test_box_of_an_upright_face_is_the_quad_rounded():
    assert face_box(upright_face(), (300, 300)) == CropBox(left=46, top=49, right=154, bottom=157)


def test_box_is_clipped_at_the_image_border_and_the_crop_is_still_square():
    landmarks = upright_face() - [80.0, 0.0]  # quad now spans x in [-34, 74]
    box = face_box(landmarks, (300, 300))
    assert box.left == 0 and box.right == 74 and (box.top, box.bottom) == (49, 157)
    image = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    assert crop_face(image, box).shape == (256, 256, 3)


def test_missing_face_alignment_weights_name_the_file_and_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    message = r"face_alignment/s3fd-619a316812\.pth; run `make fetch MODE=sadtalker`.*adrianbulat\.com"
    with pytest.raises(CheckpointError, match=message):
        face_alignment_weights(tmp_path)


def test_face_alignment_weights_are_found_in_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    for name in (face_crop.S3FD_FILE, face_crop.FAN_FILE):
        (tmp_path / "hub" / "checkpoints" / name).write_bytes(b"")
    s3fd, fan = face_alignment_weights(tmp_path / "ckpts")
    assert s3fd.name == face_crop.S3FD_FILE and fan.name == face_crop.FAN_FILE


def _astronaut_weights():
    try:
        return face_alignment_weights(face_crop.Path(__file__).resolve().parents[2] / "ckpts")
    except CheckpointError:
        return None


@pytest.mark.skipif(_astronaut_weights() is None, reason="face-alignment weights are not available offline")
def test_real_detector_finds_the_astronauts_face():
    detector = FaceAlignmentDetector(*_astronaut_weights())
    landmarks = detector(data.astronaut())
    assert landmarks.shape == (68, 2)
    eyes_y = landmarks[36:48, 1].mean()
    assert eyes_y < landmarks[48:68, 1].mean()
    assert abs(landmarks[36:42, 1].mean() - landmarks[42:48, 1].mean()) < 30
    assert landmarks[36:42, 0].mean() < landmarks[30, 0] < landmarks[42:48, 0].mean()
    assert 60 < np.ptp(landmarks[:, 0]) < 300


class FakeFAN(torch.nn.Module):
    """Stands in for 2D-FAN-4: every landmark's heatmap has equal peaks at (row 16, cols 31 and 32), so the
    flipped pass gives the same map, plus half a peak one row below."""

    def __init__(self, num_modules):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs):
        heatmaps = torch.zeros(1, 68, 64, 64)
        heatmaps[:, :, 16, 31:33] = 1.0
        heatmaps[:, :, 17, 31:33] = 0.5
        return [heatmaps]


def test_face_alignment_wrapper_decodes_heatmaps_of_the_most_confident_box(tmp_path, monkeypatch):
    import face_alignment.detection.sfd.sfd_detector as sfd_module
    import face_alignment.models as fan_module

    boxes = [np.array([150.0, 80.0, 270.0, 220.0, 0.6]), np.array([0.0, 0.0, 40.0, 40.0, 0.5])]

    class FakeBoxDetector:
        def __init__(self, device, path_to_detector, filter_threshold):
            self.path = path_to_detector

        def detect_from_image(self, image):
            return boxes

    monkeypatch.setattr(sfd_module, "SFDDetector", FakeBoxDetector)
    monkeypatch.setattr(fan_module, "FAN", FakeFAN)
    torch.save(FakeFAN(4).state_dict(), tmp_path / "fan.pth")
    detector = FaceAlignmentDetector(tmp_path / "s3fd.pth", tmp_path / "fan.pth")
    landmarks = detector(data.astronaut())
    # box centre (210, 150 - 0.12 * 140), FAN window 200 * (120 + 140) / 195 px over 64 cells;
    # peak cell (31, 16) + 0.5, + a quarter cell towards the larger neighbour on both axes
    window = 200 * 260 / 195
    expected = [31.75 * window / 64 + 210 - window / 2, 16.75 * window / 64 + 133.2 - window / 2]
    assert landmarks.shape == (68, 2) and landmarks.dtype == np.float32
    np.testing.assert_allclose(landmarks, np.tile(expected, (68, 1)), atol=1e-3)

    boxes.clear()
    assert detector(data.astronaut()) is None


def test_facexlib_wrapper_offsets_converted_points_by_the_first_box(tmp_path, monkeypatch):
    for name in face_crop.FACEXLIB_FILES:
        (tmp_path / name).write_bytes(b"")
    calls = {}

    class FakeRetinaFace:
        def detect_faces(self, image, threshold):
            calls["threshold"] = threshold
            return np.array([[30.4, 20.7, 130.0, 140.0, 0.99]])

    class FakeAwing:
        def get_landmarks(self, image):
            calls["crop_shape"] = image.shape
            return np.ones((98, 2))

    alignment = types.ModuleType("facexlib.alignment")
    alignment.init_alignment_model = lambda name, device, model_rootpath: FakeAwing()
    alignment.landmark_98_to_68 = lambda points: np.asarray(points)[:68] * 2
    detection = types.ModuleType("facexlib.detection")
    detection.init_detection_model = lambda name, half, device, model_rootpath: FakeRetinaFace()
    monkeypatch.setitem(sys.modules, "facexlib", types.ModuleType("facexlib"))
    monkeypatch.setitem(sys.modules, "facexlib.alignment", alignment)
    monkeypatch.setitem(sys.modules, "facexlib.detection", detection)

    landmarks = FacexlibDetector(tmp_path)(np.zeros((200, 200, 3), np.uint8))
    assert calls == {"threshold": 0.97, "crop_shape": (120, 100, 3)}
    np.testing.assert_allclose(landmarks, np.full((68, 2), 2.0) + [30, 20])


def test_facexlib_wrapper_needs_its_local_weights(tmp_path):
    with pytest.raises(CheckpointError, match="detection_Resnet50_Final.pth"):
        FacexlibDetector(tmp_path)


def test_without_the_face_alignment_package_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "face_alignment.detection.sfd.sfd_detector", None)
    with pytest.raises(face_crop.InputError, match=r"pip install --no-deps face-alignment==1\.5\.0"):
        FaceAlignmentDetector(tmp_path / "s3fd.pth", tmp_path / "fan.pth")
