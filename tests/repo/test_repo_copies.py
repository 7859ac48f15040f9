"""The copy rule: copies equal their canonical files, and the checker catches and repairs drift."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT / "tests" / "check_copies.py"


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_copies", CHECKER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_repository_copies_match_their_canonical_files():
    result = subprocess.run([sys.executable, str(CHECKER)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_copy_names_an_existing_canonical_file_in_another_subproject():
    checker = _load_checker()
    copies = checker.find_copies(ROOT)
    assert copies, "expected the sub-projects to hold copies of the core files"
    for copy in copies:
        assert copy.source.is_file(), copy.path
        assert copy.source.relative_to(ROOT).parts[0] != copy.path.relative_to(ROOT).parts[0], copy.path


def _tiny_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "MOFA-Video-Traj" / "models").mkdir(parents=True)
    (root / "Training" / "models").mkdir(parents=True)
    canonical = "def splat(x):\n    return x + 1\n"
    (root / "MOFA-Video-Traj" / "models" / "softsplat.py").write_text(canonical)
    (root / "Training" / "models" / "softsplat.py").write_text(
        "# Copied from MOFA-Video-Traj/models/softsplat.py\n" + canonical
    )
    return root


def test_checker_detects_a_one_character_drift_and_fix_repairs_it(tmp_path):
    root = _tiny_tree(tmp_path)
    copy = root / "Training" / "models" / "softsplat.py"
    assert subprocess.run([sys.executable, str(CHECKER), "--root", str(root)], capture_output=True).returncode == 0

    copy.write_text(copy.read_text().replace("x + 1", "x + 2"))
    drifted = subprocess.run([sys.executable, str(CHECKER), "--root", str(root)], capture_output=True, text=True)
    assert drifted.returncode == 1
    assert "Training/models/softsplat.py: differs from MOFA-Video-Traj/models/softsplat.py" in drifted.stdout
    assert "+    return x + 2" in drifted.stdout

    fixed = subprocess.run([sys.executable, str(CHECKER), "--root", str(root), "--fix"], capture_output=True)
    assert fixed.returncode == 0
    assert copy.read_text().endswith("return x + 1\n")
    assert copy.read_text().startswith("# Copied from MOFA-Video-Traj/models/softsplat.py\n")
    assert subprocess.run([sys.executable, str(CHECKER), "--root", str(root)], capture_output=True).returncode == 0


def test_checker_reports_a_missing_canonical_file(tmp_path):
    root = _tiny_tree(tmp_path)
    (root / "MOFA-Video-Traj" / "models" / "softsplat.py").unlink()
    result = subprocess.run([sys.executable, str(CHECKER), "--root", str(root)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "does not exist" in result.stdout
