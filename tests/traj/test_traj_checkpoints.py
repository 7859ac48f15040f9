"""Checkpoint checks and fetching, with the hub mocked or offline (no network)."""

from pathlib import Path

import httpx2
import huggingface_hub
import pytest
from huggingface_hub import constants as hub_constants
from huggingface_hub import errors as hub_errors

from utils import checkpoints
from utils.errors import CheckpointError


def test_mode_files_cover_the_documented_tree():
    traj = checkpoints.MODE_FILES["traj"]
    assert "cmp/ckpt_iter_42000.pth.tar" in traj
    assert "controlnet/diffusion_pytorch_model.safetensors" in traj
    assert "stable-video-diffusion-img2vid-xt-1-1/unet/diffusion_pytorch_model.fp16.safetensors" in traj
    assert "mofa/ldmk_controlnet/config.json" in checkpoints.MODE_FILES["keypoint"]
    assert "mofa/traj_controlnet/config.json" in checkpoints.MODE_FILES["hybrid"]
    assert "sad_talker/BFM_Fitting/BFM_model_front.mat" in checkpoints.MODE_FILES["sadtalker"]


def test_require_files_names_the_missing_file_and_the_fetch_command(tmp_path):
    with pytest.raises(CheckpointError) as info:
        checkpoints.require_mode(tmp_path, "traj")
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "stable-video-diffusion-img2vid-xt-1-1" / "model_index.json") in message
    assert "make fetch MODE=traj" in message


def test_require_files_passes_when_everything_is_there(tmp_path):
    for rel in checkpoints.MODE_FILES["traj"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    checkpoints.require_mode(tmp_path, "traj")
    assert checkpoints.report(tmp_path)["traj"] == []
    assert checkpoints.report(tmp_path)["keypoint"]


def test_default_ckpt_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MOFA_CKPT_DIR", str(tmp_path))
    assert checkpoints.default_ckpt_dir() == tmp_path
    monkeypatch.delenv("MOFA_CKPT_DIR")
    assert checkpoints.default_ckpt_dir() == checkpoints.repo_root() / "ckpts"


def test_fetch_offline_gives_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError) as info:
        checkpoints.fetch("traj", tmp_path)
    message = str(info.value)
    assert message.startswith("cannot reach the Hugging Face hub")
    assert "make fetch MODE=traj" in message and "\n" not in message


def _fake_snapshot(repo_files: dict[str, bytes], calls: list):
    def snapshot_download(repo_id, allow_patterns, local_dir, **kwargs):
        import fnmatch

        calls.append((repo_id, tuple(allow_patterns)))
        for name, data in repo_files.items():
            if any(fnmatch.fnmatch(name, pattern) for pattern in allow_patterns):
                target = Path(local_dir) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        (Path(local_dir) / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
        return str(local_dir)

    return snapshot_download


def test_fetch_places_files_in_the_ckpts_tree(tmp_path, monkeypatch):
    remote = {}
    for name in checkpoints.MODE_SOURCES["traj"]:
        source = checkpoints.SOURCES[name]
        for rel in source.files:
            remote[f"{source.remote_dir}/{rel}"] = f"{source.repo_id}:{rel}".encode()
    remote["ckpts/unused/other.bin"] = b"never fetched"
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _fake_snapshot(remote, calls))

    checkpoints.fetch("traj", tmp_path)

    assert checkpoints.missing_files(tmp_path, checkpoints.MODE_FILES["traj"]) == []
    assert (tmp_path / "cmp/ckpt_iter_42000.pth.tar").read_bytes() == b"MyNiuuu/MOFA-Video-Traj:ckpt_iter_42000.pth.tar"
    assert not (tmp_path / ".download").exists()
    assert not list(tmp_path.rglob("other.bin"))
    assert len(calls) == 3
    # a second fetch finds everything present and calls the hub no more
    checkpoints.fetch("traj", tmp_path)
    assert len(calls) == 3


def test_fetch_gated_repo_explains_the_licence(tmp_path, monkeypatch):
    def gated(*args, **kwargs):
        response = httpx2.Response(403, request=httpx2.Request("GET", "https://example.invalid"))
        raise hub_errors.GatedRepoError("gated", response=response)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", gated)
    with pytest.raises(CheckpointError, match="accept the SVD-xt 1.1 licence on its model page and set HF_TOKEN"):
        checkpoints.fetch("traj", tmp_path, svd_source="svd-stabilityai")


def test_check_cli_reports_missing_and_exit_codes(tmp_path, capsys):
    assert checkpoints.main(["check", "--mode", "traj", "--ckpt_dir", str(tmp_path)]) == 1
    assert "traj" in capsys.readouterr().out
    assert checkpoints.main(["fetch", "--mode", "traj", "--ckpt_dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: cannot reach the Hugging Face hub")


def test_fetch_with_tiny_fallback_prints_one_note_and_exits_3(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    arguments = ["fetch", "--mode", "traj", "--ckpt_dir", str(tmp_path), "--tiny_fallback"]
    assert checkpoints.main(arguments) == checkpoints.TINY_FALLBACK_EXIT == 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("note: cannot reach the Hugging Face hub")
    assert lines[0].endswith("; starting in tiny mode (random models, outputs are noise)")


def test_files_outside_the_hub_are_downloaded_atomically(tmp_path, monkeypatch):
    import torch.hub

    def fake_download(url, dst, progress=True):
        assert dst.endswith(".part") and progress
        Path(dst).write_bytes(url.encode())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    relpath = "face_alignment/s3fd-619a316812.pth"
    checkpoints.fetch_url(relpath, tmp_path, "sadtalker")
    assert (tmp_path / relpath).read_bytes() == checkpoints.URL_FILES[relpath].encode()
    assert not list(tmp_path.rglob("*.part"))
    assert relpath in checkpoints.MODE_FILES["sadtalker"]


def test_failed_url_download_leaves_nothing_and_says_what_to_do(tmp_path, monkeypatch):
    import torch.hub

    def failing_download(url, dst, progress=True):
        Path(dst).write_bytes(b"half")
        raise OSError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", failing_download)
    relpath = "face_alignment/2DFAN4-11f355bf06.pth.tar"
    with pytest.raises(CheckpointError, match="make fetch MODE=sadtalker"):
        checkpoints.fetch_url(relpath, tmp_path, "sadtalker")
    assert not list(tmp_path.rglob("*2DFAN4*"))
