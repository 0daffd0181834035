"""lam="auto": deviances of the data terms, the bracketing fit, and the solver's pilots."""

import math

import deepinv as dinv
import numpy as np
import pytest
import torch
from scipy import stats

from reddiff import GaussianPrior, InputError, red_diff
from reddiff.discrepancy import FLAT_SLOPE, MODEL_ERROR_POWER, AutoLam, as_lam, choose_weight, deviance_ratio, solve_for_target
from reddiff.likelihood import (GaussianLikelihood, PoissonLikelihood, ShiftedPoissonLikelihood,
                                TransmissionLikelihood, expected_poisson_deviance, poisson_deviance)

N = 20_000  # entries: the deviance of a true image is within a few per cent of its expectation


@pytest.mark.parametrize("rate", [0.05, 0.3, 1.0, 4.0, 19.0, 21.0, 300.0])
def test_expected_poisson_deviance_matches_the_exact_sum(rate):
    k = np.arange(0, int(rate + 40 * math.sqrt(rate) + 40))
    pmf = stats.poisson.pmf(k, rate)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = 2 * (np.where(k > 0, k * np.log(np.where(k > 0, k, 1) / rate), 0.0) - (k - rate))
    exact = float((pmf * terms).sum())
    assert float(expected_poisson_deviance(torch.full((1, 1), rate))) == pytest.approx(exact, rel=5e-3)


def test_poisson_deviance_is_zero_at_a_perfect_fit_and_counts_zero_counts():
    rate = torch.tensor([[3.0, 0.5]])
    assert float(poisson_deviance(torch.tensor([[3.0, 0.0]]), torch.tensor([[3.0, 1e-9]]))) == pytest.approx(0, abs=1e-6)
    assert float(poisson_deviance(torch.tensor([[3.0, 0.0]]), rate)) == pytest.approx(2 * 0.5)


def _terms(g):
    """(data term, Ax) pairs spanning the built-in noise models, at realistic count levels."""
    return [
        (GaussianLikelihood(0.1), torch.randn(1, N, generator=g)),
        (PoissonLikelihood(), 0.2 + 5 * torch.rand(1, N, generator=g)),
        (TransmissionLikelihood(1e4), 4 * torch.rand(1, N, generator=g)),
        (ShiftedPoissonLikelihood(background=10.0, read_noise=3.0), 200 * torch.rand(1, N, generator=g)),
    ]


@pytest.mark.parametrize("index", range(4))
def test_deviance_at_the_truth_matches_its_expectation(index):
    g = torch.Generator().manual_seed(index)
    term, Ax = _terms(g)[index]
    y = term.sample(Ax, generator=g)
    ratio = float(deviance_ratio(term, y, Ax))
    assert ratio == pytest.approx(1.0, abs=0.04), term  # sd of the ratio ~ sqrt(2 / N) = 0.01


@pytest.mark.parametrize("index", range(4))
def test_deviance_grows_away_from_the_truth(index):
    g = torch.Generator().manual_seed(10 + index)
    term, Ax = _terms(g)[index]
    y = term.sample(Ax, generator=g)
    off = Ax * 1.2 + 0.05
    assert float(deviance_ratio(term, y, off)) > float(deviance_ratio(term, y, Ax)) + 0.05


def test_gaussian_expectation_skips_unmeasured_zeros():
    """Masked k-space entries are stored as zeros in y and carry no deviance."""
    term = GaussianLikelihood(0.5)
    y = torch.tensor([[1.0, 0.0, -2.0, 0.0]])
    assert float(term.expected_deviance(y, torch.zeros_like(y))) == 2.0
    complex_y = torch.tensor([[1 + 1j, 0j]])
    assert float(term.expected_deviance(complex_y, torch.zeros_like(complex_y))) == 2.0


def test_solve_for_target_interpolates_in_log_and_clips():
    lams = [1.0, 3.0, 9.0]
    ratios = [0.5 * lam**0.5 for lam in lams]
    assert solve_for_target(lams, ratios, 1.0, 10.0) == pytest.approx(4.0)
    assert solve_for_target(lams, ratios, 50.0, 10.0) == pytest.approx(90.0)  # 10 x the largest pilot
    assert solve_for_target(lams, ratios, 0.01, 10.0) == pytest.approx(0.1)
    assert solve_for_target(lams, [0.9, 0.8, 0.7], 0.85, 10.0) in lams  # not increasing: nearest pilot


def test_choose_weight_keeps_the_start_where_the_ratio_ignores_the_weight():
    auto, lams = AutoLam(start=100.0, target=0.86), [100 / 3, 100.0, 300.0]
    flat = [0.88 * (lam / 100) ** (FLAT_SLOPE / 2) for lam in lams]  # the held-out star field: slope 0.02
    weight, note = choose_weight(auto, lams, flat)
    assert weight == 100.0 and "barely change with the weight" in note
    steep = [0.88 * (lam / 100) ** (FLAT_SLOPE * 2) for lam in lams]
    weight, note = choose_weight(auto, lams, steep)
    assert note is None and weight == pytest.approx(100 * (0.86 / 0.88) ** (1 / (FLAT_SLOPE * 2)))


def test_choose_weight_keeps_the_smallest_pilot_rather_than_extrapolate_below_the_pilots():
    auto, lams = AutoLam(start=100.0, target=0.78), [100 / 3, 100.0, 300.0]
    # flattening towards small weights, as under a small coil-map misfit (ratio over target 1.11):
    # the fitted line would reach the target near a tenth of the start
    weight, note = choose_weight(auto, lams, [0.866, 0.917, 1.031])
    assert weight == pytest.approx(100 / 3) and "not extrapolated below the pilots" in note
    weight, note = choose_weight(auto, lams, [0.70, 0.80, 0.95])  # a bracketed target is still interpolated
    assert note is None and 100 / 3 < weight < 100


def test_solve_for_target_refuses_bad_ratios():
    with pytest.raises(InputError, match="pilot deviance ratios"):
        solve_for_target([1.0, 2.0], [0.5, float("nan")], 1.0, 10.0)


@pytest.mark.parametrize("bad", ["often", -1.0, float("nan"), True])
def test_as_lam_refuses_what_is_not_a_weight(bad):
    with pytest.raises(InputError, match="lam"):
        as_lam(bad)


def test_auto_lam_checks_its_settings():
    assert as_lam("auto") == AutoLam()
    with pytest.raises(InputError, match="factors"):
        AutoLam(factors=(1.0, 1.0))
    with pytest.raises(InputError, match="start"):
        AutoLam(start=0.0)


def _denoising(sigma=0.3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    physics = dinv.physics.Denoising(noise_model=dinv.physics.GaussianNoise(sigma))
    x = torch.randn(1, 1, size, size, generator=g)
    return physics, x + sigma * torch.randn(x.shape, generator=g), sigma


def test_auto_lam_reaches_the_target_deviance_and_records_its_pilots():
    physics, y, sigma = _denoising()
    prior = GaussianPrior()
    auto = AutoLam(start=3.0, target=0.06)
    result = red_diff(y, physics, prior, data_term=sigma, steps=60, lr=0.1, lam=auto, n_samples=2, seed=3,
                      init="adjoint", keep_samples=True)
    config = result.config
    assert config["lam_choice"]["rule"] == "discrepancy" and config["lam_choice"]["pilot_lams"] == auto.pilots()
    ratios = config["lam_choice"]["pilot_ratios"]
    assert ratios == sorted(ratios) and ratios[0] < 0.06 < ratios[-1]  # more prior weight, a worse data fit
    # each sample (a run like a pilot) at the chosen weight lands near the target
    samples = torch.as_tensor(result.dataset["samples"].values)
    with torch.no_grad():
        reached = deviance_ratio(GaussianLikelihood(sigma), y.expand(len(samples), -1, -1, -1), samples)
    assert float(reached.mean()) == pytest.approx(0.06, rel=0.25)
    again = red_diff(y, physics, prior, data_term=sigma, steps=60, lr=0.1, lam=auto, n_samples=2, seed=3,
                     init="adjoint")
    assert again.config["lam"] == config["lam"]  # pilots are seeded from the run's seed


def test_auto_lam_progress_counts_pilots_then_samples():
    physics, y, sigma = _denoising(size=4)
    seen = []
    red_diff(y, physics, GaussianPrior(), data_term=sigma, steps=3, lam="auto", n_samples=2, batch_size=1,
             seed=0, init="adjoint", callback=lambda info: seen.append((info["chunk"], info["n_chunks"],
                                                                        bool(info.get("pilots")))))
    assert len(seen) == 3 * (3 + 2)  # 3 pilot chunks and 2 sample chunks of 3 steps
    assert {n for _, n, _ in seen} == {5}
    assert [c for c, _, p in seen if p] == [0] * 3 + [1] * 3 + [2] * 3
    assert [c for c, _, p in seen if not p] == [3] * 3 + [4] * 3


def test_auto_lam_needs_a_data_term_with_a_deviance():
    physics, y, _ = _denoising(size=4)
    with pytest.raises(InputError, match="deviance"):
        red_diff(y, physics, GaussianPrior(), data_term=lambda y, Ax: ((y - Ax) ** 2).sum(), steps=2,
                 lam="auto", init="adjoint")


def test_auto_lam_raises_the_weight_when_the_data_cannot_be_explained_to_the_noise_level():
    """An overdetermined measurement (64 values of 16 pixels) whose data term underestimates the noise 2x:
    no image explains the data to the stated noise (the floor is (64 - 16) / 64 x 4), so lowering the
    weight would only fit noise; the data term is trusted less, the weight raised, with a warning."""
    g = torch.Generator().manual_seed(0)
    matrix = torch.randn(64, 16, generator=g) / 4
    physics = dinv.physics.LinearPhysics(A=lambda x: x.reshape(x.shape[0], -1) @ matrix.T,
                                         A_adjoint=lambda y: (y @ matrix).reshape(y.shape[0], 1, 4, 4))
    sigma = 0.3
    y = physics.A(torch.randn(1, 1, 4, 4, generator=g)) + sigma * torch.randn(1, 64, generator=g)
    with pytest.warns(RuntimeWarning, match="raised the weight"):
        result = red_diff(y, physics, GaussianPrior(), data_term=sigma / 2, steps=30, lam=AutoLam(start=2.0),
                          n_samples=1, seed=0, init="adjoint")
    choice = result.config["lam_choice"]
    lowest = min(choice["pilot_ratios"])
    assert lowest > 1.5 and "forward model" in choice["note"]
    assert result.config["lam"] == pytest.approx(min(2.0 * lowest ** MODEL_ERROR_POWER, 6.0 * 10))  # target 1


def test_a_weight_raised_for_an_unexplained_misfit_grows_with_its_square_within_the_extrapolation_range():
    auto = AutoLam(start=10.0, target=0.8)
    for lowest in (1.3, 2.0, 4.0):
        weight, note = choose_weight(auto, auto.pilots(), [lowest, lowest * 1.1, lowest * 1.3])
        assert weight == pytest.approx(10.0 * (lowest / 0.8) ** MODEL_ERROR_POWER) and "raised" in note
    auto = AutoLam(start=1.0, target=0.5)
    weight, note = choose_weight(auto, auto.pilots(), [40.0, 41.0, 42.0])  # (40 / 0.5)**2 = 6400
    assert weight == pytest.approx(3.0 * auto.max_extrapolation) and "30x the start" in note
