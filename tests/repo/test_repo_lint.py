"""Style is enforced: ruff's lint and format checks (configured in pyproject.toml) pass on the whole tree."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_passes(command):
    completed = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "--no-cache", "."],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert completed.returncode == 0, f"ruff {' '.join(command)} (fix with `make style`):\n{completed.stdout}"
