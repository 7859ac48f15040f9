"""CMP: released layout, loading the released checkpoint format, flow-bin fusion, the inference wrapper."""

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.cmp import CMP, CMP_GRID_SIZE, TINY_CMP_CONFIG, build_tiny_cmp, flow_bin_centres, fuse_flow_bins
from utils.errors import CheckpointError

RELEASED_LAYOUT = Path(__file__).parent / "state_dicts" / "cmp.tsv"
NBINS, FMAX = 99, 50.0
OUTERMOST_CENTRE = 50.0 - 100.0 / 99.0 / 2.0  # 49.4949...


def released_entries() -> list[tuple[str, list[int], str]]:
    """(key, shape, dtype) per line of the released state-dict listing, in file order."""
    entries = []
    for line in RELEASED_LAYOUT.read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape, dtype = line.split("\t")
            entries.append((key, json.loads(shape), dtype))
    return entries


def random_released_style_state_dict(model: CMP, seed: int = 0) -> dict[str, torch.Tensor]:
    """The model's keys with ``module.`` prepended, random values, and no BatchNorm counters."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        tensor = torch.randn(value.shape, generator=generator) * 0.5
        if key.endswith("running_var"):
            tensor = tensor.abs() + 0.5
        state[f"module.{key}"] = tensor
    return state


def write_training_checkpoint(path: Path, state_dict: dict[str, torch.Tensor]) -> Path:
    momentum = {index: torch.zeros(2) for index in range(3)}
    optimizer = {
        "state": {i: {"momentum_buffer": m} for i, m in momentum.items()},
        "param_groups": [{"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "nesterov": False, "params": [0, 1, 2]}],
    }
    torch.save({"step": 42000, "state_dict": state_dict, "optimizer": optimizer}, path)
    return path


def hint_inputs(batch: int, size: int, dtype: torch.dtype = torch.float32, seed: int = 0):
    """A [0,1] image (batch 1) and ``batch`` sets of two single-pixel hints on a ``size`` grid."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, size, size, generator=generator)
    sparse = torch.zeros(batch, 2, size, size)
    mask = torch.zeros(batch, 2, size, size)
    sparse[:, 0, size // 4, size // 3] = torch.arange(batch, dtype=torch.float32) * 3
    sparse[:, 1, size // 2, size // 5] = -7.0
    mask[:, :, size // 4, size // 3] = 1
    mask[:, :, size // 2, size // 5] = 1
    return image.to(dtype), sparse.to(dtype), mask.to(dtype)


@pytest.fixture(scope="module")
def tiny_cmp() -> CMP:
    return build_tiny_cmp(seed=0)


# --- released layout --------------------------------------------------------------------------------


def test_full_size_cmp_has_exactly_the_released_keys_shapes_and_order():
    with torch.device("meta"):
        model = CMP()
    built = [
        (f"module.{key}", list(value.shape), str(value.dtype).removeprefix("torch."))
        for key, value in model.state_dict().items()
    ]
    assert built == released_entries()


def test_default_config_is_the_released_config():
    with torch.device("meta"):
        config = CMP().config
    assert (config.img_enc_dim, config.sparse_enc_dim, config.output_dim, config.nbins, config.fmax) == (
        256,
        16,
        198,
        99,
        50.0,
    )


def test_image_encoder_dilates_its_last_two_stages_for_output_stride_8(tiny_cmp):
    encoder = tiny_cmp.image_encoder
    assert encoder.layer2[0].conv2.stride == (2, 2)
    for stage, dilation in ((encoder.layer3, 2), (encoder.layer4, 4)):
        for block in stage:
            assert (block.conv2.stride, block.conv2.dilation, block.conv2.padding) == (
                (1, 1),
                (dilation,) * 2,
                (dilation,) * 2,
            )
        assert stage[0].downsample[0].stride == (1, 1)
    features = encoder(torch.zeros(1, 3, 64, 96))
    assert features.deep.shape[-2:] == (8, 12)
    assert features.stem.shape[-2:] == (32, 48)
    assert features.stage1.shape[-2:] == (16, 24)


def test_output_dim_must_be_twice_nbins():
    with pytest.raises(ValueError, match="output_dim must be 2 \\* nbins"):
        CMP(**{**TINY_CMP_CONFIG, "output_dim": 17})


# --- loading the released checkpoint format ---------------------------------------------------------


def test_training_checkpoint_loads_silently_and_matches_a_directly_loaded_model(tmp_path, capsys, caplog):
    source = random_released_style_state_dict(build_tiny_cmp(seed=1))
    path = write_training_checkpoint(tmp_path / "ckpt_iter_42000.pth.tar", source)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = CMP.from_checkpoint(path, **TINY_CMP_CONFIG)
    assert capsys.readouterr() == ("", "")
    assert not caplog.records

    direct = CMP(**TINY_CMP_CONFIG)
    direct.load_state_dict({key.removeprefix("module."): value for key, value in source.items()}, strict=False)
    direct.eval()
    image, sparse, mask = hint_inputs(batch=3, size=64)
    assert torch.equal(loaded.dense_flow(image, sparse, mask), direct.dense_flow(image, sparse, mask))
    assert torch.equal(loaded.flow_decoder.head.weight, source["module.flow_decoder.head.weight"])
    assert not loaded.training
    assert not any(parameter.requires_grad for parameter in loaded.parameters())


def test_checkpoint_with_an_unexpected_key_is_rejected_naming_it(tmp_path):
    source = random_released_style_state_dict(build_tiny_cmp())
    source["module.flow_decoder.extra.weight"] = torch.zeros(3)
    path = write_training_checkpoint(tmp_path / "ckpt.pth.tar", source)
    expected = r"ckpt.pth.tar does not match the CMP network: unexpected keys \(1\): flow_decoder.extra.weight$"
    with pytest.raises(CheckpointError, match=expected):
        CMP.from_checkpoint(path, **TINY_CMP_CONFIG)


def test_checkpoint_with_a_missing_key_is_rejected_naming_it(tmp_path):
    source = random_released_style_state_dict(build_tiny_cmp())
    del source["module.flow_decoder.head.bias"]
    path = write_training_checkpoint(tmp_path / "ckpt.pth.tar", source)
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): flow_decoder.head.bias$") as error:
        CMP.from_checkpoint(path, **TINY_CMP_CONFIG)
    assert "num_batches_tracked" not in str(error.value)


def test_checkpoint_with_a_wrongly_shaped_tensor_is_rejected_naming_it(tmp_path):
    source = random_released_style_state_dict(build_tiny_cmp())
    source["module.image_encoder.conv5.bias"] = torch.zeros(5)
    path = write_training_checkpoint(tmp_path / "ckpt.pth.tar", source)
    expected = r"wrongly shaped keys \(1\): image_encoder.conv5.bias \[5\] \(model \[\d+\]\)$"
    with pytest.raises(CheckpointError, match=expected):
        CMP.from_checkpoint(path, **TINY_CMP_CONFIG)


def test_missing_checkpoint_file_names_the_path_and_the_fetch_command(tmp_path):
    path = tmp_path / "cmp" / "ckpt_iter_42000.pth.tar"
    with pytest.raises(CheckpointError) as error:
        CMP.from_checkpoint(path)
    assert str(path) in str(error.value)
    assert "make fetch MODE=traj" in str(error.value)


def test_checkpoint_holding_arbitrary_python_objects_is_refused(tmp_path):
    source = random_released_style_state_dict(build_tiny_cmp())
    path = tmp_path / "ckpt.pth.tar"
    torch.save({"step": 1, "state_dict": source, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError, match="cannot read CMP checkpoint"):
        CMP.from_checkpoint(path, **TINY_CMP_CONFIG)


def test_file_without_state_dict_entry_is_rejected(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"step": 1}, path)
    with pytest.raises(CheckpointError, match="no 'state_dict' entry"):
        CMP.from_checkpoint(path, **TINY_CMP_CONFIG)


# --- flow-bin fusion ----------------------------------------------------------------------------------


def test_bin_centres_are_evenly_spaced_over_plus_minus_fmax():
    centres = flow_bin_centres(NBINS, FMAX)
    expected = torch.tensor([-50.0 + (100.0 / 99.0) * (i + 0.5) for i in range(NBINS)])
    torch.testing.assert_close(centres, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("x_bin", "y_bin"), [(0, 98), (49, 49), (10, 80), (98, 0)])
def test_one_hot_logits_give_the_bin_centres_per_axis(x_bin, y_bin):
    logits = torch.full((1, 2 * NBINS, 2, 3), -1e4)
    logits[:, x_bin] = 1e4
    logits[:, NBINS + y_bin] = 1e4
    flow = fuse_flow_bins(logits, NBINS, FMAX)
    assert flow.shape == (1, 2, 2, 3)
    torch.testing.assert_close(flow[:, 0], torch.full((1, 2, 3), -50.0 + (100.0 / 99.0) * (x_bin + 0.5)))
    torch.testing.assert_close(flow[:, 1], torch.full((1, 2, 3), -50.0 + (100.0 / 99.0) * (y_bin + 0.5)))


def test_uniform_logits_give_zero_flow():
    flow = fuse_flow_bins(torch.zeros(2, 2 * NBINS, 4, 4), NBINS, FMAX)
    torch.testing.assert_close(flow, torch.zeros(2, 2, 4, 4), rtol=0, atol=1e-5)


def test_quirk_cmp_flow_is_bounded_by_the_outermost_bin_centres_49_495():
    logits = torch.full((1, 2 * NBINS, 1, 2), -1e4)
    logits[:, 0, :, 0] = logits[:, NBINS, :, 0] = 1e4  # lowest bin on both axes at pixel 0
    logits[:, NBINS - 1, :, 1] = logits[:, 2 * NBINS - 1, :, 1] = 1e4  # highest bin at pixel 1
    flow = fuse_flow_bins(logits, NBINS, FMAX)
    torch.testing.assert_close(flow[0, :, 0, 0], torch.full((2,), -OUTERMOST_CENTRE))
    torch.testing.assert_close(flow[0, :, 0, 1], torch.full((2,), OUTERMOST_CENTRE))
    assert abs(OUTERMOST_CENTRE - 49.495) < 1e-3
    wild = fuse_flow_bins(torch.randn(4, 2 * NBINS, 5, 5) * 100, NBINS, FMAX)
    assert wild.abs().max() <= OUTERMOST_CENTRE + 1e-4


# --- inference wrapper ----------------------------------------------------------------------------------


def test_quirk_cmp_input_is_minus1_1_not_imagenet_and_its_flow_upsampled_unscaled(tiny_cmp):
    image, sparse, mask = hint_inputs(batch=2, size=64)
    logits = tiny_cmp(image.expand(2, -1, -1, -1) * 2 - 1, torch.cat([sparse, mask], dim=1))
    assert logits.shape == (2, TINY_CMP_CONFIG["output_dim"], 32, 32)
    half_resolution = fuse_flow_bins(logits, TINY_CMP_CONFIG["nbins"], TINY_CMP_CONFIG["fmax"])
    expected = F.interpolate(half_resolution, size=(64, 64), mode="bilinear", align_corners=True)
    torch.testing.assert_close(tiny_cmp.dense_flow(image, sparse, mask), expected)


def test_dense_flow_takes_fp16_inputs_and_returns_fp32(tiny_cmp):
    image, sparse, mask = hint_inputs(batch=3, size=64, dtype=torch.float16)
    flow = tiny_cmp.dense_flow(image, sparse, mask)
    assert flow.shape == (3, 2, 64, 64)
    assert flow.dtype == torch.float32
    reference = tiny_cmp.dense_flow(image.float(), sparse.float(), mask.float())
    torch.testing.assert_close(flow, reference)


def test_one_shared_image_equals_the_image_repeated_per_hint_set(tiny_cmp):
    image, sparse, mask = hint_inputs(batch=4, size=64)
    shared = tiny_cmp.dense_flow(image, sparse, mask)
    repeated = tiny_cmp.dense_flow(image.repeat(4, 1, 1, 1), sparse, mask)
    torch.testing.assert_close(shared, repeated)


def test_chunked_dense_flow_equals_one_pass(tiny_cmp):
    image, sparse, mask = hint_inputs(batch=5, size=64)
    one_pass = tiny_cmp.dense_flow(image, sparse, mask)
    torch.testing.assert_close(tiny_cmp.dense_flow(image, sparse, mask, chunk_size=2), one_pass)
    torch.testing.assert_close(tiny_cmp.dense_flow(image.repeat(5, 1, 1, 1), sparse, mask, chunk_size=3), one_pass)


def test_tiny_cmp_runs_a_batch_of_24_on_the_cmp_grid(tiny_cmp):
    image, sparse, mask = hint_inputs(batch=24, size=CMP_GRID_SIZE)
    flow = tiny_cmp.dense_flow(image, sparse, mask)
    assert CMP_GRID_SIZE == 384
    assert flow.shape == (24, 2, CMP_GRID_SIZE, CMP_GRID_SIZE)
    assert torch.isfinite(flow).all()
    fmax, nbins = TINY_CMP_CONFIG["fmax"], TINY_CMP_CONFIG["nbins"]
    assert flow.abs().max() <= fmax * (1 - 1 / nbins) + 1e-4
    assert flow.std() > 0


def test_dense_flow_refuses_training_mode():
    model = build_tiny_cmp().train()
    with pytest.raises(RuntimeError, match="eval mode"):
        model.dense_flow(*hint_inputs(batch=1, size=64))


def test_dense_flow_refuses_a_half_precision_model():
    model = build_tiny_cmp().half()
    with pytest.raises(RuntimeError, match="float32"):
        model.dense_flow(*hint_inputs(batch=1, size=64))


@pytest.mark.parametrize(
    ("image_shape", "sparse_shape", "mask_shape", "argument"),
    [
        ((1, 3, 64, 64), (2, 3, 64, 64), (2, 3, 64, 64), "sparse_flow"),
        ((1, 3, 64, 64), (2, 2, 64, 64), (2, 1, 64, 64), "mask"),
        ((3, 3, 64, 64), (2, 2, 64, 64), (2, 2, 64, 64), "image"),
        ((1, 3, 72, 64), (2, 2, 64, 64), (2, 2, 64, 64), "image size"),
        ((1, 3, 60, 60), (2, 2, 60, 60), (2, 2, 60, 60), "multiples of 8"),
    ],
)
def test_dense_flow_rejects_bad_shapes_naming_the_problem(tiny_cmp, image_shape, sparse_shape, mask_shape, argument):
    with pytest.raises(ValueError, match=argument):
        tiny_cmp.dense_flow(torch.zeros(image_shape), torch.zeros(sparse_shape), torch.zeros(mask_shape))


# --- tiny builder and save/load -------------------------------------------------------------------------


def test_tiny_cmp_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first, second, other = build_tiny_cmp(seed=0), build_tiny_cmp(seed=0), build_tiny_cmp(seed=1)
    assert torch.equal(torch.rand(1), expected_next)
    assert torch.equal(first.flow_decoder.head.weight, second.flow_decoder.head.weight)
    assert not torch.equal(first.flow_decoder.head.weight, other.flow_decoder.head.weight)


def test_save_pretrained_round_trip_keeps_config_and_weights(tiny_cmp, tmp_path):
    tiny_cmp.save_pretrained(tmp_path)
    reloaded = CMP.from_pretrained(tmp_path).eval()
    assert reloaded.config.nbins == TINY_CMP_CONFIG["nbins"]
    assert list(reloaded.config.encoder_blocks) == list(TINY_CMP_CONFIG["encoder_blocks"])
    for key, value in tiny_cmp.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key


def _hint_interpolation_oracle(hints, grid, sigma):
    """Literal per-pixel sums over the hints ``[(row, col, dx, dy), ...]`` (one count each)."""
    radius = round(3 * sigma)
    flow = np.zeros((2, grid, grid))
    for row in range(grid):
        for col in range(grid):
            total, weight = np.zeros(2), 0.0
            for hint_row, hint_col, dx, dy in hints:
                if abs(row - hint_row) <= radius and abs(col - hint_col) <= radius:
                    g = np.exp(-((row - hint_row) ** 2 + (col - hint_col) ** 2) / (2 * sigma**2))
                    total += g * np.array([dx, dy])
                    weight += g
            flow[:, row, col] = total / max(weight, 1.0)
    return flow


def test_hint_interpolation_spreads_hints_as_a_clamped_gaussian_average():
    from models.cmp import HintInterpolation

    grid, sigma = 64, 2.0
    hints = [(5, 6, 4.0, -2.0), (7, 8, -1.0, 3.0), (50, 3, 0.0, 5.0)]
    sparse, mask = torch.zeros(1, 2, grid, grid), torch.zeros(1, 2, grid, grid)
    for row, col, dx, dy in hints:
        sparse[0, :, row, col] += torch.tensor([dx, dy])
        mask[0, :, row, col] += 1
    flow = HintInterpolation(sigma).dense_flow(torch.rand(1, 3, grid, grid), sparse, mask)
    assert flow.shape == (1, 2, grid, grid) and flow.dtype == torch.float32
    np.testing.assert_allclose(flow[0].numpy(), _hint_interpolation_oracle(hints, grid, sigma), atol=1e-5)
    assert torch.equal(flow[0, :, 50, 3], torch.tensor([0.0, 5.0]))  # an isolated hint keeps its value
    assert flow[0, :, 0, 63].abs().max() == 0  # far from every hint nothing moves


def test_hint_interpolation_averages_coinciding_hints():
    from models.cmp import HintInterpolation

    sparse, mask = torch.zeros(2, 2, 64, 64), torch.zeros(2, 2, 64, 64)
    sparse[:, :, 4, 4], mask[:, :, 4, 4] = torch.tensor([6.0, -2.0]), 2  # two tracks from one pixel
    flow = HintInterpolation(1.0).dense_flow(torch.rand(1, 3, 64, 64), sparse, mask, chunk_size=1)
    assert torch.allclose(flow[:, :, 4, 4], torch.tensor([[3.0, -1.0]] * 2))
