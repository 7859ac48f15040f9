# Copied from MOFA-Video-Traj/models/cmp/__init__.py
"""CMP: the frozen network that turns sparse flow hints into dense optical flow."""

from .fuser import flow_bin_centres, fuse_flow_bins
from .model import CMP, CMP_GRID_SIZE
from .tiny import TINY_CMP_CONFIG, HintInterpolation, build_tiny_cmp

__all__ = [
    "CMP",
    "CMP_GRID_SIZE",
    "TINY_CMP_CONFIG",
    "HintInterpolation",
    "build_tiny_cmp",
    "flow_bin_centres",
    "fuse_flow_bins",
]
