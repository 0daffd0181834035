"""The uncertainty report: files, PSNR/SSIM, coverage before/after calibration, settings."""

import deepinv as dinv
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from reddiff import GaussianPrior, InputError, red_diff
from reddiff.report import image_quality, write_report
from reddiff.uncertainty import fit_calibration, uncertainty_metrics


@pytest.fixture(scope="module")
def runs():
    """Two RED-Diff inpainting runs of different images: one to calibrate, one to report."""
    physics = dinv.physics.Inpainting((1, 16, 16), mask=0.5, rng=torch.Generator().manual_seed(1),
                                      noise_model=dinv.physics.GaussianNoise(0.1))
    out = []
    for seed in (0, 1):
        truth = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(seed))
        y = physics.A(truth) + 0.1 * torch.randn(1, 1, 16, 16,
                                                 generator=torch.Generator().manual_seed(9 + seed))
        rec = red_diff(y, physics, GaussianPrior(), steps=40, sigma_x0=0.05, n_samples=6, seed=seed)
        out.append((rec, truth, y))
    return out


def test_image_quality_matches_skimage_and_a_known_psnr():
    truth = np.linspace(0, 2, 144).reshape(12, 12)
    noisy = truth + np.random.default_rng(0).normal(0, 0.05, truth.shape)
    q = image_quality(truth, noisy)
    assert q["psnr"] == pytest.approx(peak_signal_noise_ratio(truth, noisy, data_range=2.0))
    assert q["ssim"] == pytest.approx(structural_similarity(truth, noisy, data_range=2.0))
    assert image_quality(truth, truth + 0.02)["psnr"] == pytest.approx(40.0)  # 20 log10(2 / 0.02)
    with pytest.raises(InputError, match="constant"):
        image_quality(np.ones((8, 8)), np.ones((8, 8)))
    with pytest.raises(InputError, match="image"):
        image_quality(truth, truth[:8])


def test_report_with_truth_and_calibration(runs, tmp_path):
    (cal_rec, cal_truth, _), (rec, truth, y) = runs
    calibration = fit_calibration([cal_rec], [cal_truth])
    path = write_report(rec, tmp_path, truth=truth, baseline=y, measurement_image=y,
                        calibration=calibration, title="Inpainting test")
    text = path.read_text()
    assert path.name == "report.md" and (tmp_path / "uncertainty.png").is_file()
    assert text.startswith("# Inpainting test")
    mean_q = image_quality(truth, rec.tensor())
    assert f"| RED-Diff mean | {mean_q['psnr']:.2f} | {mean_q['ssim']:.4f} |" in text
    assert f"| baseline | {image_quality(truth, y)['psnr']:.2f} |" in text
    raw = uncertainty_metrics(rec, truth)
    after = uncertainty_metrics(rec, truth, calibration=calibration)
    assert f"| Coverage of the 90% interval | {raw['coverage']:.1%} | {after['coverage']:.1%} |" in text
    assert after["coverage"] > raw["coverage"] + 0.1  # the calibration measurably widens
    assert f"std widened by {calibration.scales[0]:.3g}" in text
    assert "| lam | `0.25` |" in text and f"{rec.seeds[0]}" in text


def test_report_without_truth_says_what_was_not_measured(runs, tmp_path):
    rec = runs[1][0]
    text = write_report(rec, tmp_path / "new" / "dir").read_text()
    assert "coverage: not measured" in text and "uncalibrated" in text
    assert "PSNR" not in text
    assert (tmp_path / "new" / "dir" / "uncertainty.png").is_file()


def test_report_uses_a_calibration_stored_in_the_result(runs, tmp_path):
    (cal_rec, cal_truth, _), (rec, truth, _) = runs
    calibrated = rec.calibrated(fit_calibration([cal_rec], [cal_truth]))
    text = write_report(calibrated, tmp_path, truth=truth).read_text()
    assert "| | raw | calibrated |" in text


def test_report_gives_the_noise_law_of_a_noise_conditioned_calibration(runs, tmp_path):
    import dataclasses

    (cal_rec, cal_truth, _), (rec, truth, _) = runs
    law = dataclasses.replace(fit_calibration([cal_rec], [cal_truth]), noise_exponent=-1.0, noise_reference=0.1)
    text = write_report(rec.calibrated(law.at_noise(0.2)), tmp_path, truth=truth).read_text()
    assert f"std widened by {law.scales[0] / 2:.3g}" in text
    assert "follows the noise level" in text and "at sigma 0.2" in text


def test_report_says_how_lam_auto_chose_the_weight(tmp_path):
    physics = dinv.physics.Denoising(noise_model=dinv.physics.GaussianNoise(0.3))
    y = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    rec = red_diff(y, physics, GaussianPrior(), data_term=0.3, steps=5, lam="auto", n_samples=2, seed=0,
                   init="adjoint")
    text = write_report(rec, tmp_path).read_text()
    choice = rec.config["lam_choice"]
    assert f"`lam` = {rec.config['lam']:.3g}, chosen by the discrepancy principle" in text
    assert all(f"{lam:.3g} (ρ {ratio:.3f})" in text for lam, ratio in zip(choice["pilot_lams"],
                                                                          choice["pilot_ratios"]))
    assert "chosen by the discrepancy" not in write_report(red_diff(y, physics, GaussianPrior(), data_term=0.3,
                                                                    steps=5, lam=1.0, init="adjoint"),
                                                           tmp_path / "fixed").read_text()


def test_report_names_the_error_proxy_a_calibration_combines(runs, tmp_path):
    (cal_rec, cal_truth, _), (rec, truth, y) = runs
    calibration = fit_calibration([cal_rec], [cal_truth], proxy="gradient", proxy_weight=0.25)
    text = write_report(rec, tmp_path, truth=truth, calibration=calibration).read_text()
    assert "sqrt(std^2 + (0.25 x gradient)^2)" in text
    plain = write_report(rec, tmp_path / "plain", truth=truth, calibration=fit_calibration([cal_rec], [cal_truth]))
    assert "error proxy" not in plain.read_text()
