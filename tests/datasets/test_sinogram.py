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
