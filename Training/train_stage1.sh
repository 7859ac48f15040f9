#!/usr/bin/env bash
# Stage 1 of MOFA-Adapter training. The defaults of train_stage1.py are the released hyper-parameters
# (384x384, 25 frames, stride 4, lr 2e-5, batch 1 per GPU, fp16, gradient checkpointing, checkpoint and
# validation every 2500 steps); arguments given here are passed through and override them, e.g.
#   bash train_stage1.sh --tiny --output_dir runs/tiny_stage1
#   bash train_stage1.sh --train_csv /data/WebVid/metadata/results_2M_train.csv --data_root /data/WebVid
# The machine layout comes from an accelerate config: ACCELERATE_CONFIG=configs/accelerate_8gpu.yaml bash train_stage1.sh ...
# Paths are relative to the current folder. Ctrl-C or `kill <pid>` stops every process after a checkpoint
# (exit 130/143); resume with --resume_from_checkpoint latest. See train_utils/launch.py.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# the Python environment that has accelerate: the one on PATH, else the repository's .venv
python="$(dirname "$(command -v accelerate || echo "$here/../.venv/bin/accelerate")")/python"
if ! [ -x "$python" ] || ! "$python" -c "import importlib.util as u; exit(u.find_spec('accelerate') is None)" 2>/dev/null; then
  echo "error: accelerate not found: run \`make\` in the repository (creates .venv) or put your environment's bin folder on PATH" >&2
  exit 2
fi
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -P -m train_utils.launch 1 \
  "${ACCELERATE_CONFIG:-$here/configs/accelerate_1gpu.yaml}" "$@"
