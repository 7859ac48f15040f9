"""Face detection with 68 landmarks, and the face crop the 3DMM fit works on.

The crop follows the FFHQ recipe: an oriented square is built from the eye centres and mouth corners, and
its axis-aligned bounding box (shrunk to the square's own corners, as the released weights were used) is
cut out of the image and resized to 256². Everything downstream (POS alignment, coefficient fit, landmark
projection) happens in that 256² crop and is mapped back with :class:`CropBox`.

Detectors are plain callables ``image (H, W, 3) uint8 RGB -> landmarks (68, 2) float pixels or None``.
The default is :class:`FaceAlignmentDetector` (the maintained ``face-alignment`` package: S3FD boxes +
2D-FAN landmarks). :class:`FacexlibDetector` (RetinaFace + AWing, as the original demos used) is an
optional extra for closer parity. Neither downloads anything: weights are read from local files.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from utils.checkpoints import URL_FILES, fetch_command
from utils.errors import CheckpointError, InputError

from .weights import CHECKPOINT_MODE

CROP_SIZE = 256
"""Side of the square face crop (pixels) that landmarks are detected and fitted in."""

LandmarkDetector = Callable[[np.ndarray], "np.ndarray | None"]

FACE_ALIGNMENT_DIR = "face_alignment"
S3FD_FILE = "s3fd-619a316812.pth"
FAN_FILE = "2DFAN4-11f355bf06.pth.tar"
FACEXLIB_DIR = "gfpgan"
FACEXLIB_FILES = ("detection_Resnet50_Final.pth", "alignment_WFLW_4HG.pth")


@dataclass(frozen=True)
class CropBox:
    """An axis-aligned face box in image pixels; ``right``/``bottom`` are exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


def face_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ oriented square around a face.

    Args:
        landmarks: (68, 2) image pixels, iBUG-68 order.
    Returns:
        (4, 2) corners (top-left, bottom-left, bottom-right, top-right for an upright face), pixels.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    eye_left = landmarks[36:42].mean(axis=0)
    eye_right = landmarks[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (landmarks[48] + landmarks[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def face_box(landmarks: np.ndarray, image_size: tuple[int, int]) -> CropBox:
    """The crop box for a face, clipped to the image.

    The quad's bounding box plus a 10 % border is clipped to the image; inside it the box is then narrowed
    to the quad's left/top-left and right/bottom-right corners (rounded), which is the region the released
    3DMM weights were run on.

    Args:
        landmarks: (68, 2) image pixels.
        image_size: (width, height) of the image.
    """
    width, height = image_size
    quad = face_quad(landmarks)
    qsize = np.hypot(*(quad[3] - quad[0]))
    border = max(int(np.rint(qsize * 0.1)), 3)
    outer_left = max(int(np.floor(quad[:, 0].min())) - border, 0)
    outer_top = max(int(np.floor(quad[:, 1].min())) - border, 0)
    outer_right = min(int(np.ceil(quad[:, 0].max())) + border, width)
    outer_bottom = min(int(np.ceil(quad[:, 1].max())) + border, height)
    local = quad - [outer_left, outer_top] + 0.5
    left = int(max(min(local[0, 0], local[1, 0]), 0))
    top = int(max(min(local[0, 1], local[3, 1]), 0))
    right = int(min(max(local[2, 0], local[3, 0]), width))
    bottom = int(min(max(local[1, 1], local[2, 1]), height))
    box = CropBox(
        left=outer_left + left,
        top=outer_top + top,
        right=min(outer_left + right, outer_right),
        bottom=min(outer_top + bottom, outer_bottom),
    )
    if box.width < 2 or box.height < 2:
        raise InputError(f"the detected face is too small to crop ({box.width}x{box.height} pixels)")
    return box


def crop_face(image: np.ndarray, box: CropBox, size: int = CROP_SIZE) -> np.ndarray:
    """Cut ``box`` out of ``image`` (H, W, 3) uint8 and resize it (bilinear) to (size, size, 3) uint8."""
    patch = image[box.top : box.bottom, box.left : box.right]
    return cv2.resize(np.ascontiguousarray(patch), (size, size), interpolation=cv2.INTER_LINEAR)


def _local_file(name: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    return None


def face_alignment_weights(ckpt_dir: Path) -> tuple[Path, Path]:
    """Paths of the S3FD and 2D-FAN weights: ``<ckpt_dir>/face_alignment/`` first, then torch's hub cache.

    Raises:
        CheckpointError: a file is in neither place, naming ``make fetch MODE=sadtalker`` and the file's URL
            (``face-alignment`` would download it when constructed; this project never downloads at run time).
    """
    folders = [Path(ckpt_dir) / FACE_ALIGNMENT_DIR, Path(torch.hub.get_dir()) / "checkpoints"]
    found = []
    for name in (S3FD_FILE, FAN_FILE):
        path = _local_file(name, folders)
        if path is None:
            raise CheckpointError(
                f"missing face detector weights {folders[0] / name}; run `{fetch_command(CHECKPOINT_MODE)}` "
                f"(or download {URL_FILES[f'{FACE_ALIGNMENT_DIR}/{name}']} into {folders[0]}/)"
            )
        found.append(path)
    return found[0], found[1]


class FaceAlignmentDetector:
    """68 landmarks from the ``face-alignment`` package (S3FD face boxes, 2D-FAN-4 heatmaps), local weights only.

    Args:
        s3fd_path: S3FD weights (``s3fd-619a316812.pth``).
        fan_path: 2D-FAN-4 weights (``2DFAN4-11f355bf06.pth.tar``).
        device: torch device for both networks.
        threshold: minimum S3FD confidence of a face box.
    """

    def __init__(self, s3fd_path: Path, fan_path: Path, device: str | torch.device = "cpu", threshold: float = 0.5):
        try:
            from face_alignment.detection.sfd.sfd_detector import SFDDetector
            from face_alignment.models import FAN
        except ImportError as error:
            raise InputError(
                "the face detector needs the face-alignment package: pip install --no-deps face-alignment==1.5.0"
            ) from error
        self.device = str(device)
        self.box_detector = SFDDetector(self.device, path_to_detector=str(s3fd_path), filter_threshold=threshold)
        self.fan = FAN(4)
        self.fan.load_state_dict(torch.load(str(fan_path), map_location="cpu", weights_only=True))
        self.fan.to(self.device).eval()

    @classmethod
    def from_ckpt_dir(cls, ckpt_dir: Path, device: str | torch.device = "cpu") -> FaceAlignmentDetector:
        """Build from the weights found by :func:`face_alignment_weights`."""
        return cls(*face_alignment_weights(ckpt_dir), device=device)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        """Landmarks of the most confident face: (68, 2) float pixels of ``image`` (H, W, 3) uint8 RGB, or None."""
        from face_alignment.utils import CENTER_Y_OFFSET, REFERENCE_SCALE, crop, flip

        boxes = self.box_detector.detect_from_image(np.ascontiguousarray(image).copy())
        if len(boxes) == 0:
            return None
        x1, y1, x2, y2, _ = max(boxes, key=lambda box: box[4])
        center = np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0 - (y2 - y1) * CENTER_Y_OFFSET])
        scale = (x2 - x1 + y2 - y1) / REFERENCE_SCALE
        patch = crop(image, center, scale).transpose(2, 0, 1).astype(np.float32) / 255.0
        inputs = torch.from_numpy(patch)[None].to(self.device)
        heatmaps = self.fan(inputs)[-1] + flip(self.fan(flip(inputs))[-1], is_label=True)
        return heatmap_peaks(heatmaps[0].float().cpu().numpy(), center, scale)


def heatmap_peaks(heatmaps: np.ndarray, center: np.ndarray, scale: float) -> np.ndarray:
    """Decode (68, R, R) FAN heatmaps into (68, 2) float32 image pixels.

    The peak cell moves a quarter cell towards its larger neighbour on each axis (interior cells only), and
    cell centres map back through the FAN crop: a window of 200·scale pixels centred on ``center``.
    """
    count, resolution = heatmaps.shape[0], heatmaps.shape[-1]
    rows, cols = np.divmod(heatmaps.reshape(count, -1).argmax(axis=1), resolution)
    peaks = np.stack([cols, rows], axis=1).astype(np.float64) + 0.5
    for index in np.flatnonzero((cols > 0) & (cols < resolution - 1) & (rows > 0) & (rows < resolution - 1)):
        heatmap, row, col = heatmaps[index], rows[index], cols[index]
        peaks[index] += 0.25 * np.sign(
            [heatmap[row, col + 1] - heatmap[row, col - 1], heatmap[row + 1, col] - heatmap[row - 1, col]]
        )
    window = 200.0 * scale
    return (peaks * window / resolution + np.asarray(center) - window / 2).astype(np.float32)


class FacexlibDetector:
    """Optional parity detector: facexlib RetinaFace-R50 (threshold 0.97) + AWing FAN (98 points → 68).

    Needs ``pip install facexlib`` and ``detection_Resnet50_Final.pth`` and ``alignment_WFLW_4HG.pth``
    in ``weights_dir`` (``ckpts/gfpgan/``); facexlib would otherwise download them from GitHub.
    """

    def __init__(self, weights_dir: Path, device: str | torch.device = "cpu", threshold: float = 0.97):
        weights_dir = Path(weights_dir)
        for name in FACEXLIB_FILES:
            if not (weights_dir / name).is_file():
                raise CheckpointError(f"missing facexlib weights {weights_dir / name}")
        try:
            from facexlib.alignment import init_alignment_model, landmark_98_to_68
            from facexlib.detection import init_detection_model
        except ImportError as error:
            raise InputError("FacexlibDetector needs the optional facexlib package: pip install facexlib") from error
        device = str(device)
        self.threshold = threshold
        self.to_68 = landmark_98_to_68
        self.box_detector = init_detection_model(
            "retinaface_resnet50", half=False, device=device, model_rootpath=os.fspath(weights_dir)
        )
        self.aligner = init_alignment_model("awing_fan", device=device, model_rootpath=os.fspath(weights_dir))

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        """Landmarks of the first face: (68, 2) float pixels of ``image`` (H, W, 3) uint8 RGB, or None."""
        boxes = self.box_detector.detect_faces(image, self.threshold)
        if len(boxes) == 0:
            return None
        left, top, right, bottom = (int(value) for value in boxes[0][:4])
        left, top = max(left, 0), max(top, 0)
        landmarks = self.to_68(self.aligner.get_landmarks(image[top:bottom, left:right]))
        return (np.asarray(landmarks, dtype=np.float32) + [left, top]).astype(np.float32)


def detect_landmarks(detector: LandmarkDetector, image: np.ndarray) -> np.ndarray | None:
    """Run ``detector`` and check what it returns: (68, 2) float32 pixels, or None when there is no face."""
    landmarks = detector(image)
    if landmarks is None:
        return None
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.shape != (68, 2):
        raise ValueError(f"a landmark detector must return (68, 2) points, got {landmarks.shape}")
    return landmarks


def warn_if_small(box: CropBox) -> None:
    """Warn when the face crop is upsampled a lot (the fit gets blurry input)."""
    if min(box.width, box.height) < CROP_SIZE // 4:
        warnings.warn(f"the face is small ({box.width}x{box.height} pixels); landmarks may be inaccurate", stacklevel=3)
