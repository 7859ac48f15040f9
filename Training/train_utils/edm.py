"""The SVD training objective: EDM preconditioning with sigma_data = 1 and the v-prediction weighting.

Noise levels are drawn from the interpolated-cosine density of "simple diffusion" (Hoogeboom et al.
2023): the log-SNR of a cosine schedule, shifted for a 32-px and a 64-px "noise resolution" and
interpolated between the two along the uniform variable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Noise-level density the released weights were trained with.
SIGMA_MIN = 0.002
SIGMA_MAX = 700.0
SIGMA_DENSITY_DATA = 0.5
IMAGE_D = 64
NOISE_D_LOW = 32
NOISE_D_HIGH = 64


def stratified_uniform(batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``[batch_size]`` samples, one uniformly inside each of ``batch_size`` equal bins of [0, 1)."""
    offsets = torch.arange(batch_size, dtype=torch.float64)
    jitter = torch.rand(batch_size, generator=generator, dtype=torch.float64)
    return (offsets + jitter) / batch_size


def cosine_logsnr(u: torch.Tensor, logsnr_start: float, logsnr_end: float) -> torch.Tensor:
    """Cosine schedule in log-SNR, ``logsnr_start`` at u = 0 to ``logsnr_end`` at u = 1."""
    angle_start = math.atan(math.exp(-0.5 * logsnr_start))
    angle_end = math.atan(math.exp(-0.5 * logsnr_end))
    return -2.0 * torch.log(torch.tan(angle_start + u * (angle_end - angle_start)))


def shifted_cosine_logsnr(
    u: torch.Tensor, image_d: float, noise_d: float, logsnr_start: float, logsnr_end: float
) -> torch.Tensor:
    """Cosine log-SNR shifted by ``2 ln(noise_d / image_d)``, keeping the end points."""
    shift = 2.0 * math.log(noise_d / image_d)
    return cosine_logsnr(u, logsnr_start - shift, logsnr_end - shift) + shift


def sample_sigmas(
    batch_size: int,
    generator: torch.Generator | None = None,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    sigma_data: float = SIGMA_DENSITY_DATA,
    image_d: float = IMAGE_D,
    noise_d_low: float = NOISE_D_LOW,
    noise_d_high: float = NOISE_D_HIGH,
) -> torch.Tensor:
    """Noise levels ``[batch_size]`` float32 in [sigma_min, sigma_max] from the interpolated-cosine density.

    u = 0 maps to ``sigma_max`` and u = 1 to ``sigma_min``; the log-SNR moves from the 32-px shifted
    schedule (u = 0) to the 64-px one (u = 1). With the defaults the median is about 0.71, the 10th
    percentile about 0.087 and the 90th about 5.8.
    """
    logsnr_start = -2.0 * math.log(sigma_max / sigma_data)
    logsnr_end = -2.0 * math.log(sigma_min / sigma_data)
    u = stratified_uniform(batch_size, generator)
    logsnr_low = shifted_cosine_logsnr(u, image_d, noise_d_low, logsnr_start, logsnr_end)
    logsnr_high = shifted_cosine_logsnr(u, image_d, noise_d_high, logsnr_start, logsnr_end)
    logsnr = torch.lerp(logsnr_low, logsnr_high, u)
    return (torch.exp(-0.5 * logsnr) * sigma_data).float()


@dataclass(frozen=True)
class Preconditioning:
    """EDM scalings for sigma_data = 1, each shaped like the sigmas passed in.

    ``c_in`` scales the UNet input, ``c_noise`` is the UNet timestep, and the denoised estimate is
    ``c_skip * noisy + c_out * unet_output``.
    """

    c_in: torch.Tensor
    c_noise: torch.Tensor
    c_skip: torch.Tensor
    c_out: torch.Tensor


def precondition(sigmas: torch.Tensor) -> Preconditioning:
    """c_in = 1/sqrt(s^2+1), c_noise = ln(s)/4, c_skip = 1/(s^2+1), c_out = -s/sqrt(s^2+1)."""
    variance = sigmas**2 + 1
    return Preconditioning(
        c_in=variance.rsqrt(),
        c_noise=0.25 * sigmas.log(),
        c_skip=1.0 / variance,
        c_out=-sigmas * variance.rsqrt(),
    )


def loss_weight(sigmas: torch.Tensor) -> torch.Tensor:
    """(s^2 + 1) / s^2: with c_out^2 this makes the loss the plain v-prediction MSE."""
    return (sigmas**2 + 1) / sigmas**2


def denoising_loss(
    unet_output: torch.Tensor, noisy_latents: torch.Tensor, latents: torch.Tensor, sigmas: torch.Tensor
) -> torch.Tensor:
    """Weighted denoising MSE, computed in float32.

    Args:
        unet_output: ``[B, T, C, h, w]`` raw UNet prediction F.
        noisy_latents: ``[B, T, C, h, w]`` ``latents + sigma * noise`` (not c_in-scaled).
        latents: ``[B, T, C, h, w]`` clean latents.
        sigmas: ``[B]`` noise levels.

    Returns:
        Scalar: mean over the batch of the per-sample mean of ``w * (D - latents)^2``, where
        ``D = c_out * F + c_skip * noisy`` and ``w = (s^2+1)/s^2``.
    """
    sigmas = sigmas.float().view(-1, 1, 1, 1, 1)
    scalings = precondition(sigmas)
    denoised = scalings.c_out * unet_output.float() + scalings.c_skip * noisy_latents.float()
    per_sample = (loss_weight(sigmas) * (denoised - latents.float()) ** 2).flatten(1).mean(dim=1)
    return per_sample.mean()
