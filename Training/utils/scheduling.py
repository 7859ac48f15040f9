# Copied from MOFA-Video-Traj/utils/scheduling.py
"""The noise scheduler SVD-xt ships with, built in code.

The released pipelines take their scheduler from the SVD folder's ``scheduler/scheduler_config.json``: the stock
diffusers ``EulerDiscreteScheduler`` with Karras sigmas from 700 down to 0.002 (ρ = 7), v-prediction and
continuous timesteps ``t = 0.25·ln σ``. :func:`build_svd_scheduler` builds the same scheduler without any file,
for tiny mode and tests; with weights present, load it from the SVD folder instead.
"""

from __future__ import annotations

from typing import Any

from diffusers import EulerDiscreteScheduler

SVD_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "interpolation_type": "linear",
    "use_karras_sigmas": True,
    "sigma_min": 0.002,
    "sigma_max": 700.0,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "steps_offset": 1,
}


def build_svd_scheduler() -> EulerDiscreteScheduler:
    """A fresh ``EulerDiscreteScheduler`` configured exactly as SVD-xt 1.1's (:data:`SVD_SCHEDULER_CONFIG`)."""
    return EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG)
