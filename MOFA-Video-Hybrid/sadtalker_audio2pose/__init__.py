# Copied from MOFA-Video-Keypoint/sadtalker_audio2pose/__init__.py
"""3DMM landmark path: a portrait's Deep3DFaceRecon fit, driven by audio (Audio2Exp + Audio2Pose), as 68 points.

Entry points: :func:`audio_to_landmarks` and :class:`FaceCoefficientLandmarker` (see :mod:`.pipeline`).
"""

from .pipeline import FaceCoefficientLandmarker, FaceFit, audio_to_landmarks

__all__ = ["FaceCoefficientLandmarker", "FaceFit", "audio_to_landmarks"]
