"""Portrait + audio -> 68-point landmark sequence through 3DMM coefficients.

    image ──detect──> face box ──crop 256²──> detect again ──POS align 224²──> ResNet-50 -> 257 coefficients
    audio ──mel──> Audio2Exp (expression 64) + Audio2Pose CVAE (angle 3, trans 3) ──Savitzky–Golay──> per frame
    source coefficients with each frame's expression/pose ──BFM──> 68 points ──> image pixels

:class:`FaceCoefficientLandmarker` holds the networks and does the image-side steps (also used by the
video-driven path); :func:`audio_to_landmarks` is the one-call entry.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.signal import savgol_filter

from utils.checkpoints import default_ckpt_dir
from utils.errors import InputError

from .audio2exp import Audio2ExpNet, predict_expression, random_blinks
from .audio2pose import TRAINING_ONLY_PREFIXES, Audio2PoseNet, predict_pose
from .bfm import BFMLandmarks, to_image_pixels
from .face_crop import (
    CropBox,
    FaceAlignmentDetector,
    LandmarkDetector,
    crop_face,
    detect_landmarks,
    face_box,
    warn_if_small,
)
from .face_recon import (
    COEFF_SLICES,
    Alignment,
    FaceReconNet,
    align_face,
    load_landmark_template,
)
from .mel import audio_mel_windows, load_audio
from .weights import (
    AUDIO2EXP_PREFIX,
    AUDIO2POSE_PREFIX,
    BFM_MODEL,
    FACE_RECON_PREFIX,
    LANDMARK_TEMPLATE,
    SADTALKER_WEIGHTS,
    load_part,
    require_sadtalker_files,
)

SAVGOL_WINDOW = 13
SAVGOL_ORDER = 2
MOTION_COLUMNS = np.r_[COEFF_SLICES["exp"], COEFF_SLICES["angle"], COEFF_SLICES["trans"]]
"""Columns of the 257 coefficients a driving signal replaces: exp 64, angle 3, trans 3 (in that order)."""


@dataclass(frozen=True)
class FaceFit:
    """A face's 3DMM fit and where it sits in its image.

    Attributes:
        coeffs: (257,) float32 coefficients.
        alignment: the 224² cut of the face crop.
        box: the face crop in image pixels.
    """

    coeffs: np.ndarray
    alignment: Alignment
    box: CropBox


def image_to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """Check an (H, W, 3) RGB image and return it as contiguous uint8 (floats in [0, 1] are scaled)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * 255.0 if image.max() <= 1.0 else image), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def smooth_pose(pose: np.ndarray) -> np.ndarray:
    """Savitzky–Golay (order 2) along time of a (T, 6) pose; window 13, or the largest odd ≤ T for short clips.

    Clips shorter than 3 frames are returned unchanged (an order-2 fit needs 3 samples).
    """
    window = SAVGOL_WINDOW if len(pose) >= SAVGOL_WINDOW else int((len(pose) - 1) / 2) * 2 + 1
    if window <= SAVGOL_ORDER:
        return pose
    return savgol_filter(pose, window, SAVGOL_ORDER, axis=0)


class FaceCoefficientLandmarker:
    """Face fitting and landmark projection around the Deep3DFaceRecon regressor and the BFM.

    Args:
        recon: coefficient regressor.
        bfm: landmark vertices of the face model.
        template: (5, 3) alignment template.
        detector: face landmark detector (see :mod:`.face_crop`).
        audio2exp, audio2pose: the audio networks (only :meth:`audio_coefficients` needs them).
        device: where the networks run.
    """

    def __init__(
        self,
        recon: FaceReconNet,
        bfm: BFMLandmarks,
        template: np.ndarray,
        detector: LandmarkDetector,
        audio2exp: Audio2ExpNet | None = None,
        audio2pose: Audio2PoseNet | None = None,
        device: str | torch.device = "cpu",
    ):
        self.device = torch.device(device)
        self.recon = recon.to(self.device).eval()
        self.bfm = bfm.to(self.device)
        self.template = np.asarray(template, dtype=np.float64)
        self.detector = detector
        self.audio2exp = audio2exp.to(self.device).eval() if audio2exp is not None else None
        self.audio2pose = audio2pose.to(self.device).eval() if audio2pose is not None else None

    @classmethod
    def from_checkpoints(
        cls,
        ckpt_dir: Path | None = None,
        device: str | torch.device = "cpu",
        detector: LandmarkDetector | None = None,
        with_audio: bool = True,
    ) -> FaceCoefficientLandmarker:
        """Load everything from ``ckpt_dir`` (default ``ckpts/``); raises CheckpointError naming a missing file.

        ``detector`` defaults to :class:`FaceAlignmentDetector` with weights under ``<ckpt_dir>/face_alignment/``.
        """
        ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else default_ckpt_dir()
        require_sadtalker_files(ckpt_dir)
        if detector is None:
            detector = FaceAlignmentDetector.from_ckpt_dir(ckpt_dir, device=device)
        weights = ckpt_dir / SADTALKER_WEIGHTS
        recon = load_part(FaceReconNet(), weights, FACE_RECON_PREFIX)
        audio2exp = audio2pose = None
        if with_audio:
            audio2exp = load_part(Audio2ExpNet(), weights, AUDIO2EXP_PREFIX)
            audio2pose = load_part(Audio2PoseNet(), weights, AUDIO2POSE_PREFIX, TRAINING_ONLY_PREFIXES)
        bfm = BFMLandmarks.from_mat(ckpt_dir / BFM_MODEL)
        template = load_landmark_template(ckpt_dir / LANDMARK_TEMPLATE)
        return cls(recon, bfm, template, detector, audio2exp, audio2pose, device)

    def find_face_box(self, image: np.ndarray) -> CropBox | None:
        """The face crop box of an (H, W, 3) uint8 RGB image, or None when no face is found."""
        landmarks = detect_landmarks(self.detector, image)
        if landmarks is None:
            return None
        box = face_box(landmarks, (image.shape[1], image.shape[0]))
        warn_if_small(box)
        return box

    def fit_crops(self, crops: list[np.ndarray]) -> list[tuple[np.ndarray, Alignment] | None]:
        """Fit 256² face crops: per crop its (257,) coefficients and alignment, or None where no face is found."""
        fits: list[tuple[np.ndarray, Alignment] | None] = []
        for crop in crops:
            landmarks = detect_landmarks(self.detector, crop)
            if landmarks is None:
                fits.append(None)
                continue
            aligned, alignment = align_face(crop, landmarks, self.template)
            pixels = torch.from_numpy(aligned).to(self.device, torch.float32).permute(2, 0, 1)[None] / 255.0
            with torch.no_grad():
                coeffs = self.recon(pixels)[0].float().cpu().numpy()
            fits.append((coeffs, alignment))
        return fits

    def fit_image(self, image: np.ndarray) -> FaceFit:
        """Detect, crop and fit the face of an (H, W, 3) RGB image. Raises InputError when there is no face."""
        image = image_to_uint8_rgb(image)
        box = self.find_face_box(image)
        fit = self.fit_crops([crop_face(image, box)])[0] if box is not None else None
        if fit is None:
            raise InputError("no face found in the source image")
        return FaceFit(coeffs=fit[0], alignment=fit[1], box=box)

    def landmarks(self, source: FaceFit, motion: np.ndarray) -> np.ndarray:
        """Landmarks in the source image's pixels: frame 0 from the source fit, then one frame per driving row.

        Args:
            source: the source face's fit.
            motion: (N, 70) driving exp 64 | angle 3 | trans 3 (the source keeps its identity).
        Returns:
            (1 + N, 68, 2) float64 pixels of the source image.
        """
        frames = np.repeat(source.coeffs[None], 1 + len(motion), axis=0)
        frames[1:, MOTION_COLUMNS] = motion
        coeffs = torch.from_numpy(frames).to(self.device, torch.float32)
        with torch.no_grad():
            projected = self.bfm.project(coeffs)
        return to_image_pixels(projected, source.alignment, source.box)

    def audio_coefficients(
        self, source: FaceFit, audio: str | Path | np.ndarray, seed: int = 42, pose_style: int = 0
    ) -> np.ndarray:
        """Per-frame (T, 70) exp | angle | trans driven by audio (T = whole 25 fps frames of audio).

        ``audio`` is a file path or an (L,) float waveform already at 16 kHz mono. Expression starts from the
        source's expression with seeded random blinks; the pose is the source pose plus seeded CVAE motion,
        smoothed with :func:`smooth_pose`.
        """
        if self.audio2exp is None or self.audio2pose is None:
            raise ValueError("this landmarker was built without the audio networks")
        waveform = np.asarray(audio, dtype=np.float32) if isinstance(audio, np.ndarray) else load_audio(Path(audio))
        if waveform.ndim != 1:
            raise InputError(f"a waveform must be mono (L,) samples at 16 kHz, got shape {waveform.shape}")
        mels = torch.from_numpy(audio_mel_windows(waveform)).to(self.device)
        coeffs = torch.from_numpy(source.coeffs).to(self.device)
        blink = torch.from_numpy(random_blinks(len(mels), random.Random(seed))).to(self.device)
        expression = predict_expression(self.audio2exp, mels, coeffs[COEFF_SLICES["exp"]], blink)
        ref_pose = torch.cat([coeffs[COEFF_SLICES["angle"]], coeffs[COEFF_SLICES["trans"]]])
        generator = torch.Generator().manual_seed(seed)
        pose = predict_pose(self.audio2pose, mels, ref_pose, pose_style, generator)
        pose = smooth_pose(pose.cpu().numpy().astype(np.float64))
        return np.concatenate([expression.cpu().numpy(), pose], axis=1).astype(np.float32)

    def __call__(
        self, image: np.ndarray, audio: str | Path | np.ndarray, seed: int = 42, pose_style: int = 0
    ) -> np.ndarray:
        """Audio-driven landmarks of ``image``: (1 + T, 68, 2) float64 pixels (see :func:`audio_to_landmarks`)."""
        source = self.fit_image(image)
        return self.landmarks(source, self.audio_coefficients(source, audio, seed, pose_style))


def audio_to_landmarks(
    image: np.ndarray,
    audio: str | Path | np.ndarray,
    ckpt_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    seed: int = 42,
    pose_style: int = 0,
    detector: LandmarkDetector | None = None,
    landmarker: FaceCoefficientLandmarker | None = None,
) -> np.ndarray:
    """68-point landmarks of a portrait talking along with an audio file.

    Args:
        image: (H, W, 3) RGB portrait (uint8, or float in [0, 1]).
        audio: a file librosa reads (resampled to 16 kHz mono), or an (L,) float waveform at 16 kHz mono.
        ckpt_dir: checkpoint folder (default ``ckpts/``, or ``$MOFA_CKPT_DIR``).
        device: torch device for the networks.
        seed: seeds the blinks and the pose latents.
        pose_style: head-motion style in [0, 46).
        detector: face landmark detector; default :class:`FaceAlignmentDetector` with local weights.
        landmarker: use these networks instead of loading ``ckpt_dir`` (e.g. ``utils.tiny_keypoint.tiny_landmarker()``).
    Returns:
        (1 + T, 68, 2) float64 pixels of ``image``; frame 0 is the portrait's own fit, frame i ≥ 1 is audio
        frame i − 1 at 25 fps (T = floor(duration · 25)).
    Raises:
        CheckpointError: a weight file is missing. InputError: no face, unreadable or too short audio.
    """
    if landmarker is None:
        landmarker = FaceCoefficientLandmarker.from_checkpoints(ckpt_dir, device=device, detector=detector)
    return landmarker(image, audio, seed, pose_style)
