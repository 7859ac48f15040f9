# Copied from MOFA-Video-Traj/utils/cli_arguments.py
"""Command-line options the entry points share: tiny mode, device and memory, the temporal context, help layout."""

from __future__ import annotations

import argparse
import os

from models.temporal_context import DEFAULT_TEMPORAL_CONTEXT, TEMPORAL_CONTEXTS

from .memory import DTYPES, MEMORY_PRESETS


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: ...)`` only where it tells something: not for None or False, nor when the help says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_temporal_context_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--temporal_context {original,per_video}``: which :mod:`models.temporal_context` the models use."""
    parser.add_argument(
        "--temporal_context",
        choices=TEMPORAL_CONTEXTS,
        default=DEFAULT_TEMPORAL_CONTEXT,
        help="temporal cross-attention context: original = diffusers 0.24, as the released results "
        "(default); per_video = today's diffusers",
    )


def add_tiny_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--tiny``: random tiny models instead of the weights; on by default when ``MOFA_TINY=1``."""
    parser.add_argument("--tiny", action="store_true", default=os.environ.get("MOFA_TINY") == "1", help=help)


def add_device_arguments(parser: argparse.ArgumentParser, default_memory: str, memory_help: str) -> None:
    """``--device``, ``--dtype`` and ``--memory`` (one of ``MEMORY_PRESETS``, ``default_memory`` unless given)."""
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    parser.add_argument("--dtype", choices=("auto", *DTYPES), default="auto", help="auto: fp16 on GPU, fp32 on CPU")
    parser.add_argument("--memory", choices=MEMORY_PRESETS, default=default_memory, help=memory_help)
