"""Puts MOFA-Video-Traj first on sys.path (its `models`, `pipeline` and `utils` packages are the ones under test)
and holds the set-up several Traj test files share: the tiny pipeline, the tiny adapter's inputs, call recording."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.append(str(Path(__file__).resolve().parents[1]))
from suite_setup import set_up_suite  # noqa: E402

SUBPROJECT = set_up_suite("MOFA-Video-Traj")

import torch  # noqa: E402  (after set_up_suite, which sets torch's thread count)
from call_recording import CallRecorder  # noqa: E402

if TYPE_CHECKING:
    from pipeline.pipeline_flow_controlnet import FlowControlNetPipeline


@pytest.fixture
def subproject_dir() -> Path:
    """The sub-project's root folder (entry points run from here)."""
    return SUBPROJECT


@pytest.fixture(scope="module")
def pipe() -> FlowControlNetPipeline:
    """The tiny seed-0 pipeline (``build_tiny_components(0)``) with its progress bar off, one per test file."""
    from pipeline.trajectory_animator import build_tiny_components

    pipeline = build_tiny_components(0)[0]
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def tiny_adapter_inputs(seed: int = 0, batch: int = 2, frames: int = 3, size: int = 16) -> dict[str, torch.Tensor]:
    """Seeded keyword inputs of the tiny adapter for ``batch`` videos of ``frames`` frames, ``size`` pixels square.

    ``sample`` ``(batch, frames, 8, size/2, size/2)`` latents; ``encoder_hidden_states`` ``(batch, 1, 32)``;
    ``added_time_ids`` the released (fps 6, motion 128, noise 0.02) per video; ``controlnet_cond``
    ``(batch, 3, size, size)`` in [-1, 1]; ``controlnet_flow`` ``(batch, frames-1, 2, size, size)`` pixels.
    """
    generator = torch.Generator().manual_seed(seed)
    return {
        "sample": torch.randn(batch, frames, 8, size // 2, size // 2, generator=generator),
        "timestep": torch.tensor(0.7),
        "encoder_hidden_states": torch.randn(batch, 1, 32, generator=generator),
        "added_time_ids": torch.tensor([[6.0, 128.0, 0.02]]).repeat(batch, 1),
        "controlnet_cond": torch.rand(batch, 3, size, size, generator=generator) * 2 - 1,
        "controlnet_flow": torch.randn(batch, frames - 1, 2, size, size, generator=generator) * 3,
    }


@pytest.fixture(scope="session")
def make_adapter_inputs() -> Callable[..., dict[str, torch.Tensor]]:
    """Factory of the tiny adapter's inputs: ``make_adapter_inputs(seed=0, batch=2, frames=3, size=16)``."""
    return tiny_adapter_inputs


@pytest.fixture(scope="session")
def record_calls() -> type[CallRecorder]:
    """``with record_calls(module) as log:`` keeps each call's ``(args, kwargs)`` in ``log.calls``
    (:class:`call_recording.CallRecorder`)."""
    return CallRecorder
