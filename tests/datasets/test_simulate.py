"""simulate -> read round trips.

Each test runs twice: with ``reddiff.operators`` (skipped until those modules exist)
and with a stand-in built here from deepinv that follows the same contract
(``simulate(...) -> Measurement(y, physics, x_true, info)``), so the file layouts
are checked either way.
"""

import sys
import types
from collections import namedtuple

import numpy as np
import pytest
import torch
from astropy.io import fits
from deepinv.physics import Blur, MultiCoilMRI, Tomography
from deepinv.physics.generator import RandomMaskGenerator

import reddiff.operators

from reddiff import Reconstruction
from reddiff.errors import InputError
from reddiff.datasets import (read_fastmri, read_fits, read_measurement, read_psf, read_sinogram, sample_image,
                              with_geometry)
from reddiff.datasets.simulate import simulate_fastmri, simulate_sinogram, simulate_sky


Measurement = namedtuple("Measurement", "y physics x_true info")
MU_WATER = 0.0192


def _standin_mri(image, *, acceleration, center_fraction, mask, coils, sigma, seed, readout_oversampling):
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([image, torch.zeros_like(image)], dim=1)
    pad = (readout_oversampling - 1) * image.shape[-2] // 2
    h, w = image.shape[-2] + 2 * pad, image.shape[-1]
    if mask is None:
        mask = (torch.ones(1, 1, h, w) if acceleration == 1 else
                RandomMaskGenerator((h, w), acceleration=int(acceleration), center_fraction=center_fraction,
                                    rng=g).step(batch_size=1)["mask"])
    yy = torch.linspace(-1, 1, h)[:, None]
    maps = torch.stack([torch.exp(-((yy - c) ** 2) - torch.linspace(-1, 1, w)[None] ** 2 / 4 + 0.3j * c)
                        for c in torch.linspace(-1, 1, coils)])[None]
    physics = MultiCoilMRI(mask=mask, coil_maps=maps.to(torch.complex64), img_size=(h, w))
    y = physics.A(torch.nn.functional.pad(x, (0, 0, pad, pad)))  # the readout oversampled about the image
    y = y + physics.mask[:, :, None] * sigma * torch.randn(y.shape, generator=g)
    return Measurement(y, physics, x, {"mask": physics.mask})


def _standin_ct(image_mu, *, views, angles, geometry, pixel_spacing_mm, I0, sigma, seed):
    physics = Tomography(angles=views, img_width=image_mu.shape[-1], normalize=False)
    line_integrals = physics.A(image_mu) * pixel_spacing_mm  # (1, 1, detectors, views)
    g = torch.Generator().manual_seed(seed)
    y = torch.poisson(I0 * torch.exp(-line_integrals), generator=g) if I0 else line_integrals
    return Measurement(y, physics, image_mu, {"angles": np.linspace(0, np.pi, views, endpoint=False)})


def _standin_sky(image_counts, *, psf, background, read_noise, seed):
    g = torch.Generator().manual_seed(seed)
    physics = Blur(filter=psf[None, None] / psf.sum(), padding="reflect")
    rate = physics.A(image_counts).clamp_min(0) + background
    return Measurement(torch.poisson(rate, generator=g) + read_noise * torch.randn(rate.shape, generator=g),
                       physics, image_counts, {})


STANDINS = {
    "mri": {"simulate": _standin_mri},
    "ct": {"simulate": _standin_ct, "MU_WATER": MU_WATER,
           "hu_to_mu": lambda hu: MU_WATER * (1 + np.asarray(hu) / 1000.0)},
    "telescope": {"simulate": _standin_sky,
                  "moffat_psf": lambda: torch.exp(-torch.linspace(-2, 2, 5)[:, None] ** 2
                                                  - torch.linspace(-2, 2, 5)[None] ** 2)},
}


@pytest.fixture(params=["operators", "stand-in"])
def operators(request, monkeypatch):
    """Install the stand-in modules, or require the real ones."""
    def use(name):
        if request.param == "operators":
            return pytest.importorskip(f"reddiff.operators.{name}")
        module = types.ModuleType(f"reddiff.operators.{name}")
        module.__dict__.update(STANDINS[name])
        monkeypatch.setitem(sys.modules, module.__name__, module)
        monkeypatch.setattr(reddiff.operators, name, module, raising=False)
        return module
    return use


def _small(name, size=32):
    """A sample cut down to ``size`` pixels (block mean), keeping its metadata."""
    sample = sample_image(name)
    array = sample.array if sample.array.ndim == 2 else sample.array[len(sample.array) // 2]
    f = (array.shape[0] // size, array.shape[1] // size)
    sample.array = array[: f[0] * size, : f[1] * size].reshape(size, f[0], size, f[1]).mean((1, 3))
    if sample.spacing is not None:
        sample.spacing = (sample.spacing[-2] * f[0], sample.spacing[-1] * f[1])
    return sample


def test_fastmri_simulation_reads_back(tmp_path, operators):
    operators("mri")
    mr = _small("mr_small", 32)
    path = simulate_fastmri(np.stack([mr.array, mr.array[::-1]]), tmp_path / "sim.h5", acceleration=4,
                            coils=4, spacing_mm=mr.spacing, seed=1)
    data = read_fastmri(path)
    assert data.kspace.shape == (2, 4, 64, 32) and data.multicoil  # the readout oversampled twice
    assert data.image_shape == (32, 32) and data.header.crop_shape == (32, 32)
    assert data.mask is not None and 0.15 < data.mask.mean() < 0.5
    assert (data.kspace[..., ~data.mask] == 0).all() and (np.abs(data.kspace[..., data.mask]) > 0).mean() > 0.99
    assert data.header.pixel_spacing_mm == pytest.approx(mr.spacing)
    assert data.target.shape == (2, 32, 32) and data.target.max() == pytest.approx(1, rel=1e-5)
    assert isinstance(read_measurement(path), type(data))
    # same seed, same file; another seed, other noise
    again = read_fastmri(simulate_fastmri(np.stack([mr.array, mr.array[::-1]]), tmp_path / "b.h5",
                                          acceleration=4, coils=4, spacing_mm=mr.spacing, seed=1))
    np.testing.assert_array_equal(again.kspace, data.kspace)


def test_fully_sampled_fastmri_simulation_has_no_mask(tmp_path, operators):
    operators("mri")
    data = read_fastmri(simulate_fastmri(_small("mr_small", 16), tmp_path / "full.h5", acceleration=None,
                                         coils=2, seed=0))
    assert data.mask is None and data.kspace.shape == (1, 2, 32, 16)


def test_fastmri_simulation_on_the_image_grid(tmp_path, operators):
    operators("mri")
    data = read_fastmri(simulate_fastmri(_small("mr_small", 16), tmp_path / "grid.h5", coils=2, seed=0,
                                         readout_oversampling=1))
    assert data.kspace.shape == (1, 2, 16, 16) and data.header.encoded_matrix == (16, 16, 1)


def test_sinogram_simulation_reads_back(tmp_path, operators):
    operators("ct")
    ct = _small("ct_small", 32)
    sino = read_sinogram(simulate_sinogram(ct, tmp_path / "ct.h5", views=12, I0=1e4, seed=0))
    assert sino.sinogram.shape[0] == 12 and sino.angles.shape == (12,)
    assert sino.quantity == "counts" and sino.I0 == 1e4 and sino.image_shape == (32, 32)
    assert sino.pixel_spacing_mm == pytest.approx(ct.spacing[0])
    assert 0 <= sino.sinogram.min() and sino.sinogram.max() <= 1.2e4  # counts, attenuated below I0
    assert sino.sinogram.min() < 0.9e4  # the head attenuates
    rec = with_geometry(Reconstruction.from_samples(torch.zeros(2, 1, 32, 32)), sino).dataset
    np.testing.assert_allclose(np.diff(rec["x"]), ct.spacing[1], rtol=1e-6)
    assert rec["x"][0] == pytest.approx(-rec["x"][-1])


def test_sky_simulation_reads_back(tmp_path, operators):
    operators("telescope")
    from reddiff.datasets import sample_path

    sky = read_fits(sample_path("m13"))
    sky.array = sky.array[:32, :32]
    sky.valid = sky.valid[:32, :32]
    out = simulate_sky(sky, tmp_path / "obs.fits", tmp_path / "psf.fits", peak_counts=1000, read_noise=2.0, seed=0)
    obs, psf = read_fits(out), read_psf(tmp_path / "psf.fits")
    assert obs.array.shape == (32, 32) and obs.unit == "electron"
    assert (obs.gain, obs.read_noise) == (1.0, 2.0)
    assert obs.wcs is not None and obs.wcs.wcs.ctype[0] == "RA---TAN"
    assert psf.sum() == pytest.approx(1, abs=1e-5)
    with fits.open(out) as hdul:
        assert "simulate_sky" in str(hdul[0].header["HISTORY"])


def test_simulate_rejects_bad_images(tmp_path, operators):
    operators("ct")
    with pytest.raises(InputError, match=r"\[image\] expected a finite"):
        simulate_sinogram(np.full((8, 8), np.nan), tmp_path / "x.h5")
    with pytest.raises(InputError, match=r"\[unit\] expected a CT image"):
        simulate_sinogram(sample_image("shepp_logan"), tmp_path / "x.h5")  # a.u., not HU
    rectangular = sample_image("ct_small")
    rectangular.spacing = (0.5, 1.0)
    with pytest.raises(InputError, match="square pixels"):
        simulate_sinogram(rectangular, tmp_path / "x.h5")
    assert list(tmp_path.iterdir()) == []
