# Copied from MOFA-Video-Traj/models/flow_controlnet.py
"""FlowControlNet, the trajectory MOFA-Adapter: first frame + dense flow -> ControlNet residuals for the SVD UNet.

The adapter is the encoder half of the SVD UNet (``conv_in``, time embeddings, down blocks, mid block) with
zero-initialised 1x1 output convs, plus a reference branch:

1. ``controlnet_cond_embedding`` encodes the first frame to the latent grid (feature level 0) and
   ``flow_encoder`` derives one coarser feature per further down block (levels 1 .. N-1, each half the size).
2. The flow of every later frame is sampled to each level's grid (:func:`flow_pyramid`) and each feature is
   forward-splatted by it (:func:`warp_features`); frame 0 keeps the unwarped feature.
3. The warped features are added to the encoder's hidden state at fixed points (:func:`injection_levels`).
   They depend on the first frame and the flow only, not on the noisy sample or the timestep, so a pipeline
   computes them once per video (:meth:`FlowControlNet.prepare_condition`) and passes them to every
   denoising step as ``warped_condition``; the residuals are then bit-identical and the per-step work is the
   encoder alone.
4. Every encoder skip and the mid-block output pass through their zero conv and are scaled by
   ``conditioning_scale``.

With the default config (the released architecture) the levels sit at 1/8, 1/16, 1/32 and 1/64 of the pixel
size, so the frame size must be a multiple of 64, and the adapter returns 12 down residuals plus one mid
residual. Dense flow is computed outside the model (CMP) and passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import AttentionMixin
from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding, zero_module
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_3d_blocks import UNetMidBlockSpatioTemporal, get_down_block
from diffusers.utils import BaseOutput
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import nn

from models.softsplat import softsplat
from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT, TemporalContextMixin
from models.unet_spatio_temporal_condition_controlnet import (
    UNetSpatioTemporalConditionControlNetModel,
    run_down_block,
    time_embedding,
)
from utils.errors import InputError


@dataclass
class FlowControlNetOutput(BaseOutput):
    """Output of :class:`FlowControlNet`.

    Args:
        down_block_res_samples: one ``(B·T, C_j, h_j, w_j)`` residual per UNet encoder skip (12 for SVD).
        mid_block_res_sample: ``(B·T, C_mid, h_mid, w_mid)`` residual for the UNet mid block.
        controlnet_flow: the ``(B, T-1, 2, H, W)`` flow the adapter was given.
    """

    down_block_res_samples: tuple[torch.Tensor, ...]
    mid_block_res_sample: torch.Tensor
    controlnet_flow: torch.Tensor


def flow_pyramid(flow: torch.Tensor, strides: Sequence[int]) -> list[torch.Tensor]:
    """Nearest-sample the flow at each stride and rescale it to that grid's pixel units.

    Args:
        flow: ``(..., 2, H, W)`` displacement in pixels; H and W multiples of every stride.
        strides: downscale factors, e.g. ``(8, 16, 32, 64)``.

    Returns:
        One ``(..., 2, H/s, W/s)`` tensor per stride: ``flow[..., ::s, ::s] / s`` (PyTorch nearest resizing by
        ``1/s`` picks the same pixels).
    """
    return [flow[..., ::stride, ::stride] / stride for stride in strides]


def warp_features(features: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
    """Forward-warp one feature map per video by each of its flows, the unwarped map first.

    Args:
        features: ``(B, C, h, w)`` first-frame features.
        flows: ``(B, T-1, 2, h, w)`` flow from frame 0 to frames 1..T-1 in this grid's pixels.

    Returns:
        ``(B·T, C, h, w)`` batch-major (all frames of video 0, then video 1, ...), in the dtype of
        ``features``; splatting runs in float32 (:func:`models.softsplat.softsplat`).
    """
    batch, channels, height, width = features.shape
    num_flows = flows.shape[1]
    repeated = features.unsqueeze(1).expand(-1, num_flows, -1, -1, -1).reshape(-1, channels, height, width)
    warped = softsplat(repeated, flows.reshape(-1, 2, height, width))
    frames = torch.cat([features.unsqueeze(1), warped.view(batch, num_flows, channels, height, width)], dim=1)
    return frames.flatten(0, 1)


def injection_levels(num_down_blocks: int) -> list[int]:
    """Which feature level is added at each point of the adapter's encoder.

    The points are: after ``conv_in``, after each down block, and before the mid block. Level 0 goes after
    ``conv_in``, level ``i+1`` after down block ``i``; the coarsest level is reused after the last down block
    and again before the mid block. For SVD (4 down blocks): ``[0, 1, 2, 3, 3, 3]``.
    """
    last = num_down_blocks - 1
    return [0] + [min(index + 1, last) for index in range(num_down_blocks)] + [last]


def check_size_multiple(height: int, width: int, multiple: int) -> None:
    """Raise :class:`InputError` unless both sides of the frame size are multiples of ``multiple``."""
    if height % multiple or width % multiple:
        raise InputError(
            f"frame size {width}x{height} (WxH) is not supported: width and height must be multiples of {multiple}"
        )


def _check_rank(name: str, tensor: torch.Tensor, rank: int, layout: str) -> None:
    if tensor.ndim != rank:
        raise ValueError(f"{name} must be {layout}, got shape {tuple(tensor.shape)}")


def add_all(hidden_states: torch.Tensor, additions: Sequence[torch.Tensor]) -> torch.Tensor:
    """``hidden_states + a_0 + a_1 + ...`` in order (out of place: skips already collected stay untouched)."""
    for addition in additions:
        hidden_states = hidden_states + addition
    return hidden_states


class FlowFeatureLayer(nn.Module):
    """A 3x3 stride-2 conv followed by SiLU: ``(N, C_in, h, w) -> (N, C_out, h/2, w/2)``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.silu(self.conv_in(hidden_states))


class FirstFrameFeatureEncoder(nn.Module):
    """Derives the coarser first-frame features (levels 1 ..) from the level-0 embedding.

    ``encoders[i]`` maps ``channels[i] -> channels[i+1]`` at half the size; each output optionally goes through
    its own zero-initialised 1x1 conv (``zeroconvs[i]``) before being returned, while the next layer reads the
    output before that conv.
    """

    def __init__(self, channels: Sequence[int], use_zero_convs: bool = True):
        super().__init__()
        self.encoders = nn.ModuleList(
            FlowFeatureLayer(channels[index], channels[index + 1]) for index in range(len(channels) - 1)
        )
        self.zeroconvs = (
            nn.ModuleList(zero_module(nn.Conv2d(width, width, kernel_size=1)) for width in channels[1:])
            if use_zero_convs
            else None
        )

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        """``(N, channels[0], h, w)`` -> ``[(N, channels[i+1], h/2^(i+1), w/2^(i+1)) for each layer]``."""
        outputs = []
        for index, encoder in enumerate(self.encoders):
            features = encoder(features)
            outputs.append(self.zeroconvs[index](features) if self.zeroconvs is not None else features)
        return outputs


class FlowControlNet(TemporalContextMixin, ModelMixin, AttentionMixin, ConfigMixin):
    """The trajectory MOFA-Adapter (see the module docstring for the data flow).

    The config mirrors the SVD UNet's, plus the condition-image embedding widths. Defaults build the released
    architecture, including its attention layout ``num_attention_heads=(5, 10, 10, 20)`` (the SVD UNet uses
    ``(5, 10, 20, 20)``; shapes are identical, results are not). ``out_channels`` and ``up_block_types`` are
    kept only so released ``config.json`` files load and save unchanged: the adapter has no decoder.

    Feature level ``k`` (``k = 0 .. len(down_block_types)-1``) has ``block_out_channels[max(k-1, 0)]`` channels
    at stride ``s_k = 2^(len(conditioning_embedding_out_channels)-1) · 2^k`` pixels; ``s_0`` must equal the
    VAE's downscale factor. The last two ``block_out_channels`` must be equal, because the coarsest feature is
    added after the last two down blocks.
    """

    _supports_gradient_checkpointing = True
    flow_encoder_zero_convs = True
    """Whether the first-frame feature pyramid passes its outputs through zero convs (a subclass may not)."""

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
    ):
        super().__init__()
        num_blocks = len(down_block_types)
        per_block = {
            "block_out_channels": block_out_channels,
            "num_attention_heads": num_attention_heads,
            "layers_per_block": layers_per_block,
            "cross_attention_dim": cross_attention_dim,
            "transformer_layers_per_block": transformer_layers_per_block,
        }
        for name, value in per_block.items():
            if not isinstance(value, int) and len(value) != num_blocks:
                raise ValueError(f"{name} must have one entry per down block ({num_blocks}), got {value}")
        if num_blocks >= 2 and block_out_channels[-1] != block_out_channels[-2]:
            raise ValueError(
                "block_out_channels[-1] must equal block_out_channels[-2] (the coarsest flow feature is added "
                f"after both of the last down blocks), got {block_out_channels}"
            )
        num_attention_heads, layers_per_block, cross_attention_dim, transformer_layers_per_block = (
            (value,) * num_blocks if isinstance(value, int) else tuple(value)
            for value in (num_attention_heads, layers_per_block, cross_attention_dim, transformer_layers_per_block)
        )

        # input and time (same names and shapes as the UNet's)
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        time_embed_dim = block_out_channels[0] * 4
        self.time_proj = Timesteps(block_out_channels[0], True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], time_embed_dim)
        self.add_time_proj = Timesteps(addition_time_embed_dim, True, downscale_freq_shift=0)
        self.add_embedding = TimestepEmbedding(projection_class_embeddings_input_dim, time_embed_dim)

        # encoder copy, and one zero conv per skip it produces
        self.down_blocks = nn.ModuleList()
        skip_channels = [block_out_channels[0]]
        output_channel = block_out_channels[0]
        for index, down_block_type in enumerate(down_block_types):
            input_channel, output_channel = output_channel, block_out_channels[index]
            add_downsample = index != num_blocks - 1
            self.down_blocks.append(
                get_down_block(
                    down_block_type,
                    num_layers=layers_per_block[index],
                    transformer_layers_per_block=transformer_layers_per_block[index],
                    in_channels=input_channel,
                    out_channels=output_channel,
                    temb_channels=time_embed_dim,
                    add_downsample=add_downsample,
                    resnet_eps=1e-5,
                    cross_attention_dim=cross_attention_dim[index],
                    num_attention_heads=num_attention_heads[index],
                    resnet_act_fn="silu",
                )
            )
            skip_channels += [output_channel] * (layers_per_block[index] + int(add_downsample))
        self.controlnet_down_blocks = nn.ModuleList(
            zero_module(nn.Conv2d(width, width, kernel_size=1)) for width in skip_channels
        )

        # reference branch: first frame -> level 0 at the latent size
        self.controlnet_cond_embedding = ControlNetConditioningEmbedding(
            conditioning_embedding_channels=block_out_channels[0],
            conditioning_channels=conditioning_channels,
            block_out_channels=tuple(conditioning_embedding_out_channels),
        )

        self.controlnet_mid_block = zero_module(
            nn.Conv2d(block_out_channels[-1], block_out_channels[-1], kernel_size=1)
        )
        self.mid_block = UNetMidBlockSpatioTemporal(
            block_out_channels[-1],
            temb_channels=time_embed_dim,
            transformer_layers_per_block=transformer_layers_per_block[-1],
            cross_attention_dim=cross_attention_dim[-1],
            num_attention_heads=num_attention_heads[-1],
        )

        # reference branch: level 0 -> levels 1 .. num_blocks-1
        self.flow_encoder = FirstFrameFeatureEncoder(
            (block_out_channels[0], *block_out_channels[: num_blocks - 1]), use_zero_convs=self.flow_encoder_zero_convs
        )
        self.set_temporal_context(DEFAULT_TEMPORAL_CONTEXT)

    @classmethod
    def from_unet(
        cls,
        unet: UNetSpatioTemporalConditionControlNetModel,
        num_attention_heads: int | tuple[int, ...] | None = None,
        load_weights_from_unet: bool = True,
        **adapter_config: Any,
    ) -> FlowControlNet:
        """Build an adapter matching ``unet`` and initialise it from it, as adapter training starts.

        ``conv_in``, ``time_embedding``, ``down_blocks`` and ``mid_block`` are copied; ``add_embedding`` and
        everything adapter-specific keep their fresh initialisation (zero convs are zero). The adapter is
        built in float32 on the default device, whatever the UNet's dtype (training keeps fp32 master weights).

        Args:
            unet: an SVD UNet (any config with equal last two ``block_out_channels``).
            num_attention_heads: heads of the adapter's attention layers; ``None`` takes the UNet's. The
                released adapters were trained with ``(5, 10, 10, 20)`` on a ``(5, 10, 20, 20)`` UNet.
            load_weights_from_unet: copy the weights (``False`` only builds the matching architecture).
            adapter_config: the config entries that are the adapter's own (``conditioning_channels``,
                ``conditioning_embedding_out_channels``, and a subclass's); omitted ones take their defaults.
        """
        config = unet.config
        controlnet = cls(
            sample_size=config.sample_size,
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            down_block_types=config.down_block_types,
            up_block_types=config.up_block_types,
            block_out_channels=config.block_out_channels,
            addition_time_embed_dim=config.addition_time_embed_dim,
            projection_class_embeddings_input_dim=config.projection_class_embeddings_input_dim,
            layers_per_block=config.layers_per_block,
            cross_attention_dim=config.cross_attention_dim,
            transformer_layers_per_block=config.transformer_layers_per_block,
            num_attention_heads=config.num_attention_heads if num_attention_heads is None else num_attention_heads,
            num_frames=config.num_frames,
            **adapter_config,
        )
        if load_weights_from_unet:
            for name in ("conv_in", "time_embedding", "down_blocks", "mid_block"):
                getattr(controlnet, name).load_state_dict(getattr(unet, name).state_dict())
        return controlnet

    # ----------------------------------------------------------------------------------------------- geometry

    @property
    def pyramid_strides(self) -> tuple[int, ...]:
        """Pixel stride of each feature level, e.g. ``(8, 16, 32, 64)`` for the released adapter."""
        base = 2 ** (len(self.config.conditioning_embedding_out_channels) - 1)
        return tuple(base * 2**level for level in range(len(self.down_blocks)))

    @property
    def size_multiple(self) -> int:
        """Frame height and width must be multiples of this (the coarsest stride; 64 for the released adapter)."""
        return self.pyramid_strides[-1]

    # ------------------------------------------------------------------------------------------ pieces

    def encode_condition(self, controlnet_cond: torch.Tensor) -> list[torch.Tensor]:
        """First frame ``(B, C_cond, H, W)`` in [-1, 1] -> one ``(B, C_k, H/s_k, W/s_k)`` feature per level."""
        level0 = self.controlnet_cond_embedding(controlnet_cond)
        return [level0, *self.flow_encoder(level0)]

    def warp_condition(
        self, features: Sequence[torch.Tensor], controlnet_flow: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """Warp each level by the flow pyramid (the hook a subclass overrides to repair the warped features).

        Args:
            features: per level ``(B, C_k, h_k, w_k)`` first-frame features (:meth:`encode_condition`).
            controlnet_flow: ``(B, T-1, 2, H, W)`` flow in pixels.

        Returns:
            ``(warped, masks)``: per level ``(B·T, C_k, h_k, w_k)`` batch-major frames (frame 0 unwarped), and
            per-level masks of a subclass that makes them (``None`` here).
        """
        flows = flow_pyramid(controlnet_flow, self.pyramid_strides)
        return [warp_features(feature, flow) for feature, flow in zip(features, flows)], None

    @apply_forward_hook
    def prepare_condition(
        self, controlnet_cond: torch.Tensor, controlnet_flow: torch.Tensor, dtype: torch.dtype | None = None
    ) -> list[torch.Tensor]:
        """The warped first-frame features of every level: what ``forward`` adds to the encoder.

        They do not depend on the noisy sample or the timestep, so they can be computed once per video and
        passed to every step as ``forward(..., warped_condition=...)``. Like ``forward``, it first runs the
        model's offload hook (model CPU offload loads the weights to the execution device there).

        Args:
            controlnet_cond: ``(B, 3, H, W)`` first frame in [-1, 1].
            controlnet_flow: ``(B, T-1, 2, H, W)`` flow from frame 0 in pixels.
            dtype: dtype of the features (that of the sample they will be added to); default the condition's.

        Returns:
            One ``(B·T, C_k, h_k, w_k)`` tensor per level, batch-major (frame 0 unwarped first).
        """
        features = self.encode_condition(controlnet_cond.to(dtype=dtype or controlnet_cond.dtype))
        return self.warp_condition(features, controlnet_flow)[0]

    def check_warped_condition(self, warped_condition: Sequence[torch.Tensor], sample: torch.Tensor) -> None:
        """Raise a ``ValueError`` unless ``warped_condition`` holds one ``(B·T, C_k, h_k, w_k)`` tensor per level."""
        if len(warped_condition) != len(self.down_blocks):
            raise ValueError(
                f"warped_condition must hold one tensor per level ({len(self.down_blocks)}), "
                f"got {len(warped_condition)}"
            )
        batch, num_frames, _, latent_height, latent_width = sample.shape
        base = self.pyramid_strides[0]
        for level, (features, stride) in enumerate(zip(warped_condition, self.pyramid_strides)):
            size = (latent_height * base // stride, latent_width * base // stride)
            if features.ndim != 4 or features.shape[0] != batch * num_frames or tuple(features.shape[-2:]) != size:
                raise ValueError(
                    f"warped_condition[{level}] must be ({batch * num_frames}, C, {size[0]}, {size[1]}), "
                    f"got {tuple(features.shape)}"
                )

    def encode(
        self,
        sample: torch.Tensor,
        emb: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        image_only_indicator: torch.Tensor,
        injections: Sequence[Sequence[torch.Tensor]],
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Run the encoder copy, adding features at each injection point.

        Args:
            sample: ``(B·T, C_in, h, w)`` flattened latents.
            emb: ``(B·T, C_emb)`` from :func:`time_embedding`.
            encoder_hidden_states: ``(B·T, L, D)``.
            image_only_indicator: ``(B, T)`` zeros.
            injections: ``len(down_blocks) + 2`` lists of tensors added in order: after ``conv_in``, after each
                down block (the skips of a block are taken before its addition), before the mid block.

        Returns:
            ``(skips, mid)``: every encoder skip in UNet order and the mid-block output, before the zero convs.
        """
        sample = add_all(self.conv_in(sample), injections[0])
        skips = (sample,)
        for index, block in enumerate(self.down_blocks):
            sample, block_skips = run_down_block(block, sample, emb, encoder_hidden_states, image_only_indicator)
            skips += block_skips
            sample = add_all(sample, injections[index + 1])
        sample = add_all(sample, injections[-1])
        mid = self.mid_block(
            hidden_states=sample,
            temb=emb,
            encoder_hidden_states=encoder_hidden_states,
            image_only_indicator=image_only_indicator,
        )
        return skips, mid

    def controlnet_residuals(
        self, skips: Sequence[torch.Tensor], mid: torch.Tensor, conditioning_scale: float | torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Zero convs then ``× conditioning_scale``: the UNet's down residuals and mid residual."""
        down = tuple(conv(skip) * conditioning_scale for conv, skip in zip(self.controlnet_down_blocks, skips))
        return down, self.controlnet_mid_block(mid) * conditioning_scale

    def residuals(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        controlnet_cond: torch.Tensor,
        controlnet_flow: torch.Tensor,
        conditioning_scale: float | torch.Tensor = 1.0,
        warped_condition: Sequence[torch.Tensor] | None = None,
        extra_injections: dict[int, Sequence[torch.Tensor]] | None = None,
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, list[torch.Tensor] | None]:
        """The forward pass after the input checks, shared with subclasses (arguments as :meth:`forward`).

        Args:
            extra_injections: more tensors to add at injection points (index into :func:`injection_levels`'
                points), each after that point's warped feature, e.g. a subclass's pose-image embedding.

        Returns:
            ``(down_residuals, mid_residual, masks)``; ``masks`` from :meth:`warp_condition` (``None`` when
            ``warped_condition`` is given).
        """
        batch_size, num_frames = sample.shape[:2]

        # time: (B·T, C_emb); conditioning repeated per frame
        emb = time_embedding(self, timestep, added_time_ids, batch_size, num_frames, sample.dtype, sample.device)
        encoder_hidden_states = encoder_hidden_states.repeat_interleave(
            num_frames, dim=0, output_size=encoder_hidden_states.shape[0] * num_frames
        )
        image_only_indicator = torch.zeros(batch_size, num_frames, dtype=sample.dtype, device=sample.device)

        # reference features, warped: [(B·T, C_k, h_k, w_k)] for k = 0 .. N-1
        if warped_condition is None:
            features = self.encode_condition(controlnet_cond.to(dtype=sample.dtype))
            warped, masks = self.warp_condition(features, controlnet_flow)
        else:
            self.check_warped_condition(warped_condition, sample)
            warped, masks = list(warped_condition), None
        injections = [[warped[level]] for level in injection_levels(len(self.down_blocks))]
        for point, tensors in (extra_injections or {}).items():
            injections[point].extend(tensors)

        skips, mid = self.encode(sample.flatten(0, 1), emb, encoder_hidden_states, image_only_indicator, injections)
        down_residuals, mid_residual = self.controlnet_residuals(skips, mid, conditioning_scale)
        return down_residuals, mid_residual, masks

    def check_inputs(
        self,
        sample: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        controlnet_cond: torch.Tensor,
        controlnet_flow: torch.Tensor,
    ) -> None:
        """Raise a ``ValueError`` (``InputError`` for an unsupported frame size) naming the bad argument."""
        _check_rank("sample", sample, 5, "(B, T, C, h, w)")
        batch, num_frames, channels, latent_height, latent_width = sample.shape
        if channels != self.config.in_channels:
            raise ValueError(f"sample must have {self.config.in_channels} channels, got shape {tuple(sample.shape)}")
        _check_rank("encoder_hidden_states", encoder_hidden_states, 3, "(B, L, D)")
        _check_rank("added_time_ids", added_time_ids, 2, "(B, num_ids)")
        _check_rank("controlnet_cond", controlnet_cond, 4, "(B, C, H, W)")
        _check_rank("controlnet_flow", controlnet_flow, 5, "(B, T-1, 2, H, W)")
        for name, tensor in (
            ("encoder_hidden_states", encoder_hidden_states),
            ("added_time_ids", added_time_ids),
            ("controlnet_cond", controlnet_cond),
            ("controlnet_flow", controlnet_flow),
        ):
            if tensor.shape[0] != batch:
                raise ValueError(f"{name} has batch size {tensor.shape[0]}, sample has {batch}")
        if controlnet_cond.shape[1] != self.config.conditioning_channels:
            raise ValueError(
                f"controlnet_cond must have {self.config.conditioning_channels} channels, "
                f"got shape {tuple(controlnet_cond.shape)}"
            )
        height, width = controlnet_cond.shape[-2:]
        check_size_multiple(height, width, self.size_multiple)
        stride = self.pyramid_strides[0]
        if (height, width) != (latent_height * stride, latent_width * stride):
            raise ValueError(
                f"controlnet_cond is {width}x{height} (WxH) but sample latents are {latent_width}x{latent_height}: "
                f"the condition must be {stride}x the latent size"
            )
        if controlnet_flow.shape[1] != num_frames - 1:
            raise ValueError(
                f"controlnet_flow must hold T-1 = {num_frames - 1} flows for {num_frames} frames, "
                f"got {controlnet_flow.shape[1]}"
            )
        if controlnet_flow.shape[2] != 2 or controlnet_flow.shape[-2:] != controlnet_cond.shape[-2:]:
            raise ValueError(
                f"controlnet_flow must be (B, T-1, 2, {height}, {width}), got {tuple(controlnet_flow.shape)}"
            )

    # ------------------------------------------------------------------------------------------ forward

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        controlnet_cond: torch.Tensor,
        controlnet_flow: torch.Tensor,
        conditioning_scale: float | torch.Tensor = 1.0,
        return_dict: bool = True,
        warped_condition: Sequence[torch.Tensor] | None = None,
    ) -> FlowControlNetOutput | tuple[Any, ...]:
        """Residuals for the SVD UNet from the first frame and its flow to every later frame.

        Args:
            sample: ``(B, T, C_in, h, w)`` the UNet's input (scaled noisy latents + image latents).
            timestep: scalar or ``(B,)`` continuous timestep (``0.25·ln σ``).
            encoder_hidden_states: ``(B, L, cross_attention_dim)`` image embedding.
            added_time_ids: ``(B, num_ids)``.
            controlnet_cond: ``(B, 3, H, W)`` first frame in [-1, 1]; ``H = h·s_0`` (8 for SVD) and H, W
                multiples of :attr:`size_multiple` (64 for SVD).
            controlnet_flow: ``(B, T-1, 2, H, W)`` flow from frame 0 to frames 1..T-1 in pixels, x first.
            conditioning_scale: multiplies every residual.
            return_dict: return a :class:`FlowControlNetOutput` instead of a tuple.
            warped_condition: the output of :meth:`prepare_condition` for ``controlnet_cond`` and
                ``controlnet_flow`` (in the sample's dtype), to skip recomputing it; the result is identical.

        Returns:
            :class:`FlowControlNetOutput` (or ``(down_block_res_samples, mid_block_res_sample,
            controlnet_flow)``), residuals of shape ``(B·T, C, h_j, w_j)`` in the sample's dtype.
        """
        self.check_inputs(sample, encoder_hidden_states, added_time_ids, controlnet_cond, controlnet_flow)
        down_residuals, mid_residual, _ = self.residuals(
            sample, timestep, encoder_hidden_states, added_time_ids, controlnet_cond, controlnet_flow,
            conditioning_scale, warped_condition,
        )  # fmt: skip
        if not return_dict:
            return (down_residuals, mid_residual, controlnet_flow)
        return FlowControlNetOutput(
            down_block_res_samples=down_residuals,
            mid_block_res_sample=mid_residual,
            controlnet_flow=controlnet_flow,
        )
