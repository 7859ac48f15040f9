"""Training checkpoints: ``checkpoint-<step>`` folders holding only the adapter plus the training state.

A checkpoint folder written by ``accelerator.save_state`` with :func:`register_adapter_hooks` holds:

* ``controlnet/config.json`` and ``controlnet/diffusion_pytorch_model.safetensors`` (diffusers format,
  loadable with ``FlowControlNet.from_pretrained``);
* ``optimizer.bin``, ``scheduler.bin``, ``scaler.pt`` (fp16), ``random_states_<rank>.pkl`` and the
  trainer's own generators of every process (``trainer_state_<rank>.pt``), so a resumed run continues exactly.

The frozen UNet, VAE, CLIP and CMP are never written.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Protocol

import torch
from accelerate import Accelerator

from models.flow_controlnet import FlowControlNet
from utils.errors import InputError

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
ADAPTER_FOLDER = "controlnet"


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def checkpoint_step(path: Path) -> int:
    """The step of a ``checkpoint-<step>`` folder."""
    match = CHECKPOINT_PATTERN.match(Path(path).name)
    if match is None:
        raise InputError(f"--resume_from_checkpoint: {path} is not a checkpoint-<step> folder")
    return int(match.group(1))


def list_checkpoints(output_dir: Path) -> list[Path]:
    """``checkpoint-<step>`` folders of ``output_dir``, oldest (lowest step) first."""
    if not output_dir.is_dir():
        return []
    folders = [path for path in output_dir.iterdir() if path.is_dir() and CHECKPOINT_PATTERN.match(path.name)]
    return sorted(folders, key=checkpoint_step)


def resolve_resume_checkpoint(output_dir: Path, resume_from: str | None) -> Path | None:
    """The folder to resume from: ``latest`` (None when there is none yet) or an explicit path.

    Raises:
        InputError: an explicit path that does not exist.
    """
    if not resume_from:
        return None
    if resume_from == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    path = Path(resume_from)
    if not path.is_dir():
        raise InputError(f"--resume_from_checkpoint: no such folder {path}")
    return path


def prune_checkpoints(output_dir: Path, keep: int) -> list[Path]:
    """Delete the oldest checkpoints so that ``keep - 1`` remain (room for the one about to be saved)."""
    checkpoints = list_checkpoints(output_dir)
    excess = len(checkpoints) - (keep - 1)
    removed = checkpoints[: max(excess, 0)] if keep > 0 else []
    for path in removed:
        logger.info("removing old checkpoint %s", path)
        shutil.rmtree(path)
    return removed


def register_adapter_hooks(accelerator: Accelerator, process_state: dict[str, Stateful]) -> None:
    """Make ``save_state``/``load_state`` write and read the adapter as a diffusers folder (no other
    weights), plus ``process_state`` (e.g. random generators) separately for every process."""

    def state_file(folder: str) -> Path:
        return Path(folder) / f"trainer_state_{accelerator.process_index}.pt"

    def save_adapter(models: list, weights: list, output_dir: str) -> None:
        for model in models:
            state_dict = accelerator.get_state_dict(model)
            if accelerator.is_main_process:
                accelerator.unwrap_model(model).save_pretrained(Path(output_dir) / ADAPTER_FOLDER, state_dict=state_dict)
        del weights[:]
        torch.save({name: obj.state_dict() for name, obj in process_state.items()}, state_file(output_dir))

    def load_adapter(models: list, input_dir: str) -> None:
        while models:
            model = accelerator.unwrap_model(models.pop())
            loaded = FlowControlNet.from_pretrained(Path(input_dir) / ADAPTER_FOLDER)
            model.load_state_dict(loaded.state_dict())
            del loaded
        saved = torch.load(state_file(input_dir), weights_only=True)
        for name, obj in process_state.items():
            obj.load_state_dict(saved[name])

    accelerator.register_save_state_pre_hook(save_adapter)
    accelerator.register_load_state_pre_hook(load_adapter)
