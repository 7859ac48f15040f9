"""Video-driven 3DMM landmarks: a driving video's expression and head pose applied to a portrait's fit.

Entry points: :func:`video_to_landmarks` and :func:`video_coefficients` (see :mod:`.pipeline`).
"""

from .pipeline import video_coefficients, video_to_landmarks

__all__ = ["video_coefficients", "video_to_landmarks"]
