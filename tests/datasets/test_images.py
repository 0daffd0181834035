"""read_image over every format, and the sample registry."""

import h5py
import nibabel as nib
import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from reddiff.datasets import detect_format, list_samples, read_image, sample_image, sample_path
from reddiff.datasets.samples import SAMPLES
from reddiff.errors import InputError

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 255, size=(12, 16)).astype(np.uint8)


def _write(tmp_path, fmt):
    """Write PIXELS in ``fmt``; return the path."""
    if fmt == "png":
        path = tmp_path / "a.png"
        Image.fromarray(PIXELS).save(path)
    elif fmt == "tiff":
        path = tmp_path / "a.tif"
        Image.fromarray(PIXELS).save(path)
    elif fmt == "npy":
        path = tmp_path / "a.npy"
        np.save(path, PIXELS)
    elif fmt == "npz":
        path = tmp_path / "a.npz"
        np.savez(path, labels=np.arange(3), image=PIXELS)
    elif fmt == "fits":
        path = tmp_path / "a.fits"
        hdu = fits.PrimaryHDU(PIXELS.astype(np.int16))
        hdu.header["BUNIT"] = "electron"
        hdu.writeto(path)
    elif fmt == "nifti":
        path = tmp_path / "a.nii.gz"
        nib.save(nib.Nifti1Image(PIXELS.T[:, ::-1].astype(np.int16), np.diag([0.5, 0.7, 1, 1])), path)
    elif fmt == "h5":
        path = tmp_path / "a.h5"
        with h5py.File(path, "w") as f:
            f["meta/scalar"] = 3.0
            f["kspace"] = PIXELS.astype(np.complex64)[None]
            f["image"] = PIXELS
            f["image"].attrs["units"] = "counts"
    return path


@pytest.mark.parametrize("fmt", ["png", "tiff", "npy", "npz", "fits", "nifti", "h5"])
def test_read_image_returns_the_written_pixels(tmp_path, fmt):
    image = read_image(_write(tmp_path, fmt))
    assert image.array.dtype == np.float32
    np.testing.assert_array_equal(image.array, PIXELS.astype(np.float32))


def test_units_and_spacing_come_from_the_file(tmp_path):
    assert read_image(_write(tmp_path, "fits")).unit == "electron"
    h5 = read_image(_write(tmp_path, "h5"))
    assert h5.unit == "counts"
    nifti = read_image(_write(tmp_path, "nifti"))
    assert nifti.spacing == pytest.approx((0.7, 0.5))  # (dy, dx) from the affine


def test_named_dataset_and_complex_magnitude(tmp_path):
    path = _write(tmp_path, "h5")
    image = read_image(path, dataset="kspace")
    np.testing.assert_array_equal(image.array, PIXELS.astype(np.float32))
    with pytest.raises(InputError, match="no dataset 'missing'"):
        read_image(path, dataset="missing")


def test_colour_png_becomes_luma(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 1] = 100
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_allclose(read_image(tmp_path / "c.png").array, 71.54, rtol=1e-5)


def test_multipage_tiff_is_a_stack(tmp_path):
    frames = [Image.fromarray(PIXELS), Image.fromarray(255 - PIXELS)]
    frames[0].save(tmp_path / "s.tif", save_all=True, append_images=frames[1:])
    image = read_image(tmp_path / "s.tif")
    assert image.array.shape == (2, 12, 16)
    np.testing.assert_array_equal(image.array[1], 255 - PIXELS.astype(np.float32))


def test_nifti_volume_is_axial_slices_anterior_up(tmp_path):
    vol = np.zeros((4, 5, 3), np.float32)  # RAS (x, y, z)
    vol[:, -1, 2] = 1  # most anterior row of the top slice
    nib.save(nib.Nifti1Image(vol, np.diag([1.0, 2.0, 3.0, 1.0])), tmp_path / "v.nii")
    image = read_image(tmp_path / "v.nii")
    assert image.array.shape == (3, 5, 4)
    assert image.spacing == (3.0, 2.0, 1.0)
    assert image.array[2, 0].tolist() == [1, 1, 1, 1] and image.array.sum() == 4


def test_missing_and_unknown_files_name_the_path(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "nothing.png")
    (tmp_path / "x.weird").write_bytes(b"hello")
    with pytest.raises(InputError, match="x.weird.*unknown file format"):
        read_image(tmp_path / "x.weird")


def test_detect_format_reads_magic_not_names(tmp_path):
    path = _write(tmp_path, "fits")
    renamed = path.rename(tmp_path / "fits_without_suffix")
    assert detect_format(renamed) == "fits"
    assert detect_format(tmp_path) == "dicom"


# -- samples ---------------------------------------------------------------------

def test_training_sets_are_exactly_the_agreed_sources():
    assert list_samples(modality="ct", held_out=False) == ["head_ct_j2k", "head_ct_693"]
    assert list_samples(modality="mri", held_out=False) == ["mni152_t1", "mni152_gm", "mni152_wm"]
    assert list_samples(modality="astro", held_out=False) == ["hubble_deep_field"]
    with pytest.warns(DeprecationWarning, match="'ct'"):
        assert list_samples(modality="CT", held_out=False) == ["head_ct_j2k", "head_ct_693"]
    held_out = set(list_samples(held_out=True))
    assert held_out.isdisjoint(list_samples(held_out=False))
    assert held_out | set(list_samples(held_out=False)) == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_reads_as_finite_float32(name):
    sample = sample_image(name)
    assert sample.array.dtype == np.float32 and sample.array.ndim in (2, 3)
    assert np.isfinite(sample.array).all() and sample.array.std() > 0
    assert sample.path == sample_path(name) and sample.path.is_file()
    if sample.modality == "ct" and sample.unit == "HU":
        assert -1024 <= sample.array.min() < -500 and sample.array.max() > 500  # air and bone
    if sample.modality in ("ct", "mri") and sample.spacing is not None:
        assert len(sample.spacing) == sample.array.ndim and all(0.1 < s < 5 for s in sample.spacing)


def test_volume_samples_and_nan_border():
    mni = sample_image("mni152_t1")
    assert mni.array.shape == (189, 233, 197) and mni.spacing == (1.0, 1.0, 1.0)
    radio = sample_image("radio_1904_66")
    assert radio.unit == "JY/BEAM"  # its NaN border was filled, so it is finite


def test_unknown_sample_lists_the_valid_names():
    with pytest.raises(InputError, match="unknown sample 'nope'.*ct_small"):
        sample_image("nope")
    with pytest.raises(InputError, match="unknown modality"):
        list_samples(modality="PET")
