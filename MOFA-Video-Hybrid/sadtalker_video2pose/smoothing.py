"""Temporal clean-up of per-frame driving coefficients: fill frames without a face, smooth the head pose."""

from __future__ import annotations

from typing import Literal

import numpy as np

PoseSmoothing = Literal["zero_padded", "unbiased", "none"]
POSE_WINDOW = 3


def interpolate_missing(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill the rows of ``values`` (N, D) where ``valid`` (N,) is False by linear interpolation over time.

    Rows before the first / after the last valid row copy that row. At least one row must be valid.
    """
    frames = np.arange(len(values))
    known = np.flatnonzero(valid)
    filled = np.array(values, dtype=np.float64, copy=True)
    for column in range(values.shape[1]):
        filled[:, column] = np.interp(frames, known, values[known, column])
    return filled.astype(values.dtype)


def moving_average(values: np.ndarray, mode: PoseSmoothing, window: int = POSE_WINDOW) -> np.ndarray:
    """Centred moving average of (N, D) ``values`` along time.

    ``zero_padded`` treats frames outside the clip as zeros and divides by the full window, as the released
    video-driven demo did (``np.convolve(x, ones(3) / 3, 'same')``): the first and last frames are pulled
    towards 0, to about 2/3 of their value for a constant signal. ``unbiased`` divides by the number of frames
    actually inside the window, so constant signals stay constant. ``none`` returns the values unchanged.
    """
    if mode == "none":
        return values
    if mode not in ("zero_padded", "unbiased"):
        raise ValueError(f"unknown pose smoothing {mode!r}; use zero_padded, unbiased or none")
    half = window // 2
    padded = np.pad(np.asarray(values, dtype=np.float64), ((half, half), (0, 0)))
    inside = np.pad(np.ones(len(values)), (half, half))
    kernel = np.ones(window)
    sums = np.stack([np.convolve(padded[:, column], kernel, "valid") for column in range(values.shape[1])], 1)
    counts = np.convolve(inside, kernel, "valid")[:, None] if mode == "unbiased" else float(window)
    return (sums / counts).astype(values.dtype)
