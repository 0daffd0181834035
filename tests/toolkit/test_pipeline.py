"""The pipeline: problems from files and simulations, units, outputs all or nothing."""

import re

import numpy as np
import pytest
import torch

from reddiff import DEFAULTS, InputError, Reconstruction, load_problem, problem_from_measurement, reconstruct
from reddiff.datasets import (read_fastmri, read_sinogram, sample_image, sample_path, simulate_fastmri,
                              simulate_sinogram, simulate_sky)
from reddiff.modalities import defaults_for
from reddiff.modalities.mri import estimate_kspace_noise
from reddiff.operators import ct, mri, telescope
from reddiff.pipeline import prior_for, save_outputs, summary_line


@pytest.fixture(scope="module")
def ct_file(tmp_path_factory):
    hu = sample_image("ct_small").array[::4, ::4]  # 32x32 at 2.6 mm
    return simulate_sinogram(hu, tmp_path_factory.mktemp("ct") / "sino.h5", views=12, I0=1e5,
                             pixel_spacing_mm=4 * 0.661468)


@pytest.fixture(scope="module")
def mri_file(tmp_path_factory):
    return simulate_fastmri(sample_image("mr_small"), tmp_path_factory.mktemp("mri") / "k.h5",
                            acceleration=4.0, center_fraction=0.16, coils=8, sigma=0.01)


@pytest.fixture(scope="module")
def sky_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sky")
    sky = sample_image("m13").array[134:166, 134:166]
    return simulate_sky(sky, folder / "obs.fits", folder / "obs_psf.fits", psf=telescope.moffat_psf(2.0))


def test_defaults_table_has_every_modality_and_rejects_others():
    assert set(DEFAULTS) == {"ct", "mri", "astro"}
    for modality, row in DEFAULTS.items():
        assert row.prior == modality and row.steps > 0 and row.lr > 0 and row.lam >= 0
        assert not {"prior", "noise_reference"} & set(row.as_kwargs())
        assert row.lam_for(row.noise_reference) == pytest.approx(row.lam)
        assert row.lam_for(10 * row.noise_reference) == pytest.approx(row.lam / 10)
        chosen = row.as_kwargs(noise=10 * row.noise_reference)["lam"]  # pilots around the scaled weight
        assert chosen.start == pytest.approx(row.lam / 10) and chosen.target == row.lam_target
    with pytest.raises(InputError, match="ct, mri, astro"):
        defaults_for("pet")


def test_ct_problem_from_a_sinogram_file_matches_the_file(ct_file):
    problem = load_problem(ct_file)
    sino = read_sinogram(ct_file)
    assert problem.modality == "ct" and problem.truth is None
    assert problem.y.shape == (1, 1, sino.sinogram.shape[1], sino.sinogram.shape[0])  # (detectors, views)
    assert torch.equal(problem.y[0, 0].T, torch.from_numpy(sino.sinogram))
    assert repr(problem.physics.data_term) == "TransmissionLikelihood(I0=100000)"
    # the physics reproduces the mean of the counts: Poisson noise only (|z| small on average)
    with_truth = load_problem(ct_file, reference=_ct_reference(ct_file))
    expected = 1e5 * torch.exp(-with_truth.physics.A(with_truth.truth))
    z = (with_truth.y - expected) / expected.sqrt()
    assert abs(float(z.mean())) < 0.1 and 0.8 < float(z.std()) < 1.2


def _ct_reference(ct_file):
    path = ct_file.with_name("reference.npy")
    np.save(path, sample_image("ct_small").array[::4, ::4])
    return path


def test_mri_problem_from_a_fastmri_file(mri_file):
    problem = load_problem(mri_file)
    data = read_fastmri(mri_file)
    assert problem.modality == "mri" and problem.y.shape == (1, 2, 8, 64, 64)
    assert problem.physics.data_term.sigma == pytest.approx(0.01)  # the file's own sigma attribute
    assert problem.truth is not None and problem.truth.shape == (1, 2, 64, 64)  # reconstruction_rss
    assert problem.image_scale == pytest.approx(float(data.target.max()), rel=0.15)
    assert float(problem.measurement_image.abs().max()) > 0 and bool(torch.isfinite(problem.baseline).all())


def test_mri_sense_baseline_beats_zero_filling_with_known_maps():
    image = torch.tensor(sample_image("mr_small").array)
    m = mri.simulate((image / image.max())[None, None], acceleration=4, center_fraction=0.16, coils=8, seed=0)
    problem = problem_from_measurement(m, "mri")
    error = {name: float((x.pow(2).sum(1).sqrt() - m.x_true[:, 0]).norm())
             for name, x in (("zero", problem.measurement_image), ("sense", problem.baseline))}
    assert error["sense"] < 0.8 * error["zero"]  # measured 2.3 vs 3.2


def test_mri_prior_is_rescaled_to_the_data_and_left_alone_otherwise(mri_file):
    problem = load_problem(mri_file)
    problem.image_scale = 250.0
    prior = prior_for(problem)
    assert prior.transform.to_model(torch.tensor(250.0)) == pytest.approx(1.0)
    assert prior_for(problem, "ct").transform.to_config()["kind"] == "affine"  # not an identity prior: untouched
    assert defaults_for("mri").prior == "mri" and prior.channels == 2


def test_sky_prior_moves_its_stretch_to_a_frame_on_a_pedestal_and_leaves_trained_skies_alone():
    from reddiff import modalities
    from reddiff.priors.recipes import VARIED_SKY_LEVELS, varied_sky

    astro, field = modalities.get("astro"), varied_sky(32, seed=3)
    dark = astro.canonical_problem(image=field, seed=0)
    assert prior_for(dark).transform.to_config() == prior_for(dark, "astro").transform.to_config()
    assert prior_for(dark).transform.background == 0.0  # the shipped stretch: this sky was trained on
    lifted = astro.canonical_problem(image=field + 3000.0, seed=0)
    moved = prior_for(lifted).transform
    floor = float(torch.quantile(lifted.init.flatten(), 0.05))
    assert moved.background == pytest.approx(floor - VARIED_SKY_LEVELS[1], abs=2.0)
    assert 2500 < moved.background < 3000
    shipped = prior_for(dark).transform.to_config()  # the floor maps where the brightest trained sky did
    assert {k: v for k, v in moved.to_config().items() if k != "background"} == \
        {k: v for k, v in shipped.items() if k != "background"}
    assert float(moved.to_model(torch.tensor(floor))) == pytest.approx(
        float(prior_for(dark).transform.to_model(torch.tensor(VARIED_SKY_LEVELS[1]))), abs=0.01)


def test_kspace_noise_estimate_is_close_on_pure_noise_and_never_below_with_signal():
    g = torch.Generator().manual_seed(1)
    noise = 0.05 * torch.complex(torch.randn(4, 64, 64, generator=g), torch.randn(4, 64, 64, generator=g))
    mask = torch.ones(64, 64)
    assert estimate_kspace_noise(noise, mask) == pytest.approx(0.05, rel=0.1)
    image = torch.zeros(64, 64)
    image[16:48, 16:48] = 1.0
    kspace = torch.fft.fftshift(torch.fft.fft2(image, norm="ortho")).expand(4, 64, 64) + noise
    assert estimate_kspace_noise(kspace, mask) >= 0.045
    with pytest.raises(InputError, match="zero"):
        estimate_kspace_noise(torch.zeros(1, 16, 16, dtype=torch.complex64), torch.ones(16, 16))


def test_astro_problem_reads_psf_card_gain_and_sky(sky_file):
    problem = load_problem(sky_file)
    term = problem.physics.data_term
    assert (term.background, term.read_noise) == (10.0, 3.0)  # SKYLEVEL and RDNOISE cards
    assert problem.physics.filter.shape[-2:] == telescope.moffat_psf(2.0).shape
    missing = sky_file.with_name("nopsf.fits")
    from astropy.io import fits

    with fits.open(sky_file) as hdul:
        header = hdul[0].header.copy()
        del header["PSFFILE"]
        fits.PrimaryHDU(hdul[0].data, header=header).writeto(missing)
    with pytest.raises(InputError, match="--psf"):
        load_problem(missing)
    assert load_problem(missing, psf=sky_file.with_name("obs_psf.fits")).modality == "astro"


def test_modality_must_agree_with_the_file(ct_file):
    with pytest.raises(InputError, match="X-ray CT measurement.*not mri"):
        load_problem(ct_file, modality="mri")
    with pytest.raises(InputError, match="not a measurement"):
        load_problem(sample_path("shepp_logan"))


def test_reference_of_the_wrong_shape_is_refused(ct_file):
    with pytest.raises(InputError, match="reconstruction grid"):
        load_problem(ct_file, reference=sample_path("ct_small"))  # 128x128 vs the 32x32 grid


def test_ct_result_is_in_hu_with_std_scaled_not_shifted():
    mu = ct.hu_to_mu(torch.tensor(sample_image("ct_small").array[::8, ::8]).clamp_min(-1000))[None, None]
    problem = problem_from_measurement(ct.simulate(mu, views=8, I0=1e5, pixel_spacing_mm=5.3, seed=0), "ct")
    result = reconstruct(problem, steps=3, n_samples=2, seed=0)
    assert result.mean.attrs["units"] == "HU" and result.std.attrs["units"] == "HU"
    assert -1100 < float(result.mean.mean()) < 1500
    assert float(result.std.min()) >= 0
    assert {"psnr_db", "baseline_psnr_db", "modality", "baseline"} <= set(result.dataset.attrs)
    assert "PSNR" in summary_line(result) and "FBP" in summary_line(result)


def test_in_units_maps_images_affinely_and_spreads_by_the_scale():
    samples = torch.tensor([1.0, 3.0, 5.0]).view(3, 1, 1, 1)
    rec = Reconstruction.from_samples(samples, keep_samples=True)
    hu = rec.in_units(scale=-2.0, offset=10.0, units="HU")
    assert hu.mean.item() == pytest.approx(4.0) and hu.std.item() == pytest.approx(2 * rec.std.item())
    assert hu.samples.values.ravel().tolist() == [8.0, 4.0, 0.0]
    assert np.allclose(hu.dataset["quantiles"].values.ravel(), sorted(-2 * rec.dataset["quantiles"].values.ravel()
                                                                      + 10)[::-1])


def test_save_outputs_is_all_or_nothing(tmp_path, ct_file, monkeypatch):
    problem = load_problem(ct_file)
    result = reconstruct(problem, steps=2, n_samples=2, seed=0)
    with pytest.raises(InputError, match="DICOM output needs"):
        save_outputs(result, problem, tmp_path / "a", formats=("netcdf", "dicom"))
    with pytest.raises(InputError, match="unknown output format"):
        save_outputs(result, problem, tmp_path / "a", formats=("netcdf", "jpeg"))
    import reddiff.report

    def broken(*args, **kwargs):
        raise RuntimeError("figure failed")

    first = save_outputs(result, problem, tmp_path / "c", formats=("netcdf",))
    before = {p.name: p.read_bytes() for p in (tmp_path / "c").iterdir()}
    monkeypatch.setattr(reddiff.report, "write_report", broken)
    with pytest.raises(RuntimeError):
        save_outputs(result, problem, tmp_path / "b", formats=("netcdf", "png"))
    with pytest.raises(RuntimeError):  # a failed overwrite keeps the earlier result whole
        save_outputs(result, problem, tmp_path / "c", formats=("netcdf", "png"), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no b, no staging folder, no lock
    assert {p.name: p.read_bytes() for p in (tmp_path / "c").iterdir()} == before
    monkeypatch.undo()
    with pytest.raises(InputError, match="--overwrite"):
        save_outputs(result, problem, tmp_path / "c")
    written = save_outputs(result, problem, tmp_path / "c", overwrite=True)
    assert {"netcdf", "png", "report"} <= set(written) and all(p.exists() for p in written.values())
    assert set(first) < set(written)
    assert Reconstruction.from_netcdf(written["netcdf"]).mean.attrs["units"] == "HU"
    with pytest.raises(InputError, match="sequence of names"):
        save_outputs(result, problem, tmp_path / "d", formats="netcdf")


def test_magnitude_mri_reference_takes_the_phase_of_the_mean(mri_file):
    from reddiff.pipeline import reference_for

    problem = load_problem(mri_file)
    result = reconstruct(problem, steps=3, n_samples=2, seed=0)
    truth = reference_for(result, problem)
    mean = result.tensor("mean")
    magnitude = lambda x: x.pow(2).sum(1).sqrt()  # noqa: E731
    assert torch.allclose(magnitude(truth), problem.truth[:, 0].abs(), atol=1e-6)
    # the complex error is then the magnitude error: phase is not counted as error
    assert torch.allclose(magnitude(mean - truth), (magnitude(mean) - magnitude(truth)).abs(), atol=1e-5)
    assert result.mean.attrs["units"] == "a.u."


def test_default_lam_follows_the_noise_and_a_given_lam_is_kept():
    from reddiff.pipeline import noise_level

    mu = ct.hu_to_mu(torch.tensor(sample_image("ct_small").array[::8, ::8]).clamp_min(-1000))[None, None]
    quiet, loud = (problem_from_measurement(ct.simulate(mu, views=8, I0=I0, pixel_spacing_mm=5.3, seed=0), "ct")
                   for I0 in (1e6, 1e4))
    assert noise_level(quiet) == pytest.approx(1e-3) and noise_level(loud) == pytest.approx(1e-2)
    import json

    configs = [json.loads(reconstruct(p, steps=1, n_samples=1).dataset.attrs["config"]) for p in (quiet, loud)]
    starts = [c["lam_choice"]["start"] for c in configs]  # lam="auto": pilots around the noise-scaled weight
    assert starts[0] == pytest.approx(10 * starts[1])
    assert all(c["lam"] > 0 and len(c["lam_choice"]["pilot_ratios"]) == 3 for c in configs)
    assert json.loads(reconstruct(loud, steps=1, n_samples=1, lam=7.0).dataset.attrs["config"])["lam"] == 7.0


def test_sky_frames_in_adu_are_converted_with_the_gain_and_electrons_are_not(sky_file, tmp_path):
    from astropy.io import fits

    electrons = load_problem(sky_file)
    with fits.open(sky_file) as hdul:
        header, data = hdul[0].header.copy(), hdul[0].data
    for unit, name in (("electron", "e.fits"), ("adu", "adu.fits")):
        header["BUNIT"], header["GAIN"] = unit, 2.0
        header["PSFFILE"] = str(sky_file.with_name("obs_psf.fits"))
        fits.PrimaryHDU(data if unit == "electron" else data / 2.0, header=header).writeto(tmp_path / name)
        problem = load_problem(tmp_path / name)
        assert torch.allclose(problem.y, electrons.y, rtol=1e-5)  # the same electrons either way
        assert problem.physics.data_term.read_noise == 3.0  # RDNOISE is in electrons: not scaled
    del header["GAIN"]
    fits.PrimaryHDU(data, header=header).writeto(tmp_path / "nogain.fits")
    with pytest.raises(InputError, match="no gain"):
        load_problem(tmp_path / "nogain.fits")


def _sky_extension_in_adu(sky_file, path):
    """The simulated frame halved into ADU in a ``SCI`` extension, without GAIN, RDNOISE or PSFFILE."""
    from astropy.io import fits

    with fits.open(sky_file) as hdul:
        header, data = hdul[0].header.copy(), hdul[0].data
    for key in ("GAIN", "RDNOISE", "PSFFILE"):
        del header[key]
    header["BUNIT"] = "adu"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data / 2.0, header=header, name="SCI")]).writeto(path)
    return path


def test_astro_options_give_gain_read_noise_psf_model_and_extension(sky_file, tmp_path):
    frame = _sky_extension_in_adu(sky_file, tmp_path / "mef.fits")
    with pytest.raises(InputError, match=r"\[--gain\] .*no gain card"):
        load_problem(frame, psf="moffat:2")
    electrons = load_problem(sky_file)
    for extension in (None, "SCI", "1", 1):
        problem = load_problem(frame, gain=2.0, read_noise=5.0, psf="moffat:2", extension=extension)
        assert torch.allclose(problem.y, electrons.y, rtol=1e-5)  # ADU x --gain
        assert problem.physics.data_term.read_noise == 5.0  # --read-noise replaces the estimate
        assert torch.allclose(problem.physics.filter[0, 0], telescope.moffat_psf(2.0))
        assert (problem.source.header["GAIN"], problem.source.header["RDNOISE"], problem.source.hdu) == (2.0, 5.0, 1)
    gaussian = load_problem(frame, gain=2.0, psf="gaussian:1.5")
    assert torch.allclose(gaussian.physics.filter[0, 0], telescope.gaussian_psf(1.5))
    assert gaussian.physics.data_term.read_noise != 5.0  # no card, no option: estimated from the frame
    replaced = load_problem(sky_file, read_noise=0.5)  # the file's RDNOISE = 3 is replaced
    assert replaced.physics.data_term.read_noise == 0.5 and replaced.source.header["RDNOISE"] == 0.5


@pytest.mark.parametrize("options, flag, message", [
    ({"gain": -1.0}, "--gain", "above 0"),
    ({"gain": float("nan")}, "--gain", "finite"),
    ({"read_noise": -0.1}, "--read-noise", "at least 0"),
    ({"read_noise": float("inf")}, "--read-noise", "finite"),
    ({"psf": "airy:3"}, "--psf", "neither a FITS file nor a model"),
    ({"psf": "missing_psf.fits"}, "--psf", "neither a FITS file"),
    ({"psf": "moffat:"}, "--psf", "gives no FWHM"),
    ({"psf": "gaussian:wide"}, "--psf", "finite number above 0"),
    ({"psf": "moffat:0"}, "--psf", "above 0"),
    ({"psf": "moffat:40"}, "--psf", "as wide as the frame"),
    ({"extension": 0}, "--extension", "holds no image data"),
    ({"extension": "7"}, "--extension", "no HDU 7"),
    ({"extension": "ERR"}, "--extension", "no HDU 'ERR'"),
])
def test_bad_astro_options_are_named(sky_file, tmp_path, options, flag, message):
    frame = _sky_extension_in_adu(sky_file, tmp_path / "mef.fits")
    with pytest.raises(InputError, match=re.escape(f"[{flag}]") + ".*" + re.escape(message)):
        load_problem(frame, **{"gain": 2.0, "psf": "moffat:2", **options})


def test_gain_for_a_frame_in_electrons_is_refused(sky_file):
    with pytest.raises(InputError, match=r"\[--gain\] .*in electrons already"):
        load_problem(sky_file, gain=2.0)


def test_unknown_solver_settings_are_named(ct_file):
    with pytest.raises(InputError, match="unknown solver setting.*bogus"):
        reconstruct(load_problem(ct_file), steps=1, n_samples=1, bogus=1)


def test_a_dicom_mr_reference_is_scaled_to_the_measurement_before_any_metric(mri_file):
    """MR_small.dcm holds raw scanner values (up to ~hundreds); the k-space file was simulated from it
    at magnitude 1: the reference must become the truth on the file's scale, not unscaled."""
    from pydicom.data import get_testdata_file

    from reddiff.datasets import read_dicom

    dicom = get_testdata_file("MR_small.dcm")
    raw = float(np.abs(read_dicom(dicom).array).max())
    problem = load_problem(mri_file, reference=dicom)
    truth = problem.truth[:, 0]
    assert raw > 100 and float(truth.abs().max()) == pytest.approx(1.0, rel=0.05)
    scale = problem.truth.abs().max() / raw
    np.testing.assert_allclose(problem.truth[0, 0].numpy(), read_dicom(dicom).array[0] * float(scale), rtol=1e-5)
