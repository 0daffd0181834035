"""fastMRI reader on files written here in exactly the fastMRI layout."""

import h5py
import numpy as np
import pytest

from reddiff.datasets.fastmri import MRIHeader, read_fastmri, write_fastmri
from reddiff.errors import InputError

# Trimmed from a fastMRI multicoil knee file's ismrmrd_header (same structure and namespace).
HEADER = b"""<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
 xsi:schemaLocation="http://www.ismrm.org/ISMRMRD ismrmrd.xsd">
  <studyInformation><studyTime>10:42:14</studyTime></studyInformation>
  <measurementInformation><patientPosition>HFS</patientPosition>
    <protocolName>AX FLAIR_FBB</protocolName></measurementInformation>
  <acquisitionSystemInformation><systemVendor>SIEMENS</systemVendor>
    <systemFieldStrength_T>2.89362</systemFieldStrength_T>
    <receiverChannels>4</receiverChannels></acquisitionSystemInformation>
  <experimentalConditions><H1resonanceFrequency_Hz>123251815</H1resonanceFrequency_Hz></experimentalConditions>
  <encoding>
    <encodedSpace><matrixSize><x>32</x><y>20</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>280</x><y>175</y><z>7.5</z></fieldOfView_mm></encodedSpace>
    <reconSpace><matrixSize><x>16</x><y>16</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>140</x><y>140</y><z>7.5</z></fieldOfView_mm></reconSpace>
    <encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>19</maximum>
      <center>10</center></kspace_encoding_step_1></encodingLimits>
    <trajectory>cartesian</trajectory>
  </encoding>
  <sequenceParameters><TR>9000</TR><TE>81</TE></sequenceParameters>
</ismrmrdHeader>"""

RNG = np.random.default_rng(0)
SLICES, COILS, H, W = 3, 4, 32, 20


def _kspace(*shape):
    return (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(np.complex64)


@pytest.fixture
def multicoil_file(tmp_path):
    """A fully sampled multi-coil training file: kspace, reconstruction_rss, header, attrs."""
    path = tmp_path / "file1000001.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = _kspace(SLICES, COILS, H, W)
        f["reconstruction_rss"] = RNG.random((SLICES, 16, 16), dtype=np.float32)
        f["ismrmrd_header"] = HEADER
        f.attrs.update({"acquisition": "AXFLAIR", "max": 0.0004, "norm": 0.1, "patient_id": "abc123"})
    return path


def test_multicoil_file_reads_kspace_target_header_and_attrs(multicoil_file):
    data = read_fastmri(multicoil_file)
    with h5py.File(multicoil_file, "r") as f:
        np.testing.assert_array_equal(data.kspace, f["kspace"][()])
        np.testing.assert_array_equal(data.target, f["reconstruction_rss"][()])
    assert data.multicoil and data.mask is None and data.target_name == "reconstruction_rss"
    assert data.header == MRIHeader((32, 20, 1), (280.0, 175.0, 7.5), (16, 16, 1), (140.0, 140.0, 7.5))
    assert data.pixel_spacing_mm == (8.75, 8.75) and data.header.crop_shape == (16, 16)
    assert data.attrs == {"acquisition": "AXFLAIR", "max": 0.0004, "norm": 0.1, "patient_id": "abc123"}


def test_slices_are_picked_in_the_order_asked(multicoil_file):
    full = read_fastmri(multicoil_file)
    picked = read_fastmri(multicoil_file, slices=[2, 0])
    np.testing.assert_array_equal(picked.kspace, full.kspace[[2, 0]])
    np.testing.assert_array_equal(picked.target, full.target[[2, 0]])
    assert picked.slices.tolist() == [2, 0]
    assert read_fastmri(multicoil_file, slices=1).kspace.shape == (1, COILS, H, W)
    with pytest.raises(InputError, match="slices"):
        read_fastmri(multicoil_file, slices=7)


def test_retrospective_undersampling_of_a_fully_sampled_file(multicoil_file):
    full = read_fastmri(multicoil_file)
    under = read_fastmri(multicoil_file, acceleration=4, center_fraction=0.2, seed=3)
    assert under.retrospective and under.mask.shape == (W,) and under.mask.sum() == W // 4
    assert under.mask[W // 2 - 2: W // 2 + 2].all()  # the centre is kept
    np.testing.assert_array_equal(under.kspace[..., under.mask], full.kspace[..., under.mask])
    assert (under.kspace[..., ~under.mask] == 0).all()
    np.testing.assert_array_equal(read_fastmri(multicoil_file, acceleration=4, center_fraction=0.2, seed=3).mask,
                                  under.mask)
    assert not np.array_equal(read_fastmri(multicoil_file, acceleration=4, center_fraction=0.2, seed=4).mask,
                              under.mask)
    with pytest.raises(InputError, match=r"\[acceleration\]"):
        read_fastmri(multicoil_file, acceleration=0.5)


def test_singlecoil_file_with_its_own_mask(tmp_path):
    mask = np.zeros(W, bool)
    mask[::4] = mask[8:12] = True
    path = tmp_path / "single.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = _kspace(2, H, W) * mask
        f["mask"] = mask
        f["ismrmrd_header"] = HEADER
        f.attrs.update({"acceleration": 4, "num_low_frequency": 4})
    data = read_fastmri(path)
    assert not data.multicoil and data.kspace.shape == (2, 1, H, W)
    np.testing.assert_array_equal(data.mask, mask)
    with pytest.raises(InputError, match="already undersampled"):
        read_fastmri(path, acceleration=4)


def test_zero_filled_columns_without_mask_give_the_mask(tmp_path):
    kspace = _kspace(1, COILS, H, W)
    kspace[..., 1::2] = 0
    path = tmp_path / "zf.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace
    np.testing.assert_array_equal(read_fastmri(path).mask, np.arange(W) % 2 == 0)


def test_write_read_round_trip(tmp_path, multicoil_file):
    data = read_fastmri(multicoil_file, slices=[1])
    data.mask = np.arange(W) % 3 == 0
    data.kspace = data.kspace * data.mask
    back = read_fastmri(write_fastmri(data, tmp_path / "out.h5"))
    np.testing.assert_array_equal(back.kspace, data.kspace)
    np.testing.assert_array_equal(back.mask, data.mask)
    assert back.header == data.header and back.attrs == data.attrs


@pytest.mark.parametrize("problem, match", [
    ("mask_shape", r"\[mask\] expected \(20,\)"),
    ("nan", r"\[kspace\] k-space has NaN"),
    ("no_kspace", r"\[kspace\] no 'kspace'"),
    ("real_kspace", r"\[kspace\] expected complex"),
    ("bad_header", r"\[ismrmrd_header\]"),
])
def test_bad_files_name_file_and_field(tmp_path, problem, match):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        kspace = _kspace(1, COILS, H, W)
        if problem == "nan":
            kspace[0, 0, 0, 0] = np.nan
        if problem == "real_kspace":
            kspace = kspace.real
        if problem != "no_kspace":
            f["kspace"] = kspace
        if problem == "mask_shape":
            f["mask"] = np.ones(W + 1, bool)
        f["ismrmrd_header"] = b"<ismrmrdHeader><encoding>" if problem == "bad_header" else HEADER
    with pytest.raises(InputError, match=match) as err:
        read_fastmri(path)
    assert err.value.path == str(path)


def test_truncated_file(tmp_path, multicoil_file):
    blob = multicoil_file.read_bytes()
    path = tmp_path / "truncated.h5"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InputError, match="truncated.h5: not a readable fastMRI HDF5 file"):
        read_fastmri(path)
