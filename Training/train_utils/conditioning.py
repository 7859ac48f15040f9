"""What the adapter and the UNet are conditioned on during training.

The released weights were trained with a few conventions that differ from inference. They are kept
by default (so fine-tuning continues the same way) and all switched by ``--fix_train_inference_mismatch``:

=====================  ==================================  ===================================
item                   released training (default)         inference / fixed
=====================  ==================================  ===================================
VAE input              frames in [0, 1]                    frames in [-1, 1]
first-frame latents    ``(z_0 + 0.02 * noise_0) / 0.18215``  VAE mode of ``image + 0.02 * N(0,1)``
                       (scaled sample, same noise as        (pixel-space noise augmentation)
                       the diffusion noise of frame 0)
adapter image          first frame in [0, 1]               first frame in [-1, 1]
added time ids         ``[fps, noise_aug, motion_bucket]``   ``[fps, motion_bucket, noise_aug]``
=====================  ==================================  ===================================

The CLIP image embedding uses the CLIP normalisation in both modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

TimeIdsOrder = Literal["svd_xtend", "svd"]
DROPOUT_SEED = 23123134
FPS_ID = 6
MOTION_BUCKET_ID = 127
NOISE_AUG_STRENGTH = 0.02


@dataclass(frozen=True)
class TrainingConventions:
    """How inputs are prepared (see the module docstring).

    Attributes:
        signed_vae_input: feed the VAE frames in [-1, 1] (else [0, 1]).
        pixel_noise_cond_latents: first-frame latents as at inference (else the released latent-space form).
        signed_controlnet_cond: adapter image in [-1, 1] (else [0, 1]).
        time_ids_order: ``svd_xtend`` (released training) or ``svd`` (what SVD and inference use).
    """

    signed_vae_input: bool = False
    pixel_noise_cond_latents: bool = False
    signed_controlnet_cond: bool = False
    time_ids_order: TimeIdsOrder = "svd_xtend"

    @classmethod
    def from_flags(
        cls, fix_train_inference_mismatch: bool, time_ids_order: TimeIdsOrder | None = None
    ) -> TrainingConventions:
        """Released conventions, or the inference ones when ``fix_train_inference_mismatch``;
        ``time_ids_order`` (when given) overrides the order alone."""
        fixed = fix_train_inference_mismatch
        order = time_ids_order or ("svd" if fixed else "svd_xtend")
        return cls(fixed, fixed, fixed, order)


def build_added_time_ids(
    batch_size: int,
    order: TimeIdsOrder,
    fps_id: int = FPS_ID,
    motion_bucket_id: int = MOTION_BUCKET_ID,
    noise_aug_strength: float = NOISE_AUG_STRENGTH,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``[batch_size, 3]`` micro-conditioning in the requested order (``svd_xtend`` swaps the last two)."""
    if order == "svd_xtend":
        values = [fps_id, noise_aug_strength, motion_bucket_id]
    elif order == "svd":
        values = [fps_id, motion_bucket_id, noise_aug_strength]
    else:
        raise ValueError(f"time_ids_order must be 'svd_xtend' or 'svd', got {order!r}")
    return torch.tensor([values], dtype=dtype, device=device).repeat(batch_size, 1)


class ConditioningDropout:
    """Per-sample dropout of the image embedding and of the first-frame latents.

    One uniform r per sample, from a generator seeded identically on every process: the embedding is
    dropped when r < 2p, the latents when p <= r < 3p. With p = 0.1: 10 % embedding only, 10 % both,
    10 % latents only, 70 % neither.
    """

    def __init__(self, probability: float, seed: int = DROPOUT_SEED) -> None:
        self.probability = probability
        self.generator = torch.Generator().manual_seed(seed)

    def draw(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Boolean masks ``[batch_size]``: (drop image embedding, drop first-frame latents)."""
        r = torch.rand(batch_size, generator=self.generator)
        p = self.probability
        return r < 2 * p, (r >= p) & (r < 3 * p)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def clip_pixel_input(
    first_frame: torch.Tensor, size: int, image_mean: list[float], image_std: list[float]
) -> torch.Tensor:
    """First frame ``[B, 3, H, W]`` in [0, 1] -> CLIP input ``[B, 3, size, size]``, antialiased and normalised."""
    # imported here: diffusers takes seconds to import, and the argument checks (train_stage*.sh) need this module
    from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing

    resized = _resize_with_antialiasing(first_frame, (size, size))
    mean = resized.new_tensor(image_mean).view(1, 3, 1, 1)
    std = resized.new_tensor(image_std).view(1, 3, 1, 1)
    return (resized - mean) / std


def encode_video_latents(
    vae: torch.nn.Module,
    pixel_values: torch.Tensor,
    signed_input: bool,
    generator: torch.Generator | None = None,
    chunk_size: int = 8,
) -> torch.Tensor:
    """Scaled VAE latents of every frame.

    Args:
        pixel_values: ``[B, T, 3, H, W]`` in [0, 1].
        signed_input: map to [-1, 1] before encoding (else encode [0, 1] as the released training did).
        generator: source of the posterior samples.
        chunk_size: frames per VAE call.

    Returns:
        ``[B, T, C, H/8, W/8]`` ``posterior.sample() * scaling_factor``, in the VAE's dtype.
    """
    batch, num_frames = pixel_values.shape[:2]
    frames = pixel_values.flatten(0, 1).to(vae.dtype)
    if signed_input:
        frames = frames * 2 - 1
    latents = torch.cat(
        [
            vae.encode(frames[start : start + chunk_size]).latent_dist.sample(generator)
            for start in range(0, frames.shape[0], chunk_size)
        ]
    )
    latents = latents * vae.config.scaling_factor
    return latents.unflatten(0, (batch, num_frames))


def first_frame_latents(
    vae: torch.nn.Module,
    latents: torch.Tensor,
    noise: torch.Tensor,
    first_frame: torch.Tensor,
    conventions: TrainingConventions,
    noise_aug_strength: float = NOISE_AUG_STRENGTH,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The unscaled first-frame latents concatenated to every frame of the UNet input.

    Args:
        latents: ``[B, T, C, h, w]`` scaled clip latents.
        noise: ``[B, T, C, h, w]`` the diffusion noise (its frame 0 is reused by the released form).
        first_frame: ``[B, 3, H, W]`` in [0, 1].

    Returns:
        ``[B, C, h, w]``.
    """
    if not conventions.pixel_noise_cond_latents:
        return (latents[:, 0] + noise_aug_strength * noise[:, 0]) / vae.config.scaling_factor
    image = first_frame.to(vae.dtype) * 2 - 1
    pixel_noise = torch.randn(image.shape, generator=generator, dtype=image.dtype).to(image.device)
    return vae.encode(image + noise_aug_strength * pixel_noise).latent_dist.mode()
