"""Makes the demos' examples, all drawn or synthesised here (no third-party media):

- ``portrait.png``: a face drawn with OpenCV that MediaPipe's face landmarker finds;
- ``speech.wav``: "Hello there." spoken by ``espeak-ng`` (16 kHz mono);
- ``driving.mp4``: the drawn face turning its head and opening its mouth, 24 frames at 25 fps, encoded as
  MPEG-4 Part 2 (the codec phones and older tools write, which browsers do not play).

    python examples/make_examples.py     # rewrites the three files next to this script (needs espeak-ng)
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aniportrait.audio import load_audio  # noqa: E402

HERE = Path(__file__).resolve().parent
SPEECH = "Hello there."
DRIVING_FRAMES, DRIVING_SIZE = 24, 256


def draw_face(size: int = 512, shift: float = 0.0, mouth: float = 0.0) -> np.ndarray:
    """``(size, size, 3)`` uint8 RGB portrait: hair, face, eyes, brows, nose, lips.

    Args:
        shift: horizontal head offset, a fraction of ``size``.
        mouth: mouth opening in [0, 1].
    """
    image = np.full((size, size, 3), (235, 215, 200), np.uint8)
    scale, dx = size / 512, shift * size

    def at(x: float, y: float) -> tuple[int, int]:
        return round(x * scale + dx), round(y * scale)

    def axes(a: float, b: float) -> tuple[int, int]:
        return max(1, round(a * scale)), max(1, round(b * scale))

    def width(pixels: float) -> int:
        return max(1, round(pixels * scale))

    cv2.rectangle(image, at(150, 380), at(362, 520), (40, 60, 90), -1)  # shirt
    cv2.ellipse(image, at(256, 250), axes(160, 200), 0, 0, 360, (60, 40, 40), -1)  # hair
    cv2.rectangle(image, at(215, 330), at(297, 420), (220, 180, 150), -1)  # neck
    cv2.ellipse(image, at(256, 280), axes(120, 155), 0, 0, 360, (230, 190, 160), -1)  # face
    for eye_x in (206, 306):
        cv2.ellipse(image, at(eye_x, 250), axes(28, 14), 0, 0, 360, (245, 245, 245), -1)
        cv2.circle(image, at(eye_x, 250), width(11), (30, 40, 60), -1)
        cv2.circle(image, at(eye_x, 250), width(5), (10, 10, 10), -1)
        cv2.ellipse(image, at(eye_x, 222), axes(34, 9), 0, 180, 360, (60, 40, 40), width(6))
    cv2.line(image, at(256, 255), at(246, 320), (190, 150, 120), width(5))
    cv2.ellipse(image, at(256, 325), axes(20, 8), 0, 0, 180, (190, 150, 120), width(4))
    cv2.ellipse(image, at(256, 365), axes(42, 14 + 16 * mouth), 0, 0, 360, (190, 90, 90), -1)  # lips
    cv2.ellipse(image, at(256, 365), axes(30, 1 + 14 * mouth), 0, 0, 360, (90, 30, 40), -1)  # mouth
    return cv2.GaussianBlur(image, (0, 0), 2 * scale)


def make_speech(path: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), SPEECH], check=True)
        soundfile.write(path, load_audio(raw), 16000, subtype="PCM_16")


def make_driving_video(path: Path) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width = stream.height = DRIVING_SIZE
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 400_000
        for index in range(DRIVING_FRAMES):
            phase = 2 * math.pi * index / DRIVING_FRAMES
            frame = draw_face(DRIVING_SIZE, shift=0.04 * math.sin(phase), mouth=abs(math.sin(2 * phase)))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def main() -> None:
    cv2.imwrite(str(HERE / "portrait.png"), draw_face()[..., ::-1])
    make_speech(HERE / "speech.wav")
    make_driving_video(HERE / "driving.mp4")


if __name__ == "__main__":
    main()
