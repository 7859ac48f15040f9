"""Loads the golden fixtures that ``tests/golden/generate_golden.py`` wrote from the reference stack
(diffusers 0.24)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def load_golden(name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of ``tests/golden/<name>.safetensors``; every tensor as float32."""
    with safe_open(GOLDEN_DIR / f"{name}.safetensors", framework="pt") as handle:
        tensors = {key: handle.get_tensor(key).float() for key in handle.keys()}
        return tensors, dict(handle.metadata())


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries named ``<prefix>.<key>``, keyed by ``<key>`` (a model's state dict)."""
    start = f"{prefix}."
    return {key[len(start) :]: value for key, value in tensors.items() if key.startswith(start)}


def numbered(tensors: dict[str, torch.Tensor], prefix: str) -> list[torch.Tensor]:
    """``[tensors["<prefix>.0"], tensors["<prefix>.1"], ...]``."""
    entries = prefixed(tensors, prefix)
    return [entries[str(index)] for index in range(len(entries))]


def golden_unet_config() -> dict:
    """The tiny UNet config the fixtures were generated with."""
    return json.loads(load_golden("guided_loop")[1]["unet_config"])
