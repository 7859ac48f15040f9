# Copied from MOFA-Video-Traj/models/temporal_context.py
"""Which first-frame context each row of a temporal cross-attention sees.

Every diffusers ``TransformerSpatioTemporalModel`` runs its temporal blocks on ``B·H·W`` rows (video ``b``,
pixel ``p`` at row ``b·H·W + p``), each attending over the frames, and gives their cross-attention a context
built from the first frame's encoder state. Two versions of diffusers build that context differently:

- ``"original"`` (the default): diffusers up to 0.27, which the released MOFA-Video adapters were trained and
  run with. The per-video contexts ``c_0 .. c_{B-1}`` are tiled, so row ``r`` sees ``c_{r mod B}``. With one
  video this is ``c_0`` everywhere; with classifier-free guidance (``B = 2``) each half sees a mix of the
  unconditional and the conditional context, by the parity of the row.
- ``"per_video"``: diffusers 0.28 and later (and Stability's training code): row ``b·H·W + p`` sees ``c_b``.

The installed diffusers computes ``per_video``; ``original`` is a forward pre-hook on every temporal block
that re-orders the context rows it is given. It adds no parameters and loads every checkpoint unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.models.transformers.transformer_temporal import TransformerSpatioTemporalModel
from torch import nn

TEMPORAL_CONTEXTS = ("original", "per_video")
DEFAULT_TEMPORAL_CONTEXT = "original"


def check_temporal_context(temporal_context: str) -> str:
    """Return ``temporal_context`` if it is one of :data:`TEMPORAL_CONTEXTS`, else raise ``ValueError``."""
    if temporal_context not in TEMPORAL_CONTEXTS:
        raise ValueError(f"temporal_context must be one of {', '.join(TEMPORAL_CONTEXTS)}, got {temporal_context!r}")
    return temporal_context


def tiled_temporal_context(time_context: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """Re-order a per-video temporal context into the ``original`` (tiled) one.

    Args:
        time_context: ``(B·H·W, L, D)``, rows ``b·H·W .. (b+1)·H·W - 1`` all holding video ``b``'s context.
        num_pixels: ``H·W``.

    Returns:
        ``(B·H·W, L, D)`` whose row ``r`` holds video ``r mod B``'s context.
    """
    per_video = time_context[::num_pixels]
    return per_video.repeat(num_pixels, 1, 1)


def _apply_temporal_context(
    block: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """Forward pre-hook of a temporal transformer block (``hidden_states`` ``(B·T, H·W, C)``)."""
    time_context = kwargs.get("encoder_hidden_states")
    if block.temporal_context == "per_video" or time_context is None:
        return None
    hidden_states = args[0] if args else kwargs["hidden_states"]
    return args, dict(kwargs, encoder_hidden_states=tiled_temporal_context(time_context, hidden_states.shape[1]))


def set_temporal_context(model: nn.Module, temporal_context: str) -> None:
    """Make every temporal transformer block inside ``model`` use ``temporal_context`` (see module docstring)."""
    check_temporal_context(temporal_context)
    for module in model.modules():
        if not isinstance(module, TransformerSpatioTemporalModel):
            continue
        for block in module.temporal_transformer_blocks:
            if not hasattr(block, "temporal_context"):
                block.register_forward_pre_hook(_apply_temporal_context, with_kwargs=True)
            block.temporal_context = temporal_context


class TemporalContextMixin:
    """``set_temporal_context`` for models built from spatio-temporal blocks; ``temporal_context`` is the mode."""

    temporal_context: str = DEFAULT_TEMPORAL_CONTEXT

    def set_temporal_context(self, temporal_context: str) -> None:
        """Choose ``"original"`` or ``"per_video"`` for every temporal cross-attention of this model."""
        set_temporal_context(self, temporal_context)
        self.temporal_context = temporal_context
