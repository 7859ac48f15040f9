"""Run every test suite in its own pytest process and print one summary line.

Each sub-project's tests run with that sub-project first on ``sys.path`` (their ``models`` packages
differ), so they cannot share a process. The last line printed is ``N passed, N failed`` (plus
``, N skipped``) summed over all suites; the exit code is 0 only when every suite passed.

    python tests/run_tests.py                 # all suites
    python tests/run_tests.py traj repo       # some suites
    python tests/run_tests.py traj -- -k cmp  # extra pytest arguments after --
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITES = ("repo", "traj", "keypoint", "hybrid", "training")
SLOWEST_FIRST = ("traj", "hybrid", "keypoint", "training", "repo")
PYTEST_NO_TESTS_COLLECTED = 5


@dataclass
class SuiteResult:
    name: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    note: str = ""


def has_tests(suite_dir: Path) -> bool:
    return any(suite_dir.rglob("test_*.py"))


def read_junit(path: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) from a pytest junit XML report."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = failed = skipped = 0
    for suite in suites:
        total += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return total - failed - skipped, failed, skipped


def run_suite(name: str, extra: list[str]) -> SuiteResult:
    """Run one suite in its own pytest process; its output is printed in one piece when it ends."""
    suite_dir = ROOT / "tests" / name
    result = SuiteResult(name)
    if not has_tests(suite_dir):
        result.note = "no test files"
        return result
    # Tiny models are dominated by per-op overhead: one thread per process is faster, and lets suites run side
    # by side on a small machine.
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    env.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(suite_dir),
            "-p",
            "no:cacheprovider",
            "--import-mode=importlib",
            "-q",
            "-rfE",
            f"--junitxml={report}",
            *extra,
        ]
        start = time.monotonic()
        completed = subprocess.run(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        )
        returncode = completed.returncode
        result.seconds = time.monotonic() - start
        print(f"=== {name}: {' '.join(command[1:])}\n{completed.stdout}", flush=True)
        if report.is_file():
            result.passed, result.failed, result.skipped = read_junit(report)
    if returncode == PYTEST_NO_TESTS_COLLECTED and not extra:
        result.failed += 1
        result.note = "has test files but collected no test (pytest exit 5)"
    elif returncode not in (0, PYTEST_NO_TESTS_COLLECTED) and result.failed == 0:
        result.failed += 1
        result.note = f"pytest exited with code {returncode}"
    return result


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "suites", nargs="*", metavar="SUITE", help=f"suites to run (default: all of {', '.join(SUITES)})"
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="suites run side by side (default: 2, or 1 on a one-core machine)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    names = args.suites or list(SUITES)
    # the slowest suites first, so two workers finish together
    order = sorted(names, key=lambda n: SLOWEST_FIRST.index(n))
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        by_name = dict(zip(order, pool.map(lambda n: run_suite(n, extra), order)))
    results = [by_name[name] for name in names]

    print("\n=== summary")
    for r in results:
        note = f"  ({r.note})" if r.note else ""
        print(f"{r.name:9s} {r.passed:4d} passed {r.failed:3d} failed {r.skipped:3d} skipped {r.seconds:7.1f} s{note}")
    passed = sum(r.passed for r in results)
    failed = sum(r.failed for r in results)
    skipped = sum(r.skipped for r in results)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
