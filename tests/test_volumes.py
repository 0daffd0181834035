"""Volumes: every slice of a multi-slice file in one run, one result folder with a slice axis
(NetCDF), NIfTI volumes, a DICOM series per product (CT measured from a DICOM series) and
FITS cubes; any slice reproduces alone; what is not one volume is refused naming the file."""

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
        assert ds["reconstruction_mean"].dims == ("slice", "y", "x") and list(ds["slice"].values) == [0, 1, 2]
        assert len(ds.attrs["psnr_db_per_slice"]) == 3
        middle = ds["reconstruction_mean"].sel(slice=1).values
    image = nib.load(out / "reconstruction_mean.nii.gz")
    assert image.shape == (32, 32, 3) and tuple(map(float, image.header.get_zooms()))[:2] == (2.0, 2.0)
    assert (out / "report.md").is_file() and (out / "uncertainty.png").is_file()
    alone = tmp_path / "one"
    _run("reconstruct", kspace, *FAST, "--slices", "1", "--format", "netcdf", "--out", alone)
    with xr.open_dataset(alone / "reconstruction.nc", engine="h5netcdf") as ds:
        np.testing.assert_allclose(ds["reconstruction_mean"].values, middle, rtol=1e-5, atol=1e-6)


def test_volume_formats_are_checked_before_solving(kspace, tmp_path):
    result = _run("reconstruct", kspace, *FAST, "--format", "netcdf,dicom", "--out", tmp_path / "x", code=1)
    assert "not available for 3 slices" in result.output and "needs the DICOM series" in result.output
    assert not (tmp_path / "x").exists()
    result = _run("reconstruct", kspace, *FAST, "--format", "netcdf,fits", "--out", tmp_path / "x", code=1)
    assert "fits output is not available for mri" in result.output and not (tmp_path / "x").exists()


# -- CT volumes from a DICOM series, and DICOM series out ------------------------------

STEPS = ["--steps", "2", "--samples", "2", "--calibration", "none", "--quiet"]
Z0, DZ = -75.0, 2.5


def _ct_series(folder, *, z=(Z0, Z0 + DZ, Z0 + 2 * DZ), size=32, change=None):
    """Single-frame CT files of one series: pydicom's CT_small reduced to ``size`` x ``size``
    (pixel spacing scaled to match), slice k shifted by k columns, at heights ``z``, written
    in an order that is not the slice order; ``change(k, ds)`` edits file k before it is saved."""
    import copy

    import pydicom
    from pydicom.data import get_testdata_file

    folder.mkdir()
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    step = source.Rows // size
    pixels = source.pixel_array[::step, ::step]
    uid = pydicom.uid.generate_uid()
    for k, height in enumerate(z):
        ds = copy.deepcopy(source)
        ds.Rows = ds.Columns = size
        ds.PixelSpacing = [float(v) * step for v in source.PixelSpacing]
        ds.ImagePositionPatient, ds.SliceLocation = [-158.1, -179.0, height], height
        ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.InstanceNumber = uid, pydicom.uid.generate_uid(), k + 1
        ds.PixelData = np.roll(pixels, k, axis=1).astype(pixels.dtype).tobytes()
        if change is not None:
            change(k, ds)
        ds.save_as(folder / f"{'cab'[k % 3]}{k}.dcm")
    return folder


@pytest.fixture(scope="module")
def series_sinogram(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ct")
    sino = folder / "sino.h5"
    _run("simulate", _ct_series(folder / "series"), "--modality", "ct", "--views", 16, "--out", sino)
    return sino


def test_a_dicom_series_becomes_one_sinogram_file_with_its_geometry(series_sinogram):
    from reddiff.datasets import read_dicom, read_sinogram

    whole = read_sinogram(series_sinogram)
    assert whole.sinogram.shape[:2] == (3, 16) and whole.slice_spacing_mm == DZ
    np.testing.assert_allclose(whole.series.positions[:, 2], [Z0, Z0 + DZ, Z0 + 2 * DZ])
    source = read_dicom(series_sinogram.parent / "series")
    assert [h.SOPInstanceUID for h in whole.series.headers] == [h.SOPInstanceUID for h in source.headers]
    assert slice_indices(series_sinogram) == [0, 1, 2]
    last = read_sinogram(series_sinogram, slice_index=2)
    np.testing.assert_array_equal(last.sinogram, whole.sinogram[2])
    assert last.series.positions.tolist() == [[-158.1, -179.0, Z0 + 2 * DZ]]
    assert not np.allclose(whole.sinogram[0], whole.sinogram[1])  # the slices differ (shifted content, own noise)


def test_a_series_volume_gives_netcdf_dicom_series_and_nifti_in_patient_coordinates(series_sinogram, tmp_path):
    import pydicom

    from reddiff.datasets import read_dicom

    out = tmp_path / "out"
    _run("reconstruct", series_sinogram, *STEPS, "--format", "netcdf,dicom,nifti", "--out", out)
    with xr.open_dataset(out / "reconstruction.nc", engine="h5netcdf") as ds:
        assert ds.sizes["slice"] == 3 and ds["reconstruction_mean"].dims == ("slice", "y", "x")
        # files store rows bottom first with y pointing up: the top row's centre is at y = +179 mm
        assert float(ds["x"][0]) == pytest.approx(-158.1) and float(ds["y"][-1]) == pytest.approx(179.0)
        mean = ds["reconstruction_mean"].values[:, ::-1]
    source = read_dicom(series_sinogram.parent / "series")
    uids = set()
    for name in ("mean", "std"):
        files = sorted((out / f"reconstruction_{name}").iterdir())
        back = read_dicom(out / f"reconstruction_{name}")  # one series, sorted along its normal
        assert back.slice_spacing == pytest.approx(DZ) and back.pixel_spacing == source.pixel_spacing
        np.testing.assert_allclose(back.positions, source.positions, atol=1e-4)
        if name == "std":  # one Parametric Map, a frame per slice
            assert [f.name for f in files] == ["0001.dcm"]
            pm = pydicom.dcmread(files[0])
            assert pm.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30" and pm.NumberOfFrames == 3
            assert pm.FrameOfReferenceUID == source.headers[0].FrameOfReferenceUID
            uids.add(pm.SeriesInstanceUID)
            continue
        assert [f.name for f in files] == ["0001.dcm", "0002.dcm", "0003.dcm"]
        headers = [pydicom.dcmread(f) for f in files]
        assert [int(h.InstanceNumber) for h in headers] == [1, 2, 3]
        np.testing.assert_allclose([h.ImagePositionPatient for h in headers], source.positions, atol=1e-4)
        np.testing.assert_allclose([float(h.SliceLocation) for h in headers], [Z0, Z0 + DZ, Z0 + 2 * DZ])
        assert len({h.SeriesInstanceUID for h in headers}) == 1 and len({h.SOPInstanceUID for h in headers}) == 3
        assert {h.FrameOfReferenceUID for h in headers} == {source.headers[0].FrameOfReferenceUID}
        uids.add(headers[0].SeriesInstanceUID)
        slope = max(float(h.RescaleSlope) for h in headers)
        assert np.abs(back.array - mean).max() <= slope / 2 + 1e-3
    assert len(uids | {source.headers[0].SeriesInstanceUID}) == 3  # new series, one per product
    image = nib.load(out / "reconstruction_mean.nii.gz")
    assert image.shape == (32, 32, 3)
    (dy, dx), corner = source.pixel_spacing, source.positions
    for i, j, k in ((0, 0, 0), (5, 7, 2), (31, 31, 1)):  # NIfTI voxel (column, row, slice)
        lps = corner[k] + i * dx * source.orientation[:3] + j * dy * source.orientation[3:]
        np.testing.assert_allclose(image.affine @ [i, j, k, 1], [-lps[0], -lps[1], lps[2], 1], atol=1e-3)
    np.testing.assert_allclose(np.asarray(image.dataobj)[:, :, 1].T, mean[1], rtol=1e-5, atol=1e-3)


def test_one_slice_of_a_series_file_writes_dicom_in_its_place(series_sinogram, tmp_path):
    import pydicom

    out = tmp_path / "one"
    _run("reconstruct", series_sinogram, *STEPS, "--slices", "1", "--format", "dicom", "--out", out)
    mean = pydicom.dcmread(out / "reconstruction_mean.dcm")
    assert [float(v) for v in mean.ImagePositionPatient] == pytest.approx([-158.1, -179.0, Z0 + DZ])


@pytest.mark.parametrize("change, field, named", [
    (lambda k, ds: setattr(ds, "SeriesInstanceUID", "1.2.3") if k == 1 else None, "SeriesInstanceUID", "a1.dcm"),
    (lambda k, ds: setattr(ds, "ImagePositionPatient", [-158.1, -179.0, Z0 + 4 * DZ]) if k == 2 else None,
     "ImagePositionPatient", "b2.dcm"),
    (lambda k, ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 0.8, 0.6]) if k == 1 else None,
     "ImageOrientationPatient", "a1.dcm"),
    (lambda k, ds: setattr(ds, "PixelSpacing", [3.0, 3.0]) if k == 2 else None, "PixelSpacing", "b2.dcm"),
], ids=["mixed series", "uneven spacing", "orientation", "pixel spacing"])
def test_a_series_that_is_not_one_volume_is_refused_naming_the_file(tmp_path, change, field, named):
    out = tmp_path / "sino.h5"
    result = _run("simulate", _ct_series(tmp_path / "series", change=change), "--modality", "ct", "--out", out,
                  code=1)
    assert f"[{field}]" in result.output and named in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_a_slice_of_another_size_is_refused_naming_the_file(tmp_path):
    folder = _ct_series(tmp_path / "series")
    odd = _ct_series(tmp_path / "odd", z=(Z0 + 3 * DZ,), size=16)
    import pydicom

    ds = pydicom.dcmread(next(odd.iterdir()))
    ds.SeriesInstanceUID = pydicom.dcmread(next(folder.iterdir())).SeriesInstanceUID
    ds.save_as(folder / "odd.dcm")
    result = _run("simulate", folder, "--modality", "ct", "--out", tmp_path / "s.h5", code=1)
    assert "odd.dcm" in result.output and "differ in size" in result.output


def test_dicom_volume_output_needs_the_series_and_is_refused_before_solving(tmp_path):
    stack = tmp_path / "stack.npy"
    np.save(stack, np.stack([read_image(sample_path("ct_small")).array[::4, ::4]] * 3))
    sino = tmp_path / "s.h5"
    _run("simulate", stack, "--modality", "ct", "--unit", "HU", "--views", 8, "--out", sino)
    assert slice_indices(sino) == [0, 1, 2]
    result = _run("reconstruct", sino, *STEPS, "--format", "netcdf,dicom", "--out", tmp_path / "x", code=1)
    assert "needs the DICOM series" in result.output and "not available for 3 slices" in result.output
    assert "RED-Diff" not in result.output and not (tmp_path / "x").exists()


# -- FITS cubes ----------------------------------------------------------------------------

def _sky_cube(folder, *, planes=3, size=32, psf_planes=None):
    """A FITS cube of ``planes`` blurred, noisy star fields in electrons with a 3-D WCS (RA, Dec,
    frequency) and a PSFFILE card naming its Moffat PSF (a cube of ``psf_planes`` if given)."""
    import torch
    from astropy.io import fits
    from astropy.wcs import WCS

    from reddiff.operators import telescope

    rng = np.random.default_rng(3)
    wcs = WCS(naxis=3)
    wcs.wcs.ctype, wcs.wcs.cunit = ["RA---TAN", "DEC--TAN", "FREQ"], ["deg", "deg", "Hz"]
    wcs.wcs.crval, wcs.wcs.crpix, wcs.wcs.cdelt = [150.1, 2.2, 1.4e9], [size / 2, size / 2, 1], [-1e-4, 1e-4, 1e6]
    psf = telescope.moffat_psf(3.0)
    frames = []
    for k in range(planes):
        sky = np.full((size, size), 5.0, np.float32)
        sky[tuple(rng.integers(4, size - 4, (2, 6)))] += rng.uniform(500, 2000, 6).astype(np.float32)
        measured = telescope.simulate(torch.from_numpy(sky)[None, None], psf=psf, background=10.0, read_noise=3.0,
                                      seed=k)
        frames.append(np.asarray(measured.y, np.float32).reshape(size, size))
    header = wcs.to_header()
    header.update(BUNIT="electron", RDNOISE=3.0, SKYLEVEL=10.0, PSFFILE="psf.fits")
    fits.PrimaryHDU(np.stack(frames), header=header).writeto(folder / "cube.fits")
    kernel = (psf / psf.sum()).numpy()
    fits.PrimaryHDU(np.stack([kernel] * psf_planes) if psf_planes else kernel).writeto(folder / "psf.fits")
    return folder / "cube.fits"


def test_a_fits_cube_is_reconstructed_plane_by_plane_into_a_cube_with_its_wcs(tmp_path):
    import shutil
    import subprocess

    from astropy.io import fits
    from astropy.wcs import WCS

    cube = _sky_cube(tmp_path)
    assert slice_indices(cube) == [0, 1, 2]
    out = tmp_path / "out"
    _run("reconstruct", cube, *STEPS, "--format", "netcdf,fits", "--out", out)
    source = WCS(fits.getheader(cube))
    with fits.open(out / "reconstruction.fits") as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "STD"]
        for hdu in hdul:
            assert hdu.data.shape == (3, 32, 32) and np.isfinite(hdu.data).all()
            wcs = WCS(hdu.header)
            assert wcs.naxis == 3 and list(wcs.wcs.ctype) == ["RA---TAN", "DEC--TAN", "FREQ"]
            np.testing.assert_allclose(wcs.wcs_pix2world([[3, 5, 2]], 0), source.wcs_pix2world([[3, 5, 2]], 0))
        mean = hdul[0].data
    with xr.open_dataset(out / "reconstruction.nc", engine="h5netcdf") as ds:
        np.testing.assert_allclose(ds["reconstruction_mean"].values, mean, rtol=1e-5)  # sky: FITS row order
        assert "ra" in ds.coords
    if shutil.which("fitsverify"):
        done = subprocess.run(["fitsverify", "-q", str(out / "reconstruction.fits")], capture_output=True, text=True)
        assert "verification OK" in done.stdout, done.stdout


def test_a_psf_cube_gives_each_plane_its_psf_and_must_match_the_frame_cube(tmp_path):
    from astropy.io import fits

    from reddiff.pipeline import load_problem

    (tmp_path / "three").mkdir()
    cube = _sky_cube(tmp_path / "three", psf_planes=3)
    psf = fits.getdata(tmp_path / "three" / "psf.fits")
    psf[1] = np.roll(psf[1], 1, axis=1)
    fits.PrimaryHDU(psf).writeto(tmp_path / "three" / "psf.fits", overwrite=True)
    kernel = load_problem(cube, slice_index=1).physics.filter.squeeze().numpy()
    np.testing.assert_allclose(kernel / kernel.sum(), psf[1] / psf[1].sum(), atol=1e-6)
    (tmp_path / "two").mkdir()
    mismatched = _sky_cube(tmp_path / "two", psf_planes=2)
    result = _run("reconstruct", mismatched, *STEPS, "--out", tmp_path / "x", code=1)
    assert "psf.fits" in result.output and "cube of 2 planes and the frame a cube of 3 planes" in result.output
    assert not (tmp_path / "x").exists()
