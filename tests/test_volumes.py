"""Volumes: every slice of a multi-slice file in one run, one result folder with a slice axis
(NetCDF) and NIfTI volumes; any slice reproduces alone."""

import nibabel as nib
import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from reddiff.cli import app
from reddiff.datasets import read_image, sample_path, simulate_fastmri
from reddiff.pipeline import slice_indices

runner = CliRunner()
FAST = ["--steps", "2", "--samples", "1", "--quiet"]


@pytest.fixture(scope="module")
def kspace(tmp_path_factory):
    volume = np.clip(read_image(sample_path("anatomical")).array[10:13, :32, :32], 0, None)
    return simulate_fastmri(volume, tmp_path_factory.mktemp("vol") / "k.h5", coils=2, acceleration=2.0,
                            center_fraction=0.25, spacing_mm=(2.0, 2.0))


def _run(*args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def test_slice_specs(kspace):
    assert slice_indices(kspace) == [0, 1, 2]
    assert slice_indices(kspace, "1:") == [1, 2] and slice_indices(kspace, "2") == [2]
    with pytest.raises(Exception, match="select nothing"):
        slice_indices(kspace, "5:9")
    with pytest.raises(Exception, match="expected all, N or A:B"):
        slice_indices(kspace, "one")


def test_a_whole_file_is_one_run_and_any_slice_reproduces_alone(kspace, tmp_path):
    out = tmp_path / "all"
    result = _run("reconstruct", kspace, *FAST, "--format", "netcdf,nifti,png", "--out", out)
    assert "3 slices" in result.output
    with xr.open_dataset(out / "reconstruction.nc", engine="h5netcdf") as ds:
        assert ds["mean"].dims == ("slice", "channel", "y", "x") and list(ds["slice"].values) == [0, 1, 2]
        assert len(ds.attrs["psnr_db_per_slice"]) == 3
        middle = ds["mean"].sel(slice=1).values
    image = nib.load(out / "reconstruction_mean.nii.gz")
    assert image.shape == (32, 32, 3) and tuple(map(float, image.header.get_zooms()))[:2] == (2.0, 2.0)
    assert (out / "report.md").is_file() and (out / "uncertainty.png").is_file()
    alone = tmp_path / "one"
    _run("reconstruct", kspace, *FAST, "--slices", "1", "--format", "netcdf", "--out", alone)
    with xr.open_dataset(alone / "reconstruction.nc", engine="h5netcdf") as ds:
        np.testing.assert_allclose(ds["mean"].values, middle, rtol=1e-5, atol=1e-6)


def test_volume_formats_are_checked_before_solving(kspace, tmp_path):
    result = _run("reconstruct", kspace, *FAST, "--format", "netcdf,dicom", "--out", tmp_path / "x", code=1)
    assert "not available for 3 slices" in result.output
    assert not (tmp_path / "x").exists()
