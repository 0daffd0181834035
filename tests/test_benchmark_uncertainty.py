"""benchmarks/bench_uncertainty.py: the Tweedie spread against its closed form on a Gaussian prior."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from reddiff import GaussianPrior

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_uncertainty", ROOT / "benchmarks" / "bench_uncertainty.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_tweedie_draws_have_the_closed_form_mean_and_spread_on_a_gaussian_prior(bench):
    mean, std, t = 0.3, 0.5, 200
    prior = GaussianPrior(mean=mean, std=std)
    torch.set_num_threads(1)
    centre = torch.full((1, 1, 8, 8), 1.0)
    draws = bench.tweedie_draws(prior, centre, 4000, t, seed=0)
    alpha = float(prior.alphas_cumprod[t])
    # E[x0 | z_t] = m + s^2 sqrt(a) (z_t - sqrt(a) m) / (a s^2 + 1 - a), with z_t = sqrt(a) x + sqrt(1 - a) eps
    gain = std ** 2 * alpha ** 0.5 / (alpha * std ** 2 + 1 - alpha)
    expected_mean = mean + gain * alpha ** 0.5 * (1.0 - mean)
    expected_std = gain * (1 - alpha) ** 0.5
    assert draws.shape == (4000, 1, 8, 8)
    assert float(draws.mean()) == pytest.approx(expected_mean, abs=0.01)
    assert float(draws.std(0).mean()) == pytest.approx(expected_std, rel=0.05)
