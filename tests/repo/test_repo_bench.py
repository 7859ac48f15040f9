"""The benchmark (tests/bench): its quality measures, its report, and a minimal end-to-end run."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "tests" / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def measure():
    return _load("measure")


@pytest.fixture(scope="module")
def bench():
    return _load("bench")


def _moving_square(num_frames=6, size=64, step=2.0):
    """(T, H, W, 3) float video of a textured square moving right by ``step`` px per frame, and its centres."""
    rng = np.random.default_rng(0)
    texture = rng.random((12, 12))
    frames = np.zeros((num_frames, size, size, 3))
    centres = []
    for frame in range(num_frames):
        left = int(round(20 + step * frame))
        frames[frame, 26:38, left : left + 12] = texture[..., None]
        centres.append((left + 6.0, 32.0))
    return frames, np.array(centres)


def test_psnr_and_mean_abs_difference_of_known_videos(measure):
    reference = np.zeros((2, 4, 4, 3))
    shifted = reference + 0.1
    assert measure.psnr(reference, reference) == float("inf")
    assert measure.psnr(shifted, reference) == pytest.approx(20.0)  # mse 0.01
    assert measure.mean_abs_difference(shifted, reference) == pytest.approx(25.5)


def test_tracked_point_follows_a_moving_square_and_the_error_measures_the_miss(measure):
    frames, centres = _moving_square()
    tracked = measure.track_point(frames, tuple(centres[0]))
    np.testing.assert_allclose(tracked, centres, atol=0.5)
    assert measure.flow_following_error(frames, centres) < 0.5
    standing_still = np.repeat(centres[:1], len(centres), axis=0)  # the square moves 2, 4, .. 10 px from it
    assert measure.flow_following_error(frames, standing_still) == pytest.approx(6.0, abs=0.5)


def test_linear_fit_recovers_fixed_cost_and_cost_per_window(bench):
    fit = bench.linear_fit([1, 4, 10], [1.5 + 0.5 * 1, 1.5 + 0.5 * 4, 1.5 + 0.5 * 10])
    assert fit["fixed_s"] == pytest.approx(1.5) and fit["per_window_s"] == pytest.approx(0.5)
    assert fit["worst_relative_miss"] == pytest.approx(0.0, abs=1e-9)
    assert bench.linear_fit([1], [2.0]) is None


def test_cpu_runs_are_compared_by_cpu_seconds_and_gpu_runs_by_wall_clock(bench):
    entry = {"median_s": 2.0, "median_cpu_s": 1.5}
    assert bench.seconds(entry, {"device": "cpu"}) == 1.5
    assert bench.seconds(entry, {"device": "cuda:0"}) == 2.0


def test_smoke_run_prints_the_table_and_writes_the_json(tmp_path):
    output = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, str(BENCH_DIR / "bench.py"), "--smoke", "--output", str(output)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    faithful = re.search(r"^ratio faithful (\d+\.\d+)$", completed.stdout, re.MULTILINE)
    fast = re.search(r"^ratio fast (\d+\.\d+)$", completed.stdout, re.MULTILINE)
    assert faithful and fast
    results = json.loads(output.read_text())
    summary = results["summary"]
    assert summary["ratio_faithful"] == pytest.approx(float(faithful.group(1)), abs=1e-3)
    assert summary["ratio_fast"] == pytest.approx(float(fast.group(1)), abs=1e-3)
    cases = results["traj"]["cases"]
    assert set(cases) == {"plain_svd", "faithful", "fast"}
    assert all(len(case["seconds"]) == 1 and case["median_s"] > 0 for case in cases.values())
    assert cases["fast"]["adapter_runs"] < cases["faithful"]["adapter_runs"] == 2
    assert [row["windows"] for row in results["traj"]["periodic"]] == [1, 3]
    assert results["keypoint"]["available"] is True and results["keypoint"]["windows"] == 3
    for line in ("(a) plain SVD", "(b) ours, faithful", "(b) ours, fast", "(c) Keypoint", "(d) CMP + hint"):
        assert line in completed.stdout
