"""Sinogram layout: round trips in every container, plain-HDF5 readability, bad fields."""

import dataclasses

import h5py
import numpy as np
import pytest
import xarray as xr

from reddiff.datasets import Sinogram, read_sinogram, write_sinogram
from reddiff.errors import InputError

ANGLES = np.linspace(0, np.pi, 6, endpoint=False)


def _fan():
    counts = np.random.default_rng(0).poisson(900, size=(6, 10)).astype(np.float32)
    return Sinogram(counts, ANGLES, "fan", "counts", 1.2, 0.8, (8, 8), I0=1000.0,
                    source_distance_mm=500.0, detector_distance_mm=400.0)


def _fields(s):
    return {f.name: getattr(s, f.name) for f in dataclasses.fields(s) if f.name != "path"}


@pytest.mark.parametrize("name", ["s.h5", "s.nc", "s.npz"])
def test_round_trip(tmp_path, name):
    s = _fan()
    back = read_sinogram(write_sinogram(s, tmp_path / name))
    for key, value in _fields(s).items():
        np.testing.assert_array_equal(getattr(back, key), value, err_msg=key)
    assert back.path == tmp_path / name


def test_file_is_plain_hdf5_and_netcdf(tmp_path):
    path = write_sinogram(_fan(), tmp_path / "s.h5")
    with h5py.File(path, "r") as f:
        assert f["sinogram"].shape == (6, 10) and f["sinogram"].attrs["units"] in ("counts", b"counts")
        assert f.attrs["geometry"] == "fan" and f.attrs["I0"] == 1000.0
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds["angles"].attrs["units"] == "rad"


def test_a_file_written_by_hand_in_the_documented_layout(tmp_path):
    path = tmp_path / "hand.h5"
    with h5py.File(path, "w") as f:
        f["sinogram"] = np.ones((6, 10))
        f["angles"] = ANGLES
        f.attrs.update(geometry="parallel", quantity="line_integral", detector_spacing_mm=1.0,
                       pixel_spacing_mm=1.0, image_shape=[8, 8], sigma=0.01)
    s = read_sinogram(path)
    assert s.geometry == "parallel" and s.sigma == 0.01 and s.I0 is None and s.image_shape == (8, 8)


@pytest.mark.parametrize("change, field", [
    ({"angles": ANGLES[:4]}, "angles"),
    ({"I0": None}, "I0"),
    ({"source_distance_mm": None}, "source_distance_mm"),
    ({"geometry": "cone"}, "geometry"),
    ({"quantity": "photons"}, "quantity"),
    ({"detector_spacing_mm": 0.0}, "detector_spacing_mm"),
])
def test_bad_fields_are_named(change, field):
    with pytest.raises(InputError, match=rf"\[{field}\]"):
        Sinogram(**{**_fields(_fan()), **change})


def test_bad_files_name_path_and_field(tmp_path):
    s = _fan()
    s.sinogram[0, 0] = np.nan  # bypass validation, as a foreign writer would
    path = tmp_path / "nan.npz"
    np.savez(path, sinogram=s.sinogram, angles=s.angles, **{k: np.asarray(v) for k, v in _fan().attrs.items()})
    with pytest.raises(InputError, match=r"nan.npz: \[sinogram\] has NaN"):
        read_sinogram(path)
    with h5py.File(tmp_path / "partial.h5", "w") as f:
        f["sinogram"] = np.ones((6, 10))
    with pytest.raises(InputError, match=r"partial.h5: \[angles\] missing angles"):
        read_sinogram(tmp_path / "partial.h5")


# -- stacks of slices, and the geometry of the DICOM series they were measured from -------

def _stack(series=None):
    counts = np.random.default_rng(1).poisson(900, size=(3, 6, 10)).astype(np.float32)
    return Sinogram(counts, ANGLES, "parallel", "counts", 1.0, 2.0, (4, 4), I0=1000.0, slice_spacing_mm=2.5,
                    series=series)


def _series(n=3):
    """A header-only series of ``n`` slices of 4x4 pixels of 2 mm, 2.5 mm apart."""
    from pydicom.dataset import Dataset

    from reddiff.datasets.dicom import header_json, header_only_volume

    headers = []
    for k in range(n):
        ds = Dataset()
        ds.Modality, ds.Rows, ds.Columns, ds.PixelSpacing = "CT", 4, 4, [2.0, 2.0]
        ds.SOPInstanceUID = f"1.2.3.{k}"
        headers.append(header_json(ds))
    return header_only_volume(headers, positions=[[0.0, 0.0, 2.5 * k] for k in range(n)],
                              orientation=[1, 0, 0, 0, 1, 0])


@pytest.mark.parametrize("name", ["s.h5", "s.npz"])
def test_a_stack_and_its_series_round_trip_and_read_one_slice_at_a_time(tmp_path, name):
    s = _stack(_series())
    path = write_sinogram(s, tmp_path / name)
    back = read_sinogram(path)
    np.testing.assert_array_equal(back.sinogram, s.sinogram)
    assert back.n_slices == 3 and back.slice_spacing_mm == 2.5
    assert [h.SOPInstanceUID for h in back.series.headers] == ["1.2.3.0", "1.2.3.1", "1.2.3.2"]
    for k in range(3):
        one = read_sinogram(path, slice_index=k)
        np.testing.assert_array_equal(one.sinogram, s.sinogram[k])
        assert one.series.headers[0].SOPInstanceUID == f"1.2.3.{k}"
        np.testing.assert_allclose(one.series.positions, [[0.0, 0.0, 2.5 * k]])
    with pytest.raises(InputError, match=r"\[slices\] slice 3 is out of range: the file holds 3 slice"):
        read_sinogram(path, slice_index=3)


def test_a_version_1_file_reads_as_one_slice(tmp_path):
    path = tmp_path / "v1.h5"
    with h5py.File(path, "w") as f:
        f["sinogram"] = np.ones((6, 10))
        f["angles"] = ANGLES
        f.attrs.update(reddiff_format="sinogram", format_version=1, geometry="parallel", quantity="line_integral",
                       detector_spacing_mm=1.0, pixel_spacing_mm=1.0, image_shape=[8, 8], sigma=0.01)
    from reddiff.datasets.sinogram import count_slices

    s = read_sinogram(path, slice_index=0)
    assert s.n_slices == 1 and s.series is None and s.slice_spacing_mm is None and count_slices(path) == 1
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 9
    with pytest.raises(InputError, match=r"\[format_version\] format version 9 is newer"):
        read_sinogram(path)


def test_a_series_that_does_not_fit_the_stack_is_named():
    with pytest.raises(InputError, match=r"\[dicom_header\] 2 slice header\(s\) for 3 slice"):
        _stack(_series(2))
    s = _stack(_series())
    with pytest.raises(InputError, match=r"\[image_shape\]"):
        Sinogram(**{**_fields(s), "image_shape": (8, 8), "pixel_spacing_mm": 1.0})
    with pytest.raises(InputError, match=r"\[pixel_spacing_mm\]"):
        Sinogram(**{**_fields(s), "pixel_spacing_mm": 1.0})
    zero = s.sinogram.copy()
    zero[1] = 0
    with pytest.raises(InputError, match=r"\[sinogram\] slice 1: all counts are zero"):
        Sinogram(**{**_fields(s), "sinogram": zero})
