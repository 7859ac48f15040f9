"""Strict loading of the three parts of SadTalker_V0.0.2_256.safetensors, against the released key list."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sadtalker_audio2pose.audio2exp import Audio2ExpNet
from sadtalker_audio2pose.audio2pose import TRAINING_ONLY_PREFIXES, Audio2PoseNet
from sadtalker_audio2pose.face_recon import FaceReconNet
from sadtalker_audio2pose.pipeline import audio_to_landmarks
from sadtalker_audio2pose.weights import load_part
from utils.errors import CheckpointError

KEY_LIST = Path(__file__).parent / "data" / "sadtalker_256_keys.tsv"
PARTS = {
    "face_3drecon": (FaceReconNet, ()),
    "audio2exp": (Audio2ExpNet, ()),
    "audio2pose": (Audio2PoseNet, TRAINING_ONLY_PREFIXES),
}


def released_entries() -> dict[str, tuple[list[int], str]]:
    entries = {}
    for line in KEY_LIST.read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape, dtype = line.split("\t")
            entries[key] = ([int(size) for size in shape.strip("[]").split(",") if size.strip()], dtype)
    return entries


@pytest.mark.parametrize("prefix", PARTS)
def test_module_keys_and_shapes_match_the_released_list(prefix):
    module_class, training_only = PARTS[prefix]
    with torch.device("meta"):
        module = module_class()
    have = {key: list(value.shape) for key, value in module.state_dict().items()}
    want = {
        key[len(prefix) + 1 :]: shape for key, (shape, _) in released_entries().items() if key.startswith(prefix + ".")
    }
    assert have == {key: shape for key, shape in want.items() if not key.startswith(training_only)}


@pytest.fixture(scope="module")
def released_file(tmp_path_factory):
    """A safetensors file with every released entry (zeros, one marker per part) plus face-render keys."""
    tensors = {
        key: torch.zeros(shape, dtype=torch.int64 if dtype == "int64" else torch.float32)
        for key, (shape, dtype) in released_entries().items()
    }
    tensors["face_3drecon.final_layers.3.bias"] = torch.tensor([0.1, 0.2, 0.3])
    tensors["audio2exp.mapping1.bias"] = torch.arange(64, dtype=torch.float32)
    tensors["audio2pose.netG.decoder.pose_linear.bias"] = torch.full((6,), 5.0)
    tensors["kp_extractor.kp.weight"] = torch.ones(2, 2)
    tensors["generator.first.conv.weight"] = torch.ones(3)
    path = tmp_path_factory.mktemp("sadtalker") / "SadTalker_V0.0.2_256.safetensors"
    save_file(tensors, str(path))
    return path, tensors


def test_every_part_loads_strictly_and_takes_the_file_values(released_file):
    path, _ = released_file
    recon = load_part(FaceReconNet(), path, "face_3drecon")
    audio2exp = load_part(Audio2ExpNet(), path, "audio2exp")
    audio2pose = load_part(Audio2PoseNet(), path, "audio2pose", TRAINING_ONLY_PREFIXES)
    assert recon.final_layers[3].bias.tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert recon.backbone.conv1.weight.abs().sum() == 0
    assert audio2exp.mapping1.bias.tolist() == list(range(64))
    assert audio2pose.netG.decoder.pose_linear.bias.tolist() == [5.0] * 6


def _rewritten(tmp_path, tensors, prefix, change):
    part = {key: value for key, value in tensors.items() if key.startswith(prefix + ".")}
    change(part)
    path = tmp_path / "edited.safetensors"
    save_file(part, str(path))
    return path


def test_a_missing_parameter_is_a_checkpoint_error(released_file, tmp_path):
    _, tensors = released_file
    path = _rewritten(tmp_path, tensors, "audio2exp", lambda part: part.pop("audio2exp.mapping1.weight"))
    expected = r"edited.safetensors \[audio2exp\] does not match Audio2ExpNet: missing keys \(1\): mapping1.weight$"
    with pytest.raises(CheckpointError, match=expected):
        load_part(Audio2ExpNet(), path, "audio2exp")


def test_an_unknown_key_is_a_checkpoint_error_but_training_only_keys_are_not(released_file, tmp_path):
    _, tensors = released_file
    path = _rewritten(
        tmp_path, tensors, "audio2pose", lambda part: part.update({"audio2pose.netG.extra": torch.zeros(1)})
    )
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): netG.extra$"):
        load_part(Audio2PoseNet(), path, "audio2pose", TRAINING_ONLY_PREFIXES)
    assert any(key.startswith("audio2pose.netD_motion.") for key in tensors)


def test_a_wrong_shape_is_a_checkpoint_error(released_file, tmp_path):
    _, tensors = released_file
    path = _rewritten(
        tmp_path,
        tensors,
        "face_3drecon",
        lambda part: part.update({"face_3drecon.final_layers.0.bias": torch.zeros(81)}),
    )
    expected = r"wrongly shaped keys \(1\): final_layers.0.bias \[81\] \(model \[80\]\)$"
    with pytest.raises(CheckpointError, match=expected):
        load_part(FaceReconNet(), path, "face_3drecon")


def test_absent_batchnorm_counters_are_tolerated(released_file, tmp_path):
    _, tensors = released_file

    def drop_counters(part):
        for key in [key for key in part if key.endswith("num_batches_tracked")]:
            part.pop(key)

    path = _rewritten(tmp_path, tensors, "audio2exp", drop_counters)
    assert load_part(Audio2ExpNet(), path, "audio2exp").mapping1.bias.tolist() == list(range(64))


def test_a_file_that_is_not_safetensors_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "SadTalker_V0.0.2_256.safetensors"
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="cannot read .* as safetensors"):
        load_part(Audio2ExpNet(), path, "audio2exp")


def test_missing_checkpoints_are_reported_before_any_work(tmp_path):
    with pytest.raises(CheckpointError, match=r"SadTalker_V0.0.2_256.safetensors.*make fetch MODE=sadtalker"):
        audio_to_landmarks(np.zeros((64, 64, 3), np.uint8), tmp_path / "missing.wav", ckpt_dir=tmp_path)
