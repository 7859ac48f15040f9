# Copied from MOFA-Video-Traj/utils/checkpoints.py
"""Where the released weights live under ``ckpts/``, how to check for them and how to fetch them.

One shared folder at the repository root (override with ``MOFA_CKPT_DIR`` or an entry point's
``--ckpt_dir``). Files come from Hugging Face model repositories with ``huggingface_hub`` (resumable,
with progress bars, honouring ``HF_TOKEN`` and ``HF_HUB_OFFLINE``). Entry points call
:func:`require_files` before any ``from_pretrained`` so a missing file is reported as one line naming
the file and the command that fetches it.

    python -m utils.checkpoints check                 # which files each mode is missing
    python -m utils.checkpoints fetch --mode traj     # download what a mode needs (make fetch MODE=traj)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from utils.errors import CheckpointError

MODES = ("traj", "keypoint", "hybrid", "training", "sadtalker")
SVD_DIR = "stable-video-diffusion-img2vid-xt-1-1"
TRAJ_REPO = "MyNiuuu/MOFA-Video-Traj"
HYBRID_REPO = "MyNiuuu/MOFA-Video-Hybrid"
SVD_REPO = "stabilityai/stable-video-diffusion-img2vid-xt-1-1"
CMP_REMOTE_DIR = "models/cmp/experiments/semiauto_annot/resnet50_vip+mpii_liteflow/checkpoints"
CMP_FILE = "ckpt_iter_42000.pth.tar"
CMP_CHECKPOINT = f"cmp/{CMP_FILE}"
"""The released CMP weights, relative to the checkpoint folder."""


@dataclass(frozen=True)
class Source:
    """A group of files fetched together: ``remote_dir`` of ``repo_id`` lands in ``local_dir`` of ckpts/."""

    name: str
    repo_id: str
    remote_dir: str
    local_dir: str
    files: tuple[str, ...]
    """Files (relative to the dirs) whose presence proves the group is there; also what is downloaded."""
    extra_patterns: tuple[str, ...] = ()
    """Further files downloaded with the group but not required (e.g. tokenizer extras)."""

    def local_paths(self) -> list[str]:
        return [f"{self.local_dir}/{name}" for name in self.files]


SVD_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "feature_extractor/preprocessor_config.json",
    "image_encoder/config.json",
    "image_encoder/model.fp16.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.fp16.safetensors",
)
ADAPTER_FILES = ("config.json", "diffusion_pytorch_model.safetensors")

SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source("svd", HYBRID_REPO, f"ckpts/mofa/{SVD_DIR}", SVD_DIR, SVD_FILES),
        Source("svd-stabilityai", SVD_REPO, "", SVD_DIR, SVD_FILES),  # gated: licence and HF_TOKEN
        Source("traj_adapter", TRAJ_REPO, "ckpts/controlnet", "controlnet", ADAPTER_FILES),
        Source("cmp", TRAJ_REPO, CMP_REMOTE_DIR, "cmp", (CMP_FILE,)),
        Source("hybrid_traj_adapter", HYBRID_REPO, "ckpts/mofa/traj_controlnet", "mofa/traj_controlnet", ADAPTER_FILES),
        Source("ldmk_adapter", HYBRID_REPO, "ckpts/mofa/ldmk_controlnet", "mofa/ldmk_controlnet", ADAPTER_FILES),
        Source(
            "aniportrait",
            HYBRID_REPO,
            "ckpts/aniportrait",
            "aniportrait",
            (
                "audio2mesh.pt",
                "audio2pose.pt",
                "wav2vec2-base-960h/config.json",
                "wav2vec2-base-960h/preprocessor_config.json",
            ),
            extra_patterns=("wav2vec2-base-960h/*",),
        ),
        Source(
            "sadtalker",
            HYBRID_REPO,
            "ckpts/sad_talker",
            "sad_talker",
            ("SadTalker_V0.0.2_256.safetensors", "BFM_Fitting/BFM_model_front.mat", "similarity_Lm3D_all.mat"),
        ),
    )
}

MODE_SOURCES: dict[str, tuple[str, ...]] = {
    "traj": ("svd", "traj_adapter", "cmp"),
    "keypoint": ("svd", "cmp", "ldmk_adapter", "aniportrait"),
    "hybrid": ("svd", "cmp", "hybrid_traj_adapter", "ldmk_adapter", "aniportrait"),
    "training": ("svd", "cmp", "traj_adapter"),
    "sadtalker": ("sadtalker",),
}

# Files that are not on the Hugging Face hub: local path -> download URL (the face-alignment package's weights).
URL_FILES: dict[str, str] = {
    "face_alignment/s3fd-619a316812.pth": "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
    "face_alignment/2DFAN4-11f355bf06.pth.tar": "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
}
MODE_URL_FILES: dict[str, tuple[str, ...]] = {"sadtalker": tuple(URL_FILES)}

MODE_FILES: dict[str, list[str]] = {
    mode: [path for name in names for path in SOURCES[name].local_paths()] + list(MODE_URL_FILES.get(mode, ()))
    for mode, names in MODE_SOURCES.items()
}


def repo_root() -> Path:
    """The repository root: this file lives in ``<root>/<sub-project>/utils/``."""
    return Path(__file__).resolve().parents[2]


def default_ckpt_dir() -> Path:
    """``$MOFA_CKPT_DIR`` if set, else ``<repo>/ckpts``."""
    env = os.environ.get("MOFA_CKPT_DIR")
    return Path(env).expanduser() if env else repo_root() / "ckpts"


def fetch_command(mode: str) -> str:
    return f"make fetch MODE={mode}"


def missing_files(ckpt_dir: Path, relpaths: list[str]) -> list[str]:
    """The entries of ``relpaths`` that are not files under ``ckpt_dir``."""
    return [rel for rel in relpaths if not (Path(ckpt_dir) / rel).is_file()]


def require_files(ckpt_dir: Path, relpaths: list[str], mode: str) -> None:
    """Raise :class:`CheckpointError` naming the first missing file and the command that fetches it."""
    missing = missing_files(ckpt_dir, relpaths)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(
            f"missing checkpoint {Path(ckpt_dir) / missing[0]}{more}; run `{fetch_command(mode)}` "
            f"(or pass --tiny to run on random tiny weights)"
        )


def require_mode(ckpt_dir: Path, mode: str) -> None:
    """:func:`require_files` for everything ``mode`` needs."""
    require_files(ckpt_dir, MODE_FILES[mode], mode)


def _hub_error(error: Exception, source: Source, mode: str, ckpt_dir: Path) -> CheckpointError:
    """Translate a huggingface_hub failure into one actionable line."""
    from huggingface_hub import errors as hub_errors

    if isinstance(error, hub_errors.GatedRepoError):
        return CheckpointError(
            f"{source.repo_id} is gated: accept the SVD-xt 1.1 licence on its model page and set HF_TOKEN"
        )
    if isinstance(error, hub_errors.RepositoryNotFoundError):
        return CheckpointError(f"{source.repo_id} was not found on the Hugging Face hub (check HF_TOKEN)")
    return CheckpointError(
        f"cannot reach the Hugging Face hub; copy the files to {Path(ckpt_dir) / source.local_dir}/ "
        f"or run `{fetch_command(mode)}` on a connected machine"
    )


def fetch_source(source: Source, ckpt_dir: Path, mode: str) -> None:
    """Download one source group into ``ckpt_dir`` (skipped when all its files are present)."""
    from huggingface_hub import snapshot_download

    ckpt_dir = Path(ckpt_dir)
    if not missing_files(ckpt_dir, source.local_paths()):
        return
    prefix = f"{source.remote_dir}/" if source.remote_dir else ""
    patterns = [prefix + name for name in (*source.files, *source.extra_patterns)]
    staging = ckpt_dir / ".download" / source.name
    try:
        snapshot_download(source.repo_id, allow_patterns=patterns, local_dir=staging)
    except Exception as error:  # noqa: BLE001 - every hub failure becomes one line for the user
        raise _hub_error(error, source, mode, ckpt_dir) from error
    _move_tree(staging / source.remote_dir if source.remote_dir else staging, ckpt_dir / source.local_dir)
    still_missing = missing_files(ckpt_dir, source.local_paths())
    if still_missing:
        raise CheckpointError(f"{source.repo_id} does not provide {source.remote_dir}/{still_missing[0]}")


def _move_tree(src: Path, dst: Path) -> None:
    """Move downloaded files into place, leaving the hub's bookkeeping folder behind."""
    for path in sorted(src.rglob("*")):
        if path.is_file() and ".cache" not in path.relative_to(src).parts:
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)


def fetch_url(relpath: str, ckpt_dir: Path, mode: str) -> None:
    """Download one file that lives outside the hub (skipped when present), atomically, with a progress bar."""
    from torch.hub import download_url_to_file

    target = Path(ckpt_dir) / relpath
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        download_url_to_file(URL_FILES[relpath], str(partial), progress=True)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise CheckpointError(
            f"cannot download {URL_FILES[relpath]}; copy it to {target} or run `{fetch_command(mode)}` "
            f"on a connected machine"
        ) from error
    os.replace(partial, target)


def fetch(mode: str, ckpt_dir: Path | None = None, svd_source: str = "svd") -> None:
    """Download every file ``mode`` needs. ``svd_source`` is ``svd`` (the adapter authors' ungated copy)
    or ``svd-stabilityai`` (the gated original; needs the licence accepted and ``HF_TOKEN``)."""
    if mode not in MODE_SOURCES:
        raise CheckpointError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    ckpt_dir = Path(ckpt_dir) if ckpt_dir else default_ckpt_dir()
    for name in MODE_SOURCES[mode]:
        fetch_source(SOURCES[svd_source if name == "svd" else name], ckpt_dir, mode)
    for relpath in MODE_URL_FILES.get(mode, ()):
        fetch_url(relpath, ckpt_dir, mode)
    shutil.rmtree(ckpt_dir / ".download", ignore_errors=True)


def report(ckpt_dir: Path) -> dict[str, list[str]]:
    """Missing files per mode."""
    return {mode: missing_files(ckpt_dir, MODE_FILES[mode]) for mode in MODES}


TINY_FALLBACK_EXIT = 3
"""``fetch --tiny_fallback``'s exit status when the files could not be fetched."""


def main(argv: list[str] | None = None) -> int:
    """``check`` (exit 1 when files are missing) or ``fetch`` (exit 2 on failure, or 3 with ``--tiny_fallback``)."""
    parser = argparse.ArgumentParser(description="Check or fetch the MOFA-Video checkpoints.")
    parser.add_argument("action", choices=("check", "fetch"))
    parser.add_argument("--mode", choices=MODES, help="mode whose files to check or fetch (default: all for check)")
    parser.add_argument("--ckpt_dir", type=Path, default=None, help="checkpoint folder (default: <repo>/ckpts)")
    parser.add_argument(
        "--svd_source",
        choices=("svd", "svd-stabilityai"),
        default="svd",
        help="where SVD-xt 1.1 comes from: the ungated copy next to the adapters, or stabilityai (gated)",
    )
    parser.add_argument(
        "--tiny_fallback",
        action="store_true",
        help="when fetching fails, print one note and exit 3 (make demo then starts in tiny mode)",
    )
    args = parser.parse_args(argv)
    ckpt_dir = args.ckpt_dir or default_ckpt_dir()
    try:
        if args.action == "fetch":
            if not args.mode:
                parser.error("fetch needs --mode")
            fetch(args.mode, ckpt_dir, args.svd_source)
            print(f"{args.mode}: all files present under {ckpt_dir}")
            return 0
        missing = report(ckpt_dir)
        modes = [args.mode] if args.mode else list(MODES)
        for mode in modes:
            state = "ok" if not missing[mode] else f"missing {len(missing[mode])}: " + ", ".join(missing[mode])
            print(f"{mode:9s} {state}")
        return 1 if any(missing[mode] for mode in modes) else 0
    except CheckpointError as error:
        if args.tiny_fallback:
            print(f"note: {error}; starting in tiny mode (random models, outputs are noise)", file=sys.stderr)
            return TINY_FALLBACK_EXIT
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
