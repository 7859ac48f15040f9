"""MOFA-Video-Hybrid, audio-driven: a portrait talks along with an audio clip while drags move the rest.

    python run_gradio_audio_driven.py            # real weights from ckpts/ (tiny mode if they are missing)
    python run_gradio_audio_driven.py --tiny     # tiny random models and synthetic landmarks; outputs are noise
    python run_gradio_audio_driven.py --port 7861 --memory low

Served on 127.0.0.1 unless ``--host`` says otherwise; ``--share`` makes a public link. See ``hybrid_demo.py``.
"""

import sys

from hybrid_demo import main

if __name__ == "__main__":
    sys.exit(main("audio"))
