"""Quirks of the original MOFA-Video training that a faithful run keeps, one test each (``test_quirk_*``).

The other ``test_quirk_*`` tests of this suite sit next to the code they check (``pytest -k quirk`` runs them all).
"""

import accelerate
import pytest
from accelerate.state import AcceleratorState

from train_utils.arguments import parse_args
from train_utils.synthetic import make_synthetic_dataset
from train_utils.trainer import train

TINY_CLIP_ARGS = [
    "--tiny", "--height", "16", "--width", "16", "--num_frames", "3", "--sample_stride", "2",
    "--validation_steps", "0", "--report_to", "none", "--max_train_steps", "1", "--checkpointing_steps", "5",
]  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_quirk_gradients_are_never_clipped_by_default(tmp_path, monkeypatch):
    """The original parses ``max_grad_norm=1.0`` but never clips; here 0 (off) is the default, > 0 clips."""
    csv_path = make_synthetic_dataset(tmp_path / "clips", num_videos=1, num_frames=8, height=16, width=16)
    clipped = []
    clip = accelerate.Accelerator.clip_grad_norm_
    monkeypatch.setattr(
        accelerate.Accelerator,
        "clip_grad_norm_",
        lambda self, parameters, max_norm, *a, **k: (
            clipped.append(max_norm) or clip(self, parameters, max_norm, *a, **k)
        ),
    )
    argv = [*TINY_CLIP_ARGS, "--data_root", str(tmp_path / "clips"), "--train_csv", str(csv_path)]

    assert parse_args(1, ["--output_dir", "unused"]).max_grad_norm == 0
    assert train(parse_args(1, [*argv, "--output_dir", str(tmp_path / "default")])).global_step == 1
    assert clipped == []

    AcceleratorState._reset_state(reset_partial_state=True)
    train(parse_args(1, [*argv, "--output_dir", str(tmp_path / "clipped"), "--max_grad_norm", "1.0"]))
    assert clipped == [1.0]
