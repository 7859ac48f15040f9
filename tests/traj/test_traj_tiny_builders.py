"""Tiny builders: seeded, side-effect free, geometrically consistent with each other."""

import subprocess
import sys

import torch

from utils.tiny import (
    TINY_CROSS_ATTENTION_DIM,
    tiny_feature_extractor,
    tiny_flow_controlnet,
    tiny_image_encoder,
    tiny_unet,
    tiny_vae,
)


def test_import_does_not_load_diffusers_or_transformers(subproject_dir):
    code = "import sys, utils.tiny; print('diffusers' in sys.modules, 'transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=subproject_dir, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = tiny_flow_controlnet(seed=5)
    assert torch.equal(torch.rand(3), expected_next)
    second = tiny_flow_controlnet(seed=5)
    other = tiny_flow_controlnet(seed=6)
    for (name, a), b, c in zip(first.state_dict().items(), second.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(first.controlnet_mid_block.weight, other.controlnet_mid_block.weight)


def test_vae_latents_match_the_adapter_grid():
    vae, controlnet = tiny_vae(), tiny_flow_controlnet()
    with torch.no_grad():
        latents = vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mode()
    assert latents.shape == (1, 4, 32, 32)
    assert controlnet.pyramid_strides == (2, 4) and controlnet.size_multiple == 4
    assert tiny_unet().config.in_channels == 2 * latents.shape[1]


def test_image_encoder_embeds_to_the_unet_cross_attention_width():
    encoder, processor = tiny_image_encoder(), tiny_feature_extractor()
    pixels = processor(images=torch.zeros(3, 64, 64), return_tensors="pt", do_rescale=False).pixel_values
    assert pixels.shape == (1, 3, 224, 224)
    with torch.no_grad():
        embeds = encoder(pixels).image_embeds
    assert embeds.shape == (1, TINY_CROSS_ATTENTION_DIM) == (1, tiny_unet().config.cross_attention_dim)
