# Copied from MOFA-Video-Keypoint/aniportrait/synthetic.py
"""Deterministic stand-in for the audio-driven landmark generator (tiny / offline mode).

A schematic 68-point face centred in the image whose mouth opens with the audio's loudness and
whose head sways slowly. It needs no face detector and no weights, so the whole Keypoint chain can
run offline; the result only exercises the machinery.
"""

from __future__ import annotations

import numpy as np

from aniportrait.audio import SAMPLE_RATE, frame_count


def _ellipse(
    centre: tuple[float, float], radius_x: float, radius_up: float, radius_down: float, count: int
) -> np.ndarray:
    """`count` points clockwise (image coordinates) from the left-most point of an ellipse whose upper
    and lower halves have separate radii."""
    angles = np.pi - np.arange(count) * (2.0 * np.pi / count)
    sines = np.sin(angles)
    radius_y = np.where(sines >= 0, radius_up, radius_down)
    return np.stack([centre[0] + radius_x * np.cos(angles), centre[1] - radius_y * sines], axis=1)


def template_face(mouth_opening: float = 0.0) -> np.ndarray:
    """(68, 2) schematic face in face units (about 1 wide, y down, centred on the nose bridge).

    mouth_opening in [0, 1] lowers the lower lips.
    """
    jaw_t = np.linspace(0.0, np.pi, 17)
    jaw = np.stack([-0.5 * np.cos(jaw_t), 0.05 + 0.55 * np.sin(jaw_t)], axis=1)
    brow_x = np.linspace(0.08, 0.38, 5)
    brow_y = -0.28 - 0.05 * np.sin(np.linspace(0.0, np.pi, 5))
    right_brow = np.stack([-brow_x[::-1], brow_y], axis=1)
    left_brow = np.stack([brow_x, brow_y], axis=1)
    nose_bridge = np.stack([np.zeros(4), np.linspace(-0.18, 0.1, 4)], axis=1)
    nose_x = np.linspace(-0.1, 0.1, 5)
    nose_bottom = np.stack([nose_x, 0.15 + 0.02 * (1.0 - np.abs(nose_x) / 0.1)], axis=1)
    right_eye = _ellipse((-0.22, -0.15), 0.08, 0.035, 0.03, 6)
    left_eye = _ellipse((0.22, -0.15), 0.08, 0.035, 0.03, 6)
    outer_lips = _ellipse((0.0, 0.33), 0.2, 0.07, 0.07 + 0.12 * mouth_opening, 12)
    inner_lips = _ellipse((0.0, 0.33), 0.13, 0.02, 0.02 + 0.11 * mouth_opening, 8)
    return np.concatenate(
        [jaw, right_brow, left_brow, nose_bridge, nose_bottom, right_eye, left_eye, outer_lips, inner_lips]
    )


def loudness_per_frame(
    waveform: np.ndarray, num_frames: int, sample_rate: int = SAMPLE_RATE, fps: int = 25
) -> np.ndarray:
    """(num_frames,) RMS of each frame's audio, scaled so the loudest frame is 1."""
    hop = sample_rate // fps
    padded = np.pad(waveform.astype(np.float64), (0, max(0, num_frames * hop - waveform.size)))
    rms = np.sqrt((padded[: num_frames * hop].reshape(num_frames, hop) ** 2).mean(axis=1))
    return rms / max(rms.max(), 1e-12)


def synthetic_landmarks(width: int, height: int, waveform: np.ndarray, fps: int = 25) -> np.ndarray:
    """float64 (1 + N, 68, 2) pixel landmarks, N = ceil(L / 16000 * fps); frame 0 has a closed mouth."""
    num_frames = frame_count(waveform.size, fps)
    openings = np.concatenate([[0.0], loudness_per_frame(waveform, num_frames, fps=fps)])
    seconds = np.arange(num_frames + 1) / fps
    angles = np.deg2rad(4.0) * np.sin(2.0 * np.pi * seconds / 3.0) * (seconds > 0)
    scale = 0.5 * min(width, height)
    centre = np.array([0.5 * width, 0.45 * height])
    frames = []
    for opening, angle, second in zip(openings, angles, seconds):
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        shift = np.array([0.02 * scale * np.sin(2.0 * np.pi * second / 4.4), 0.0])
        frames.append(template_face(opening) @ rotation.T * scale + centre + shift)
    return np.stack(frames)
