#!/usr/bin/env bash
# Portrait + speech -> talking video, with the released demo's defaults. Extra arguments are passed through
# and win over the defaults, e.g.
#   bash inference.sh --tiny                                   # offline, random tiny models (noise)
#   bash inference.sh --img_path me.jpg --audio_path me.m4a    # your inputs
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-$(test -x ../.venv/bin/python && echo ../.venv/bin/python || echo python3)}"
exec "$PYTHON" inference_opendomain.py \
    --audio_path=demo/audios/000001.wav \
    --img_path=demo/images/000001.jpg \
    --save_root=results \
    --ldmk_render=aniportrait \
    "$@"
