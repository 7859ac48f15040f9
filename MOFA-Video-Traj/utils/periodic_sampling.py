"""Periodic sampling: denoise a video longer than the model's window as overlapping, frame-0-anchored windows.

Frame 0 is the reference (the input image). A *view* ``(a, b)`` is a half-open range of frames ``a..b-1``
(all >= 1); its window is frame 0 followed by those frames. At every denoising step each window is
denoised on its own with the same sigma pair, and every frame's new latent is the average over the windows
that hold it. Frame 0 takes its value from the first window only.
"""

from collections.abc import Callable, Sequence

import torch

from .errors import InputError

View = tuple[int, int]

DenoiseWindowFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``fn(frame_indices, window_latents) -> model_output``.

``frame_indices``: ``(L,)`` long tensor ``[0, a, a+1, ..., b-1]`` (the window's frames in the video);
``window_latents``: ``(B, L, C, h, w)`` current (unscaled) latents of those frames; returns the model's
v-prediction for the window, ``(B, L, C, h, w)`` (classifier-free guidance already applied).
"""


def get_views(num_frames: int, window: int = 25, stride: int | None = None) -> list[View]:
    """Views for ``num_frames`` frames and windows of ``window`` frames (frame 0 included).

    ``views = [(1 + i*S, i*S + W) for i in 0..(N - W) // S]`` followed by the tail ``(N - W + 1, N)``, as the
    original does, even when the tail repeats the last view (whenever ``(N - W) % S == 0``): the repeated view
    then weighs twice in the average of every frame it holds (:func:`weighted_views`). For ``N <= W`` there is
    one shorter view ``(1, N)``.

    Args:
        num_frames: N, frames in the video including frame 0 (>= 2).
        window: W, frames per window including frame 0 (>= 2).
        stride: S, shift between windows; defaults to ``W // 2``; at most ``W - 1`` so no frame is skipped.

    Returns:
        List of ``(a, b)`` half-open frame ranges, in order; together they cover frames 1..N-1.

    Raises:
        InputError: ``num_frames`` < 2, ``window`` < 2 or a stride outside ``1..window-1``.
    """
    if num_frames < 2:
        raise InputError(f"num_frames must be at least 2 (the reference frame and one more), got {num_frames}")
    if window < 2:
        raise InputError(f"window must be at least 2 frames, got {window}")
    stride = window // 2 if stride is None else stride
    if not 1 <= stride <= window - 1:
        raise InputError(f"stride must be between 1 and window - 1 = {window - 1}, got {stride}")
    if num_frames <= window:
        return [(1, num_frames)]
    views = [(1 + i * stride, i * stride + window) for i in range((num_frames - window) // stride + 1)]
    return [*views, (num_frames - window + 1, num_frames)]


def weighted_views(views: Sequence[View]) -> list[tuple[View, int]]:
    """``[(view, weight), ...]``: each run of equal consecutive views once, weighted by its length.

    A repeated view gives the same prediction each time, so it is denoised once and counted ``weight`` times.
    """
    weighted: list[tuple[View, int]] = []
    for view in views:
        if weighted and weighted[-1][0] == view:
            weighted[-1] = (view, weighted[-1][1] + 1)
        else:
            weighted.append((tuple(view), 1))
    return weighted


def window_frame_indices(view: View, device: torch.device | str | None = None) -> torch.Tensor:
    """``(L,)`` long tensor of a view's frames: ``[0, a, a+1, ..., b-1]`` with ``L = b - a + 1``."""
    start, end = view
    return torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(start, end)]).to(device)


def euler_step(
    sample: torch.Tensor, model_output: torch.Tensor, sigma: float | torch.Tensor, sigma_next: float | torch.Tensor
) -> torch.Tensor:
    """One Euler step of the SVD sampler (v-prediction, no churn), without any scheduler state.

    ``x0 = v * (-sigma / sqrt(sigma^2 + 1)) + x / (sigma^2 + 1)``, ``d = (x - x0) / sigma``,
    ``x' = x + d * (sigma_next - sigma)``; computed in float32 and returned in ``model_output``'s dtype, like
    diffusers' ``EulerDiscreteScheduler.step`` for the SVD scheduler config.

    Args:
        sample: x, current latents, any shape.
        model_output: v-prediction, same shape.
        sigma, sigma_next: noise levels of this step and the next (``sigma`` > 0).

    Returns:
        Latents at ``sigma_next``, same shape as ``sample``.
    """
    sample = sample.to(torch.float32)
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=sample.device)
    sigma_next = torch.as_tensor(sigma_next, dtype=torch.float32, device=sample.device)
    denoised = model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
    derivative = (sample - denoised) / sigma
    return (sample + derivative * (sigma_next - sigma)).to(model_output.dtype)


def periodic_denoise_step(
    latents: torch.Tensor,
    views: Sequence[View],
    denoise_window_fn: DenoiseWindowFn,
    sigma: float | torch.Tensor,
    sigma_next: float | torch.Tensor,
) -> torch.Tensor:
    """One denoising step of the whole video by periodic sampling.

    For each view, the window latents ``latents[:, [0, a..b-1]]`` are denoised by ``denoise_window_fn`` and
    stepped from ``sigma`` to ``sigma_next`` with ``euler_step``. The first view contributes all its frames
    (frame 0 included); every other view contributes frames ``a..b-1`` only. Each frame's result is the mean
    of its contributions, a view listed twice in a row counting twice (it is denoised once).

    Args:
        latents: ``(B, N, C, h, w)`` latents of all N frames at ``sigma``.
        views: from ``get_views``; must cover frames 1..N-1.
        denoise_window_fn: see ``DenoiseWindowFn``.
        sigma, sigma_next: the step's noise levels, shared by all views.

    Returns:
        ``(B, N, C, h, w)`` latents at ``sigma_next``, in ``latents``' dtype.
    """
    total = torch.zeros(latents.shape, dtype=torch.float32, device=latents.device)
    count = torch.zeros(latents.shape[1], dtype=torch.float32, device=latents.device)
    for view_index, (view, weight) in enumerate(weighted_views(views)):
        frame_indices = window_frame_indices(view, latents.device)
        window_latents = latents[:, frame_indices]
        model_output = denoise_window_fn(frame_indices, window_latents)
        stepped = euler_step(window_latents, model_output, sigma, sigma_next).float()
        if view_index > 0:
            frame_indices, stepped = frame_indices[1:], stepped[:, 1:]
        total[:, frame_indices] += stepped * weight
        count[frame_indices] += weight
    if not bool((count > 0).all()):
        missing = torch.nonzero(count == 0).flatten().tolist()
        raise ValueError(f"views {list(views)} leave frames {missing} without a window")
    return (total / count.view(1, -1, 1, 1, 1)).to(latents.dtype)
