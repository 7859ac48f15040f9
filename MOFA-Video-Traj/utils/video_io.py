"""Image and video files: load and check inputs, write outputs atomically.

Every writer writes to a hidden temporary file in the destination folder and moves it into place with
``os.replace``, so a crash never leaves a half-written output, and refuses to replace an existing file
unless ``overwrite=True``. Videos are H.264 / yuv420p mp4 written in-process with PyAV; audio is muxed
with the ffmpeg binary that ships with ``imageio-ffmpeg`` (no system ffmpeg needed).
"""

import contextlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import imageio_ffmpeg
import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError, require_file

Frame = np.ndarray | torch.Tensor | Image.Image
PARTIAL_VIDEO_FRACTION = 0.9
"""A video that decodes to fewer of the frames its container announces is refused as damaged."""
BACKGROUND = (255, 255, 255)
"""What transparent pixels of an input image are composited on."""
logger = logging.getLogger(__name__)


class VideoFrames(NamedTuple):
    """A decoded video: ``frames`` uint8 RGB ``(T, H, W, 3)`` and ``fps``."""

    frames: np.ndarray
    fps: float


# ----------------------------------------------------------------------------------------------------------
# atomic writes


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; on success moves it to ``path``, on error deletes it.

    The temporary name keeps the suffix of ``path`` so tools that infer the format from it still work.
    Parent folders are created.

    Raises:
        InputError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; choose another output path or allow overwriting")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~current_umask())  # as a plain open() would create it (mkstemp makes 0600)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def current_umask() -> int:
    """The process's file-creation mask (e.g. ``0o022``), read without changing it where Linux reports it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output_folder(folder: str | os.PathLike) -> None:
    """Refuses, before any work, a folder that outputs cannot be written to.

    The folder need not exist yet: its nearest existing ancestor must be a folder in which this process can
    create files (checked by creating and removing a hidden file there).

    Raises:
        InputError: ``cannot write to <folder>: <ancestor> is a file, not a folder``, or ``cannot write to
            <folder>: permission denied in <ancestor>`` (any other reason in words, e.g. a read-only file system).
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"cannot write to {folder}: {existing} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-check.", dir=existing)
    except OSError as error:
        reason = (error.strerror or "not writable").lower()
        raise InputError(f"cannot write to {folder}: {reason} in {existing}") from None
    os.close(handle)
    os.unlink(probe)


# ----------------------------------------------------------------------------------------------------------
# frames


def to_uint8_frame(frame: Frame) -> np.ndarray:
    """Converts one frame to a uint8 RGB ``(H, W, 3)`` array.

    Accepted: a PIL image; a numpy array or tensor shaped ``(H, W, 3)``, ``(3, H, W)`` or ``(H, W)``,
    either uint8 (0..255) or float (0..1, clipped).
    """
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGB"))
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu()
        frame = frame.float().numpy() if frame.is_floating_point() else frame.numpy()
    array = np.asarray(frame)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    elif array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"a frame must be (H, W, 3), (3, H, W) or (H, W), got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        array = np.round(np.clip(array, 0.0, 1.0) * 255.0)
    return np.ascontiguousarray(array.astype(np.uint8))


def _pad_to_even(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: repeats the last row / column when a side is odd."""
    pad_rows, pad_cols = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_rows or pad_cols:
        frame = np.pad(frame, ((0, pad_rows), (0, pad_cols), (0, 0)), mode="edge")
    return frame


def write_video(
    path: str | os.PathLike,
    frames: Iterable[Frame] | np.ndarray | torch.Tensor,
    fps: float,
    crf: int = 10,
    overwrite: bool = False,
) -> Path:
    """Writes frames to an H.264 (yuv420p) mp4, atomically.

    Args:
        path: destination ``.mp4``.
        frames: an iterable (a generator works) of frames accepted by ``to_uint8_frame``, or a stacked
            ``(T, H, W, 3)`` array / tensor. All frames must have the same size; odd sides are padded by
            one repeated row / column.
        fps: frames per second (> 0).
        crf: x264 constant rate factor (0 = lossless, 10 = the demos' setting, 23 = x264's default).
        overwrite: replace an existing file.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        InputError: ``path`` exists (and not ``overwrite``), no frames, or a bad ``fps``.
    """
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps}")
    path = Path(path)
    with atomic_output(path, overwrite) as temporary:
        num_frames = 0
        with av.open(str(temporary), mode="w", format="mp4") as container:
            stream = None
            for frame in frames:
                array = _pad_to_even(to_uint8_frame(frame))
                if stream is None:
                    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(10000))
                    stream.height, stream.width = array.shape[:2]
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": str(crf)}
                elif array.shape[:2] != (stream.height, stream.width):
                    raise ValueError(
                        f"frame {num_frames} is {array.shape[1]}x{array.shape[0]}, "
                        f"expected {stream.width}x{stream.height} like frame 0"
                    )
                container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
                num_frames += 1
            if stream is None:
                raise InputError(f"no frames to write to {path}")
            container.mux(stream.encode())
    return path


def read_video(path: str | os.PathLike) -> VideoFrames:
    """Decodes every frame of a video file.

    Returns:
        ``VideoFrames(frames (T, H, W, 3) uint8 RGB, fps)``.

    Raises:
        InputError: the file is missing, not a video, has no frames, or decodes to less than 90 % of the frames
            its container announces (a damaged or cut file; the message names both counts).
    """
    path = Path(path)
    require_file(path, "video")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            announced = stream.frames or (
                round(float(stream.duration * stream.time_base * rate)) if stream.duration and rate else 0
            )
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except av.error.FFmpegError as error:
        raise InputError(f"cannot read video {path}: {(error.strerror or str(error)).lower()}") from None
    if not frames:
        raise InputError(f"{path} contains no video frames")
    if len(frames) < PARTIAL_VIDEO_FRACTION * announced:
        seconds = f" ({announced / float(rate):.2f} s)" if rate else ""
        raise InputError(
            f"{path} is damaged or cut: only {len(frames)} of the {announced} frames{seconds} its container "
            "announces could be decoded"
        )
    return VideoFrames(np.stack(frames), float(rate) if rate else 0.0)


def video_duration(path: str | os.PathLike) -> float:
    """Seconds covered by the first video stream of a file (its frames times their durations).

    Raises:
        InputError: the file is not a video or has no video stream.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream")
            stream = container.streams.video[0]
            if stream.duration is not None:
                return float(stream.duration * stream.time_base)
            return container.duration / av.time_base
    except av.error.FFmpegError as error:
        raise InputError(f"cannot read video {path}: {error}") from None


def mux_audio(
    video_path: str | os.PathLike,
    audio_path: str | os.PathLike,
    output_path: str | os.PathLike,
    overwrite: bool = False,
    keep_all_frames: bool = False,
) -> Path:
    """Adds an audio track to an mp4: the video stream is copied untouched, the audio encoded to AAC.

    By default the output ends with the shorter stream, so video frames after the audio's end are dropped.
    With ``keep_all_frames`` every video frame is kept: the audio is padded with silence up to the video's end,
    and cut there when it is longer. Talking-head videos need this: they have ``1 + ceil(25 * seconds)``
    frames at 25 fps (frame 0 is the still reference), one more frame than their audio covers.

    Args:
        video_path: input video (its audio, if any, is dropped).
        audio_path: any audio file ffmpeg reads (wav, mp3, flac, ...), or a video with sound.
        output_path: destination ``.mp4`` (may equal ``video_path`` when ``overwrite``).
        overwrite: replace an existing ``output_path``.
        keep_all_frames: keep every video frame; the audio then lasts exactly as long as the video.

    Returns:
        ``output_path`` as a ``Path``.

    Raises:
        InputError: an input is missing or unreadable, or the output exists (and not ``overwrite``).
    """
    for name, source in (("video", video_path), ("audio", audio_path)):
        require_file(source, name)
    if keep_all_frames:
        length = ["-af", "apad", "-t", f"{video_duration(video_path):.6f}"]
    else:
        length = ["-shortest"]
    output_path = Path(output_path)
    with atomic_output(output_path, overwrite) as temporary:
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error",
            "-i", str(video_path), "-i", str(audio_path),
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", *length,
            str(temporary),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            details = result.stderr.strip().splitlines()[-1:] or ["unknown ffmpeg error"]
            raise InputError(f"cannot mux {audio_path} into {video_path}: {details[0]}")
    return output_path


# ----------------------------------------------------------------------------------------------------------
# images


def save_png(path: str | os.PathLike, image: Frame, overwrite: bool = False) -> Path:
    """Saves an image as PNG, atomically.

    Args:
        path: destination ``.png``.
        image: a PIL image (RGBA is kept) or anything ``to_uint8_frame`` accepts.
        overwrite: replace an existing file.

    Returns:
        ``path`` as a ``Path``.
    """
    if not isinstance(image, Image.Image):
        image = Image.fromarray(to_uint8_frame(image))
    path = Path(path)
    with atomic_output(path, overwrite) as temporary:
        image.save(temporary, format="PNG")
    return path


def load_image(path: str | os.PathLike, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """Opens an image file as RGB, applying its EXIF orientation.

    Transparent pixels (an alpha channel or a transparent palette colour) are composited on ``background``
    (white), with a one-line notice on the log (stderr), instead of being flattened to their hidden colour.

    Raises:
        InputError: the file is missing, not an image, or corrupt (the message names the file, not its folder,
            which may be a server's temporary one).
    """
    path = Path(path)
    require_file(path, "image")
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
    except UnidentifiedImageError:
        raise InputError(f"{path.name} is not a readable image (unknown format)") from None
    except (OSError, SyntaxError, ValueError):
        raise InputError(f"{path.name} is not a readable image (truncated or corrupt data)") from None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            colour = "white" if background == BACKGROUND else f"RGB {background}"
            logger.warning("%s has transparent pixels: composited on %s", path.name, colour)
            return Image.alpha_composite(Image.new("RGBA", rgba.size, (*background, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def resize_and_center_crop(
    image: Image.Image,
    short_side: int = 512,
    multiple: int = 64,
    resample: Image.Resampling = Image.Resampling.BILINEAR,
) -> Image.Image:
    """Scales the short side to ``short_side`` (sizes rounded), then centre-crops both sides down to multiples.

    With the defaults a square image becomes 512x512 and a 16:9 one 896x512 (W x H).

    Args:
        image: input PIL image.
        short_side: target length of the shorter side, in pixels.
        multiple: each output side is the largest multiple of this not above the resized side.
        resample: PIL resampling filter.

    Returns:
        RGB PIL image.

    Raises:
        InputError: the image is so elongated that a side would be cropped to zero.
    """
    width, height = image.size
    ratio = short_side / min(width, height)
    resized = image.convert("RGB").resize((round(width * ratio), round(height * ratio)), resample)
    crop_width = resized.width - resized.width % multiple
    crop_height = resized.height - resized.height % multiple
    if crop_width == 0 or crop_height == 0:
        raise InputError(
            f"image of {width}x{height} cannot be cropped to multiples of {multiple} after resizing to "
            f"{resized.width}x{resized.height}"
        )
    return TF.center_crop(resized, [crop_height, crop_width])
