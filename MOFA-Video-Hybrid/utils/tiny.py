# Copied from MOFA-Video-Traj/utils/tiny.py
"""Tiny, seeded, randomly initialised stand-ins for every weighted component (tests, ``--tiny`` mode, benchmarks).

They have the real classes and the released data flow at toy widths, so a whole pipeline runs on a CPU in
seconds without any checkpoint. Their outputs are noise. Each builder takes a ``seed`` and leaves the global
random state untouched and returns its model in eval mode (as ``from_pretrained`` does). Nothing heavy
is imported until a builder is called.

Geometry of the tiny stack: the VAE has two blocks, so latents are 1/2 of the frame size; the UNet and the
adapter have two levels, so the adapter's flow features sit at strides 2 and 4 and frame sides must be
multiples of 4 (64x64 with 4 frames is the usual test size). The benchmarks' ``"svd"`` UNet layout has four
levels (strides 2 to 16, sides multiples of 16).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    from models.flow_controlnet import FlowControlNet
    from models.unet_spatio_temporal_condition_controlnet import UNetSpatioTemporalConditionControlNetModel

TINY_NUM_FRAMES = 4
TINY_CROSS_ATTENTION_DIM = 32
TINY_CONDITIONING_EMBEDDING_OUT_CHANNELS = (16, 32)  # one stride-2 conv: latent grid = 1/2, as the tiny VAE's
ZERO_INITIALISED_LAYER_STD = 0.05  # see randomise_zero_initialised_layers

TINY_UNET_LAYOUTS: dict[str, dict] = {
    # two levels of equal width: the smallest stack with every block type (tests, --tiny mode)
    "small": {
        "down_block_types": ("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        "up_block_types": ("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        "block_out_channels": (32, 32),
        "num_attention_heads": (2, 4),
    },
    # SVD's own layout (3 cross-attention levels + 1 plain, widths 1:2:4:4, head width 32) at 1/10 of its
    # width: the adapter's share of the UNet's FLOPs is that of the full-size models (benchmarks)
    "svd": {
        "down_block_types": ("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
        "up_block_types": ("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
        "block_out_channels": (32, 64, 128, 128),
        "num_attention_heads": (1, 2, 4, 4),
    },
}
"""UNet layouts of :func:`tiny_unet`; both keep SVD's 2 layers per block and equal last two widths."""


def tiny_unet(seed: int = 0, layout: str = "small") -> UNetSpatioTemporalConditionControlNetModel:
    """SVD UNet at toy width, 4 frames, in 8 / out 4, 2 layers per block.

    ``layout`` (:data:`TINY_UNET_LAYOUTS`): ``"small"`` has two levels of width 32 (6 encoder skips);
    ``"svd"`` has the released four levels at 1/10 width (12 skips, frame sides multiples of 16). The last
    two levels have equal widths because the adapter adds its coarsest flow feature after both of the last
    two down blocks (as the released (…, 1280, 1280) layout allows).

    Raises:
        ValueError: an unknown ``layout``.
    """
    from models.unet_spatio_temporal_condition_controlnet import UNetSpatioTemporalConditionControlNetModel

    if layout not in TINY_UNET_LAYOUTS:
        raise ValueError(f"unknown tiny UNet layout {layout!r}; choose one of {', '.join(TINY_UNET_LAYOUTS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNetSpatioTemporalConditionControlNetModel(
            sample_size=32,
            in_channels=8,
            out_channels=4,
            addition_time_embed_dim=32,
            projection_class_embeddings_input_dim=96,
            layers_per_block=2,
            cross_attention_dim=TINY_CROSS_ATTENTION_DIM,
            num_frames=TINY_NUM_FRAMES,
            **TINY_UNET_LAYOUTS[layout],
        ).eval()


def tiny_flow_controlnet(
    seed: int = 0, unet: UNetSpatioTemporalConditionControlNetModel | None = None
) -> FlowControlNet:
    """Adapter initialised from ``unet`` (default: ``tiny_unet(seed)``) with a 2-level first-frame embedding.

    The layers a fresh adapter zero-initialises get small random weights instead, so its residuals (and the
    effect of the flow on them) are non-zero and tests can see them.
    """
    from models.flow_controlnet import FlowControlNet

    unet = tiny_unet(seed) if unet is None else unet
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        controlnet = FlowControlNet.from_unet(
            unet, conditioning_embedding_out_channels=TINY_CONDITIONING_EMBEDDING_OUT_CHANNELS
        )
        randomise_zero_initialised_layers(
            [
                controlnet.controlnet_cond_embedding.conv_out,
                *controlnet.flow_encoder.zeroconvs,
                *controlnet.controlnet_down_blocks,
                controlnet.controlnet_mid_block,
            ]
        )
    return controlnet.eval()


def randomise_zero_initialised_layers(layers: Iterable[torch.nn.Module]) -> None:
    """Give layers that a fresh adapter zero-initialises small random weights and biases, in place.

    Both are drawn from N(0, ``ZERO_INITIALISED_LAYER_STD``²) with torch's global generator, layer by layer,
    weight before bias. A tiny adapter's residuals (and the effect of its conditions on them) are then
    non-zero, so tests can see them.
    """
    with torch.no_grad():
        for layer in layers:
            layer.weight.normal_(0.0, ZERO_INITIALISED_LAYER_STD)
            layer.bias.normal_(0.0, ZERO_INITIALISED_LAYER_STD)


def tiny_vae(seed: int = 0) -> AutoencoderKLTemporalDecoder:
    """Temporal-decoder VAE with two blocks (32, 64) and 4 latent channels: latents are 1/2 of the frame size."""
    from diffusers import AutoencoderKLTemporalDecoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderKLTemporalDecoder(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            block_out_channels=(32, 64),
            latent_channels=4,
        ).eval()


def tiny_image_encoder(seed: int = 0) -> CLIPVisionModelWithProjection:
    """CLIP vision tower: hidden 32, 2 layers, 224x224 input, patch 32, image embedding of the UNet's width."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=224,
        patch_size=32,
        projection_dim=TINY_CROSS_ATTENTION_DIM,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPVisionModelWithProjection(config).eval()


def tiny_feature_extractor() -> CLIPImageProcessor:
    """CLIP preprocessing at 224x224 (the released pipelines load one and do not use it)."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(crop_size=224, size=224)


def tiny_scheduler() -> EulerDiscreteScheduler:
    """The SVD Euler scheduler (it has no weights, so the real configuration is used)."""
    from utils.scheduling import build_svd_scheduler

    return build_svd_scheduler()


def tiny_svd_parts(seed: int = 0, layout: str = "small") -> dict[str, Any]:
    """Random tiny ``vae``, ``image_encoder``, ``unet`` (``layout`` as :func:`tiny_unet`),
    ``scheduler`` and ``feature_extractor``, as pipeline keyword arguments (seeded)."""
    return {
        "vae": tiny_vae(seed),
        "image_encoder": tiny_image_encoder(seed),
        "unet": tiny_unet(seed, layout),
        "scheduler": tiny_scheduler(),
        "feature_extractor": tiny_feature_extractor(),
    }
