"""fastMRI reader on files written here in exactly the fastMRI layout."""

from pathlib import Path

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
    assert data.header == MRIHeader((32, 20, 1), (280.0, 175.0, 7.5), (16, 16, 1), (140.0, 140.0, 7.5),
                                    phase_encode_limits=(0, 19, 10), h1_resonance_frequency_hz=123251815)
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


# --- the field's own tools read what reddiff writes (issue 15) ---------------------------------

SCHEMA = Path(__file__).parent / "data" / "ismrmrd.xsd"  # the official ISMRMRD schema; see data/README.md
# The header reddiff wrote before it followed the schema: no experimentalConditions, no encodingLimits.
OLD_HEADER = (b"<?xml version='1.0' encoding='utf-8'?>\n<ismrmrdHeader xmlns=\"http://www.ismrm.org/ISMRMRD\">"
              b"<encoding><encodedSpace><matrixSize><x>16</x><y>12</y><z>1</z></matrixSize><fieldOfView_mm><x>160"
              b"</x><y>120</y><z>5</z></fieldOfView_mm></encodedSpace><reconSpace><matrixSize><x>16</x><y>12</y>"
              b"<z>1</z></matrixSize><fieldOfView_mm><x>160</x><y>120</y><z>5</z></fieldOfView_mm></reconSpace>"
              b"<trajectory>cartesian</trajectory></encoding></ismrmrdHeader>")


@pytest.fixture(scope="module")
def ismrmrd_schema():
    xmlschema = pytest.importorskip("xmlschema")
    return xmlschema.XMLSchema(SCHEMA)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Files from reddiff's own simulate writer, each alone in its folder (SliceDataset reads folders)."""
    from reddiff.datasets import ellipse_phantom, simulate_fastmri

    image = ellipse_phantom((16, 16), seed=0)
    stack = np.stack([image, image[::-1]])
    paths = {}
    for name, acceleration, sigma in (("undersampled", 2.0, 0.01), ("full", None, 0.0)):
        folder = tmp_path_factory.mktemp(name)
        paths[name] = simulate_fastmri(stack, folder / f"{name}.h5", acceleration=acceleration,
                                       center_fraction=0.25, coils=3, sigma=sigma, spacing_mm=(1.5, 1.5), seed=0)
    return paths


def test_the_schema_is_the_official_one_and_bites(ismrmrd_schema):
    ismrmrd_schema.validate(HEADER)  # the trimmed real fastMRI header is valid
    assert not ismrmrd_schema.is_valid(OLD_HEADER)  # experimentalConditions and encodingLimits are required
    assert read_fastmri_header(OLD_HEADER) == MRIHeader((16, 12, 1), (160.0, 120.0, 5.0), (16, 12, 1),
                                                        (160.0, 120.0, 5.0))  # old files stay readable


def test_a_header_with_damaged_optional_values_still_reads():
    damaged = HEADER.replace(b"<center>10</center>", b"").replace(b"123251815", b"n/a")
    header = read_fastmri_header(damaged)
    assert header.phase_encode_limits is None and header.h1_resonance_frequency_hz is None
    assert header.limits == (0, 19, 10) and header.crop_shape == (16, 16)


def read_fastmri_header(xml):
    from reddiff.datasets.fastmri import _header

    return _header(xml, None)


@pytest.mark.parametrize("header", [
    MRIHeader((16, 12, 1), (160.0, 120.0, 5.0), (16, 12, 1), (160.0, 120.0, 5.0)),
    MRIHeader((640, 368, 1), (280.0, 161.0, 4.5), (320, 320, 1), (140.0, 140.0, 4.5),
              phase_encode_limits=(0, 349, 172), h1_resonance_frequency_hz=123251815),
    MRIHeader((32, 20, 1), (42.333952, 1e-3, 0.661468), (16, 16, 1), (21.166976, 1e-3, 0.661468)),
], ids=["reddiff", "knee-like", "odd-floats"])
def test_written_header_is_valid_ismrmrd_and_reads_back_exactly(header, ismrmrd_schema):
    xml = header.to_xml()
    ismrmrd_schema.validate(xml)
    back = read_fastmri_header(xml)
    assert back.limits == header.limits and back.encoded_fov_mm == header.encoded_fov_mm
    assert back.recon_matrix == header.recon_matrix and back.encoded_matrix == header.encoded_matrix
    # ISMRMRD's own Python binding parses it too
    ismrmrd = pytest.importorskip("ismrmrd")
    parsed = ismrmrd.xsd.CreateFromDocument(xml)
    encoding = parsed.encoding[0]
    assert (encoding.encodedSpace.matrixSize.x, encoding.encodedSpace.matrixSize.y) == header.encoded_matrix[:2]
    assert (encoding.reconSpace.matrixSize.x, encoding.reconSpace.matrixSize.y) == header.recon_matrix[:2]
    assert encoding.encodingLimits.kspace_encoding_step_1.center == header.limits[2]


def test_header_values_ismrmrd_cannot_hold_are_refused():
    with pytest.raises(InputError, match=r"\[ismrmrd_header\] encoded_matrix"):
        MRIHeader((70000, 12, 1), (1.0, 1.0, 1.0), (16, 12, 1), (1.0, 1.0, 1.0)).to_xml()
    with pytest.raises(InputError, match=r"\[ismrmrd_header\] recon_fov_mm"):
        MRIHeader((16, 12, 1), (1.0, 1.0, 1.0), (16, 12, 1), (1.0, float("nan"), 1.0)).to_xml()


def test_simulated_and_rewritten_files_have_a_valid_header(simulated, multicoil_file, tmp_path, ismrmrd_schema):
    for path in (*simulated.values(), write_fastmri(read_fastmri(multicoil_file), tmp_path / "again.h5")):
        with h5py.File(path, "r") as f:
            ismrmrd_schema.validate(f["ismrmrd_header"][()])


def _slices(folder, transform=None):
    from fastmri.data.mri_data import SliceDataset

    return SliceDataset(folder, challenge="multicoil",
                        transform=transform or (lambda kspace, mask, target, attrs, fname, index:
                                                (kspace, mask, target, attrs, fname, index)))


def test_fastmri_slice_dataset_opens_a_simulated_file(simulated):
    pytest.importorskip("fastmri")
    path = simulated["undersampled"]
    dataset = _slices(path.parent)
    assert len(dataset) == 2
    kspace, mask, target, attrs, fname, index = dataset[1]
    ours = read_fastmri(path, slices=[1])
    assert fname == path.name and index == 1
    np.testing.assert_array_equal(kspace, ours.kspace[0])
    np.testing.assert_array_equal(target, ours.target[0])
    np.testing.assert_array_equal(mask.astype(bool), ours.mask)
    assert kspace.shape == (3, 32, 16) and target.shape == (16, 16)  # the readout oversampled twice
    assert (attrs["padding_left"], attrs["padding_right"]) == (0, 16)  # every column is in the encoding
    assert attrs["encoding_size"] == (32, 16, 1) and attrs["recon_size"] == (16, 16, 1)
    assert attrs["max"] == pytest.approx(float(ours.target.max()))


def test_fastmri_transforms_recover_the_target_and_mask(simulated):
    pytest.importorskip("fastmri")
    from fastmri.data.transforms import UnetDataTransform, VarNetDataTransform

    # fully sampled and noise-free: fastMRI's zero-filled RSS is our target (both normalised alike)
    sample = _slices(simulated["full"].parent, UnetDataTransform("multicoil"))[0]
    np.testing.assert_allclose(sample.image.numpy(), sample.target.numpy(), atol=1e-4)
    # undersampled: the VarNet transform takes the file's mask within the encoding limits unchanged
    varnet = _slices(simulated["undersampled"].parent, VarNetDataTransform())[0]
    np.testing.assert_array_equal(varnet.mask.numpy().reshape(-1).astype(bool),
                                  read_fastmri(simulated["undersampled"]).mask)
    assert tuple(varnet.target.shape) == (16, 16) and tuple(varnet.masked_kspace.shape) == (3, 32, 16, 2)
