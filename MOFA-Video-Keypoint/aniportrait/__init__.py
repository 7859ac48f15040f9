"""Audio-driven facial landmarks: portrait + speech -> 68-point landmark sequence (image pixels)."""
