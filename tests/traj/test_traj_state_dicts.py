"""Full-size models built on the meta device have exactly the released checkpoints' keys, shapes and order."""

import json
from pathlib import Path

import pytest
import torch

from models.flow_controlnet import FlowControlNet
from models.unet_spatio_temporal_condition_controlnet import UNetSpatioTemporalConditionControlNetModel

LISTINGS = Path(__file__).parent / "state_dicts"


def read_listing(name: str) -> tuple[dict, list[tuple[str, tuple[int, ...]]]]:
    """``(header fields, [(key, shape), ...])`` of a ``key<TAB>[shape]<TAB>dtype`` listing."""
    header, entries = {}, []
    for line in (LISTINGS / f"{name}.tsv").read_text().splitlines():
        if line.startswith("# ") and ": " in line:
            field, value = line[2:].split(": ", 1)
            header[field] = value
        elif line and not line.startswith("#"):
            key, shape, _ = line.split("\t")
            entries.append((key, tuple(json.loads(shape))))
    return header, entries


def entries_of(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(key, tuple(tensor.shape)) for key, tensor in model.state_dict().items()]


@pytest.fixture(scope="module")
def svd_unet() -> UNetSpatioTemporalConditionControlNetModel:
    header, _ = read_listing("svd_unet")
    with torch.device("meta"):
        return UNetSpatioTemporalConditionControlNetModel(**json.loads(header["config"]))


def test_svd_unet_matches_the_released_listing(svd_unet):
    header, expected = read_listing("svd_unet")
    assert entries_of(svd_unet) == expected
    assert len(expected) == int(header["num_entries"]) == 1428
    assert sum(p.numel() for p in svd_unet.parameters()) == int(header["total_parameters"])


def test_default_flow_controlnet_matches_the_released_listing():
    header, expected = read_listing("traj_flowcontrolnet")
    with torch.device("meta"):
        controlnet = FlowControlNet()
    assert entries_of(controlnet) == expected
    assert len(expected) == int(header["num_entries"]) == 683
    assert sum(p.numel() for p in controlnet.parameters()) == int(header["total_parameters"])


def test_flow_controlnet_from_the_svd_unet_matches_the_released_listing(svd_unet):
    _, expected = read_listing("traj_flowcontrolnet")
    with torch.device("meta"):
        controlnet = FlowControlNet.from_unet(
            svd_unet, num_attention_heads=(5, 10, 10, 20), load_weights_from_unet=False
        )
    assert entries_of(controlnet) == expected


def test_released_config_json_builds_the_released_adapter():
    header, expected = read_listing("traj_flowcontrolnet")
    released = json.loads(header["config recorded by the model after construction"])
    config = {"_class_name": "FlowControlNet", **released}
    with torch.device("meta"):
        controlnet = FlowControlNet.from_config(config)
    assert entries_of(controlnet) == expected
    assert list(controlnet.config.num_attention_heads) == [5, 10, 10, 20]
    # released layout: the adapter's third down block has 10 heads of width 128, the UNet's 20 of width 64
    attention = controlnet.down_blocks[2].attentions[0].transformer_blocks[0].attn1
    assert (attention.heads, attention.inner_dim // attention.heads) == (10, 128)
    assert controlnet.mid_block.attentions[0].transformer_blocks[0].attn1.heads == 20


def test_adapter_trunk_has_the_unet_names_and_shapes(svd_unet):
    unet_entries = dict(entries_of(svd_unet))
    _, adapter = read_listing("traj_flowcontrolnet")
    shared = [
        (key, shape)
        for key, shape in adapter
        if key.split(".")[0] in ("conv_in", "time_embedding", "add_embedding", "down_blocks", "mid_block")
    ]
    assert len(shared) == 629
    assert all(unet_entries[key] == shape for key, shape in shared)
