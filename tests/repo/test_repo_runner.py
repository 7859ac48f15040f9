"""The suite runner: counts from pytest's report, and 'no tests collected' is a failure."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load_runner():
    spec = importlib.util.spec_from_file_location("run_tests", ROOT / "tests" / "run_tests.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_junit_counts_failures_and_errors_as_failed(tmp_path):
    runner = _load_runner()
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest" tests="10" failures="2" errors="1" skipped="3"/></testsuites>'
    )
    assert runner.read_junit(report) == (4, 3, 3)


def test_a_suite_with_test_files_that_collects_nothing_fails(tmp_path, monkeypatch):
    runner = _load_runner()
    suite = tmp_path / "tests" / "empty"
    suite.mkdir(parents=True)
    (suite / "test_nothing_here.py").write_text("x = 1\n")
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    result = runner.run_suite("empty", [])
    assert result.failed == 1
    assert "exit 5" in result.note


def test_a_folder_without_test_files_is_reported_not_failed(tmp_path, monkeypatch):
    runner = _load_runner()
    (tmp_path / "tests" / "none").mkdir(parents=True)
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    result = runner.run_suite("none", [])
    assert (result.passed, result.failed, result.note) == (0, 0, "no test files")
