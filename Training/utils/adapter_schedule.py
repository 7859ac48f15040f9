# Copied from MOFA-Video-Traj/utils/adapter_schedule.py
"""When the MOFA-Adapter runs during denoising: at every step (faithful) or at fewer steps (fast mode).

The adapter is an extra encoder and mid block beside the UNet, so running it at every step costs about a
third more than plain SVD. Its residuals steer the motion, which the sampler settles in the early,
high-noise steps; the late steps refine appearance. An :class:`AdapterSchedule` says, for each step, what
the pipeline does with the adapter:

- ``run``: run it and use its residuals (every step of the faithful schedule);
- ``reuse``: add the residuals of the last step it ran at, for the same window of frames (no adapter cost);
- ``skip``: add no residuals (the UNet alone, as plain SVD).

The adapter runs at steps ``0, every, 2·every, ...`` among the first ``ceil(active_fraction · steps)``
steps (``reuse`` in between) and the remaining steps follow ``after_active``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .errors import InputError

RUN, REUSE, SKIP = "run", "reuse", "skip"
AFTER_ACTIVE_CHOICES = (REUSE, SKIP)


@dataclass(frozen=True)
class AdapterSchedule:
    """Which denoising steps run the adapter.

    Attributes:
        every: run the adapter at every ``every``-th active step, reusing its residuals in between (1: each).
        active_fraction: the share of the steps, counted from the first, in which the adapter is used (0, 1].
        after_active: what the steps after the active ones do: ``skip`` (no residuals) or ``reuse``.

    Raises:
        InputError: ``every`` < 1, ``active_fraction`` outside (0, 1] or an unknown ``after_active``.
    """

    every: int = 1
    active_fraction: float = 1.0
    after_active: str = SKIP

    def __post_init__(self) -> None:
        if int(self.every) != self.every or self.every < 1:
            raise InputError(f"adapter schedule: `every` must be a positive integer, got {self.every}")
        if not 0.0 < self.active_fraction <= 1.0:
            raise InputError(f"adapter schedule: `active_fraction` must be in (0, 1], got {self.active_fraction}")
        if self.after_active not in AFTER_ACTIVE_CHOICES:
            raise InputError(
                f"adapter schedule: `after_active` must be one of {', '.join(AFTER_ACTIVE_CHOICES)}, "
                f"got {self.after_active!r}"
            )

    @property
    def is_faithful(self) -> bool:
        """True when the adapter runs at every step (the released behaviour)."""
        return self.every == 1 and self.active_fraction == 1.0

    def active_steps(self, num_steps: int) -> int:
        """How many of the first steps use the adapter (at least one)."""
        return max(1, math.ceil(self.active_fraction * num_steps - 1e-9))

    def action(self, step_index: int, num_steps: int) -> str:
        """``run``, ``reuse`` or ``skip`` for step ``step_index`` (0-based) of ``num_steps``."""
        if step_index >= self.active_steps(num_steps):
            return self.after_active
        return RUN if step_index % self.every == 0 else REUSE

    def actions(self, num_steps: int) -> list[str]:
        """The action of every step, in order."""
        return [self.action(step_index, num_steps) for step_index in range(num_steps)]

    def num_runs(self, num_steps: int) -> int:
        """How many steps run the adapter (per window of frames)."""
        return self.actions(num_steps).count(RUN)

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly settings (for the ``out.json`` of a run)."""
        return asdict(self)


FAITHFUL = AdapterSchedule()
"""The adapter at every step, as released."""

FAST = AdapterSchedule(every=4, active_fraction=1.0, after_active=REUSE)
"""Fast mode: the adapter at every fourth step (7 of 25), its residuals reused at the three steps in between.

About 1.1x plain SVD's time at full size (the adapter costs 36 % of a UNet step). Chosen with ``make bench``:
at a similar number of adapter runs, reusing the residuals stayed much closer to the faithful video than
leaving the adapter out of the last steps. Reused residuals stay in memory between runs, one set per window.
"""


def adapter_schedule(fast: bool) -> AdapterSchedule:
    """:data:`FAST` or :data:`FAITHFUL`."""
    return FAST if fast else FAITHFUL
