"""The files the 3DMM landmark path reads, and strict loading of one part of the combined checkpoint.

``SadTalker_V0.0.2_256.safetensors`` stores several networks side by side, each under its own key prefix
(``face_3drecon.``, ``audio2exp.``, ``audio2pose.``, plus face-render networks this project does not use).
:func:`load_part` reads only the tensors under one prefix and loads them strictly: every parameter the
module expects must be present with the right shape, and nothing else may be there except keys the caller
declares as training-only. The one tolerated gap is a BatchNorm ``num_batches_tracked`` counter, which
older checkpoints omit and inference never reads.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from utils.checkpoints import require_files
from utils.errors import CheckpointError
from utils.state_dict_check import BATCHNORM_COUNTER_SUFFIX, check_state_dict

CHECKPOINT_MODE = "sadtalker"
SADTALKER_WEIGHTS = "sad_talker/SadTalker_V0.0.2_256.safetensors"
BFM_MODEL = "sad_talker/BFM_Fitting/BFM_model_front.mat"
LANDMARK_TEMPLATE = "sad_talker/similarity_Lm3D_all.mat"
SADTALKER_FILES = [SADTALKER_WEIGHTS, BFM_MODEL, LANDMARK_TEMPLATE]

FACE_RECON_PREFIX = "face_3drecon"
AUDIO2EXP_PREFIX = "audio2exp"
AUDIO2POSE_PREFIX = "audio2pose"


def require_sadtalker_files(ckpt_dir: Path) -> None:
    """Raise :class:`CheckpointError` naming the first missing 3DMM file and the command that fetches it."""
    require_files(Path(ckpt_dir), SADTALKER_FILES, CHECKPOINT_MODE)


def read_part(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` whose keys start with ``prefix + "."``, with that prefix removed."""
    head = prefix + "."
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {key[len(head) :]: handle.get_tensor(key) for key in handle.keys() if key.startswith(head)}
    except (OSError, SafetensorError) as error:
        raise CheckpointError(
            f"cannot read {path} as safetensors ({error}); fetch it again with `make fetch MODE={CHECKPOINT_MODE}`"
        ) from error


def check_part(
    module: nn.Module, state: dict[str, torch.Tensor], source: str, training_only: tuple[str, ...] = ()
) -> None:
    """Raise :class:`CheckpointError` unless ``state`` holds exactly what ``module`` needs.

    Keys starting with one of ``training_only`` may be present and are ignored; absent BatchNorm
    ``num_batches_tracked`` counters are tolerated (see :func:`utils.state_dict_check.check_state_dict`).
    """
    expected = module.state_dict()
    checked = {key: value for key, value in state.items() if key in expected or not key.startswith(training_only)}
    check_state_dict(expected, checked, source, type(module).__name__, ignored_suffixes=(BATCHNORM_COUNTER_SUFFIX,))


def load_part(module: nn.Module, path: Path, prefix: str, training_only: tuple[str, ...] = ()) -> nn.Module:
    """Load the ``prefix`` part of the safetensors file ``path`` into ``module`` strictly (see :func:`check_part`)."""
    state = read_part(Path(path), prefix)
    check_part(module, state, f"{Path(path).name} [{prefix}]", training_only)
    expected = module.state_dict()
    module.load_state_dict({key: value for key, value in state.items() if key in expected}, strict=False)
    return module
