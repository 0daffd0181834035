"""Intervals, coverage, z-scores and calibration: synthetic cases with known answers,
and RED-Diff's std where the data pins the image."""

import json
from statistics import NormalDist

import deepinv as dinv
import numpy as np
import pytest
import torch

from reddiff import GaussianPrior, InputError, Reconstruction, red_diff, sample_seeds
from reddiff.uncertainty import (Calibration, central_quantiles, conformal_quantile, coverage,
                                 fit_calibration, interval, normal_quantile,
                                 std_error_correlation, uncertainty_metrics, z_scores)

PHI = NormalDist().cdf
Z90 = normal_quantile(0.9)


def binomial_tolerance(p, n, k=4.0):
    """k standard errors of an empirical fraction over n independent trials."""
    return k * (p * (1 - p) / n) ** 0.5


def gaussian_case(seed, *, truth_std=1.0, sample_std=1.0, n_samples=64, size=32,
                  quantiles=(0.05, 0.5, 0.95), keep_samples=False):
    """Truth ~ N(0, truth_std^2) per pixel; samples ~ N(0, sample_std^2): a known posterior."""
    g = torch.Generator().manual_seed(seed)
    truth = truth_std * torch.randn(1, 1, size, size, generator=g)
    samples = sample_std * torch.randn(n_samples, 1, size, size, generator=g)
    rec = Reconstruction.from_samples(samples, quantiles=quantiles, keep_samples=keep_samples)
    return rec, truth


# -- small maths --------------------------------------------------------------------

def test_normal_quantile_and_central_quantiles():
    assert abs(PHI(Z90) - 0.95) < 1e-12
    assert central_quantiles([0.9]) == (0.05, 0.5, 0.95)
    with pytest.raises(InputError, match="level"):
        normal_quantile(1.0)


def test_coverage_counts_inclusive_bounds():
    truth = np.array([0.0, 1.0, 2.0, 3.0])
    assert coverage(truth, truth - 1, truth + 1) == 1.0
    assert coverage(truth, truth, truth) == 1.0  # bounds are inclusive
    assert coverage(truth, truth + 0.5, truth + 1) == 0.0
    assert coverage(truth, [0, 0, 0, 0], [1.5] * 4) == 0.5
    with pytest.raises(InputError, match="shapes differ"):
        coverage(truth, truth[:3], truth)


def test_z_scores_and_correlation():
    np.testing.assert_allclose(z_scores([2.0, -1.0], [1.0, 1.0], [0.5, 4.0]), [2.0, -0.5])
    assert np.isinf(z_scores([1.0], [0.0], [0.0])[0])
    std = np.linspace(0.1, 1, 50)
    signs = np.where(np.arange(50) % 2, 1, -1)
    assert std_error_correlation(std, signs * 2 * std) == pytest.approx(1.0)
    assert std_error_correlation(std, np.ones(50)) != std_error_correlation(std, np.ones(50))  # NaN


def test_conformal_quantile_rank_and_guarantee():
    scores = np.arange(1.0, 20.0)  # n = 19, ceil(20 * 0.9) = 18th smallest
    assert conformal_quantile(scores, 0.9) == 18.0
    assert conformal_quantile(scores[:5], 0.9) == np.inf  # ceil(6 * 0.9) = 6 > 5
    # with exchangeable scores the next one is covered with probability >= level
    rng = np.random.default_rng(0)
    hits = [rng.standard_normal() <= conformal_quantile(rng.standard_normal(9), 0.8)
            for _ in range(4000)]
    assert np.mean(hits) >= 0.8 - binomial_tolerance(0.8, 4000, k=3)
    assert np.mean(hits) <= 1.0 - binomial_tolerance(0.8, 4000, k=3)  # not trivially 1


# -- coverage with known answers -----------------------------------------------------

def test_coverage_matches_the_true_posterior_rate():
    """Samples from the true posterior: the 90% interval covers 90%, by both methods."""
    rec, truth = gaussian_case(0, n_samples=400)
    n = truth.numel()
    for method in ("normal", "quantile"):
        lower, upper = interval(rec, 0.9, method=method)
        assert abs(coverage(truth, lower, upper) - 0.9) < binomial_tolerance(0.9, n) + 0.01


def test_understated_spread_has_the_predicted_coverage_and_z_std():
    """Spread too small by 2: coverage is P(|Z| <= z90 / 2) and z has std 2."""
    rec, truth = gaussian_case(1, sample_std=0.5, n_samples=400)
    expected = 2 * PHI(Z90 / 2) - 1  # 0.589
    lower, upper = interval(rec, 0.9)
    n = truth.numel()
    assert abs(coverage(truth, lower, upper) - expected) < binomial_tolerance(expected, n) + 0.01
    metrics = uncertainty_metrics(rec, truth, level=0.9)
    assert metrics["coverage"] == pytest.approx(coverage(truth, lower, upper))
    assert abs(metrics["z_std"] - 2.0) < 0.15
    assert abs(metrics["z_mean"]) < 0.15


def test_quantile_interval_from_samples_when_not_stored():
    rec, truth = gaussian_case(2, n_samples=100, quantiles=(), keep_samples=True)
    lower, upper = interval(rec, 0.8, method="quantile")
    samples = rec.dataset["samples"].values
    np.testing.assert_allclose(lower.values, np.quantile(samples, 0.1, axis=0), rtol=1e-5,
                               atol=1e-6)
    bare, _ = gaussian_case(2, n_samples=8, quantiles=())
    with pytest.raises(InputError, match="central_quantiles"):
        interval(bare, 0.8, method="quantile")


# -- calibration --------------------------------------------------------------------

def test_calibration_recovers_the_known_factor_and_fixes_held_out_coverage():
    train = [gaussian_case(10 + i, sample_std=0.5) for i in range(6)]
    calibration = fit_calibration([r for r, _ in train], [t for _, t in train], level=0.9)
    assert calibration.scales[0] == pytest.approx(2.0, rel=0.08)  # true factor: 1 / 0.5
    assert calibration.coverage_before < 0.65 and calibration.coverage_after >= 0.9
    held_out = [gaussian_case(100 + i, sample_std=0.5) for i in range(4)]
    before = np.mean([uncertainty_metrics(r, t)["coverage"] for r, t in held_out])
    after = np.mean([uncertainty_metrics(r, t, calibration=calibration)["coverage"]
                     for r, t in held_out])
    n = 4 * held_out[0][1].numel()
    assert before < 0.65
    assert abs(after - 0.9) < binomial_tolerance(0.9, n) + 0.02
    z_std = np.mean([uncertainty_metrics(r, t, calibration=calibration)["z_std"]
                     for r, t in held_out])
    assert abs(z_std - 1.0) < 0.1


def test_a_noise_conditioned_calibration_follows_the_noise_power_law():
    # the spread is the same at every noise level, the error grows like sigma: k = 2 (sigma / 0.01)^1
    levels = (0.005, 0.005, 0.01, 0.01, 0.02, 0.02)
    train = [gaussian_case(200 + i, truth_std=2.0 * s / 0.01) for i, s in enumerate(levels)]
    recs, truths = [r for r, _ in train], [t for _, t in train]
    law = fit_calibration(recs, truths, noise_levels=levels)
    assert law.noise_conditioned and law.noise_exponent == pytest.approx(1.0, abs=0.05)
    assert law.noise_reference == pytest.approx(0.01) and law.scales[0] == pytest.approx(2.0, rel=0.08)
    pooled = fit_calibration(recs, truths)
    rec, truth = gaussian_case(300, truth_std=2.0 * 0.014 / 0.01)
    at = law.at_noise(0.014)
    assert not at.noise_conditioned and "sigma 0.014" in at.context["noise_law"]
    tol = binomial_tolerance(0.9, truth.numel()) + 0.02
    assert abs(uncertainty_metrics(rec, truth, calibration=at)["coverage"] - 0.9) < tol
    quiet, _ = gaussian_case(301, truth_std=1.0)  # sigma 0.005: the pooled factor over-covers
    assert uncertainty_metrics(quiet, _, calibration=pooled)["coverage"] > 0.9 + tol
    assert law.at_noise(0.1, within=(0.0025, 0.04)).scales[0] == pytest.approx(law.at_noise(0.04).scales[0])


def test_close_or_bad_noise_levels_give_no_power_law():
    recs, truths = zip(*(gaussian_case(400 + i, sample_std=0.5) for i in range(2)))
    assert not fit_calibration(recs, truths, noise_levels=(0.01, 0.012)).noise_conditioned
    with pytest.raises(InputError, match="one positive noise level per reconstruction"):
        fit_calibration(recs, truths, noise_levels=(0.01,))
    with pytest.raises(InputError, match="noise_reference"):
        Calibration(level=0.9, scales=(1.0,), noise_exponent=-1.0)
    with pytest.raises(InputError, match="positive number"):
        Calibration(level=0.9, scales=(1.0,), noise_exponent=-1.0, noise_reference=0.01).at_noise(0.0)


def heteroscedastic_case(seed):
    """Left half: std under-stated 2x; right half: 4x (and larger)."""
    g = torch.Generator().manual_seed(seed)
    reported = torch.ones(1, 1, 32, 32)
    reported[..., 16:] = 3.0
    true = reported * torch.where(torch.arange(32) < 16, 2.0, 4.0)
    truth = true * torch.randn(1, 1, 32, 32, generator=g)
    samples = reported * torch.randn(200, 1, 32, 32, generator=g)
    return Reconstruction.from_samples(samples), truth


def test_std_bins_give_each_bin_its_own_factor():
    train = [heteroscedastic_case(i) for i in range(6)]
    test = [heteroscedastic_case(50 + i) for i in range(4)]
    recs, truths = [r for r, _ in train], [t for _, t in train]
    one = fit_calibration(recs, truths, bins=1)
    two = fit_calibration(recs, truths, bins=2)
    assert two.scales[0] == pytest.approx(2.0, rel=0.1)
    assert two.scales[1] == pytest.approx(4.0, rel=0.1)
    assert 1.0 < two.edges[0] < 3.0

    def half_coverage(cal, half):
        cols = slice(0, 16) if half == 0 else slice(16, 32)
        covs = []
        for rec, truth in test:
            lower, upper = interval(rec, 0.9, calibration=cal)
            covs.append(coverage(truth[0, :, :, cols], lower.values[:, :, cols],
                                 upper.values[:, :, cols]))
        return np.mean(covs)

    tol = binomial_tolerance(0.9, 4 * 512) + 0.02
    assert all(abs(half_coverage(two, h) - 0.9) < tol for h in (0, 1))
    # one factor for both: over-covers the left half, under-covers the right
    assert half_coverage(one, 0) > 0.9 + tol and half_coverage(one, 1) < 0.9 - tol


def test_calibration_round_trips_and_validates(tmp_path):
    rec, truth = gaussian_case(3, sample_std=0.5)
    calibration = fit_calibration([rec], [truth], bins=2)
    path = calibration.save(tmp_path / "cal.json")
    assert Calibration.load(path) == calibration
    assert json.loads(path.read_text())["level"] == 0.9
    with pytest.raises(InputError, match="scales"):
        Calibration(level=0.9, scales=(0.0,))
    with pytest.raises(InputError, match="edges"):
        Calibration(level=0.9, scales=(1.0, 2.0))
    with pytest.raises(InputError, match="as many truths"):
        fit_calibration([rec], [])
    with pytest.raises(InputError, match="truths\\[0\\]"):
        fit_calibration([rec], [truth[..., :8]])
    with pytest.raises(InputError, match="zero spread"):  # one sample: no spread at all
        fit_calibration([Reconstruction.from_samples(torch.zeros(1, 1, 4, 4))],
                        [torch.ones(1, 1, 4, 4)])
    with pytest.raises(InputError, match="no such calibration file"):
        Calibration.load(tmp_path / "missing.json")


def test_calibrated_result_carries_variables_and_attrs():
    rec, truth = gaussian_case(4, sample_std=0.5)
    calibration = fit_calibration([rec], [truth])
    calibrated = rec.calibrated(calibration)
    k = calibration.scales[0]
    np.testing.assert_allclose(calibrated.dataset["std_calibrated"].values, k * rec.std.values,
                               rtol=1e-6)
    np.testing.assert_allclose(calibrated.dataset["upper"].values,
                               rec.mean.values + k * Z90 * rec.std.values, rtol=1e-5, atol=1e-6)
    assert calibrated.calibration == calibration
    assert rec.calibration is None and "lower" not in rec.dataset  # the original is untouched
    with pytest.raises(InputError, match="level=0.9"):
        interval(rec, 0.8, calibration=calibration)


def test_calibration_refuses_another_prior_or_physics():
    rec, truth = gaussian_case(5, sample_std=0.5)
    rec.dataset.attrs["config"] = json.dumps({"prior": "ct", "physics": "Tomography"})
    calibration = fit_calibration([rec], [truth])
    assert calibration.context == {"prior": "ct", "physics": "Tomography"}
    other, _ = gaussian_case(6)
    other.dataset.attrs["config"] = json.dumps({"prior": "mri", "physics": "MRI"})
    with pytest.raises(InputError, match="prior='ct'"):
        other.calibrated(calibration)
    assert "lower" in other.calibrated(calibration, check=False).dataset
    with pytest.raises(InputError, match="mix different prior"):
        fit_calibration([rec, other], [truth, truth])


# -- RED-Diff: batches and where the data pins the image ------------------------------

def inpainting_problem(size=16, sigma=0.05):
    physics = dinv.physics.Inpainting((1, size, size), mask=0.5,
                                      rng=torch.Generator().manual_seed(1),
                                      noise_model=dinv.physics.GaussianNoise(sigma))
    truth = torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(0))
    y = physics.A(truth) + sigma * torch.randn(1, 1, size, size,
                                               generator=torch.Generator().manual_seed(2))
    return physics, truth, y


def test_batched_summary_equals_sequential_runs():
    physics, _, y = inpainting_problem()
    kwargs = dict(steps=25, sigma_x0=0.05, timesteps="random")
    batched = red_diff(y, physics, GaussianPrior(), n_samples=4, seed=3, **kwargs)
    singles = [red_diff(y, physics, GaussianPrior(), n_samples=1, seed=[s], keep_samples=True,
                        **kwargs) for s in sample_seeds(3, 4)]
    stacked = torch.cat([torch.from_numpy(r.dataset["samples"].values) for r in singles])
    sequential = Reconstruction.from_samples(stacked)
    for name in ("mean", "std", "quantiles"):
        np.testing.assert_allclose(batched.dataset[name].values, sequential.dataset[name].values,
                                   rtol=1e-5, atol=1e-6)
    assert float(batched.std.mean()) > 1e-3


def test_std_small_on_observed_pixels_large_on_masked_ones():
    physics, truth, y = inpainting_problem()
    rec = red_diff(y, physics, GaussianPrior(), steps=60, sigma_x0=0.05, n_samples=8, seed=0)
    observed = physics.mask[0].bool().numpy()
    std = rec.std.values
    assert std[~observed].mean() > 3 * std[observed].mean()
    # and the error follows: the std map points at the large errors
    assert uncertainty_metrics(rec, truth)["std_error_correlation"] > 0.3


def test_std_small_on_sampled_kspace_lines_large_elsewhere():
    size = 16
    lines = torch.zeros(size)
    lines[::2] = 1
    lines[size // 2 - 2:size // 2 + 2] = 1
    mask = lines.view(1, size).expand(size, size)  # sampled phase-encode columns
    physics = dinv.physics.MRI(mask=mask, img_size=(2, size, size),
                               noise_model=dinv.physics.GaussianNoise(0.02))
    truth = torch.randn(1, 2, size, size, generator=torch.Generator().manual_seed(0))
    y = physics.A(truth) + 0.02 * torch.randn(physics.A(truth).shape,
                                              generator=torch.Generator().manual_seed(1))
    # sigma_x0 = 0: the jitter of sigma_x0 > 0 sets a std floor of about sigma_x0 on every
    # k-space coefficient, sampled or not (measured in docs/uncertainty.md)
    rec = red_diff(y, physics, GaussianPrior(channels=2), steps=60, n_samples=8, seed=0,
                   keep_samples=True)
    samples = torch.from_numpy(rec.dataset["samples"].values)
    kspace = physics.im_to_kspace(samples)  # (n, 2, H, W), unmasked, deepinv's centred FFT
    kstd = kspace.std(0).norm(dim=0)  # (H, W)
    sampled = mask.bool()
    assert kstd[~sampled].mean() > 3 * kstd[sampled].mean()


# -- an error proxy added to the spread ----------------------------------------------

def edge_case(seed, n_edges, *, size=48, n_samples=16):
    """Steps of random height at ``n_edges`` random columns; samples spread 0.05 everywhere, but the
    truth's error grows with the mean's gradient (the case the gradient proxy is for)."""
    from reddiff.uncertainty import error_proxy

    rng = np.random.default_rng(seed)
    mean = np.zeros((1, size, size))
    for column, height in zip(rng.choice(np.arange(4, size - 4), n_edges, replace=False),
                              rng.uniform(0.5, 1.0, n_edges)):
        mean[..., column:] += height
    samples = mean + 0.05 * rng.standard_normal((n_samples, 1, size, size))
    samples -= samples.mean(0) - mean  # the mean of the runs is exactly ``mean``
    error_scale = np.hypot(0.05, 0.5 * error_proxy(mean, "gradient"))
    truth = mean + error_scale * rng.standard_normal(mean.shape)
    rec = Reconstruction.from_samples(torch.as_tensor(samples, dtype=torch.float32))
    return rec, torch.as_tensor(truth[None], dtype=torch.float32)


def test_a_gradient_proxy_makes_the_factor_transfer_between_images():
    train = [edge_case(20 + i, n_edges) for i, n_edges in enumerate([1, 3, 6, 10])]
    recs, truths = [r for r, _ in train], [t for _, t in train]
    raw = fit_calibration(recs, truths)
    with_proxy = fit_calibration(recs, truths, proxy="gradient")
    assert raw.proxy == "" and raw.proxy_weight == 0.0
    assert with_proxy.proxy == "gradient" and with_proxy.proxy_weight > 0
    held_out = [edge_case(200 + i, n_edges) for i, n_edges in enumerate([1, 12])]
    raw_cover = [uncertainty_metrics(r, t, calibration=raw)["coverage"] for r, t in held_out]
    proxy_cover = [uncertainty_metrics(r, t, calibration=with_proxy)["coverage"] for r, t in held_out]
    assert raw_cover[0] > 0.95 and raw_cover[1] < 0.8  # one factor: too wide on few edges, too narrow on many
    assert all(0.87 < c < 0.93 for c in proxy_cover)
    assert with_proxy.proxy_weight == pytest.approx(0.5, rel=0.25)  # the weight the error was made with
    many_edges = held_out[1]
    assert uncertainty_metrics(*many_edges, calibration=with_proxy)["std_error_spearman"] > 0.4
    assert abs(uncertainty_metrics(*many_edges)["std_error_spearman"]) < 0.1


def test_the_proxy_spread_enters_interval_std_and_round_trip(tmp_path):
    from reddiff.uncertainty import error_proxy, spread

    rec, truth = edge_case(7, 4)
    calibration = fit_calibration([rec], [truth], proxy="gradient", proxy_weight=0.3)
    u = np.hypot(rec.std.values, 0.3 * error_proxy(rec.mean.values, "gradient"))
    np.testing.assert_allclose(spread(rec, calibration), u, rtol=1e-6)
    np.testing.assert_allclose(spread(rec), rec.std.values, rtol=1e-6)
    calibrated = rec.calibrated(calibration)
    k = calibration.scales[0]
    np.testing.assert_allclose(calibrated.dataset["std_calibrated"].values, k * u, rtol=1e-5)
    np.testing.assert_allclose(calibrated.dataset["upper"].values, rec.mean.values + k * Z90 * u, rtol=1e-5, atol=1e-5)
    assert Calibration.load(calibration.save(tmp_path / "cal.json")) == calibration
    one = fit_calibration([rec], [truth], proxy="gradient")
    assert one.proxy_weight == 0.0  # one image: every weight agrees with itself, the smallest is kept
    with pytest.raises(InputError, match="gradient"):
        Calibration(level=0.9, scales=(1.0,), proxy="curvature")
    with pytest.raises(InputError, match="proxy"):
        Calibration(level=0.9, scales=(1.0,), proxy_weight=1.0)
    with pytest.raises(InputError, match="choose from \\['gradient'\\]"):
        error_proxy(rec.mean.values, "laplacian")
