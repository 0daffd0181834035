"""Bad input and bombs through the command line: one line naming the file or argument, exit 1,
nothing left behind, quickly, and no large allocation."""

import resource
import time

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from reddiff.cli import app
from reddiff.datasets import sample_image, sample_path, simulate_fastmri, simulate_sinogram

runner = CliRunner()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    hu = sample_image("ct_small").array[::4, ::4]
    sino = simulate_sinogram(hu, folder / "ct.h5", views=8, I0=1e5, pixel_spacing_mm=2.6)
    kspace = simulate_fastmri(sample_image("mr_small").array[::2, ::2], folder / "k.h5", coils=2)
    return {"ct": sino, "mri": kspace, "folder": folder}


def _sinogram_declaring(small, tmp_path, shape):
    path = tmp_path / "bomb.h5"
    path.write_bytes(small["ct"].read_bytes())
    with h5py.File(path, "r+") as f:
        f.attrs["image_shape"] = np.array(shape)
    return path


def _kspace_declaring(tmp_path, shape):
    path = tmp_path / "kbomb.h5"
    with h5py.File(path, "w") as f:  # chunked and never written: a few KB on disk
        f.create_dataset("kspace", shape=shape, dtype=np.complex64, chunks=(1, 1, 64, 64))
    return path


def _kspace_without_header(small, tmp_path):
    path = simulate_fastmri(sample_image("mr_small").array[::2, ::2], tmp_path / "nohdr.h5", coils=2,
                            acceleration=2.0, center_fraction=0.25)
    with h5py.File(path, "r+") as f:
        del f["ismrmrd_header"]
    return path


def _frame_without_wcs(tmp_path):
    from reddiff.datasets import simulate_sky

    return simulate_sky(sample_image("m13").array[:32, :32], tmp_path / "f.fits", tmp_path / "f_psf.fits")


def _constant_reference(tmp_path):
    path = tmp_path / "flat.npy"
    np.save(path, np.ones((32, 32), np.float32))
    return path


def _sinogram_with(small, tmp_path, name, *, sinogram=None, **attrs):
    """The small CT file with its sinogram (a function of the original) and root attributes replaced."""
    path = tmp_path / name
    path.write_bytes(small["ct"].read_bytes())
    with h5py.File(path, "r+") as f:
        if sinogram is not None:
            new = sinogram(f["sinogram"][()])
            del f["sinogram"]
            f["sinogram"] = new
        f.attrs.update(attrs)
    return path


def _line_integrals(counts):
    return -np.log(np.maximum(counts, 0.5) / 1e5)


def _one(value):
    """A change of an array that sets its first element to ``value``."""
    def change(array):
        array = array.astype(np.result_type(array, value))
        array.flat[0] = value
        return array
    return change


def _kspace_with(small, tmp_path, change):
    path = tmp_path / "k.h5"
    path.write_bytes(small["mri"].read_bytes())
    with h5py.File(path, "r+") as f:
        kspace = change(f["kspace"][()])
        del f["kspace"]
        f["kspace"] = kspace
    return path


def _frame_with(tmp_path, **cards):
    from astropy.io import fits

    path = _frame_without_wcs(tmp_path)
    with fits.open(path, mode="update") as hdul:
        hdul[0].header.update(cards)
    return path


def _unitless_npy(tmp_path):
    path = tmp_path / "ct.npy"
    np.save(path, sample_image("ct_small").array[::8, ::8])
    return path


CASES = {
    "sinogram declaring 20000x20000": (lambda s, t: ["reconstruct", _sinogram_declaring(s, t, (20000, 20000))],
                                       "20000x20000 images would need"),
    "k-space of 100000x100000": (lambda s, t: ["reconstruct", _kspace_declaring(t, (2, 1, 100000, 100000))],
                                 "k-space slice"),
    "100000 samples": (lambda s, t: ["reconstruct", s["ct"], "--samples", 100000], "n_samples"),
    "1e9 steps": (lambda s, t: ["reconstruct", s["ct"], "--steps", 1000000000], "steps"),
    "negative seed": (lambda s, t: ["reconstruct", s["ct"], "--seed", -1], "seed"),
    "negative sigma_x0": (lambda s, t: ["reconstruct", s["ct"], "--sigma-x0", -1], "sigma_x0"),
    "negative slice": (lambda s, t: ["reconstruct", s["mri"], "--slices", -1], "select nothing"),
    "acceleration 0": (lambda s, t: ["reconstruct", s["mri"], "--acceleration", 0], "acceleration"),
    "empty --out": (lambda s, t: ["reconstruct", s["ct"], "--out", ""], "other than the current one"),
    "1e6 views": (lambda s, t: ["simulate", sample_path("ct_small"), "--modality", "ct", "--views", 1000000,
                                "--out", t / "v.h5"], "projection matrix"),
    "1e5 coils": (lambda s, t: ["simulate", sample_path("mr_small"), "--modality", "mri", "--coils", 100000,
                                "--out", t / "c.h5"], "coils"),
    "1e6 px FWHM": (lambda s, t: ["simulate", sample_path("m13"), "--modality", "astro", "--fwhm", 1000000,
                                  "--out", t / "f.fits"], "PSF would be"),
    "fastMRI without ismrmrd_header": (lambda s, t: ["reconstruct", _kspace_without_header(s, t)],
                                       "ismrmrd_header"),
    "FITS frame without a celestial WCS": (lambda s, t: ["reconstruct", _frame_without_wcs(t)], "no celestial WCS"),
    "constant reference": (lambda s, t: ["reconstruct", s["ct"], "--reference", _constant_reference(t)],
                           "is constant"),
    "HDF5 named .fits": (lambda s, t: ["simulate", sample_path("ct_small"), "--modality", "ct",
                                       "--out", t / "x.fits"], "not .fits"),
    "empty --out of simulate": (lambda s, t: ["simulate", sample_path("ct_small"), "--modality", "ct", "--out", ""],
                                "[out] --out '.' is empty or a folder"),
    "CT counts all zero": (lambda s, t: ["reconstruct", _sinogram_with(s, t, "zero.h5", sinogram=np.zeros_like)],
                           "zero.h5: [sinogram] all counts are zero"),
    "CT I0 of 1e-30": (lambda s, t: ["reconstruct", _sinogram_with(s, t, "i0.h5", I0=1e-30)],
                       "i0.h5: [I0] I0 = 1e-30 is below 1 photon"),
    "CT I0 negative": (lambda s, t: ["reconstruct", _sinogram_with(s, t, "i0.h5", I0=-5.0)],
                       "i0.h5: [I0] expected a positive number"),
    "CT counts 100x I0": (lambda s, t: ["reconstruct", _sinogram_with(s, t, "hot.h5", I0=1e3)],
                          "hot.h5: [sinogram] median count"),
    "CT NaN counts": (lambda s, t: ["reconstruct", _sinogram_with(s, t, "nan.h5", sinogram=_one(np.nan))],
                      "nan.h5: [sinogram] has NaN"),
    "CT negative counts": (lambda s, t: ["reconstruct", _sinogram_with(s, t, "neg.h5", sinogram=_one(-1.0))],
                           "neg.h5: [sinogram] counts must be non-negative"),
    "CT complex sinogram": (lambda s, t: ["reconstruct", _sinogram_with(s, t, "cx.h5", sinogram=lambda c: c + 1j * c)],
                            "cx.h5: [sinogram] is complex"),
    "CT negative line integrals": (lambda s, t: ["reconstruct", _sinogram_with(
        s, t, "li.h5", sinogram=lambda c: -_line_integrals(c) - 1, quantity="line_integral", sigma=0.01)],
        "li.h5: [sinogram] median line integral"),
    "CT infinite line integrals": (lambda s, t: ["reconstruct", _sinogram_with(
        s, t, "li.h5", sinogram=lambda c: _one(np.inf)(_line_integrals(c)), quantity="line_integral", sigma=0.01)],
        "li.h5: [sinogram] has NaN or infinite"),
    "FITS RDNOISE < 0": (lambda s, t: ["reconstruct", _frame_with(t, RDNOISE=-3.0)], "f.fits: [RDNOISE] RDNOISE = -3.0"),
    "FITS RDNOISE NaN": (lambda s, t: ["reconstruct", _frame_with(t, RDNOISE="NaN")], "f.fits: [RDNOISE] RDNOISE = 'NaN'"),
    "FITS GAIN 0": (lambda s, t: ["reconstruct", _frame_with(t, GAIN=0.0)], "f.fits: [GAIN] GAIN = 0.0"),
    "MRI k-space all zero": (lambda s, t: ["reconstruct", _kspace_with(s, t, np.zeros_like)],
                             "k.h5: [kspace] k-space is all zero"),
    "MRI NaN k-space": (lambda s, t: ["reconstruct", _kspace_with(s, t, _one(np.nan))],
                        "k.h5: [kspace] k-space has NaN"),
    "simulate CT from a unitless .npy": (lambda s, t: ["simulate", _unitless_npy(t), "--modality", "ct",
                                                       "--out", t / "s.h5"], "ct.npy: [unit] expected a CT image"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_requests_fail_fast_in_one_line_and_leave_nothing(small, tmp_path, name):
    build, expected = CASES[name]
    args = [str(a) for a in build(small, tmp_path)]
    if args[0] == "reconstruct" and "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    before = sorted(p.name for p in tmp_path.iterdir())
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    result = runner.invoke(app, args + ["--quiet"] if args[0] == "reconstruct" else args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and expected in lines[-1] and "Traceback" not in result.output
    assert time.perf_counter() - started < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 2 * 2**20  # KiB: under 2 GiB more
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_unitless_image_simulates_once_its_unit_is_given(tmp_path):
    """CT needs HU or 1/mm (--unit for a .npy); MRI takes any scale (each slice scaled to maximum 1)."""
    image = _unitless_npy(tmp_path)
    result = runner.invoke(app, ["simulate", str(image), "--modality", "ct", "--out", str(tmp_path / "a.h5")])
    assert result.exit_code == 1 and "--unit HU or --unit 1/mm" in result.output
    for modality, extra in (("ct", ["--unit", "HU", "--views", "8"]), ("mri", ["--coils", "2"])):
        out = tmp_path / f"{modality}.h5"
        result = runner.invoke(app, ["simulate", str(image), "--modality", modality, "--out", str(out), *extra])
        assert result.exit_code == 0 and out.is_file(), result.output
