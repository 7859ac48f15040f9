# Copied from MOFA-Video-Keypoint/aniportrait/__init__.py
"""Audio-driven facial landmarks: portrait + speech -> 68-point landmark sequence (image pixels)."""
