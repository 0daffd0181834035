"""Property-based: random bytes, corrupted real files and random arrays into every reader.

Whatever comes in, only reddiff's own errors come out (a ReddiffError naming the
file), never a parser's KeyError, OSError or struct.error.
"""

import tempfile
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydicom.data import get_testdata_file

from reddiff.datasets import (describe, read_dicom, read_fastmri, read_fits, read_image, read_measurement,
                              read_psf, read_sinogram, sample_path)
from reddiff.errors import InputError, ReddiffError

READERS = [read_image, read_dicom, read_fits, read_psf, read_fastmri, read_sinogram, describe, read_measurement]
SUFFIXES = ["", ".png", ".tif", ".dcm", ".fits", ".fits.gz", ".h5", ".nc", ".npy", ".npz", ".nii", ".nii.gz"]
MAGIC = [b"", b"\x89HDF\r\n\x1a\n", b"SIMPLE  =                    T", b"\x00" * 128 + b"DICM",
         b"\x89PNG\r\n\x1a\n", b"II*\x00", b"\x93NUMPY\x01\x00", b"PK\x03\x04", b"\x1f\x8b\x08\x00"]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_our_errors(path):
    """Call every reader on ``path``; each must return or raise a ReddiffError naming it."""
    for reader in READERS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                reader(path)
            except ReddiffError as err:
                assert str(path) in str(err), (reader.__name__, str(err))


@SETTINGS
@given(magic=st.sampled_from(MAGIC), body=st.binary(max_size=600), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes(magic, body, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"file{suffix}"
        path.write_bytes(magic + body)
        _only_our_errors(path)


REAL = [get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small.dcm"), sample_path("star_field")]


@SETTINGS
@given(which=st.sampled_from(REAL), data=st.data())
def test_corrupted_real_files(which, data):
    blob = bytearray(Path(which).read_bytes())
    cut = data.draw(st.integers(0, len(blob)), label="truncate at")
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=8))
    for position, value in flips:
        blob[position] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(which).name
        path.write_bytes(bytes(blob[:cut] if data.draw(st.booleans(), label="truncate") else blob))
        _only_our_errors(path)


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int16, np.uint8, np.complex64, np.bool_]))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    return draw(hnp.arrays(dtype, shape))  # floats include NaN and infinities


@SETTINGS
@given(array=arrays(), other=arrays(), container=st.sampled_from(["npy", "fits", "kspace", "sinogram", "h5"]))
def test_random_arrays_in_real_containers(array, other, container):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if container == "npy":
            path = tmp / "a.npy"
            np.save(path, array)
        elif container == "fits":
            path = tmp / "a.fits"
            if array.dtype in (np.complex64, np.bool_):
                array = array.real.astype(np.float32)
            fits.PrimaryHDU(array if array.ndim else None).writeto(path)
        else:
            path = tmp / "a.h5"
            with h5py.File(path, "w") as f:
                if container == "kspace":
                    f["kspace"], f["mask"] = array, other
                elif container == "sinogram":
                    f["sinogram"], f["angles"] = array, other
                    f.attrs.update(geometry="parallel", quantity="counts", detector_spacing_mm=1.0,
                                   pixel_spacing_mm=1.0, image_shape=[4, 4], I0=10.0)
                else:
                    f["x"], f["y"] = array, other
        _only_our_errors(path)


@pytest.mark.parametrize("card", ["EXPTIME", "INSTRUME"])
def test_a_fits_card_astropy_cannot_parse_is_our_error_or_shown_as_unparsable(tmp_path, card):
    """Found by the fuzz test on a damaged real file (a NUL byte in a header card's value)."""
    from astropy.io import fits

    from reddiff.datasets import describe, read_fits

    path = tmp_path / "damaged.fits"
    header = fits.Header({"EXPTIME": 30.0, "INSTRUME": 12.5})
    fits.PrimaryHDU(np.ones((8, 8), np.float32), header=header).writeto(path)
    raw = bytearray(path.read_bytes())
    raw[raw.index(card.ljust(8).encode()) + 28] = 0  # a NUL inside the value
    path.write_bytes(bytes(raw))
    with fits.open(path) as hdul, pytest.raises(fits.verify.VerifyError):
        hdul[0].header[card]  # astropy itself cannot parse it
    if card == "EXPTIME":
        with pytest.raises(ReddiffError, match="damaged.fits"):
            read_fits(path)
    else:
        assert "INSTRUME = (unparsable card)" in describe(path)


def test_a_corrupt_value_representation_deep_in_the_header_is_an_input_error_naming_the_file(tmp_path):
    blob = bytearray(Path(get_testdata_file("MR_small.dcm")).read_bytes())
    blob[1058] = 65  # SeriesInstanceUID's VR becomes 'AI', which pydicom decodes only on first use
    path = tmp_path / "MR_small.dcm"
    path.write_bytes(bytes(blob))
    with pytest.raises(InputError, match="MR_small.dcm.*Unknown Value Representation 'AI'"):
        describe(path)
