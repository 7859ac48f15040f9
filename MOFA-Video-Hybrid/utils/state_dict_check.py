# Copied from MOFA-Video-Traj/utils/state_dict_check.py
"""Strict comparison of the tensors read from a checkpoint with a model's own state dict.

The loaders of released weights read each file as it is and refuse one that does not fit: before
``load_state_dict`` they call :func:`check_state_dict`, which raises one :class:`CheckpointError`
naming the file and listing the missing, unexpected and wrongly shaped keys (a few of each, then
their count), so that a wrong or truncated file is reported instead of half loaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from utils.errors import CheckpointError

BATCHNORM_COUNTER_SUFFIX = ".num_batches_tracked"
"""BatchNorm step counters: unused in eval mode, so released files may lack them."""
KEYS_NAMED = 3
"""How many keys of each kind the error names before giving only their count."""


def _listed(label: str, keys: list[str]) -> str:
    """``"<label> (<count>): a, b, c and <n> more"``."""
    shown = ", ".join(keys[:KEYS_NAMED])
    more = f" and {len(keys) - KEYS_NAMED} more" if len(keys) > KEYS_NAMED else ""
    return f"{label} ({len(keys)}): {shown}{more}"


def _problems(
    expected: Mapping[str, torch.Tensor],
    found: Mapping[str, torch.Tensor],
    ignored_suffixes: Sequence[str] = (),
) -> list[str]:
    """One line per kind of mismatch between ``found`` and ``expected``; empty when they fit.

    Args:
        expected: the model's state dict (its keys and shapes are the contract).
        found: the tensors read from the checkpoint, under the model's key names.
        ignored_suffixes: keys of ``expected`` ending with one of these may be absent from ``found``.
    Returns:
        Up to three strings, ``"missing keys (n): ..."``, ``"unexpected keys (n): ..."`` and
        ``"wrongly shaped keys (n): key [file shape] (model [model shape]), ..."``, in that order.
    """
    missing = [key for key in expected if key not in found and not key.endswith(tuple(ignored_suffixes))]
    unexpected = [key for key in found if key not in expected]
    wrongly_shaped = [
        f"{key} {list(found[key].shape)} (model {list(value.shape)})"
        for key, value in expected.items()
        if key in found and found[key].shape != value.shape
    ]
    return [
        _listed(label, keys)
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("wrongly shaped keys", wrongly_shaped),
        )
        if keys
    ]


def check_state_dict(
    expected: Mapping[str, torch.Tensor],
    found: Mapping[str, torch.Tensor],
    source: str | Path,
    target: str,
    ignored_suffixes: Sequence[str] = (),
) -> None:
    """Raise :class:`CheckpointError` unless ``found`` holds exactly the keys and shapes of ``expected``.

    Args:
        expected: the model's state dict.
        found: the tensors read from the checkpoint, under the model's key names.
        source: the file (or file and part) the tensors came from, named first in the message.
        target: what they should fit, e.g. the model's class name.
        ignored_suffixes: keys of ``expected`` ending with one of these may be absent from ``found``.
    Raises:
        CheckpointError: ``"<source> does not match <target>: missing keys (n): ...; ..."``.
    """
    problems = _problems(expected, found, ignored_suffixes)
    if problems:
        raise CheckpointError(f"{source} does not match {target}: " + "; ".join(problems))
