"""Calibration from reference images measured like a target, its checks, and the CLI around it."""

import dataclasses
import json

import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

from reddiff import calibration, modalities, pipeline
from reddiff.cli import app
from reddiff.errors import InputError
from reddiff.likelihood import (GaussianLikelihood, PoissonLikelihood, ShiftedPoissonLikelihood,
                                TransmissionLikelihood)
from reddiff.operators import ct
from reddiff.uncertainty import Calibration

FAST = {"steps": 3, "n_samples": 2}
runner = CliRunner()


def _phantom(size=32):
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    return (np.hypot(yy, xx) < 0.35) * 0.02 + (np.hypot(yy - 0.1, xx) < 0.1) * 0.01 + 0.0


def _ct_like(size=32, I0=1e5, seed=0):
    x = torch.as_tensor(_phantom(size), dtype=torch.float32)[None, None]
    return modalities.get("ct").from_measurement(ct.simulate(x, views=12, I0=I0, seed=seed))


# -- noise models ---------------------------------------------------------------------

@pytest.mark.parametrize("term, Ax, mean, var", [
    (GaussianLikelihood(0.5), torch.full((1, 20000), 3.0), 3.0, 0.25),
    (PoissonLikelihood(), torch.full((1, 20000), 7.0), 7.0, 7.0),
    (TransmissionLikelihood(100.0), torch.full((1, 20000), float(np.log(4.0))), 25.0, 25.0),
    (ShiftedPoissonLikelihood(background=5.0, read_noise=2.0), torch.full((1, 20000), 3.0), 8.0, 12.0),
])
def test_each_data_term_samples_measurements_with_its_own_mean_and_variance(term, Ax, mean, var):
    y = term.sample(Ax, generator=torch.Generator().manual_seed(0))
    assert y.shape == Ax.shape
    assert abs(float(y.mean()) - mean) < 0.05 * mean + 0.02
    assert abs(float(y.var()) - var) < 0.08 * var


def test_fit_to_grid_crops_to_the_aspect_ratio_then_resamples():
    image = np.zeros((40, 20), dtype=np.float32)
    image[10:30] = 1.0  # the centre 20x20 is all ones
    out = calibration.fit_to_grid(image, (8, 8))
    assert out.shape == (8, 8) and np.allclose(out, 1.0)
    with pytest.raises(InputError, match="2-D"):
        calibration.fit_to_grid(np.zeros((3, 4, 5)), (8, 8))


# -- measuring like a target ------------------------------------------------------------

def test_a_ct_reference_is_measured_with_the_targets_geometry_and_photon_count():
    like = _ct_like(I0=3e4)
    problems = calibration.problems_like(like, {"phantom": _phantom(64)}, seed=3)
    new = problems["phantom"]
    assert new.y.shape == like.y.shape and new.truth.shape == like.truth.shape
    assert repr(new.physics.data_term) == repr(like.physics.data_term)
    assert not torch.equal(new.y, like.y)
    # counts scatter about I0 exp(-Ax) of the new truth
    expected = 3e4 * torch.exp(-like.physics.A(new.truth))
    assert abs(float((new.y - expected).mean())) < 3 * float(expected.mean().sqrt()) / np.sqrt(new.y.numel())


def test_an_mri_reference_is_scaled_to_the_targets_image_and_noised_only_where_sampled():
    mri = modalities.get("mri")
    image = np.zeros((32, 32), dtype=np.float32)
    image[8:24, 8:24] = 1.0
    like = mri.canonical_problem(image=image * 0.3, seed=0)
    problems = calibration.problems_like(like, {"square": image * 50.0}, seed=1)
    new = problems["square"]
    assert new.image_scale == pytest.approx(like.image_scale, rel=0.05)
    unsampled = (like.physics.mask.unsqueeze(2).expand_as(new.y) == 0)
    assert unsampled.any() and float(new.y[unsampled].abs().max()) == 0.0


def test_a_constant_or_non_finite_reference_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "flat.npy"
    np.save(bad, np.ones((16, 16), dtype=np.float32))
    with pytest.raises(InputError, match="flat.npy"):
        calibration.problems_like(_ct_like(), {"flat": bad})


# -- fitting and applying ---------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    like = _ct_like()
    problems = calibration.problems_like(like, {"a": _phantom(32), "b": _phantom(48)[::-1].copy()}, seed=5)
    return like, pipeline.calibrate_on(problems, **FAST)


def test_calibrate_on_records_what_it_was_fitted_on(fitted):
    _, cal = fitted
    assert cal.scales[0] > 1.0 and cal.n_images == 2
    assert cal.context["modality"] == "ct" and cal.context["fitted_on"] == ["a", "b"]
    assert len(cal.context["factor_per_image"]) == 2 and cal.context["n_samples"] == 2
    low, high = cal.context["noise_levels"]
    assert low == high == pytest.approx(1e5 ** -0.5)


def test_a_calibration_applied_to_a_like_measurement_adds_intervals_without_warnings(fitted):
    like, cal = fitted
    result = pipeline.reconstruct(like, calibration=cal, **FAST)
    assert {"std_calibrated", "lower", "upper"} <= set(result.dataset.data_vars)
    assert np.allclose(result.dataset["std_calibrated"], cal.scales[0] * result.std, rtol=1e-5)
    assert calibration.warnings_of(result) == []
    raw = pipeline.reconstruct(like, calibration="none", **FAST)
    assert "lower" not in raw.dataset and raw.dataset.attrs["calibration_source"] == "none"


def test_a_measurement_unlike_the_calibration_gets_warnings_for_each_difference(fitted):
    _, cal = fitted
    noisier = _ct_like(I0=1e3)
    result = pipeline.reconstruct(noisier, calibration=cal, steps=4, lr=0.5, n_samples=2)
    warnings = " ".join(calibration.warnings_of(result))
    assert "noise level" in warnings and "steps=4" in warnings and "lr=0.5" in warnings
    assert "lower" in result.dataset  # still applied, but said


def test_a_prior_of_the_same_name_with_other_weights_gets_a_warning(fitted):
    like, cal = fitted
    assert len(cal.context["prior_weights"]) == 64  # recorded by the fit
    retrained = dataclasses.replace(cal, context={**cal.context, "prior_weights": "0" * 64})
    result = pipeline.reconstruct(like, calibration=retrained, **FAST)
    assert any("has other weights" in w for w in calibration.warnings_of(result))
    assert calibration.warnings_of(pipeline.reconstruct(like, calibration=cal, **FAST)) == []


def test_a_noise_conditioned_calibration_is_resolved_at_the_measurements_noise_level(fitted):
    like, cal = fitted
    level = cal.context["noise_levels"][0]
    law = dataclasses.replace(cal, noise_exponent=-1.0, noise_reference=level)
    for I0, factor in ((1e5, 1.0), (1e5 / 4, 0.5), (1e3, 0.5)):  # noise x1, x2, x10 (held at the x2 limit)
        problem = _ct_like(I0=I0)
        resolved = calibration.at_noise_of(law, problem)
        assert resolved.scales[0] == pytest.approx(factor * cal.scales[0], rel=1e-6)
    result = pipeline.reconstruct(_ct_like(I0=1e5 / 4), calibration=law, **FAST)
    assert np.allclose(result.dataset["std_calibrated"], 0.5 * cal.scales[0] * result.std, rtol=1e-5)
    assert "noise_law" in result.calibration.context


def test_a_calibration_of_another_modality_or_prior_is_refused(fitted, tmp_path):
    _, cal = fitted
    path = cal.save(tmp_path / "ct.json")
    problem = modalities.get("astro").canonical_problem(image=np.full((16, 16), 100.0, dtype=np.float32) +
                                                        np.eye(16, dtype=np.float32) * 500)
    with pytest.raises(InputError, match="ct.json.*fitted for ct, not astro"):
        pipeline.reconstruct(problem, calibration=path, **FAST)
    other_prior = json.loads(path.read_text())
    other_prior["context"]["prior"] = "someone-else"
    (tmp_path / "other.json").write_text(json.dumps(other_prior))
    with pytest.raises(InputError, match="prior 'someone-else'"):
        pipeline.reconstruct(_ct_like(), calibration=tmp_path / "other.json", **FAST)


def test_resolve_knows_default_none_and_files(fitted, tmp_path, monkeypatch):
    _, cal = fitted
    assert calibration.resolve("none", "ct") == (None, "none")
    monkeypatch.setattr(calibration, "DEFAULTS_FOLDER", tmp_path)
    assert calibration.resolve("default", "ct") == (None, "none shipped")
    cal.save(tmp_path / "ct.json")
    loaded, source = calibration.resolve("default", "ct")
    assert loaded.scales == cal.scales and source == "default for ct"
    with pytest.raises(InputError, match="no such calibration file"):
        calibration.resolve(tmp_path / "missing.json", "ct")


def test_the_default_gives_way_to_the_shipped_variant_fitted_with_the_runs_own_settings(fitted, tmp_path,
                                                                                          monkeypatch):
    _, cal = fitted
    monkeypatch.setattr(calibration, "DEFAULTS_FOLDER", tmp_path)
    dataclasses.replace(cal, scales=[3.0], context={**cal.context, "t_max": 40}).save(tmp_path / "ct.json")
    dataclasses.replace(cal, scales=[4.0], context={**cal.context, "t_max": 999}).save(tmp_path / "ct@above-181px.json")
    steps = cal.context["steps"]
    assert calibration.resolve("default", "ct", {"steps": steps, "t_max": 40})[1] == "default for ct"
    chosen, source = calibration.resolve("default", "ct", {"steps": steps, "t_max": 999})
    assert list(chosen.scales) == [4.0] and source == "default for ct (above-181px)"
    chosen, source = calibration.resolve("default", "ct", {"steps": steps, "t_max": 300})  # none fits: the default
    assert list(chosen.scales) == [3.0] and source == "default for ct"


@pytest.mark.parametrize("name", modalities.names())
def test_every_size_tier_ships_its_variant_and_nothing_else_does(name):
    row, shipped = modalities.get(name).defaults, [path.name for path in calibration.variant_paths(name)]
    assert shipped == sorted(f"{name}@above-{side}px.json" for side, _ in row.size_tiers)


@pytest.mark.parametrize("path", [path for name in modalities.names() for path in calibration.variant_paths(name)],
                         ids=lambda path: path.name)
def test_every_shipped_variant_is_fitted_on_no_held_out_image_with_the_rows_prior_and_other_settings(path):
    from reddiff.datasets import list_samples
    from reddiff.priors import load_prior

    variant = Calibration.load(path)
    name = variant.context["modality"]
    default, row = Calibration.load(calibration.default_path(name)), modalities.get(name).defaults
    assert path.name.startswith(f"{name}@") and variant.level == 0.9
    assert not any(sample in label for label in variant.context["fitted_on"] for sample in list_samples(held_out=True))
    assert variant.context["prior"] == row.prior and variant.context["steps"] == row.steps
    assert variant.context["prior_weights"] == load_prior(row.prior).weights_sha256()
    assert calibration.settings_differing(default.context, variant.context)  # else it could never be chosen
    side = int(path.stem.split("@above-", 1)[1].removesuffix("px"))
    tier = row.for_shape((side + 1, side + 1)).as_kwargs()
    tier["t_max"] = tier["t_max"] or load_prior(row.prior).num_timesteps - 1
    assert not calibration.settings_differing(variant.context, tier)


@pytest.mark.parametrize("name", modalities.names())
def test_every_shipped_default_calibration_loads_and_was_fitted_on_no_held_out_image_with_the_shipped_row(name):
    from reddiff.datasets import list_samples

    path = calibration.default_path(name)
    if not path.is_file():
        pytest.skip(f"no default calibration shipped for {name}")
    cal, _ = calibration.resolve("default", name)
    assert cal.context["modality"] == name and cal.level == 0.9
    assert cal.proxy == modalities.get(name).calibration_proxy  # reddiff calibrate fits the same kind by default
    held_out = list_samples(held_out=True)
    assert not any(sample in label for label in cal.context["fitted_on"] for sample in held_out)
    row = modalities.get(name).defaults  # fitted with the shipped settings and prior
    assert cal.context["prior"] == row.prior and cal.context["steps"] == row.steps
    assert cal.context["lr"] == pytest.approx(row.lr)
    if row.t_max is not None:  # a calibration without t_max was fitted on the full grid
        assert cal.context.get("t_max") == row.t_max
    if row.lam_target is not None:  # another target gives other weights, so another factor
        assert cal.context["lam"] == f"auto (discrepancy, target {row.lam_target:g})"
    if "prior_weights" in cal.context:
        from reddiff.priors import load_prior

        assert cal.context["prior_weights"] == load_prior(row.prior).weights_sha256()


# -- command line -------------------------------------------------------------------------

def run(*args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


@pytest.mark.slow
def test_calibrate_then_reconstruct_from_the_command_line(tmp_path):
    truth = tmp_path / "truth.npy"
    np.save(truth, (_phantom(32) * 1000 / ct.MU_WATER - 1000).astype(np.float32))  # HU
    sino = tmp_path / "sino.h5"
    run("simulate", truth, "--modality", "ct", "--views", 12, "--unit", "HU", "--out", sino)
    refs = []
    for k in range(2):
        refs.append(tmp_path / f"ref{k}.npy")
        np.save(refs[-1], np.roll(np.load(truth), 3 * k + 2, axis=1))
    cal = tmp_path / "cal.json"
    said = run("calibrate", *refs, "--like", sino, "--out", cal, "--steps", 3, "--samples", 2, "--quiet")
    assert "std widened by" in said.output
    assert json.loads(cal.read_text())["context"]["like"] == str(sino)
    assert json.loads(cal.read_text())["proxy"] == modalities.get("ct").calibration_proxy  # by default
    run("calibrate", *refs, "--like", sino, "--out", cal, "--steps", 3, "--samples", 2, code=1)  # exists
    with_proxy = tmp_path / "proxy.json"
    run("calibrate", *refs, "--like", sino, "--out", with_proxy, "--steps", 3, "--samples", 2, "--quiet",
        "--proxy", "gradient")
    assert json.loads(with_proxy.read_text())["proxy"] == "gradient"
    out = tmp_path / "out"
    said = run("reconstruct", sino, "--calibration", cal, "--steps", 3, "--samples", 2, "--quiet", "--out", out)
    assert "warning: calibration" not in said.output  # (3 steps do not fit the data: lam='auto' says so)
    with xr.open_dataset(out / "reconstruction.nc", engine="h5netcdf") as ds:
        assert {"reconstruction_lower", "reconstruction_upper", "reconstruction_std_calibrated"} <= set(ds.data_vars)
        assert bool((ds["reconstruction_lower"] <= ds["reconstruction_upper"]).all())
    report = (out / "report.md").read_text()
    assert f"calibration ({cal})" in report and "fitted on: " in report
    said = run("reconstruct", sino, "--calibration", cal, "--steps", 4, "--samples", 2, "--quiet",
               "--out", tmp_path / "out4")
    assert "warning: calibration: steps=4 differs" in said.output


def test_calibrate_refuses_an_unknown_proxy_before_solving(tmp_path):
    said = run("calibrate", tmp_path / "ref.npy", "--like", tmp_path / "sino.h5", "--out", tmp_path / "c.json",
               "--proxy", "curvature", code=1)
    assert "curvature" in said.output and "gradient" in said.output and not (tmp_path / "c.json").exists()


def test_reconstruct_refuses_a_missing_calibration_file_before_solving(tmp_path):
    from reddiff.datasets import simulate_sinogram

    sino = simulate_sinogram(_phantom(16) * 1000 / ct.MU_WATER - 1000, tmp_path / "sino.h5", views=8, unit="HU")
    said = run("reconstruct", sino, "--calibration", tmp_path / "nope.json", "--out", tmp_path / "o", code=1)
    assert "nope.json" in said.output and not (tmp_path / "o").exists()
