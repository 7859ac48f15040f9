# Copied from MOFA-Video-Traj/models/unet_spatio_temporal_condition_controlnet.py
"""The SVD spatio-temporal UNet, accepting ControlNet residuals.

:class:`UNetSpatioTemporalConditionControlNetModel` is diffusers' ``UNetSpatioTemporalConditionModel`` with a
forward pass that adds one residual per encoder skip connection and one after the mid block. Its weights and
config are the stock ones, so the SVD-xt ``unet/`` folder loads unchanged.

The released MOFA adapters were trained against a UNet that adds the residual list to every skip collected
so far after *each* down block. Skip ``j`` therefore receives its residual once for every down block run from
the one that produced it to the last: with the SVD layout the 12 residuals count 4,4,4,4,3,3,3,2,2,2,1,1
times. This model reproduces that by scaling residual ``j`` by its multiplier once (see
:func:`down_residual_multipliers`).

Its temporal cross-attentions follow :mod:`models.temporal_context`, ``"original"`` unless
:meth:`~models.temporal_context.TemporalContextMixin.set_temporal_context` says otherwise.

The helpers :func:`time_embedding` and :func:`run_down_block` are shared with the adapters, whose encoder
half is a copy of this UNet's.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from diffusers.models.unets.unet_spatio_temporal_condition import (
    UNetSpatioTemporalConditionModel,
    UNetSpatioTemporalConditionOutput,
)
from diffusers.utils.torch_utils import maybe_adjust_dtype_for_device
from torch import nn

from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT, TemporalContextMixin


def down_residual_multipliers(down_blocks: Sequence[nn.Module]) -> tuple[int, ...]:
    """How many times each encoder skip's residual is counted, in skip order.

    The first skip is the ``conv_in`` output, followed by each down block's resnet outputs and, when the block
    downsamples, its downsampler output. A skip produced by down block ``i`` (``conv_in`` counts as block 0)
    is counted ``len(down_blocks) - i`` times. For SVD this is ``(4, 4, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1)``.
    """
    num_blocks = len(down_blocks)
    multipliers = [num_blocks]
    for index, block in enumerate(down_blocks):
        skips = len(block.resnets) + (1 if block.downsamplers is not None else 0)
        multipliers += [num_blocks - index] * skips
    return tuple(multipliers)


def time_embedding(
    model: nn.Module,
    timestep: torch.Tensor | float | int,
    added_time_ids: torch.Tensor,
    batch_size: int,
    num_frames: int,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """The per-frame conditioning vector of an SVD UNet (or of its encoder copy).

    Args:
        model: a module with ``time_proj``, ``time_embedding``, ``add_time_proj`` and ``add_embedding``.
        timestep: scalar or ``(batch_size,)`` continuous timestep (``0.25·ln σ`` for SVD).
        added_time_ids: ``(batch_size, num_ids)`` micro-conditioning (fps, motion bucket, noise strength).
        dtype, device: those of the sample; the sinusoidal projection is cast to ``dtype``.

    Returns:
        ``(batch_size·num_frames, C_emb)``, each batch row repeated for its frames (batch-major).
    """
    timesteps = timestep
    if not torch.is_tensor(timesteps):
        timesteps_dtype = maybe_adjust_dtype_for_device(
            torch.float64 if isinstance(timestep, float) else torch.int64, device
        )
        timesteps = torch.tensor([timesteps], dtype=timesteps_dtype, device=device)
    elif len(timesteps.shape) == 0:
        timesteps = timesteps[None].to(device)
    timesteps = timesteps.expand(batch_size)

    emb = model.time_embedding(model.time_proj(timesteps).to(dtype=dtype))
    time_embeds = model.add_time_proj(added_time_ids.flatten()).reshape((batch_size, -1)).to(emb.dtype)
    emb = emb + model.add_embedding(time_embeds)
    return emb.repeat_interleave(num_frames, dim=0, output_size=emb.shape[0] * num_frames)


def run_down_block(
    block: nn.Module,
    hidden_states: torch.Tensor,
    temb: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    image_only_indicator: torch.Tensor,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Run one spatio-temporal down block; returns ``(hidden_states, skips)`` as the block does."""
    if getattr(block, "has_cross_attention", False):
        return block(
            hidden_states=hidden_states,
            temb=temb,
            encoder_hidden_states=encoder_hidden_states,
            image_only_indicator=image_only_indicator,
        )
    return block(hidden_states=hidden_states, temb=temb, image_only_indicator=image_only_indicator)


class UNetSpatioTemporalConditionControlNetModel(TemporalContextMixin, UNetSpatioTemporalConditionModel):
    """SVD UNet whose forward adds ControlNet residuals (config and weights as ``UNetSpatioTemporalConditionModel``)."""

    @functools.wraps(UNetSpatioTemporalConditionModel.__init__)
    def __init__(self, *args, **kwargs) -> None:
        # the wrapped signature keeps diffusers' config handling, which reads the parent's parameters
        super().__init__(*args, **kwargs)
        self.set_temporal_context(DEFAULT_TEMPORAL_CONTEXT)

    @property
    def residual_multipliers(self) -> tuple[int, ...]:
        """How many times each down residual counts; ``len`` is the number of residuals expected."""
        return down_residual_multipliers(self.down_blocks)

    def _check_residuals(
        self,
        skips: Sequence[torch.Tensor],
        down_block_additional_residuals: Sequence[torch.Tensor],
    ) -> None:
        if len(down_block_additional_residuals) != len(skips):
            raise ValueError(
                f"down_block_additional_residuals must hold {len(skips)} tensors (one per encoder skip), "
                f"got {len(down_block_additional_residuals)}"
            )
        for index, (skip, residual) in enumerate(zip(skips, down_block_additional_residuals)):
            if residual.shape != skip.shape:
                raise ValueError(
                    f"down_block_additional_residuals[{index}] has shape {tuple(residual.shape)}, "
                    f"expected {tuple(skip.shape)}"
                )

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        down_block_additional_residuals: Sequence[torch.Tensor] | None = None,
        mid_block_additional_residual: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNetSpatioTemporalConditionOutput | tuple[torch.Tensor]:
        """Denoise a batch of videos, optionally steered by ControlNet residuals.

        Args:
            sample: ``(B, T, C_in, h, w)`` scaled noisy latents concatenated with the image latents.
            timestep: scalar or ``(B,)`` continuous timestep.
            encoder_hidden_states: ``(B, L, cross_attention_dim)`` image embedding.
            added_time_ids: ``(B, num_ids)``.
            down_block_additional_residuals: one ``(B·T, C, h_i, w_i)`` tensor per encoder skip (12 for SVD),
                residual ``j`` counted ``residual_multipliers[j]`` times, as the released adapters expect.
                ``None`` adds nothing.
            mid_block_additional_residual: ``(B·T, C_mid, h_mid, w_mid)`` added once after the mid block.
            return_dict: return a ``UNetSpatioTemporalConditionOutput`` instead of a tuple.

        Returns:
            ``sample`` ``(B, T, C_out, h, w)``; with no residuals, exactly the stock UNet's output.
        """
        default_overall_up_factor = 2**self.num_upsamplers
        forward_upsample_size = any(size % default_overall_up_factor != 0 for size in sample.shape[-2:])
        upsample_size = None

        # 1. time: (B·T, C_emb); conditioning repeated per frame
        batch_size, num_frames = sample.shape[:2]
        emb = time_embedding(self, timestep, added_time_ids, batch_size, num_frames, sample.dtype, sample.device)
        encoder_hidden_states = encoder_hidden_states.repeat_interleave(
            num_frames, dim=0, output_size=encoder_hidden_states.shape[0] * num_frames
        )

        # 2. pre-process: (B·T, C_in, h, w) -> (B·T, C0, h, w)
        sample = self.conv_in(sample.flatten(0, 1))
        image_only_indicator = torch.zeros(batch_size, num_frames, dtype=sample.dtype, device=sample.device)

        # 3. down
        down_block_res_samples = (sample,)
        for downsample_block in self.down_blocks:
            sample, res_samples = run_down_block(
                downsample_block, sample, emb, encoder_hidden_states, image_only_indicator
            )
            down_block_res_samples += res_samples

        if down_block_additional_residuals is not None:
            self._check_residuals(down_block_res_samples, down_block_additional_residuals)
            down_block_res_samples = tuple(
                skip + residual * multiplier
                for skip, residual, multiplier in zip(
                    down_block_res_samples, down_block_additional_residuals, self.residual_multipliers
                )
            )

        # 4. mid
        sample = self.mid_block(
            hidden_states=sample,
            temb=emb,
            encoder_hidden_states=encoder_hidden_states,
            image_only_indicator=image_only_indicator,
        )
        if mid_block_additional_residual is not None:
            if mid_block_additional_residual.shape != sample.shape:
                raise ValueError(
                    f"mid_block_additional_residual has shape {tuple(mid_block_additional_residual.shape)}, "
                    f"expected {tuple(sample.shape)}"
                )
            sample = sample + mid_block_additional_residual

        # 5. up
        for index, upsample_block in enumerate(self.up_blocks):
            is_final_block = index == len(self.up_blocks) - 1
            res_samples = down_block_res_samples[-len(upsample_block.resnets) :]
            down_block_res_samples = down_block_res_samples[: -len(upsample_block.resnets)]
            if not is_final_block and forward_upsample_size:
                upsample_size = down_block_res_samples[-1].shape[2:]

            if getattr(upsample_block, "has_cross_attention", False):
                sample = upsample_block(
                    hidden_states=sample,
                    temb=emb,
                    res_hidden_states_tuple=res_samples,
                    encoder_hidden_states=encoder_hidden_states,
                    upsample_size=upsample_size,
                    image_only_indicator=image_only_indicator,
                )
            else:
                sample = upsample_block(
                    hidden_states=sample,
                    temb=emb,
                    res_hidden_states_tuple=res_samples,
                    upsample_size=upsample_size,
                    image_only_indicator=image_only_indicator,
                )

        # 6. post-process, back to (B, T, C_out, h, w)
        sample = self.conv_out(self.conv_act(self.conv_norm_out(sample)))
        sample = sample.reshape(batch_size, num_frames, *sample.shape[1:])

        if not return_dict:
            return (sample,)
        return UNetSpatioTemporalConditionOutput(sample=sample)
