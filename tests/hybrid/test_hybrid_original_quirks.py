"""Quirks of the original MOFA-Video Hybrid code that the released weights depend on, one test each.

The other ``test_quirk_*`` tests of this suite sit next to the code they check (``pytest -k quirk`` runs them all).
"""

import numpy as np
import torch

from pipeline.pipeline_hybrid_flow_controlnet import HybridFlowControlNetPipeline
from utils.tiny import tiny_flow_controlnet, tiny_svd_parts
from utils.tiny_keypoint import tiny_ldmk_controlnet

SIZE = 32


def test_quirk_hybrid_adapters_get_both_flows_rounded_to_the_weights_dtype(monkeypatch):
    """Like the single-adapter pipelines, the original casts the drag flow and the landmark flow to the weights'
    dtype (fp16 in its demos) before either adapter sees them."""
    parts = tiny_svd_parts(0)
    pipe = HybridFlowControlNetPipeline(
        controlnet=tiny_flow_controlnet(0, parts["unet"]),
        ldmk_controlnet=tiny_ldmk_controlnet(0, parts["unet"]),
        **parts,
    )
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    drag = torch.randn(1, 2, 2, SIZE, SIZE, generator=generator) * 3
    landmark = torch.randn(1, 2, 2, SIZE, SIZE, generator=generator) * 3
    calls, adapter_flow = [], pipe.adapter_flow
    monkeypatch.setattr(
        pipe,
        "adapter_flow",
        lambda flow, dtype, device: calls.append((flow, dtype)) or adapter_flow(flow, dtype, device),
    )
    output = pipe(
        torch.rand(3, SIZE, SIZE, generator=generator), drag, landmark, torch.rand(1, 3, 3, SIZE, SIZE),
        landmark_mask=np.full((SIZE, SIZE), 255, np.uint8), num_inference_steps=1, output_type="latent",
    )  # fmt: skip
    assert [dtype for _, dtype in calls] == [pipe.image_encoder.dtype] * 2
    assert calls[0][0] is drag and calls[1][0] is landmark
    torch.testing.assert_close(output.trajectory_flow, adapter_flow(drag, pipe.image_encoder.dtype, "cpu"))
