# Copied from MOFA-Video-Keypoint/models/ldmk_controlnet.py
"""LandmarkFlowControlNet, the landmark MOFA-Adapter: first frame + landmark flow + pose images -> residuals.

It is the trajectory adapter (:class:`models.flow_controlnet.FlowControlNet`) with three changes, as the
released ``ldmk_controlnet`` weights expect:

1. the first-frame feature pyramid is used without the trajectory adapter's zero convs;
2. every warped feature goes through a per-level matting network (:class:`ForegroundMatting`: an hourglass
   that sees the unwarped feature, the flow and the warped feature and blends the warped feature with a
   predicted fill through a soft mask) and a zero-initialised 1x1 conv (``zero_outs``); frame 0 keeps the
   unwarped feature;
3. the rendered pose image of every frame is encoded to the latent grid (``controlnet_ldmk_embedding``) and
   added after ``conv_in``, and a nearest half-size copy after down block 0.

Per-level modules are keyed by the level's pixel stride (``"8"``, ``"16"``, ``"32"``, ``"64"`` when
released).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding, zero_module
from torch import nn

from models.flow_controlnet import (
    FlowControlNet,
    FlowControlNetOutput,
    flow_pyramid,
    warp_features,
)


@dataclass
class LandmarkFlowControlNetOutput(FlowControlNetOutput):
    """:class:`FlowControlNetOutput` plus ``occlusion_masks``: one ``(B, T-1, 1, h_k, w_k)`` matting mask in
    [0, 1] per feature level (1 keeps the warped feature)."""

    occlusion_masks: list[torch.Tensor] | None = None


class ForegroundMatting(nn.Module):
    """Repairs a forward-warped feature map where splatting left holes or overlaps.

    An hourglass (three 3x3 conv + ReLU layers widening from ``block_expansion * 2`` channels, then three
    decoding layers with skip concatenation, all at the input resolution) reads
    ``[reference, flow, warped]``; two 7x7 heads predict a mask ``m`` (sigmoid) and a fill ``f``; the result
    is ``warped * m + f * (1 - m)``.
    """

    def __init__(self, channels: int, num_blocks: int = 3, block_expansion: int = 64, max_features: int = 512):
        super().__init__()
        self.hourglass = Hourglass(2 * channels + 2, num_blocks, block_expansion, max_features)
        self.matting_mask = nn.Conv2d(block_expansion, 1, kernel_size=7, padding=3)
        self.matting = nn.Conv2d(block_expansion, channels, kernel_size=7, padding=3)

    def forward(
        self, reference: torch.Tensor, flow: torch.Tensor, warped: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """reference, warped: ``(N, C, h, w)``; flow: ``(N, 2, h, w)`` -> (repaired ``(N, C, h, w)``, mask
        ``(N, 1, h, w)``)."""
        hidden = self.hourglass(torch.cat([reference, flow.to(reference.dtype), warped], dim=1))
        mask = torch.sigmoid(self.matting_mask(hidden))
        return warped * mask + self.matting(hidden) * (1 - mask), mask


class ConvReLU(nn.Module):
    """3x3 conv (padding 1) followed by ReLU; the spatial size is kept."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(hidden))


class HourglassEncoder(nn.Module):
    """Layer ``i`` maps to ``min(max_features, block_expansion * 2^(i+1))`` channels; returns every output."""

    def __init__(self, in_channels: int, num_blocks: int, block_expansion: int, max_features: int):
        super().__init__()
        widths = [in_channels] + [min(max_features, block_expansion * 2 ** (i + 1)) for i in range(num_blocks)]
        self.down_blocks = nn.ModuleList(ConvReLU(widths[i], widths[i + 1]) for i in range(num_blocks))

    def forward(self, hidden: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for block in self.down_blocks:
            hidden = block(hidden)
            outputs.append(hidden)
        return outputs


class HourglassDecoder(nn.Module):
    """Walks the encoder outputs back from the deepest, concatenating each with the previous decoder output;
    ends at ``block_expansion`` channels."""

    def __init__(self, num_blocks: int, block_expansion: int, max_features: int):
        super().__init__()
        blocks = []
        for level in reversed(range(num_blocks)):
            skip_width = min(max_features, block_expansion * 2 ** (level + 1))
            in_width = skip_width if level == num_blocks - 1 else 2 * skip_width
            blocks.append(ConvReLU(in_width, min(max_features, block_expansion * 2**level)))
        self.up_blocks = nn.ModuleList(blocks)

    def forward(self, encoder_outputs: list[torch.Tensor]) -> torch.Tensor:
        hidden = None
        for block, skip in zip(self.up_blocks, reversed(encoder_outputs)):
            hidden = block(skip if hidden is None else torch.cat([skip, hidden], dim=1))
        return hidden


class Hourglass(nn.Module):
    """Encoder-decoder at constant resolution: ``(N, in_channels, h, w) -> (N, block_expansion, h, w)``."""

    def __init__(self, in_channels: int, num_blocks: int, block_expansion: int, max_features: int):
        super().__init__()
        self.encoder = HourglassEncoder(in_channels, num_blocks, block_expansion, max_features)
        self.decoder = HourglassDecoder(num_blocks, block_expansion, max_features)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(hidden))


class LandmarkFlowControlNet(FlowControlNet):
    """The landmark MOFA-Adapter (see the module docstring). Defaults build the released architecture.

    Config beyond :class:`FlowControlNet`'s: ``landmark_embedding_out_channels`` (pose-image encoder widths,
    ``(16, 32, 64, 128)`` when released) and ``matting_block_expansion`` / ``matting_max_features`` (the
    matting hourglass widths, 64 / 512 when released); a released ``config.json`` lacks them and gets the
    defaults. The pose-image encoder must reach the same stride as the condition encoder.
    """

    flow_encoder_zero_convs = False

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 8,
        out_channels: int = 4,
        down_block_types: tuple[str, ...] = (
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "DownBlockSpatioTemporal",
        ),
        up_block_types: tuple[str, ...] = (
            "UpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
        ),
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        addition_time_embed_dim: int = 256,
        projection_class_embeddings_input_dim: int = 768,
        layers_per_block: int | tuple[int, ...] = 2,
        cross_attention_dim: int | tuple[int, ...] = 1024,
        transformer_layers_per_block: int | tuple[int, ...] = 1,
        num_attention_heads: int | tuple[int, ...] = (5, 10, 10, 20),
        num_frames: int = 25,
        conditioning_channels: int = 3,
        conditioning_embedding_out_channels: tuple[int, ...] = (16, 32, 96, 256),
        landmark_embedding_out_channels: tuple[int, ...] = (16, 32, 64, 128),
        matting_block_expansion: int = 64,
        matting_max_features: int = 512,
    ):
        super().__init__(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=down_block_types,
            up_block_types=up_block_types,
            block_out_channels=block_out_channels,
            addition_time_embed_dim=addition_time_embed_dim,
            projection_class_embeddings_input_dim=projection_class_embeddings_input_dim,
            layers_per_block=layers_per_block,
            cross_attention_dim=cross_attention_dim,
            transformer_layers_per_block=transformer_layers_per_block,
            num_attention_heads=num_attention_heads,
            num_frames=num_frames,
            conditioning_channels=conditioning_channels,
            conditioning_embedding_out_channels=conditioning_embedding_out_channels,
        )
        if len(landmark_embedding_out_channels) != len(conditioning_embedding_out_channels):
            raise ValueError(
                "landmark_embedding_out_channels must have as many entries as conditioning_embedding_out_channels "
                f"(same stride), got {landmark_embedding_out_channels} and {conditioning_embedding_out_channels}"
            )
        level_channels = (block_out_channels[0], *block_out_channels[: len(down_block_types) - 1])
        self.controlnet_ldmk_embedding = ControlNetConditioningEmbedding(
            conditioning_embedding_channels=block_out_channels[0],
            conditioning_channels=conditioning_channels,
            block_out_channels=tuple(landmark_embedding_out_channels),
        )
        level_names = [str(stride) for stride in self.pyramid_strides]
        self.zero_outs = nn.ModuleDict(
            {
                name: zero_module(nn.Conv2d(width, width, kernel_size=1))
                for name, width in zip(level_names, level_channels)
            }
        )
        self.occlusions = nn.ModuleDict(
            {
                name: ForegroundMatting(
                    width, block_expansion=matting_block_expansion, max_features=matting_max_features
                )
                for name, width in zip(level_names, level_channels)
            }
        )

    def warp_condition(
        self, features: Sequence[torch.Tensor], controlnet_flow: torch.Tensor, chunk_size: int = 24
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Warp, repair and zero-conv each level; frame 0 keeps the raw feature (the parent's hook).

        Args:
            features: per level ``(B, C_k, h_k, w_k)`` first-frame features.
            controlnet_flow: ``(B, T-1, 2, H, W)`` flow in pixels.
            chunk_size: flows warped and repaired at a time (bounds memory for long videos; same result).

        Returns:
            (per level ``(B·T, C_k, h_k, w_k)`` batch-major frames, per level ``(B, T-1, 1, h_k, w_k)`` masks).
        """
        warped_levels, masks = [], []
        for stride, feature, flow in zip(
            self.pyramid_strides, features, flow_pyramid(controlnet_flow, self.pyramid_strides)
        ):
            repaired, level_masks = [], []
            for start in range(0, flow.shape[1], chunk_size):
                chunk_repaired, chunk_mask = self._repair_warped(stride, feature, flow[:, start : start + chunk_size])
                repaired.append(chunk_repaired)
                level_masks.append(chunk_mask)
            frames = torch.cat([feature.unsqueeze(1), *repaired], dim=1)  # (B, T, C, h, w)
            warped_levels.append(frames.flatten(0, 1))
            masks.append(torch.cat(level_masks, dim=1))
        return warped_levels, masks

    def _repair_warped(
        self, stride: int, feature: torch.Tensor, flow: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One level, some flows: ``(B, C, h, w)`` feature and ``(B, F, 2, h, w)`` flows -> repaired, zero-conved
        warped features ``(B, F, C, h, w)`` and masks ``(B, F, 1, h, w)``."""
        batch, channels, height, width = feature.shape
        num_flows = flow.shape[1]
        warped = warp_features(feature, flow).view(batch, num_flows + 1, channels, height, width)[:, 1:]
        reference = feature.unsqueeze(1).expand(-1, num_flows, -1, -1, -1).reshape(-1, channels, height, width)
        repaired, mask = self.occlusions[str(stride)](
            reference, flow.reshape(-1, 2, height, width), warped.reshape(-1, channels, height, width)
        )
        repaired = self.zero_outs[str(stride)](repaired).view(batch, num_flows, channels, height, width)
        return repaired, mask.view(batch, num_flows, 1, height, width)

    def encode_pose_images(self, pose_images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pose images ``(B, T, 3, H, W)`` in [0, 1] -> (``(B·T, C_0, h, w)`` at the latent grid, its nearest
        half-size copy ``(B·T, C_0, h/2, w/2)``)."""
        embedding = self.controlnet_ldmk_embedding(pose_images.flatten(0, 1))
        return embedding, F.interpolate(embedding, scale_factor=0.5, mode="nearest")

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        controlnet_cond: torch.Tensor,
        controlnet_flow: torch.Tensor,
        pose_images: torch.Tensor,
        conditioning_scale: float | torch.Tensor = 1.0,
        return_dict: bool = True,
        warped_condition: Sequence[torch.Tensor] | None = None,
    ) -> LandmarkFlowControlNetOutput | tuple[Any, ...]:
        """Residuals for the SVD UNet from the first frame, its flow to every later frame and pose images.

        Args:
            sample, timestep, encoder_hidden_states, added_time_ids, controlnet_cond, controlnet_flow,
                conditioning_scale, return_dict: as :meth:`FlowControlNet.forward`.
            pose_images: ``(B, T, 3, H, W)`` rendered pose image of every frame (frame 0 included) in [0, 1].
            warped_condition: the output of :meth:`prepare_condition` for ``controlnet_cond`` and
                ``controlnet_flow`` (in the sample's dtype), to skip recomputing it; the residuals are
                identical and ``occlusion_masks`` is then None.

        Returns:
            :class:`LandmarkFlowControlNetOutput` (or ``(down_block_res_samples, mid_block_res_sample,
            controlnet_flow, occlusion_masks)``).
        """
        self.check_inputs(sample, encoder_hidden_states, added_time_ids, controlnet_cond, controlnet_flow)
        expected = (*sample.shape[:2], self.config.conditioning_channels, *controlnet_cond.shape[-2:])
        if tuple(pose_images.shape) != expected:
            raise ValueError(f"pose_images must be (B, T, C, H, W) = {expected}, got {tuple(pose_images.shape)}")
        pose_full, pose_half = self.encode_pose_images(pose_images.to(dtype=sample.dtype))
        down_residuals, mid_residual, occlusion_masks = self.residuals(
            sample, timestep, encoder_hidden_states, added_time_ids, controlnet_cond, controlnet_flow,
            conditioning_scale, warped_condition, extra_injections={0: [pose_full], 1: [pose_half]},
        )  # fmt: skip

        if not return_dict:
            return (down_residuals, mid_residual, controlnet_flow, occlusion_masks)
        return LandmarkFlowControlNetOutput(
            down_block_res_samples=down_residuals,
            mid_block_res_sample=mid_residual,
            controlnet_flow=controlnet_flow,
            occlusion_masks=occlusion_masks,
        )
