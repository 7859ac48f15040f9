# Copied from MOFA-Video-Traj/utils/errors.py
"""User-facing error types.

Entry points catch :class:`InputError` and print its message as one line (exit code 2);
anything else is a programming error and keeps its traceback.
"""


class InputError(ValueError):
    """Bad user input: a wrong file format, an empty trajectory, an out-of-range value."""


class CheckpointError(InputError):
    """A checkpoint file is missing or cannot be fetched. The message names the file and the fix."""
