"""Puts MOFA-Video-Hybrid first on sys.path: its `models`, `pipeline` and `utils` packages are the ones under test."""

import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[1]))
from suite_setup import set_up_suite  # noqa: E402

SUBPROJECT = set_up_suite("MOFA-Video-Hybrid")


@pytest.fixture
def subproject_dir() -> Path:
    """The sub-project's root folder (entry points run from here)."""
    return SUBPROJECT
