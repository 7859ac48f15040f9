# Copied from MOFA-Video-Traj/models/cmp/checkpoint.py
"""Reading CMP's released training checkpoint (``ckpt_iter_42000.pth.tar``) as it is.

The file is a dict with ``state_dict`` (every key prefixed ``module.``), ``step`` and possibly
``optimizer``. It is read with ``torch.load(weights_only=True)``: tensors and plain containers only,
no arbitrary code from the pickle.
"""

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from utils.checkpoints import fetch_command
from utils.errors import CheckpointError
from utils.state_dict_check import BATCHNORM_COUNTER_SUFFIX, check_state_dict

WRAPPER_PREFIX = "module."
"""Every key of the released state dict starts with this (the training code wrapped the network)."""


def read_cmp_state_dict(path: str | Path, fetch_mode: str = "traj") -> dict[str, torch.Tensor]:
    """The network weights stored in a CMP training checkpoint, with the ``module.`` prefix removed.

    Raises:
        CheckpointError: the file is missing, unreadable, or has no ``state_dict`` entry.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing CMP checkpoint {path}; run `{fetch_command(fetch_mode)}`")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"cannot read CMP checkpoint {path} ({reason}); run `{fetch_command(fetch_mode)}`"
        ) from error
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise CheckpointError(f"{path} is not a CMP training checkpoint (no 'state_dict' entry)")
    return {key.removeprefix(WRAPPER_PREFIX): value for key, value in checkpoint["state_dict"].items()}


def check_cmp_state_dict(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], path: str | Path
) -> None:
    """Raise :class:`CheckpointError` naming the missing, unexpected or mis-shaped keys.

    ``expected`` is the model's own state dict; keys ending in ``.num_batches_tracked`` may be absent
    (see :func:`utils.state_dict_check.check_state_dict`).
    """
    check_state_dict(expected, found, path, "the CMP network", ignored_suffixes=(BATCHNORM_COUNTER_SUFFIX,))
