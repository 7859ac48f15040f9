"""Training checkpoints: ``checkpoint-<step>`` folders holding only the adapter plus the training state.

A checkpoint folder written by ``accelerator.save_state`` with :func:`register_adapter_hooks` holds:

* ``controlnet/config.json`` and ``controlnet/diffusion_pytorch_model.safetensors`` (diffusers format,
  loadable with ``FlowControlNet.from_pretrained``);
* ``optimizer.bin``, ``scheduler.bin``, ``scaler.pt`` (fp16), ``random_states_<rank>.pkl`` and the
  trainer's own generators of every process (``trainer_state_<rank>.pt``), so a resumed run continues exactly.

* ``checkpoint.json`` (step, number of processes), written last: the mark of a complete checkpoint.

A checkpoint is written to ``checkpoint-<step>.partial`` and renamed when complete, so a run killed while
saving leaves no ``checkpoint-<step>`` folder; ``latest`` takes the newest folder with ``checkpoint.json``.
The frozen UNet, VAE, CLIP and CMP are never written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Protocol

import torch
from accelerate import Accelerator

from utils.errors import InputError

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
ADAPTER_FOLDER = "controlnet"
COMPLETE_MARKER = "checkpoint.json"
PARTIAL_SUFFIX = ".partial"


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def checkpoint_step(path: Path) -> int:
    """The step of a ``checkpoint-<step>`` folder."""
    match = CHECKPOINT_PATTERN.match(Path(path).name)
    if match is None:
        raise InputError(f"--resume_from_checkpoint: {path} is not a checkpoint-<step> folder")
    return int(match.group(1))


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a finished checkpoint (its ``checkpoint.json`` is written last)."""
    return (Path(folder) / COMPLETE_MARKER).is_file()


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete ``checkpoint-<step>`` folders of ``output_dir``, oldest (lowest step) first."""
    if not output_dir.is_dir():
        return []
    folders = [path for path in output_dir.iterdir() if CHECKPOINT_PATTERN.match(path.name) and is_complete(path)]
    return sorted(folders, key=checkpoint_step)


def resolve_resume_checkpoint(output_dir: Path, resume_from: str | None) -> Path | None:
    """The folder to resume from: ``latest`` (the newest complete one; None when there is none yet) or a path.

    Raises:
        InputError: a path that is not a complete ``checkpoint-<step>`` folder (never looked up on the hub).
    """
    if not resume_from:
        return None
    if resume_from == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    path = Path(resume_from)
    if not path.is_dir():
        raise InputError(f"--resume_from_checkpoint: no such folder {path}")
    checkpoint_step(path)
    if not is_complete(path):
        raise InputError(
            f"--resume_from_checkpoint: {path} is incomplete (no {COMPLETE_MARKER}; interrupted while saving?); "
            "use --resume_from_checkpoint latest for the newest complete one"
        )
    return path


def checkpoint_processes(folder: Path) -> int:
    """How many processes wrote the checkpoint."""
    return int(json.loads((Path(folder) / COMPLETE_MARKER).read_text())["num_processes"])


def partial_folder(output_dir: Path, step: int) -> Path:
    """Where the checkpoint of ``step`` is written before it is complete."""
    return output_dir / f"checkpoint-{step}{PARTIAL_SUFFIX}"


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint folder; renamed first, so an interrupted delete leaves no checkpoint-like folder."""
    doomed = path.with_name(f"{path.name}.removing")
    os.replace(path, doomed)
    shutil.rmtree(doomed)


def finish_checkpoint(partial: Path, step: int, num_processes: int) -> Path:
    """Mark ``partial`` complete and rename it to ``checkpoint-<step>`` (replacing an older one of that step)."""
    (partial / COMPLETE_MARKER).write_text(json.dumps({"step": step, "num_processes": num_processes}) + "\n")
    final = partial.with_name(f"checkpoint-{step}")
    if final.exists():
        remove_checkpoint(final)
    os.replace(partial, final)
    return final


def prune_checkpoints(output_dir: Path, keep: int) -> list[Path]:
    """Delete the oldest complete checkpoints so that ``keep`` remain (0: keep all); returns the deleted."""
    checkpoints = list_checkpoints(output_dir)
    removed = checkpoints[: max(len(checkpoints) - keep, 0)] if keep > 0 else []
    for path in removed:
        logger.info("removing old checkpoint %s", path)
        remove_checkpoint(path)
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
                accelerator.unwrap_model(model).save_pretrained(
                    Path(output_dir) / ADAPTER_FOLDER, state_dict=state_dict
                )
        del weights[:]
        torch.save({name: obj.state_dict() for name, obj in process_state.items()}, state_file(output_dir))

    def load_adapter(models: list, input_dir: str) -> None:
        from models.flow_controlnet import FlowControlNet

        while models:
            model = accelerator.unwrap_model(models.pop())
            loaded = FlowControlNet.from_pretrained(Path(input_dir) / ADAPTER_FOLDER)
            model.load_state_dict(loaded.state_dict())
            del loaded
        if not state_file(input_dir).is_file():  # written by fewer processes: this one starts its streams afresh
            return
        saved = torch.load(state_file(input_dir), weights_only=True)
        for name, obj in process_state.items():
            obj.load_state_dict(saved[name])

    accelerator.register_save_state_pre_hook(save_adapter)
    accelerator.register_load_state_pre_hook(load_adapter)
