"""Reading CMP's released training checkpoint (``ckpt_iter_42000.pth.tar``) as it is.

The file is a dict with ``state_dict`` (every key prefixed ``module.``), ``step`` and possibly
``optimizer``. It is read with ``torch.load(weights_only=True)``: tensors and plain containers only,
no arbitrary code from the pickle.
"""

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from utils.errors import CheckpointError

WRAPPER_PREFIX = "module."
"""Every key of the released state dict starts with this (the training code wrapped the network)."""
OPTIONAL_BUFFER_SUFFIX = ".num_batches_tracked"
"""BatchNorm counters: unused in eval mode, so a checkpoint may lack them."""
MAX_KEYS_NAMED = 8


def fetch_hint(fetch_mode: str) -> str:
    return f"run `make fetch MODE={fetch_mode}`"


def read_cmp_state_dict(path: str | Path, fetch_mode: str = "traj") -> dict[str, torch.Tensor]:
    """The network weights stored in a CMP training checkpoint, with the ``module.`` prefix removed.

    Raises:
        CheckpointError: the file is missing, unreadable, or has no ``state_dict`` entry.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing CMP checkpoint {path}; {fetch_hint(fetch_mode)}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"cannot read CMP checkpoint {path} ({reason}); {fetch_hint(fetch_mode)}") from error
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise CheckpointError(f"{path} is not a CMP training checkpoint (no 'state_dict' entry)")
    return {key.removeprefix(WRAPPER_PREFIX): value for key, value in checkpoint["state_dict"].items()}


def _named(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_KEYS_NAMED])
    return shown + (f" (and {len(keys) - MAX_KEYS_NAMED} more)" if len(keys) > MAX_KEYS_NAMED else "")


def check_cmp_state_dict(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], path: str | Path
) -> None:
    """Raise :class:`CheckpointError` naming every missing, unexpected or mis-shaped key.

    ``expected`` is the model's own state dict; keys ending in ``.num_batches_tracked`` may be absent.
    """
    missing = [key for key in expected if key not in found and not key.endswith(OPTIONAL_BUFFER_SUFFIX)]
    unexpected = [key for key in found if key not in expected]
    mis_shaped = [
        f"{key} {tuple(found[key].shape)} (model {tuple(expected[key].shape)})"
        for key in expected
        if key in found and tuple(found[key].shape) != tuple(expected[key].shape)
    ]
    problems = [
        f"{label}: {_named(keys)}"
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", mis_shaped))
        if keys
    ]
    if problems:
        raise CheckpointError(f"{path} does not fit the CMP network; " + "; ".join(problems))
