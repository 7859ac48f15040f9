"""Puts MOFA-Video-Hybrid first on sys.path: its `models`, `pipeline` and `utils` packages are the ones under test."""

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBPROJECT = REPO_ROOT / "MOFA-Video-Hybrid"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(SUBPROJECT))


@pytest.fixture
def subproject_dir() -> Path:
    """The sub-project's root folder (entry points run from here)."""
    return SUBPROJECT
