"""One optimisation step's forward pass: clip -> flow -> noisy latents -> adapter + UNet -> loss."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from train_utils.components import TrainingComponents
from train_utils.conditioning import (
    FPS_ID,
    MOTION_BUCKET_ID,
    NOISE_AUG_STRENGTH,
    ConditioningDropout,
    TrainingConventions,
    build_added_time_ids,
    clip_pixel_input,
    encode_video_latents,
    first_frame_latents,
)
from train_utils.edm import denoising_loss, precondition, sample_sigmas
from train_utils.flow_estimation import FlowEstimator
from train_utils.sparse_to_dense import cmp_flow_from_hints


@dataclass(frozen=True)
class StepConfig:
    """Settings of the training objective (see :mod:`train_utils.conditioning`)."""

    stage: int
    conventions: TrainingConventions
    fps_id: int = FPS_ID
    motion_bucket_id: int = MOTION_BUCKET_ID
    noise_aug_strength: float = NOISE_AUG_STRENGTH
    s2d_size: int = 384
    vae_encode_chunk_size: int = 8


class TrainingRandomness:
    """The generators of the noise levels, diffusion noise, VAE samples (torch) and hint sampling (numpy).

    Seeded with ``seed + process_index`` and saved in every checkpoint, so a resumed run draws what an
    uninterrupted one would have.
    """

    def __init__(self, seed: int, process_index: int = 0) -> None:
        self.torch = torch.Generator().manual_seed(seed + process_index)
        self.numpy = np.random.default_rng(seed + process_index)

    def state_dict(self) -> dict:
        return {"torch": self.torch.get_state(), "numpy": self.numpy.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.torch.set_state(state["torch"])
        self.numpy.bit_generator.state = state["numpy"]


@dataclass
class StepOutput:
    """The loss and what produced it (flows are kept for visual checks)."""

    loss: torch.Tensor
    sigmas: torch.Tensor
    controlnet_flow: torch.Tensor


class AdapterTrainingStep:
    """Computes the training loss of a batch.

    Args:
        components: the networks (frozen ones already on ``device`` in ``weight_dtype``).
        config: objective settings.
        flow_estimator: dense-flow source, or None when batches carry precomputed ``flow``.
        dropout: conditioning dropout.
        randomness: generators (see :class:`TrainingRandomness`).
        device, weight_dtype: where and in which dtype the frozen networks run.
    """

    def __init__(
        self,
        components: TrainingComponents,
        config: StepConfig,
        flow_estimator: FlowEstimator | None,
        dropout: ConditioningDropout,
        randomness: TrainingRandomness,
        device: torch.device,
        weight_dtype: torch.dtype,
    ) -> None:
        self.components = components
        self.config = config
        self.flow_estimator = flow_estimator
        self.dropout = dropout
        self.randomness = randomness
        self.device = device
        self.weight_dtype = weight_dtype

    @torch.no_grad()
    def adapter_flow(self, pixel_values: torch.Tensor, batch: dict) -> torch.Tensor:
        """``[B, T-1, 2, H, W]`` float32: dense flow (stage 1) or CMP's flow from its sparse hints (stage 2)."""
        if "flow" in batch:
            flows = batch["flow"].to(self.device, torch.float32)
        else:
            flows = self.flow_estimator(pixel_values).float()
        if self.config.stage == 1:
            return flows
        hinted = cmp_flow_from_hints(
            self.components.cmp, pixel_values[:, 0], flows, self.config.s2d_size, self.randomness.numpy
        )
        return hinted.dense

    @torch.no_grad()
    def conditioning(
        self, pixel_values: torch.Tensor, latents: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP image embedding ``[B, 1, D]`` and first-frame latents ``[B, C, h, w]``, after dropout."""
        components, conventions = self.components, self.config.conventions
        first_frame = pixel_values[:, 0]
        clip_input = clip_pixel_input(
            first_frame.float(), components.clip_size, components.image_mean, components.image_std
        )
        image_embeds = components.image_encoder(clip_input.to(self.weight_dtype)).image_embeds.unsqueeze(1)
        cond_latents = first_frame_latents(
            components.vae,
            latents,
            noise,
            first_frame,
            conventions,
            self.config.noise_aug_strength,
            self.randomness.torch,
        )
        drop_embedding, drop_latents = self.dropout.draw(pixel_values.shape[0])
        image_embeds = image_embeds * (~drop_embedding).to(self.device, image_embeds.dtype).view(-1, 1, 1)
        cond_latents = cond_latents * (~drop_latents).to(self.device, cond_latents.dtype).view(-1, 1, 1, 1)
        return image_embeds, cond_latents

    def __call__(self, batch: dict, controlnet: nn.Module) -> StepOutput:
        """Loss of ``batch`` (``pixel_values`` ``[B, T, 3, H, W]`` in [0, 1]) through ``controlnet`` (maybe wrapped)."""
        components, config, generator = self.components, self.config, self.randomness.torch
        pixel_values = batch["pixel_values"].to(self.device, torch.float32)
        batch_size, num_frames = pixel_values.shape[:2]
        controlnet_flow = self.adapter_flow(pixel_values, batch)

        with torch.no_grad():
            latents = encode_video_latents(
                components.vae,
                pixel_values,
                config.conventions.signed_vae_input,
                generator,
                config.vae_encode_chunk_size,
            )
        sigmas = sample_sigmas(batch_size, generator).to(self.device)
        noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32).to(self.device, latents.dtype)
        noisy_latents = latents + sigmas.view(-1, 1, 1, 1, 1).to(latents.dtype) * noise
        scalings = precondition(sigmas)
        image_embeds, cond_latents = self.conditioning(pixel_values, latents, noise)

        # UNet input [B, T, 2C, h, w]: scaled noisy latents, then the first-frame latents on every frame
        scaled_noisy = scalings.c_in.view(-1, 1, 1, 1, 1) * noisy_latents.float()
        cond_frames = cond_latents.unsqueeze(1).expand(-1, num_frames, -1, -1, -1)
        unet_input = torch.cat([scaled_noisy.to(self.weight_dtype), cond_frames.to(self.weight_dtype)], dim=2)
        added_time_ids = build_added_time_ids(
            batch_size,
            config.conventions.time_ids_order,
            config.fps_id,
            config.motion_bucket_id,
            config.noise_aug_strength,
            self.weight_dtype,
            self.device,
        )
        first_frame = pixel_values[:, 0]
        controlnet_cond = first_frame * 2 - 1 if config.conventions.signed_controlnet_cond else first_frame

        # a tuple, not the output dataclass: accelerate's mixed-precision wrapper rebuilds tuples only
        down_residuals, mid_residual, _ = controlnet(
            unet_input,
            scalings.c_noise,
            image_embeds,
            added_time_ids,
            controlnet_cond=controlnet_cond,
            controlnet_flow=controlnet_flow,
            return_dict=False,
        )
        unet_output = components.unet(
            unet_input,
            scalings.c_noise,
            image_embeds,
            added_time_ids,
            down_block_additional_residuals=[residual.to(self.weight_dtype) for residual in down_residuals],
            mid_block_additional_residual=mid_residual.to(self.weight_dtype),
            return_dict=False,
        )[0]
        loss = denoising_loss(unet_output, noisy_latents, latents, sigmas)
        return StepOutput(loss=loss, sigmas=sigmas, controlnet_flow=controlnet_flow)
