"""Puts Training first on sys.path (its `models`, `pipeline` and `utils` packages are the ones under test) and holds
the set-up the Training test files share: a fresh accelerate state per test, tiny clips, the tiny-run arguments,
a training run on the clips and the tiny stage-2 networks."""

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[1]))
from suite_setup import set_up_suite  # noqa: E402

SUBPROJECT = set_up_suite("Training")

TINY_CLIP_ARGS = (
    "--tiny", "--height", "16", "--width", "16", "--num_frames", "3", "--sample_stride", "2", "--report_to", "none",
)  # fmt: skip
"""A tiny run on 16 px clips of 3 frames (stride 2), no logger: add data, output and steps."""


@pytest.fixture
def subproject_dir() -> Path:
    """The sub-project's root folder (entry points run from here)."""
    return SUBPROJECT


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each test (and so each training run in it) starts from a fresh accelerate state."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, Path]:
    """Two 12-frame 32 px moving-square mp4s and their WebVid-style CSV, one set per test file: (data_root, csv)."""
    from train_utils.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("clips")
    return root, make_synthetic_dataset(root, num_videos=2, num_frames=12, height=32, width=32)


@pytest.fixture
def tiny_clip_args() -> list[str]:
    """:data:`TINY_CLIP_ARGS` as a list to extend."""
    return list(TINY_CLIP_ARGS)


@pytest.fixture
def train_on_clips() -> Callable:
    """``train_on_clips(stage, output_dir, (data_root, csv), *extra)``: a tiny training run without validation
    unless ``extra`` (flags and values, any type) asks for it; returns the trainer's result."""
    from train_utils.arguments import parse_args
    from train_utils.trainer import train

    def run(stage: int, output_dir: Path, clips: tuple[Path, Path], *extra: object):
        data_root, csv_path = clips
        argv = [
            *TINY_CLIP_ARGS,
            "--validation_steps",
            "0",
            "--output_dir",
            str(output_dir),
            "--data_root",
            str(data_root),
        ]
        return train(parse_args(stage, [*argv, "--train_csv", str(csv_path), *(str(arg) for arg in extra)]))

    return run


@pytest.fixture(scope="module")
def tiny_stage2_components():
    """The tiny stage-2 networks (``--tiny``), the frozen ones frozen, one set per test file."""
    from train_utils.arguments import parse_args
    from train_utils.components import freeze, load_components

    parts = load_components(parse_args(2, ["--tiny", "--output_dir", "unused"]))
    freeze(parts.vae, parts.image_encoder, parts.unet, parts.cmp)
    return parts
