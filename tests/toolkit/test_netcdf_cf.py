"""Result files the field's own tools accept: compliance-checker (CF-1.8), cf-xarray, xarray's plot.

Each modality's result layout (CT in HU on a mm grid, complex MRI on a mm grid, a sky
image in electrons with its WCS, all calibrated) is written by reddiff and then read only
by the other tools; the slow test does the same for files the pipeline writes.
"""

import json

import numpy as np
import pytest
import torch
import xarray as xr

from reddiff import Reconstruction
from reddiff.result import with_coords, with_wcs
from reddiff.uncertainty import fit_calibration

SKY_HEADER = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 250.4, "CRVAL2": 36.5, "CDELT1": -1e-4,
              "CDELT2": 1e-4, "CRPIX1": 8.0, "CRPIX2": 8.0}


def _result(modality: str) -> Reconstruction:
    """A calibrated 2-sample result laid out as ``modality``'s pipeline leaves it (before writing)."""
    channels, units = {"ct": (1, "HU"), "mri": (2, "a.u."), "astro": (1, "electron")}[modality]
    samples = torch.rand(2, channels, 12, 10, generator=torch.Generator().manual_seed(0))
    rec = Reconstruction.from_samples(samples, units=units, attrs={"config": {"steps": 2}, "modality": modality})
    rec = rec.calibrated(fit_calibration([rec], [torch.zeros(1, channels, 12, 10)]))
    if modality == "astro":
        return with_wcs(rec, SKY_HEADER)
    return with_coords(rec, spacing=(0.7, 0.6), origin=(-4.0, -3.0))


def cf_failures(path, *, at_least: int = 2) -> list:
    """compliance-checker's cf:1.8 results that failed with priority ``at_least`` (2 medium, 3 high) or more,
    plus any check that raised."""
    from compliance_checker.runner import CheckSuite

    suite = CheckSuite()
    suite.load_all_available_checkers()
    results, errors = suite.run_all(suite.load_dataset(str(path)), ["cf:1.8"], skip_checks=[])["cf:1.8"]
    failed = [f"check raised: {name}" for name in errors]

    def walk(result):
        value = result.value
        passed = value if isinstance(value, bool) else value[0] == value[1]
        if not passed and result.weight >= at_least:
            failed.append((result.weight, result.name, result.msgs))
        for child in result.children or ():
            walk(child)

    for result in results:
        walk(result)
    return failed


@pytest.fixture(params=["ct", "mri", "astro"])
def result_file(request, tmp_path):
    return request.param, _result(request.param).to_netcdf(tmp_path / "reconstruction.nc")


def test_compliance_checker_finds_no_high_or_medium_cf_failures(result_file):
    _, path = result_file
    assert cf_failures(path) == []


def test_the_command_line_checker_passes_too(result_file):
    import shutil
    import subprocess

    if shutil.which("compliance-checker") is None:
        pytest.skip("no compliance-checker command")
    _, path = result_file
    done = subprocess.run(["compliance-checker", "--test=cf:1.8", str(path)], capture_output=True, text=True)
    assert done.returncode == 0 and "All tests passed!" in done.stdout, done.stdout


def test_cf_xarray_finds_x_and_y(result_file):
    import cf_xarray  # noqa: F401  (registers ds.cf)

    _, path = result_file
    with xr.open_dataset(path) as ds:
        assert ds.cf["X"].name == "x" and ds.cf["Y"].name == "y"


def test_a_plain_plot_of_the_mean_is_an_image(result_file):
    from matplotlib.collections import QuadMesh
    from matplotlib.figure import Figure

    modality, path = result_file
    with xr.open_dataset(path) as ds:
        assert callable(ds.mean) and callable(ds.std)  # the methods, not variables
        artist = ds["reconstruction_mean"].plot(ax=Figure().add_subplot())
        assert isinstance(artist, QuadMesh)
        if modality == "mri":  # complex: the magnitude, with both parts kept
            np.testing.assert_allclose(ds["reconstruction_mean"], np.hypot(ds["reconstruction_mean_real"],
                                                                           ds["reconstruction_mean_imag"]),
                                       rtol=1e-6)


def test_units_are_udunits_and_say_reddiff_s_own(result_file):
    modality, path = result_file
    with xr.open_dataset(path) as ds:
        mean = ds["reconstruction_mean"].attrs
        expected = {"ct": ("1", "Hounsfield"), "mri": ("1", "arbitrary"), "astro": ("count", "electrons")}[modality]
        assert (mean["units"], expected[1] in mean["long_name"]) == (expected[0], True)
        if modality == "astro":
            assert ds["ra"].attrs["units"] == "degree" and ds["ra"].attrs["long_name"].startswith("right ascension")


def test_every_layout_reads_back_exactly(result_file):
    modality, path = result_file
    assert Reconstruction.from_netcdf(path).dataset.identical(_result(modality).dataset)


def test_a_file_from_before_the_renaming_still_reads(tmp_path):
    """Files written before this layout: ``mean``/``std`` with a ``channel`` axis, rows top to bottom."""
    from reddiff.datasets import file_kind

    rec = with_coords(Reconstruction.from_samples(torch.rand(2, 1, 4, 5), units="HU"), spacing=(0.5, 0.5))
    old = rec.dataset.copy()
    old["mean"].attrs = {"units": "1", "reddiff_units": "HU", "long_name": "posterior mean image (Hounsfield units)"}
    old["y"].attrs.update(axis="Y", comment="rows run top to bottom (y grows down the image): draw with "
                                            "ds['mean'].isel(channel=0).plot(yincrease=False)")
    old.attrs.update(Conventions="CF-1.8", title="RED-Diff reconstruction")
    path = tmp_path / "old.nc"
    old.to_netcdf(path, engine="h5netcdf")
    back = Reconstruction.from_netcdf(path)
    np.testing.assert_array_equal(back.mean.values, rec.mean.values)
    assert back.mean.attrs["units"] == "HU" and back.dataset["y"].attrs == rec.dataset["y"].attrs
    assert file_kind(path) == "result" == file_kind(rec.to_netcdf(tmp_path / "new.nc"))


@pytest.mark.slow
def test_pipeline_files_pass_and_name_the_measurement(tmp_path):
    """Every modality through load_problem, reconstruct and save_outputs (2 steps, 2 samples)."""
    from reddiff import load_problem, reconstruct
    from reddiff.datasets import read_fits, sample_image, sample_path, simulate_fastmri, simulate_sinogram, \
        simulate_sky
    from reddiff.modalities.astro import _sky_cutout
    from reddiff.operators import telescope
    from reddiff.pipeline import save_outputs

    hu = sample_image("ct_small").array[::4, ::4]
    np.save(tmp_path / "reference.npy", hu)
    files = {
        "ct": simulate_sinogram(hu, tmp_path / "sino.h5", views=12, I0=1e5, pixel_spacing_mm=4 * 0.661468),
        "mri": simulate_fastmri(sample_image("mr_small"), tmp_path / "k.h5", acceleration=4.0, center_fraction=0.16,
                                coils=4, sigma=0.01),
        "astro": simulate_sky(read_fits(_sky_cutout(sample_path("m13"), tmp_path / "clean.fits", size=32)),
                              tmp_path / "obs.fits", tmp_path / "obs_psf.fits", psf=telescope.moffat_psf(2.0)),
    }
    for modality, measurement in files.items():
        problem = load_problem(measurement)
        result = reconstruct(problem, steps=2, n_samples=2, seed=0, progress=False)
        path = save_outputs(result, problem, tmp_path / modality, formats=("netcdf",))["netcdf"]
        assert cf_failures(path) == [], modality
        with xr.open_dataset(path) as ds:
            assert ds.attrs["source_file"] == str(measurement) and json.loads(ds.attrs["config"])["steps"] == 2
            assert ds["reconstruction_mean"].dims == ("y", "x")
