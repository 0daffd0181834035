"""FITS: reading sky images and PSFs, writing results, bad input."""

import shutil
import subprocess
import warnings

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.wcs import WCS

from reddiff import Reconstruction
from reddiff.datasets import read_fits, read_psf, sample_path, with_geometry, write_fits, write_fits_cube
from reddiff.errors import InputError

RNG = np.random.default_rng(1)


def _wcs_header(shape=(16, 20)):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.1, 2.2]
    w.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    w.wcs.cdelt = [-1e-4, 1e-4]
    return w.to_header()


def _ccd_file(path, *, blank=True):
    """An HST-like file: primary header with gain/read noise, SCI extension in ADU with BLANK."""
    data = RNG.integers(100, 1000, size=(16, 20)).astype(np.int16)
    primary = fits.PrimaryHDU()
    primary.header.update({"TELESCOP": "HST", "INSTRUME": "ACS", "CCDGAIN": 2.0, "READNOIS": 4.5,
                           "EXPTIME": 300.0})
    sci = fits.ImageHDU(data, header=_wcs_header(), name="SCI")
    sci.header["BUNIT"] = "ADU"
    if blank:
        sci.header["BLANK"] = -32768
        sci.data[0, :3] = -32768
    fits.HDUList([primary, sci, fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])]
                 ).writeto(path)
    return data


def test_extension_image_with_blank_gain_and_wcs(tmp_path):
    data = _ccd_file(tmp_path / "ccd.fits")
    sky = read_fits(tmp_path / "ccd.fits")
    assert sky.hdu == 1 and sky.unit == "ADU"
    assert (sky.gain, sky.read_noise, sky.exposure) == (2.0, 4.5, 300.0)
    assert sky.header["TELESCOP"] == "HST"  # primary cards merged in
    assert (~sky.valid).sum() == 3 and not sky.valid[0, :3].any()
    np.testing.assert_array_equal(sky.array[sky.valid], data[sky.valid])
    assert sky.array[0, 0] == np.median(data[sky.valid])  # blanks filled
    np.testing.assert_allclose(sky.electrons(), 2.0 * sky.array)
    assert sky.wcs.wcs.ctype[0] == "RA---TAN"


def test_nan_pixels_are_invalid(tmp_path):
    data = RNG.random((8, 8)).astype(np.float32)
    data[2, 3] = np.nan
    fits.PrimaryHDU(data).writeto(tmp_path / "nan.fits")
    sky = read_fits(tmp_path / "nan.fits")
    assert np.isfinite(sky.array).all() and not sky.valid[2, 3] and sky.valid.sum() == 63
    with pytest.raises(InputError, match="no gain"):
        sky.electrons()  # unit unknown ("a.u."), no gain


def test_psf_is_normalised_and_checked(tmp_path):
    y, x = np.mgrid[-3:4, -3:4]
    fits.PrimaryHDU(5 * np.exp(-(x ** 2 + y ** 2) / 2)).writeto(tmp_path / "psf.fits")
    psf = read_psf(tmp_path / "psf.fits")
    assert psf.shape == (7, 7) and psf.sum() == pytest.approx(1, abs=1e-6) and psf.argmax() == 24
    fits.PrimaryHDU(-np.ones((3, 3))).writeto(tmp_path / "neg.fits")
    with pytest.raises(InputError, match="non-negative"):
        read_psf(tmp_path / "neg.fits")


def test_file_without_image_hdu(tmp_path):
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])]
                 ).writeto(tmp_path / "table.fits")
    with pytest.raises(InputError, match=r"table.fits: \[HDU\] no image HDU"):
        read_fits(tmp_path / "table.fits")
    with pytest.raises(InputError, match=r"\[hdu\] no HDU 'SCI'"):
        read_fits(tmp_path / "table.fits", hdu="SCI")
    with pytest.raises(InputError, match=r"\[hdu\] no HDU 5 \(file has 2\)"):
        read_fits(tmp_path / "table.fits", hdu=5)


def _result(sky, units):
    x = torch.from_numpy(sky.array)[None, None]
    scale = 1 + 0.05 * torch.randn(5, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    return Reconstruction.from_samples(x * scale, units=units,
                                       attrs={"config": {"steps": 50, "prior": {"name": "astro"}}, "seeds": [7] * 5})


@pytest.mark.parametrize("variance", [False, True])
def test_write_read_back_values_wcs_cards_history(tmp_path, variance):
    _ccd_file(tmp_path / "ccd.fits")
    sky = read_fits(tmp_path / "ccd.fits")
    rec = _result(sky, "ADU")
    out = write_fits(rec, tmp_path / "out.fits", reference=sky, variance=variance)
    with fits.open(out) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "VAR" if variance else "STD"]
        mean, spread = hdul[0].data, hdul[1].data
        valid = sky.valid
        np.testing.assert_array_equal(mean[valid], rec.mean.values[0][valid])
        expected = rec.std.values[0] ** 2 if variance else rec.std.values[0]
        np.testing.assert_allclose(spread[valid], expected[valid], rtol=1e-6)
        assert np.isnan(mean[~valid]).all()  # blanks stay blank
        header = hdul[0].header
        assert (header["TELESCOP"], header["CCDGAIN"], header["EXPTIME"], header["BUNIT"]) == ("HST", 2.0, 300.0, "ADU")
        history = "\n".join(header["HISTORY"])
        assert "steps = 50" in history and "prior.name = astro" in history and "seeds = [7, 7, 7, 7, 7]" in history
        pix = np.array([[0, 0], [19, 15], [7.5, 3.25]])
        for hdu in hdul:
            np.testing.assert_allclose(WCS(hdu.header).wcs_pix2world(pix, 0), sky.wcs.wcs_pix2world(pix, 0))
        assert hdul[1].header["BUNIT"] == ("(ADU)**2" if variance else "ADU")


def test_result_wcs_from_with_geometry_is_written(tmp_path):
    sky = read_fits(sample_path("m13"))
    rec = with_geometry(_result(sky, "a.u."), sky)
    assert rec.dataset["ra"].shape == (300, 300)
    with fits.open(write_fits(rec, tmp_path / "m13.fits")) as hdul:
        np.testing.assert_allclose(WCS(hdul[0].header).wcs.crval, sky.wcs.wcs.crval)


def test_shape_mismatch_writes_nothing(tmp_path):
    sky = read_fits(sample_path("m13"))
    small = Reconstruction.from_samples(torch.rand(2, 1, 8, 8))
    with pytest.raises(InputError, match=r"\[shape\] result shape \(8, 8\)"):
        write_fits(small, tmp_path / "x.fits", reference=sky)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("located", [False, True], ids=["reference", "with_geometry"])
def test_sip_distortion_survives_in_both_hdus(tmp_path, located):
    sky = read_fits(sample_path("star_field"))
    assert sky.wcs.sip is not None
    rec = with_geometry(_result(sky, "adu"), sky) if located else _result(sky, "adu")
    with fits.open(write_fits(rec, tmp_path / "sip.fits", reference=sky)) as hdul:
        pix = np.array([[0.0, 0.0], [99.0, 49.0]])
        for hdu in hdul:
            assert hdu.header["A_ORDER"] == 2
            np.testing.assert_allclose(WCS(hdu.header).all_pix2world(pix, 0), sky.wcs.all_pix2world(pix, 0))


# -- files the field's own tools accept (issue 15) -----------------------------------

def _frame_with_stale_cards(path):
    """A frame in ADU whose header lists WCSAXES after CTYPE1 and carries cards that describe
    the measured frame only (value range, PSF file, origin, date, checksums, gain)."""
    header = fits.Header()
    header.update({"TELESCOP": "HST", "ORIGIN": "STScI", "DATE": "2001-01-01", "CCDGAIN": 2.0, "READNOIS": 4.5,
                   "SATURATE": 65000.0, "DATAMIN": 100, "DATAMAX": 999, "PSFFILE": "psf.fits", "BUNIT": "ADU"})
    cards = _wcs_header()
    for key in [k for k in cards if k != "WCSAXES"]:
        header[key] = (cards[key], cards.comments[key])
    header["WCSAXES"] = 2
    data = RNG.integers(100, 1000, size=(16, 20)).astype(np.int16)
    fits.PrimaryHDU(data, header=header).writeto(path, checksum=True)
    return read_fits(path)


def _written(tmp_path, *, variance=False, calibrated=False):
    from reddiff.uncertainty import Calibration

    sky = _frame_with_stale_cards(tmp_path / "frame.fits")
    rec = with_geometry(_result(sky, "electron"), sky)
    if calibrated:
        rec = rec.calibrated(Calibration(level=0.9, scales=(3.0,)))
    return write_fits(rec, tmp_path / "out.fits", reference=sky, variance=variance)


def test_a_calibrated_interval_is_written_as_lower_and_upper_extensions(tmp_path):
    out = _written(tmp_path, calibrated=True)
    with fits.open(out, checksum=True) as hdul:
        hdul.verify("exception")
        assert [h.name for h in hdul] == ["PRIMARY", "STD", "LOWER", "UPPER"]
        lower, upper, mean, std = hdul["LOWER"].data, hdul["UPPER"].data, hdul[0].data, hdul["STD"].data
        assert hdul["UPPER"].header["PRODUCT"] == "UPPER" and hdul["LOWER"].header["INTLEVEL"] == 0.9
        assert hdul["UPPER"].header["BUNIT"] == "electron" and hdul["UPPER"].header["CTYPE1"].startswith("RA---")
        np.testing.assert_allclose(upper - mean, 3.0 * 1.6448536 * std, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(mean - lower, upper - mean, rtol=1e-3, atol=1e-3)
    (tmp_path / "raw").mkdir()
    with fits.open(_written(tmp_path / "raw")) as hdul:  # uncalibrated: no interval extensions
        assert [h.name for h in hdul] == ["PRIMARY", "STD"]


@pytest.mark.parametrize("variance", [False, True])
def test_output_is_valid_fits_with_ordered_wcs_and_no_stale_cards(tmp_path, variance):
    out = _written(tmp_path, variance=variance)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a bad checksum is a warning in astropy
        with fits.open(out, checksum=True) as hdul:
            hdul.verify("exception")
            primary, extension = hdul[0].header, hdul[1].header
            for header in (primary, extension):
                keys = list(header)
                assert keys.index("WCSAXES") < min(keys.index(k) for k in keys if k[:5] in ("CTYPE", "CRPIX",
                                                                                             "CRVAL", "CDELT"))
                assert "CHECKSUM" in header and "DATASUM" in header
                assert header["ORIGIN"].startswith("reddiff ") and header["DATE"][:2] == "20"
    assert (primary["BUNIT"], primary["PRODUCT"], primary["UNCEXT"]) == ("electron", "MEAN",
                                                                          "VAR" if variance else "STD")
    assert extension["PRODUCT"] == extension["EXTNAME"] == ("VAR" if variance else "STD")
    assert extension["BUNIT"] == ("(electron)**2" if variance else "electron")
    for stale in ("DATAMIN", "DATAMAX", "PSFFILE", "CCDGAIN", "SATURATE"):
        assert stale not in primary, stale  # the result is deconvolved, in electrons, of another range
    assert (primary["TELESCOP"], primary["READNOIS"]) == ("HST", 4.5)  # still true of the result
    assert "reddiff" in "\n".join(primary["HISTORY"])
    assert list(primary).count("CTYPE1") == 1


def test_output_in_the_frame_unit_keeps_its_gain(tmp_path):
    sky = _frame_with_stale_cards(tmp_path / "frame.fits")
    with fits.open(write_fits(_result(sky, "ADU"), tmp_path / "adu.fits", reference=sky)) as hdul:
        assert (hdul[0].header["BUNIT"], hdul[0].header["CCDGAIN"]) == ("ADU", 2.0)


def test_output_passes_fitsverify(tmp_path):
    if shutil.which("fitsverify") is None:
        pytest.skip("fitsverify (HEASARC's FITS verifier, Debian package fitsverify) is not on PATH")
    (tmp_path / "var").mkdir()
    (tmp_path / "cal").mkdir()
    for out in (_written(tmp_path), _written(tmp_path / "var", variance=True),
                _written(tmp_path / "cal", calibrated=True)):
        done = subprocess.run(["fitsverify", "-q", str(out)], capture_output=True, text=True)
        assert done.returncode == 0 and "verification OK" in done.stdout, done.stdout + done.stderr


# -- cubes (issue 14) ---------------------------------------------------------------------

def _cube_file(path, planes=4):
    w = WCS(naxis=3)
    w.wcs.ctype, w.wcs.cunit = ["RA---TAN", "DEC--TAN", "VRAD"], ["deg", "deg", "m/s"]
    w.wcs.crval, w.wcs.crpix, w.wcs.cdelt = [150.1, 2.2, 1000.0], [10, 8, 1], [-1e-4, 1e-4, 500.0]
    header = w.to_header()
    header["BUNIT"] = "electron"
    data = RNG.uniform(10, 100, size=(1, planes, 16, 20)).astype(np.float32)  # a degenerate Stokes-like axis
    data[0, 2, 3, 4] = np.nan
    fits.PrimaryHDU(data, header=header).writeto(path)
    return data[0]


def test_one_plane_of_a_cube_is_read_alone(tmp_path):
    from reddiff.datasets.fits import count_planes

    data = _cube_file(tmp_path / "c.fits")
    assert count_planes(tmp_path / "c.fits") == 4 and read_fits(tmp_path / "c.fits").array.shape == (4, 16, 20)
    plane = read_fits(tmp_path / "c.fits", plane=2)
    assert plane.array.shape == (16, 20) and (plane.plane, plane.n_planes) == (2, 4)
    assert not plane.valid[3, 4] and plane.valid.sum() == 16 * 20 - 1
    np.testing.assert_array_equal(plane.array[plane.valid], data[2][plane.valid])
    assert plane.wcs.naxis == 2 and plane.wcs.wcs.ctype[0] == "RA---TAN"
    with pytest.raises(InputError, match=r"\[slices\] plane 4 is out of range: HDU 0 holds 4 plane"):
        read_fits(tmp_path / "c.fits", plane=4)


def test_a_cube_of_some_planes_keeps_the_third_axis_shifted_to_them(tmp_path):
    _cube_file(tmp_path / "c.fits")
    planes = [read_fits(tmp_path / "c.fits", plane=k) for k in (1, 2)]
    parts = [Reconstruction.from_samples(torch.rand(2, 1, 16, 20), units="electron") for _ in planes]
    out = write_fits_cube(Reconstruction.stack(parts, index=[1, 2]), tmp_path / "out.fits", references=planes)
    source = WCS(fits.getheader(tmp_path / "c.fits")).dropaxis(3)
    with fits.open(out) as hdul:
        assert hdul[0].data.shape == (2, 16, 20) and np.isnan(hdul[0].data[1, 3, 4])  # blank stays blank
        wcs = WCS(hdul["STD"].header)
        np.testing.assert_allclose(wcs.wcs_pix2world([[4, 5, 0]], 0), source.wcs_pix2world([[4, 5, 1]], 0))
        assert hdul[0].header["CRPIX3"] == 0.0 and "NAXIS4" not in hdul[0].header
    with pytest.raises(InputError, match=r"\[slices\] a FITS cube needs consecutive planes"):
        write_fits_cube(Reconstruction.stack(parts), tmp_path / "gap.fits",
                        references=[read_fits(tmp_path / "c.fits", plane=k) for k in (0, 2)])
    assert not (tmp_path / "gap.fits").exists()
    if shutil.which("fitsverify"):
        done = subprocess.run(["fitsverify", "-q", str(out)], capture_output=True, text=True)
        assert "verification OK" in done.stdout, done.stdout
