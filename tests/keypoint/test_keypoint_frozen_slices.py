"""Regression tier: output values of the seeded tiny landmark pipeline over 7 frames by periodic sampling with
windows of 3 (stride 1, so the released repeated tail window is included), frozen.

A change here means the pipeline computes something else: if it is intended, say why in the commit and refreeze
with the values the test prints.
"""

import numpy as np
import torch

from pipeline.keypoint_animator import build_tiny_components

SIZE, FRAMES = 32, 7
EXPECTED = [
    0.573353, 0.409368, 0.623304, 0.330782, 0.336304, 0.239298, 0.654348, 0.887774, 0.910929, 0.5984, 0.449751,
    0.629527, 0.249373, 0.765289, 0.765296, 0.54257, 0.744608, 0.369532, 0.755426, 0.463675, 0.513907,
]  # fmt: skip


def test_tiny_periodic_pipeline_output_slice_is_unchanged():
    pipe = build_tiny_components(0)[0]
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, SIZE, SIZE, generator=generator)
    flow = torch.randn(1, FRAMES - 1, 2, SIZE, SIZE, generator=generator) * 3
    pose_images = torch.rand(1, FRAMES, 3, SIZE, SIZE, generator=generator)
    frames = pipe(
        image, flow, pose_images, window_size=3, window_stride=1, num_inference_steps=2, output_type="np",
        generator=torch.Generator().manual_seed(7),
    ).frames  # fmt: skip
    values = frames[0, :, SIZE // 2, SIZE // 2 : SIZE // 2 + 3, 0].flatten()
    np.testing.assert_allclose(values, EXPECTED, rtol=0, atol=1e-4, err_msg=f"now {values.round(6).tolist()}")
