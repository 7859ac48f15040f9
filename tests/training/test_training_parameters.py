"""Which adapter parameters each stage trains, checked at full size against the released parameter list."""

from pathlib import Path

import pytest
import torch

from models.flow_controlnet import FlowControlNet
from train_utils.components import set_trainable_parameters

# The 683 parameter names of the released trajectory adapter, in state-dict order (all trained in stage 1).
RELEASED_NAMES = (Path(__file__).parent / "data/adapter_parameter_names.txt").read_text().split()


@pytest.fixture(scope="module")
def full_size_adapter() -> FlowControlNet:
    """The released architecture, built without memory on the meta device (each test sets its stage)."""
    with torch.device("meta"):
        return FlowControlNet()


def test_stage1_trains_every_released_adapter_parameter(full_size_adapter):
    trainable, frozen = set_trainable_parameters(full_size_adapter, stage=1)
    assert trainable == RELEASED_NAMES and frozen == []


def test_stage2_freezes_exactly_the_reference_encoder(full_size_adapter):
    trainable, frozen = set_trainable_parameters(full_size_adapter, stage=2)
    assert len(trainable) == 655 and len(frozen) == 28
    assert sum(name.startswith("controlnet_cond_embedding.") for name in frozen) == 16
    assert sum(name.startswith("flow_encoder.") for name in frozen) == 12
    assert sorted(trainable + frozen) == sorted(RELEASED_NAMES)
    requires_grad = {name: parameter.requires_grad for name, parameter in full_size_adapter.named_parameters()}
    assert all(requires_grad[name] for name in trainable) and not any(requires_grad[name] for name in frozen)


def test_stage2_trains_the_fusion_encoder_groups_of_the_released_list(full_size_adapter):
    trainable, _ = set_trainable_parameters(full_size_adapter, stage=2)
    groups = {}
    for name in trainable:
        groups[name.split(".")[0]] = groups.get(name.split(".")[0], 0) + 1
    assert groups == {
        "conv_in": 2,
        "time_embedding": 4,
        "add_embedding": 4,
        "down_blocks": 520,
        "mid_block": 99,
        "controlnet_down_blocks": 24,
        "controlnet_mid_block": 2,
    }
