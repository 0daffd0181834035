"""benchmarks/fit_calibrations.py: the --quick smoke path and the size-tier variants' names and settings."""

import dataclasses

import pytest

from reddiff.uncertainty import Calibration


@pytest.fixture(scope="module")
def fit_calibrations(load_benchmark):
    return load_benchmark("fit_calibrations.py", "fit_calibrations_benchmark")


def test_above_fits_with_the_size_tiers_settings_into_its_variant_file(fit_calibrations, tmp_path):
    fit_calibrations.main(["--modality", "ct", "--quick", "--samples", "2", "--above", "181", "--out", str(tmp_path)])
    assert [path.name for path in tmp_path.iterdir()] == ["ct@above-181px.json"]
    context = Calibration.load(tmp_path / "ct@above-181px.json").context
    assert context["t_max"] == 999 and context["steps"] == 10 and len(context["fitted_on"]) == 2
    assert "--above 181" in context["fitted_by"]


def test_tier_settings_add_up_the_tiers_spell_out_the_full_range_and_refuse_a_side_without_a_tier(fit_calibrations):
    from reddiff.defaults import SolverDefaults

    row = SolverDefaults(prior="ct", steps=400, lr=0.03, lam=100.0, noise_reference=0.003, weighting="sqrt",
                         timesteps="descending", sigma_x0=0.0, t_max=40,
                         size_tiers=((90, {"lr": 0.01}), (181, {"t_max": None})))
    assert fit_calibrations.tier_settings(row, 90) == {"lr": 0.01}
    assert fit_calibrations.tier_settings(row, 181) == {"t_max": 999, "lr": 0.01}
    assert row.size_tiers == ((90, {"lr": 0.01}), (181, {"t_max": None}))  # the row is not touched
    with pytest.raises(SystemExit, match="no size tier above 128 px"):
        fit_calibrations.tier_settings(row, 128)
    with pytest.raises(SystemExit, match="no size tier above 181 px"):
        fit_calibrations.tier_settings(dataclasses.replace(row, size_tiers=()), 181)


def test_refit_reads_the_saved_reconstructions_back_and_can_add_a_proxy(fit_calibrations, tmp_path):
    saved, first, again, proxied = (tmp_path / name for name in ("saved", "first", "again", "proxied"))
    fit_calibrations.main(["--modality", "mri", "--quick", "--samples", "2", "--proxy", "none",
                           "--save", str(saved), "--out", str(first)])
    assert sorted(path.name for path in saved.iterdir()) == ["mri-reference0.nc", "mri-reference1.nc"]
    fit_calibrations.main(["--modality", "mri", "--quick", "--proxy", "none", "--refit", str(saved), "--out", str(again)])
    assert Calibration.load(again / "mri.json") == Calibration.load(first / "mri.json")  # no solve, same fit
    fit_calibrations.main(["--modality", "mri", "--quick", "--proxy", "gradient", "--refit", str(saved),
                           "--out", str(proxied)])
    fitted = Calibration.load(proxied / "mri.json")
    assert fitted.proxy == "gradient" and "--proxy gradient" in fitted.context["fitted_by"]
