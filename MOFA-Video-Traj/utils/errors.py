"""User-facing error types.

Entry points catch :class:`InputError` and print its message as one line (exit code 2);
anything else is a programming error and keeps its traceback.
"""

import os


class InputError(ValueError):
    """Bad user input: a wrong file format, an empty trajectory, an out-of-range value."""


class CheckpointError(InputError):
    """A checkpoint file is missing or cannot be fetched. The message names the file and the fix."""


def require_file(path: str | os.PathLike, kind: str) -> None:
    """Raise :class:`InputError` unless ``path`` is a file: ``"<kind> file not found: <path>"``, or
    ``"<kind> path is a folder, not a file: <path>"``."""
    if os.path.isdir(path):
        raise InputError(f"{kind} path is a folder, not a file: {path}")
    if not os.path.isfile(path):
        raise InputError(f"{kind} file not found: {path}")
