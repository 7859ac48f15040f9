"""The networks a training run needs: frozen SVD parts, the adapter being trained, CMP (stage 2).

Real runs load SVD-xt 1.1 (fp16 files) from the checkpoint folder; ``--tiny`` builds every part from
:mod:`utils.tiny` and :func:`models.cmp.build_tiny_cmp` with random weights.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.cmp import CMP, build_tiny_cmp
from models.flow_controlnet import FlowControlNet
from models.unet_spatio_temporal_condition_controlnet import UNetSpatioTemporalConditionControlNetModel
from train_utils.preflight import check_model_files

logger = logging.getLogger(__name__)

# Attention heads of the released adapters' encoder copy (the SVD UNet itself uses (5, 10, 20, 20)).
RELEASED_ADAPTER_HEADS = (5, 10, 10, 20)
# Stage 2 keeps the reference encoder (first-frame embedding and its pyramid) as stage 1 left it.
STAGE2_FROZEN_PREFIXES = ("controlnet_cond_embedding.", "flow_encoder.")


@dataclass
class TrainingComponents:
    """Everything a training step or a validation run uses.

    ``clip_size``, ``image_mean`` and ``image_std`` describe the CLIP input (from the feature extractor).
    ``cmp`` is None in stage 1. ``scheduler`` is only used by validation.
    """

    vae: nn.Module
    image_encoder: nn.Module
    feature_extractor: object
    unet: UNetSpatioTemporalConditionControlNetModel
    controlnet: FlowControlNet
    scheduler: object
    cmp: CMP | None
    clip_size: int
    image_mean: list[float]
    image_std: list[float]


def load_components(args: argparse.Namespace, weight_dtype: torch.dtype = torch.float32) -> TrainingComponents:
    """Build (``--tiny``) or load every network: the adapter in float32, the frozen SVD parts in
    ``weight_dtype`` (tiny ones stay float32 until placed), CMP in float32."""
    adapter_path = check_model_files(args)
    if args.tiny:
        vae, image_encoder, feature_extractor, unet, scheduler = _tiny_svd(args.seed)
        cmp = build_tiny_cmp(args.seed) if args.stage == 2 else None
    else:
        vae, image_encoder, feature_extractor, unet, scheduler = _pretrained_svd(
            Path(args.pretrained_model_name_or_path), weight_dtype
        )
        cmp = CMP.from_checkpoint(Path(args.cmp_checkpoint), fetch_mode="training") if args.stage == 2 else None
    controlnet = _adapter(args, unet, adapter_path)
    for model in (unet, controlnet):
        model.set_temporal_context(args.temporal_context)
    return TrainingComponents(
        vae=vae,
        image_encoder=image_encoder,
        feature_extractor=feature_extractor,
        unet=unet,
        controlnet=controlnet,
        scheduler=scheduler,
        cmp=cmp,
        clip_size=image_encoder.config.image_size,
        image_mean=list(feature_extractor.image_mean),
        image_std=list(feature_extractor.image_std),
    )


def _tiny_svd(seed: int) -> tuple:
    from utils.tiny import tiny_svd_parts

    parts = tiny_svd_parts(seed)
    return tuple(parts[name] for name in ("vae", "image_encoder", "feature_extractor", "unet", "scheduler"))


def _pretrained_svd(svd_path: Path, weight_dtype: torch.dtype) -> tuple:
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    fp16_files = {"variant": "fp16", "torch_dtype": weight_dtype}
    vae = AutoencoderKLTemporalDecoder.from_pretrained(svd_path, subfolder="vae", **fp16_files)
    image_encoder = CLIPVisionModelWithProjection.from_pretrained(svd_path, subfolder="image_encoder", **fp16_files)
    feature_extractor = CLIPImageProcessor.from_pretrained(svd_path, subfolder="feature_extractor")
    unet = UNetSpatioTemporalConditionControlNetModel.from_pretrained(svd_path, subfolder="unet", **fp16_files)
    scheduler = EulerDiscreteScheduler.from_pretrained(svd_path, subfolder="scheduler")
    return vae, image_encoder, feature_extractor, unet, scheduler


def _adapter(
    args: argparse.Namespace, unet: UNetSpatioTemporalConditionControlNetModel, path: Path | None
) -> FlowControlNet:
    if path is not None:
        return FlowControlNet.from_pretrained(path, torch_dtype=torch.float32)
    if args.tiny:
        from utils.tiny import tiny_flow_controlnet

        if args.stage == 2:
            logger.warning(
                "stage 2 --tiny without --controlnet_model_name_or_path: starting from a random tiny adapter"
            )
        return tiny_flow_controlnet(args.seed, unet)
    logger.info("initialising the adapter from the UNet (add_embedding and the reference encoder start fresh)")
    return FlowControlNet.from_unet(unet, num_attention_heads=RELEASED_ADAPTER_HEADS)


def set_trainable_parameters(controlnet: nn.Module, stage: int) -> tuple[list[str], list[str]]:
    """Stage 1 trains every adapter parameter; stage 2 freezes the reference encoder.

    Returns:
        (trainable names, frozen names), in ``named_parameters`` order.
    """
    trainable, frozen = [], []
    for name, parameter in controlnet.named_parameters():
        train = stage == 1 or not name.startswith(STAGE2_FROZEN_PREFIXES)
        parameter.requires_grad_(train)
        (trainable if train else frozen).append(name)
    return trainable, frozen


def freeze(*modules: nn.Module | None) -> None:
    """Eval mode, no gradients."""
    for module in modules:
        if module is not None:
            module.eval().requires_grad_(False)
