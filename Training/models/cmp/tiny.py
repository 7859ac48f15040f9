# Copied from MOFA-Video-Traj/models/cmp/tiny.py
"""A tiny randomly initialised CMP for tests and ``--tiny`` runs (no weights needed)."""

import torch

from .model import CMP

TINY_CMP_CONFIG = {
    "img_enc_dim": 16,
    "sparse_enc_dim": 4,
    "output_dim": 18,
    "nbins": 9,
    "fmax": 50.0,
    "encoder_width": 4,
    "encoder_blocks": (1, 1, 1, 1),
    "decoder_width": 8,
}


def build_tiny_cmp(seed: int = 0) -> CMP:
    """A CMP with :data:`TINY_CMP_CONFIG`, weights drawn from ``seed`` (global RNG untouched), eval mode, frozen."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CMP(**TINY_CMP_CONFIG)
    return model.eval().requires_grad_(False)
