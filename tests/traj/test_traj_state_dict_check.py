"""check_state_dict: one CheckpointError naming missing, unexpected and wrongly shaped keys."""

import pytest
import torch
from torch import nn

from utils.errors import CheckpointError
from utils.state_dict_check import BATCHNORM_COUNTER_SUFFIX, KEYS_NAMED, check_state_dict


def model_state() -> dict[str, torch.Tensor]:
    """A conv + BatchNorm model's state dict: conv.weight (4, 3, 3, 3), conv.bias (4,), bn.* (4,)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).state_dict()


def check(found: dict[str, torch.Tensor], **kwargs) -> None:
    check_state_dict(model_state(), found, "weights.pt", "TinyNet", **kwargs)


def test_an_identical_state_dict_passes():
    check(dict(model_state()))


def test_a_missing_key_is_named_with_the_file_and_the_target():
    found = model_state()
    del found["0.bias"]
    with pytest.raises(CheckpointError, match=r"^weights\.pt does not match TinyNet: missing keys \(1\): 0\.bias$"):
        check(found)


def test_an_unexpected_key_is_named():
    found = model_state() | {"head.weight": torch.zeros(2)}
    expected = r"^weights\.pt does not match TinyNet: unexpected keys \(1\): head\.weight$"
    with pytest.raises(CheckpointError, match=expected):
        check(found)


def test_a_wrong_shape_names_the_file_shape_and_the_model_shape():
    found = model_state() | {"0.weight": torch.zeros(4, 3, 5, 5)}
    expected = r"wrongly shaped keys \(1\): 0\.weight \[4, 3, 5, 5\] \(model \[4, 3, 3, 3\]\)$"
    with pytest.raises(CheckpointError, match=expected):
        check(found)


def test_every_kind_of_problem_is_reported_in_one_error_in_a_fixed_order():
    found = model_state() | {"0.bias": torch.zeros(5), "extra": torch.zeros(1)}
    del found["1.weight"]
    with pytest.raises(CheckpointError) as error:
        check(found)
    assert str(error.value) == (
        "weights.pt does not match TinyNet: missing keys (1): 1.weight; unexpected keys (1): extra; "
        "wrongly shaped keys (1): 0.bias [5] (model [4])"
    )


def test_long_lists_name_a_few_keys_then_the_count():
    found = {}
    with pytest.raises(CheckpointError) as error:
        check(found)
    expected = list(model_state())
    assert len(expected) == 7 and KEYS_NAMED == 3
    assert str(error.value) == (
        f"weights.pt does not match TinyNet: missing keys (7): {', '.join(expected[:3])} and 4 more"
    )


def test_keys_with_an_ignored_suffix_may_be_absent_but_not_others():
    found = model_state()
    del found["1.num_batches_tracked"]
    check(found, ignored_suffixes=(BATCHNORM_COUNTER_SUFFIX,))
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): 1\.num_batches_tracked$"):
        check(found)
    del found["1.running_mean"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): 1\.running_mean$"):
        check(found, ignored_suffixes=(BATCHNORM_COUNTER_SUFFIX,))


def test_an_ignored_suffix_does_not_excuse_a_wrong_shape():
    found = model_state() | {"1.num_batches_tracked": torch.zeros(2)}
    expected = r"wrongly shaped keys \(1\): 1\.num_batches_tracked \[2\] \(model \[\]\)$"
    with pytest.raises(CheckpointError, match=expected):
        check(found, ignored_suffixes=(BATCHNORM_COUNTER_SUFFIX,))


def test_the_source_may_be_a_path(tmp_path):
    with pytest.raises(CheckpointError, match=r"^.*ckpt\.pth\.tar does not match TinyNet: missing keys \(7\)"):
        check_state_dict(model_state(), {}, tmp_path / "ckpt.pth.tar", "TinyNet")
