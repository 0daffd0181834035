"""A fastMRI file with 2x readout oversampling (as real brain and knee files) is reconstructed on
its recon grid, ``reconstruction_rss``'s, and compared with it (issue 15).

The file is written here in exactly the fastMRI layout: multi-coil k-space on the encoded grid
``(2h, w)``, ``reconstruction_rss`` the centre ``(h, w)`` crop of the root-sum-of-squares coil
images (fastMRI's ``center_crop(rss(complex_abs(ifft2c(kspace))))``), the ISMRMRD header with
``encodedSpace`` twice ``reconSpace`` along the readout, and the root attributes.
"""

import h5py
import numpy as np
import pytest
import torch

from reddiff import load_problem, reconstruct
from reddiff.datasets import read_fastmri, with_geometry
from reddiff.operators import mri
from reddiff.pipeline import save_outputs, summary_line
from reddiff.priors import GaussianPrior

SLICES, COILS, h, w = 2, 4, 16, 16
H = 2 * h  # readout oversampling
HEADER = f"""<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
  <experimentalConditions><H1resonanceFrequency_Hz>123251815</H1resonanceFrequency_Hz></experimentalConditions>
  <encoding>
    <encodedSpace><matrixSize><x>{H}</x><y>{w}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>240</x><y>120</y><z>5</z></fieldOfView_mm></encodedSpace>
    <reconSpace><matrixSize><x>{h}</x><y>{w}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>120</x><y>120</y><z>5</z></fieldOfView_mm></reconSpace>
    <encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>{w - 1}</maximum>
      <center>{w // 2}</center></kspace_encoding_step_1></encodingLimits>
    <trajectory>cartesian</trajectory>
  </encoding>
</ismrmrdHeader>""".encode()


def _ifft2c(kspace):
    """fastMRI's ``ifft2c``: centred, orthonormal."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=axes), norm="ortho"), axes=axes)


def _fft2c(image):
    """fastMRI's ``fft2c``: centred, orthonormal."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=axes), norm="ortho"), axes=axes)


def _object(shift):
    """A smooth head on the recon field of view, and signal outside it along the readout
    (neck and shoulders, which oversampling keeps from aliasing in)."""
    yy, xx = np.mgrid[:H, :w].astype(np.float32)
    head = np.exp(-(((yy - H / 2 - shift) / 5.5) ** 2 + ((xx - w / 2) / 5.0) ** 2) ** 2)
    head += 0.5 * np.exp(-((yy - H / 2 + 2) ** 2 + (xx - w / 2 - 2) ** 2) / 3.0)
    outside = 0.8 * np.exp(-((yy - 3) ** 2 + (xx - w / 2) ** 2) / 4.0)
    return (head + outside).astype(np.complex64)


@pytest.fixture(scope="module")
def oversampled_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    maps = mri.birdcage_maps(COILS, (H, w)).numpy()
    kspace = np.stack([_fft2c(maps * _object(s)[None]) for s in (0.0, 1.5)])
    kspace += 0.002 * (rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape))
    kspace = kspace.astype(np.complex64)
    rss = np.sqrt((np.abs(_ifft2c(kspace)) ** 2).sum(axis=1))
    top = (H - h) // 2
    target = rss[:, top:top + h, :].astype(np.float32)
    path = tmp_path_factory.mktemp("oversampled") / "file_brain_AXT2_000.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace
        f["reconstruction_rss"] = target
        f["ismrmrd_header"] = HEADER
        f.attrs.update({"acquisition": "AXT2", "max": float(target.max()), "norm": float(np.linalg.norm(target)),
                        "patient_id": "oversampled"})
    return path


def test_the_problem_is_on_the_recon_grid_and_its_zero_filled_image_is_fastmris_crop(oversampled_file):
    problem = load_problem(oversampled_file, slice_index=1)
    # the oversampling is removed as scanners do (an exact crop in hybrid space): the recon grid throughout,
    # and the neck outside the recon field of view is no longer in the data
    assert tuple(problem.y.shape) == (1, 2, COILS, h, w)
    assert tuple(problem.init.shape) == (1, 2, h, w) and tuple(problem.truth.shape) == (1, 2, h, w)
    assert not isinstance(problem.physics, mri.CentredGrid)
    target = torch.from_numpy(read_fastmri(oversampled_file, slices=[1]).target[0])
    zero_filled = problem.init.pow(2).sum(1).sqrt()[0]  # fully sampled: the coil-combined image
    assert float((zero_filled - target).norm() / target.norm()) < 0.05
    torch.testing.assert_close(problem.truth[0, 0], target)


def test_oversampled_file_reconstructs_on_the_reference_grid_with_a_psnr(oversampled_file, tmp_path):
    problem = load_problem(oversampled_file, acceleration=2.0, seed=0)
    result = reconstruct(problem, prior=GaussianPrior(mean=0.0, std=1.0, channels=2), steps=20, n_samples=2,
                         seed=0, calibration="none")
    assert (result.dataset.sizes["y"], result.dataset.sizes["x"]) == (h, w)
    assert np.isfinite(result.dataset.attrs["psnr_db"]) and np.isfinite(result.dataset.attrs["baseline_psnr_db"])
    assert result.dataset.attrs["psnr_db"] > 18 and "PSNR" in summary_line(result)
    # the result's geometry is the recon field of view: 120 mm over 16 pixels on both axes
    located = with_geometry(result, problem.source)
    for axis in ("y", "x"):
        assert float(np.diff(located.dataset[axis].values)[0]) == pytest.approx(120 / 16)
    written = save_outputs(result, problem, tmp_path / "out", formats=("netcdf",))
    assert written["netcdf"].exists()
