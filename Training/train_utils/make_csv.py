"""Build a training CSV (column ``path``) from any folder of videos.

Usage (from ``Training/``)::

    python -m train_utils.make_csv /data/my_videos --output /data/my_videos/train.csv

The paths are written relative to the folder, so train with ``--data_root /data/my_videos``. Zero-byte
files and files that are not videos (no video stream, or not decodable) are left out and counted.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import av

from train_utils.entry_point import reports_input_errors
from utils.errors import InputError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi")


def find_videos(folder: Path) -> list[Path]:
    """Video files under ``folder`` (recursively), sorted, as paths relative to it."""
    if not folder.is_dir():
        raise InputError(f"no such folder {folder}")
    return sorted(
        path.relative_to(folder)
        for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS
    )


def is_video(path: Path) -> bool:
    """Whether ``path`` is a non-empty file with a video stream whose first frame decodes."""
    if path.stat().st_size == 0:
        return False
    try:
        with av.open(str(path)) as container:
            next(container.decode(container.streams.video[0]))
    except (OSError, av.FFmpegError, IndexError, StopIteration):
        return False
    return True


def write_csv(folder: str | Path, output: str | Path) -> tuple[int, list[Path]]:
    """Write ``output`` listing every readable video under ``folder``; returns (listed, left out)."""
    folder = Path(folder)
    candidates = find_videos(folder)
    readable = {video: is_video(folder / video) for video in candidates}
    videos = [video for video, ok in readable.items() if ok]
    left_out = [video for video, ok in readable.items() if not ok]
    if not videos:
        raise InputError(f"no readable video ({', '.join(VIDEO_EXTENSIONS)}) under {folder}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path"])
        writer.writerows([video.as_posix()] for video in videos)
    return len(videos), left_out


@reports_input_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="folder holding the videos (searched recursively)")
    parser.add_argument("--output", required=True, help="CSV file to write")
    args = parser.parse_args(argv)
    count, left_out = write_csv(args.folder, args.output)
    print(f"wrote {count} videos to {args.output}")
    if left_out:
        names = ", ".join(video.as_posix() for video in left_out[:20]) + (" ..." if len(left_out) > 20 else "")
        print(f"left out {len(left_out)} empty or unreadable files: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
