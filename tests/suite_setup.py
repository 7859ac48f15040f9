"""What every suite's conftest.py does before its tests are imported.

A conftest appends this folder to ``sys.path`` (to import this module; test files then import shared helpers
such as ``ui_helpers`` the same way) and calls ``set_up_suite`` with its sub-project.
"""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def set_up_suite(subproject: str) -> Path:
    """Puts ``subproject`` first on ``sys.path``, keeps the Hugging Face libraries offline and torch on one thread
    (set before any test module imports torch); returns the sub-project's folder.

    The sub-project's ``models``, ``pipeline`` and ``utils`` packages are then the ones the suite tests.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # tiny models are dominated by per-op overhead: one thread is fastest and does not oversubscribe the machine
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    folder = REPO_ROOT / subproject
    sys.path.insert(0, str(folder))
    return folder
