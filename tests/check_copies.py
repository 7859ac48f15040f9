"""Keep the sub-projects' copies of canonical files identical.

Every file under the four sub-projects whose first line is ``# Copied from <path>`` must equal the file
at ``<path>`` (relative to the repository root) apart from that first line.

    python tests/check_copies.py          # report drifted copies with a short diff, exit 1 if any
    python tests/check_copies.py --fix    # rewrite drifted copies from their canonical files
"""

from __future__ import annotations

import argparse
import difflib
import sys
from dataclasses import dataclass
from pathlib import Path

SUBPROJECTS = ("MOFA-Video-Traj", "MOFA-Video-Keypoint", "MOFA-Video-Hybrid", "Training")
HEADER_PREFIX = "# Copied from "
CHECKED_SUFFIXES = (".py", ".sh", ".md", ".json", ".yaml", ".yml", ".txt")
MAX_DIFF_LINES = 20


@dataclass
class Copy:
    """A file that declares itself a copy of ``source``."""

    path: Path
    source: Path
    header: str


def find_copies(root: Path) -> list[Copy]:
    """All files under the sub-projects of ``root`` that start with the copy header."""
    copies = []
    for subproject in SUBPROJECTS:
        for path in sorted((root / subproject).rglob("*")):
            if not path.is_file() or path.suffix not in CHECKED_SUFFIXES or "__pycache__" in path.parts:
                continue
            with path.open(encoding="utf-8", errors="replace") as handle:
                first = handle.readline()
            if first.startswith(HEADER_PREFIX):
                source = first[len(HEADER_PREFIX) :].strip()
                copies.append(Copy(path=path, source=root / source, header=first))
    return copies


def expected_text(copy: Copy) -> str:
    """The header line followed by the canonical file's text."""
    return copy.header + copy.source.read_text(encoding="utf-8")


def check(root: Path, fix: bool = False, out=sys.stdout) -> int:
    """Report (or with ``fix`` repair) drifted copies. Returns the number of problems left."""
    problems = 0
    for copy in find_copies(root):
        rel = copy.path.relative_to(root)
        if not copy.source.is_file():
            print(f"{rel}: canonical file {copy.source.relative_to(root)} does not exist", file=out)
            problems += 1
            continue
        if copy.source.read_text(encoding="utf-8").startswith(HEADER_PREFIX):
            print(f"{rel}: canonical file {copy.source.relative_to(root)} is itself a copy", file=out)
            problems += 1
            continue
        want = expected_text(copy)
        have = copy.path.read_text(encoding="utf-8")
        if have == want:
            continue
        if fix:
            copy.path.write_text(want, encoding="utf-8")
            print(f"{rel}: rewritten from {copy.source.relative_to(root)}", file=out)
            continue
        problems += 1
        print(f"{rel}: differs from {copy.source.relative_to(root)}", file=out)
        diff = difflib.unified_diff(
            want.splitlines(), have.splitlines(), str(copy.source.relative_to(root)), str(rel), lineterm="", n=1
        )
        for i, line in enumerate(diff):
            if i >= MAX_DIFF_LINES:
                print("    ...", file=out)
                break
            print("    " + line, file=out)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fix", action="store_true", help="rewrite drifted copies from their canonical files")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="repository root")
    args = parser.parse_args(argv)
    problems = check(args.root.resolve(), fix=args.fix)
    if problems:
        print(f"{problems} copied file(s) drifted; run `make fix-copies` (python tests/check_copies.py --fix)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
