"""Forward splatting (average mode) against a per-pixel reference written from the definition."""

import math

import pytest
import torch

from models.softsplat import softsplat, splat_sum


def naive_softsplat(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """One source pixel at a time: bilinear corners, out-of-range dropped, non-finite skipped, avg mode."""
    batch, channels, height, width = features.shape
    summed = [
        [[[features.new_zeros(()) for _ in range(width)] for _ in range(height)] for _ in range(channels + 1)]
        for _ in range(batch)
    ]
    for n in range(batch):
        for y in range(height):
            for x in range(width):
                tx = x + flow[n, 0, y, x]
                ty = y + flow[n, 1, y, x]
                if not (math.isfinite(tx.item()) and math.isfinite(ty.item())):
                    continue
                x0, y0 = math.floor(tx.item()), math.floor(ty.item())
                fx, fy = tx - x0, ty - y0
                for cx, cy, w in (
                    (x0, y0, (1 - fx) * (1 - fy)),
                    (x0 + 1, y0, fx * (1 - fy)),
                    (x0, y0 + 1, (1 - fx) * fy),
                    (x0 + 1, y0 + 1, fx * fy),
                ):
                    if 0 <= cx < width and 0 <= cy < height:
                        for c in range(channels):
                            summed[n][c][cy][cx] = summed[n][c][cy][cx] + w * features[n, c, y, x]
                        summed[n][channels][cy][cx] = summed[n][channels][cy][cx] + w
    out = torch.stack(
        [torch.stack([torch.stack([torch.stack(row) for row in plane]) for plane in image]) for image in summed]
    )
    return out[:, :channels] / (out[:, channels:] + 1e-7)


def random_inputs(dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(2, 3, 5, 6, generator=generator, dtype=dtype)
    flow = torch.randn(2, 2, 5, 6, generator=generator, dtype=dtype) * 2.5
    return features, flow


def test_matches_naive_loop_on_random_inputs():
    features, flow = random_inputs(torch.float32)
    flow[0, 0, 1, 2] = float("nan")
    flow[1, 1, 3, 4] = float("inf")
    torch.testing.assert_close(softsplat(features, flow), naive_softsplat(features, flow), atol=1e-5, rtol=1e-5)


def test_gradients_match_naive_loop():
    features, flow = random_inputs(torch.float64, seed=1)
    upstream = torch.randn(2, 3, 5, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    grads = []
    for warp in (softsplat, naive_softsplat):
        feats = features.clone().requires_grad_(True)
        displacement = flow.clone().requires_grad_(True)
        (warp(feats, displacement) * upstream).sum().backward()
        grads.append((feats.grad, displacement.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(grads[0][1], grads[1][1], atol=1e-4, rtol=1e-4)
    assert grads[0][1].abs().sum() > 0


def test_zero_flow_is_identity():
    features, _ = random_inputs(torch.float32)
    out = softsplat(features, torch.zeros(2, 2, 5, 6))
    torch.testing.assert_close(out, features / (1 + 1e-7), atol=0, rtol=1e-6)


def test_integer_shift_moves_pixels_and_leaves_zero_holes():
    features = torch.arange(1, 1 + 2 * 4 * 5, dtype=torch.float32).view(1, 2, 4, 5)
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 0] = 2.0  # two columns right
    flow[:, 1] = -1.0  # one row up
    out = softsplat(features, flow)
    expected = torch.zeros_like(features)
    expected[:, :, 0:3, 2:5] = features[:, :, 1:4, 0:3]
    torch.testing.assert_close(out, expected / (1 + 1e-7), atol=0, rtol=1e-6)
    assert (out[:, :, 3, :] == 0).all() and (out[:, :, :, :2] == 0).all()


def test_everything_pushed_out_of_range_gives_zeros():
    features, _ = random_inputs(torch.float32)
    flow = torch.full((2, 2, 5, 6), 1e30)
    assert (softsplat(features, flow) == 0).all()


def test_overlapping_sources_are_averaged():
    features = torch.tensor([[[[2.0, 6.0]]]])
    flow = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])  # both pixels land on column 1
    out = softsplat(features, flow)
    torch.testing.assert_close(out, torch.tensor([[[[0.0, 4.0]]]]), atol=1e-6, rtol=0)


def test_splat_sum_keeps_bilinear_mass():
    features = torch.ones(1, 1, 4, 4)
    flow = torch.full((1, 2, 4, 4), 0.25)
    flow[..., -1, :] = 0.0
    flow[..., :, -1] = 0.0
    assert splat_sum(features, flow).sum().item() == pytest.approx(16.0, abs=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_are_computed_in_float32_and_cast_back(dtype):
    features, flow = random_inputs(torch.float32)
    out = softsplat(features.to(dtype), flow.to(dtype))
    assert out.dtype == dtype
    reference = softsplat(features.to(dtype).float(), flow.to(dtype).float())
    torch.testing.assert_close(out, reference.to(dtype), atol=0, rtol=0)


def test_frames_are_independent_in_a_batch():
    features, flow = random_inputs(torch.float32)
    batched = softsplat(features, flow)
    single = torch.cat([softsplat(features[i : i + 1], flow[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=1e-6)


def test_mismatched_shapes_are_rejected():
    features, flow = random_inputs(torch.float32)
    with pytest.raises(ValueError, match="flow"):
        softsplat(features, flow[:, :, :4])
    with pytest.raises(ValueError, match="features"):
        softsplat(features[0], flow)
