"""Quirks of the original MOFA-Video training that a faithful run keeps, one test each (``test_quirk_*``).

The other ``test_quirk_*`` tests of this suite sit next to the code they check (``pytest -k quirk`` runs them all).
"""

import accelerate
import numpy as np
import torch
from accelerate.state import AcceleratorState

from train_utils.arguments import parse_args
from train_utils.sparse_to_dense import cmp_flow_from_hints
from train_utils.synthetic import make_synthetic_dataset


def test_quirk_gradients_are_never_clipped_by_default(tmp_path, monkeypatch, train_on_clips):
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
    one_step = ("--max_train_steps", 1, "--checkpointing_steps", 5)
    clips = (tmp_path / "clips", csv_path)

    assert parse_args(1, ["--output_dir", "unused"]).max_grad_norm == 0
    assert train_on_clips(1, tmp_path / "default", clips, *one_step).global_step == 1
    assert clipped == []

    AcceleratorState._reset_state(reset_partial_state=True)
    train_on_clips(1, tmp_path / "clipped", clips, *one_step, "--max_grad_norm", "1.0")
    assert clipped == [1.0]


def test_quirk_stage2_cmp_runs_on_its_square_grid_with_nearest_resizes_both_ways():
    """Stage 2 resizes the clip's first frame and flow to CMP's grid with nearest sampling (flow rescaled to grid
    pixels), samples hints there, and resizes CMP's flow back the same way (16 px clip, 24 px grid here)."""
    columns_16, columns_24 = torch.arange(16.0), torch.arange(24.0)

    class ColumnCMP:  # dense x flow = the grid column, y flow = -1.5
        def dense_flow(self, image, sparse, mask):
            self.seen = (image, sparse, mask)
            flow = torch.stack([columns_24.expand(24, 24), torch.full((24, 24), -1.5)])
            return flow.expand(sparse.shape[0], 2, 24, 24).clone()

    first_frame = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    flows = torch.stack([columns_16.expand(16, 16), torch.ones(16, 16)]).expand(1, 2, 2, 16, 16).clone()
    cmp = ColumnCMP()
    result = cmp_flow_from_hints(cmp, first_frame, flows, 24, np.random.default_rng(0))

    image, sparse, mask = cmp.seen
    source = [index * 16 // 24 for index in range(24)]  # nearest: grid pixel i reads clip pixel floor(i * 16 / 24)
    torch.testing.assert_close(image[0], first_frame[0][:, source][:, :, source])
    grid_flow_x = torch.tensor(source, dtype=torch.float32).expand(24, 24) * 24 / 16
    hinted = mask[0, 0] > 0
    assert hinted.sum() >= 1
    torch.testing.assert_close(sparse[0, 0][hinted], grid_flow_x[hinted])
    assert torch.all(sparse[0, 1][hinted] == 1.5)  # 1 px x 24 / 16
    back = torch.tensor([index * 24 // 16 for index in range(16)], dtype=torch.float32) * 16 / 24
    torch.testing.assert_close(result.dense[0, :, 0], back.expand(2, 16, 16))
    assert torch.all(result.dense[:, :, 1] == -1.0)  # -1.5 x 16 / 24
