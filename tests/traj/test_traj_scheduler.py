"""The SVD Euler scheduler: Karras sigmas 700 -> 0.002, continuous timesteps, v-prediction Euler steps."""

import math

import pytest
import torch
from diffusers import EulerDiscreteScheduler

from utils.scheduling import SVD_SCHEDULER_CONFIG, build_svd_scheduler

STEPS = 25


def karras_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 700.0, rho: float = 7.0) -> list[float]:
    """σ_i = (σ_max^(1/ρ) + i/(n-1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ, computed in float64."""
    low, high = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return [(high + i / (steps - 1) * (low - high)) ** rho for i in range(steps)]


@pytest.fixture
def scheduler() -> EulerDiscreteScheduler:
    scheduler = build_svd_scheduler()
    scheduler.set_timesteps(STEPS)
    return scheduler


def test_is_the_stock_euler_scheduler_with_the_svd_config():
    scheduler = build_svd_scheduler()
    assert type(scheduler) is EulerDiscreteScheduler
    for key, value in SVD_SCHEDULER_CONFIG.items():
        assert scheduler.config[key] == value, key
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.config.timestep_type == "continuous"


def test_sigmas_follow_the_karras_ramp_and_end_at_zero(scheduler):
    expected = karras_sigmas(STEPS) + [0.0]
    assert scheduler.sigmas.shape == (STEPS + 1,)
    torch.testing.assert_close(
        scheduler.sigmas.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-7
    )


def test_sigmas_match_the_published_values(scheduler):
    sigmas = scheduler.sigmas.tolist()
    assert sigmas[:4] == pytest.approx([700.0, 545.7, 421.6, 322.5], abs=0.05)
    assert sigmas[-4:] == pytest.approx([0.0248, 0.0079, 0.002, 0.0], abs=5e-5)


def test_timesteps_are_a_quarter_log_sigma(scheduler):
    expected = [0.25 * math.log(sigma) for sigma in karras_sigmas(STEPS)]
    torch.testing.assert_close(
        scheduler.timesteps.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-5
    )
    assert scheduler.timesteps[0].item() == pytest.approx(1.638, abs=5e-4)
    assert scheduler.timesteps[-1].item() == pytest.approx(-1.554, abs=5e-4)


def test_initial_noise_sigma(scheduler):
    assert float(scheduler.init_noise_sigma) == pytest.approx(math.sqrt(700.0**2 + 1), rel=1e-6)


def test_input_scaling_and_one_v_prediction_euler_step(scheduler):
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 2, 4, 3, 3, generator=generator, dtype=torch.float64) * 700
    model_output = torch.randn(1, 2, 4, 3, 3, generator=generator, dtype=torch.float64)
    sigma, next_sigma = karras_sigmas(STEPS)[:2]
    t = scheduler.timesteps[0]

    scaled = scheduler.scale_model_input(sample, t)
    torch.testing.assert_close(scaled, sample / math.sqrt(sigma**2 + 1), rtol=1e-5, atol=1e-6)

    denoised = model_output * (-sigma / math.sqrt(sigma**2 + 1)) + sample / (sigma**2 + 1)
    derivative = (sample - denoised) / sigma
    expected = sample + derivative * (next_sigma - sigma)
    stepped = scheduler.step(model_output, t, sample).prev_sample
    torch.testing.assert_close(stepped, expected, rtol=1e-4, atol=1e-4)
