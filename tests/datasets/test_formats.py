"""file_kind, describe, read_measurement, write_result."""

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from pydicom.data import get_testdata_file

from reddiff import Reconstruction
from reddiff.datasets import (MRIData, MRIHeader, Sinogram, SkyImage, describe, file_kind, read_dicom, read_fits,
                              read_measurement, sample_path, write_fastmri, write_result, write_sinogram)
from reddiff.errors import InputError

HEADER = MRIHeader((16, 12, 1), (160.0, 120.0, 5.0), (8, 8, 1), (80.0, 80.0, 5.0))


@pytest.fixture
def files(tmp_path):
    mask = np.arange(12) % 2 == 0
    kspace = np.ones((2, 3, 16, 12), np.complex64) * mask
    paths = {
        "fastmri": write_fastmri(MRIData(kspace, mask, multicoil=True, header=HEADER, attrs={"acquisition": "X"}),
                                 tmp_path / "k.h5"),
        "sinogram": write_sinogram(Sinogram(np.ones((4, 9)), np.linspace(0, 3, 4), "parallel", "line_integral",
                                            1.0, 1.0, (8, 8), sigma=0.1), tmp_path / "s.nc"),
        "result": Reconstruction.from_samples(torch.rand(2, 1, 8, 8)).to_netcdf(tmp_path / "r.nc"),
        "fits": sample_path("star_field"),
        "dicom": Path(get_testdata_file("CT_small.dcm")),
        "image": sample_path("shepp_logan"),
    }
    np.save(tmp_path / "a.npy", np.ones((4, 4)))
    paths["npy"] = tmp_path / "a.npy"
    return paths


def test_file_kind(files):
    assert {k: file_kind(p) for k, p in files.items()} == {
        "fastmri": "fastmri", "sinogram": "sinogram", "result": "result", "fits": "fits",
        "dicom": "dicom", "image": "image", "npy": "image"}


@pytest.mark.parametrize("kind, expected", [
    ("fastmri", ["multi-coil k-space: 2 slices, 3 coils, 16x12", "undersampled: 6/12 lines (x2.0)",
                 "field of view 160x120 mm, pixels 10x10 mm", "acquisition = X"]),
    ("sinogram", ["parallel beam, line_integral): 4 views x 9 detectors of 1 mm", "sigma = 0.1"]),
    ("result", ["reddiff result: mean, std, quantiles", "samples: 2"]),
    ("fits", ["FITS image (HDU 0): 50x100, adu", "WCS: RA---TAN-SIP", "exposure = 120"]),
    ("dicom", ["DICOM CT: 1 slice of 128x128, HU", "Explicit VR Little Endian"]),
    ("image", ["image (raster): 400x400"]),
])
def test_describe_says_what_is_inside(files, kind, expected):
    text = describe(files[kind])
    for part in expected:
        assert part in text


def test_reading_never_changes_the_input(files):
    before = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in files.items() if os.path.isfile(p)}
    for path in files.values():
        describe(path)
        if file_kind(path) in ("fastmri", "sinogram", "fits"):
            read_measurement(path)
    after = {k: hashlib.sha256(files[k].read_bytes()).hexdigest() for k in before}
    assert after == before


def test_read_measurement_picks_the_reader(files):
    assert isinstance(read_measurement(files["fastmri"], slices=[1]), MRIData)
    assert isinstance(read_measurement(files["sinogram"]), Sinogram)
    assert isinstance(read_measurement(files["fits"]), SkyImage)
    with pytest.raises(InputError, match="holds a dicom, not a measurement"):
        read_measurement(files["dicom"])
    with pytest.raises(InputError, match=r"\[options\]"):
        read_measurement(files["sinogram"], slices=3)


def _rec(shape, units):
    return Reconstruction.from_samples(torch.rand(3, 1, *shape, generator=torch.Generator().manual_seed(0)),
                                       units=units)


@pytest.mark.parametrize("source, expected", [
    (None, {"netcdf", "png"}),
    ("dicom", {"netcdf", "png", "dicom_mean", "dicom_std"}),
    ("fits", {"netcdf", "png", "fits"}),
])
def test_write_result_writes_the_source_format(tmp_path, source, expected):
    if source == "dicom":
        src, rec = read_dicom(get_testdata_file("CT_small.dcm")), _rec((128, 128), "HU")
    elif source == "fits":
        src, rec = read_fits(sample_path("star_field")), _rec((50, 100), "adu")
    else:
        src, rec = None, _rec((8, 8), "")
    out = write_result(rec, tmp_path, source=src, stem="rec")
    assert set(out) == expected
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in out.values())
    assert Reconstruction.from_netcdf(out["netcdf"]).dataset["mean"].equals(rec.dataset["mean"])
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_result_failure_leaves_no_partial_output(tmp_path):
    src = read_fits(sample_path("star_field"))
    with pytest.raises(InputError, match="result shape"):
        write_result(_rec((8, 8), "adu"), tmp_path, source=src)  # NetCDF written first, then FITS fails
    assert os.listdir(tmp_path) == []


def test_write_result_os_failure_is_named_and_cleaned_up(tmp_path):
    (tmp_path / "rec.png").mkdir()  # the last file cannot replace a folder
    with pytest.raises(InputError, match=r"rec.png: cannot write"):
        write_result(_rec((8, 8), ""), tmp_path, stem="rec")
    assert os.listdir(tmp_path) == ["rec.png"]  # the NetCDF written before was removed


def test_write_result_output_folder_problems(tmp_path):
    with pytest.raises(InputError, match="missing: output folder does not exist"):
        write_result(_rec((8, 8), ""), tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="output folder does not exist"):
        write_result(_rec((8, 8), ""), tmp_path / "file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_write_result_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(InputError, match="not writable"):
        write_result(_rec((8, 8), ""), locked)
    assert os.listdir(locked) == []
