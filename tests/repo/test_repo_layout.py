"""Repository shape: the four sub-projects, no imports across them, docs and commands in place."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUBPROJECTS = ("MOFA-Video-Traj", "MOFA-Video-Keypoint", "MOFA-Video-Hybrid", "Training")


def test_top_level_layout():
    for name in (*SUBPROJECTS, "ckpts", "tests", "README.md", "CLAUDE.md", "Makefile", "requirements.txt", ".ci/run"):
        assert (ROOT / name).exists(), name
    for subproject in SUBPROJECTS:
        for package in ("models", "pipeline", "utils"):
            assert (ROOT / subproject / package / "__init__.py").is_file(), f"{subproject}/{package}"
        assert (ROOT / subproject / "README.md").is_file(), f"{subproject}/README.md"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_subproject_imports_a_sibling():
    sibling_markers = {s.replace("-", "_").lower() for s in SUBPROJECTS} | {"mofa_video"}
    offenders = []
    for subproject in SUBPROJECTS:
        for path in (ROOT / subproject).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            for other in SUBPROJECTS:
                if other != subproject and re.search(rf"['\"/]{re.escape(other)}/", source.split("\n", 1)[-1]):
                    if "sys.path" in source or "import_module" in source:
                        offenders.append(f"{path.relative_to(ROOT)} reaches into {other}")
            for module in _imported_modules(path):
                if module.split(".")[0].lower() in sibling_markers:
                    offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not offenders, offenders


def test_nothing_reads_the_shared_spec_folder():
    offenders = [
        str(path.relative_to(ROOT))
        for folder in (*SUBPROJECTS, "tests")
        for path in (ROOT / folder).rglob("*.py")
        if "shared/spec" in path.read_text(encoding="utf-8") and path.name != "test_repo_layout.py"
    ]
    assert not offenders, offenders


def test_readme_documents_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^\s*make test\b", ci, re.MULTILINE), "CI must run the README's test command"


def test_requirements_are_pinned_exactly():
    for requirements in ("requirements.txt", "requirements-nodeps.txt"):
        for line in (ROOT / requirements).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[0-9][A-Za-z0-9.+\-]*", line), f"{requirements}: {line}"
