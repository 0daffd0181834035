"""benchmarks/bench_uncertainty.py: the Tweedie spread on a Gaussian prior, and the transfer table."""

import pytest
import torch

from reddiff import GaussianPrior


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("bench_uncertainty.py", "bench_uncertainty_benchmark")


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


def test_transfer_pools_the_references_factor_and_applies_it_to_each_held_out_image(bench, monkeypatch, capsys):
    def spread_samples(problem, how, n, seed):  # error 3 sigma wide, spread 1 sigma: every image needs k = 3
        generator = torch.Generator().manual_seed(len(problem.truth.flatten()))
        centre = problem.truth + 3.0 * torch.randn(problem.truth.shape, generator=generator)
        return centre, centre + torch.randn((n, *problem.truth.shape[1:]), generator=generator)

    monkeypatch.setattr(bench, "spread_samples", spread_samples)
    bench.transfer(type("Args", (), {"modalities": ["astro"], "spreads": ["raw"], "samples": 64,
                                      "heldout_max_size": 96})())
    table = capsys.readouterr().out.split("### Transfer")[1]
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| astro")]
    assert [row[3] for row in rows] == ["reference"] * 3 + ["held out"]  # the three Hubble fields; the 48x96 star field
    assert all(float(row[4]) == pytest.approx(3.0, rel=0.1) for row in rows)  # k needed
    assert float(rows[-1][6]) == pytest.approx(0.9, abs=0.02)  # coverage with the pooled factor
