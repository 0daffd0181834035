import numpy as np
import pytest
import torch
from astropy.io import fits

from reddiff.errors import InputError
from reddiff.likelihood import ShiftedPoissonLikelihood
from reddiff.operators import telescope


def _fwhm_px(psf):
    """FWHM of a centred PSF along its middle row, by linear interpolation of the half-maximum crossing."""
    row = psf[psf.shape[0] // 2].double()
    centre = row.shape[0] // 2
    half = float(row[centre]) / 2
    right = row[centre:]
    k = int(torch.nonzero(right < half)[0])
    crossing = (k - 1) + (float(right[k - 1]) - half) / (float(right[k - 1]) - float(right[k]))
    return 2 * crossing


def _sky(n=48, seed=0):
    """Stars on a faint extended galaxy, in electrons."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32), indexing="ij")
    image = 300 * torch.exp(-(((x - 0.6 * n) / 6) ** 2 + ((y - 0.4 * n) / 3) ** 2))
    for _ in range(8):
        i, j = torch.randint(4, n - 4, (2,), generator=g)
        image[i, j] += float(torch.rand(1, generator=g)) * 4000 + 500
    return image[None, None]


@pytest.mark.parametrize("make, fwhm", [
    (lambda: telescope.gaussian_psf(4.0, oversample=1), 4.0),
    (lambda: telescope.moffat_psf(5.0, oversample=1), 5.0),
    (lambda: telescope.moffat_psf(1.2, pixel_scale=0.2, oversample=1), 6.0),  # arcsec on 0.2"/px
])
def test_seeing_psfs_have_the_requested_fwhm(make, fwhm):
    psf = make()
    assert float(psf.sum()) == pytest.approx(1.0, abs=1e-5)
    assert _fwhm_px(psf) == pytest.approx(fwhm, rel=0.03)


def test_airy_psf_has_the_diffraction_scale():
    # lambda / D = 550e-9 / 2.4 rad = 0.04727 arcsec = 4.727 px at 0.01 "/px
    psf = telescope.airy_psf(pixel_scale_arcsec=0.01, oversample=1)
    assert _fwhm_px(psf) == pytest.approx(1.029 * 4.727, rel=0.03)
    row = psf[psf.shape[0] // 2]
    centre = row.shape[0] // 2
    first_dark = centre + int(torch.argmin(row[centre:centre + 8]))
    assert first_dark - centre == round(1.22 * 4.727)


def test_central_obscuration_moves_light_into_the_rings():
    clear = telescope.airy_psf(pixel_scale_arcsec=0.01, size=41)
    obscured = telescope.airy_psf(pixel_scale_arcsec=0.01, size=41, obscuration=0.33)
    assert float(obscured.max()) < float(clear.max())


def test_zernike_psf_without_aberration_is_the_airy_pattern_and_defocus_spreads_it():
    airy = telescope.airy_psf(oversample=1)
    perfect = telescope.zernike_psf({})
    assert float((perfect - airy).norm() / airy.norm()) < 0.02  # measured 1.1 %
    defocused = telescope.zernike_psf({4: 0.3})
    assert float(defocused.max()) < 0.7 * float(perfect.max())


def test_zernike_psf_refuses_undersampled_pixels():
    with pytest.raises(InputError, match="pixel_scale_arcsec"):
        telescope.zernike_psf({}, pixel_scale_arcsec=0.05)


def test_psf_from_fits_round_trip(tmp_path):
    from reddiff.datasets import read_psf

    psf = telescope.moffat_psf(3.0)
    path = tmp_path / "psf.fits"
    fits.PrimaryHDU((psf * 1234.0).numpy()).writeto(path)
    torch.testing.assert_close(telescope.as_psf(read_psf(path)), psf)


def test_psf_arrays_are_accepted_and_checked():
    torch.testing.assert_close(telescope.as_psf(np.full((3, 3), 2.0)), torch.full((3, 3), 1 / 9))
    slightly_negative = np.ones((3, 3))
    slightly_negative[0, 0] = -1e-4
    assert float(telescope.as_psf(slightly_negative)[0, 0]) == 0.0
    for bad in (np.ones(3), np.full((3, 3), np.nan), -np.ones((3, 3)), np.zeros((3, 3))):
        with pytest.raises(InputError, match=r"\[psf\] .*expected"):
            telescope.as_psf(bad)


def test_blur_conserves_flux_and_does_not_wrap_around():
    physics = telescope.blur_physics(telescope.gaussian_psf(3.0))
    x = torch.zeros(1, 1, 32, 32)
    x[..., 16, 16] = 100.0
    assert float(physics.A(x).sum()) == pytest.approx(100.0, rel=1e-5)
    corner = torch.zeros(1, 1, 32, 32)
    corner[..., 0, 0] = 100.0
    y = physics.A(corner)
    assert float(y[..., -4:, :].abs().max()) < 1e-4 and float(y[..., :, -4:].abs().max()) < 1e-4
    wrapped = telescope.blur_physics(telescope.gaussian_psf(3.0), padding="circular").A(corner)
    assert float(wrapped[..., -1, -1]) > 1.0  # what zero padding avoids


def test_valid_padding_returns_only_fully_seen_pixels():
    physics = telescope.blur_physics(telescope.gaussian_psf(2.0, size=5), padding="valid")
    assert physics.A(torch.ones(1, 1, 16, 16)).shape == (1, 1, 12, 12)


def test_simulate_noise_statistics():
    x = torch.full((1, 1, 64, 64), 200.0)
    m = telescope.simulate(x, psf=telescope.gaussian_psf(2.0), background=50.0, read_noise=5.0, seed=0)
    interior = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    mean, var = float(m.y[interior].mean()), float(m.y[interior].var())
    assert mean == pytest.approx(250.0, rel=0.01)
    assert var == pytest.approx(250.0 + 25.0, rel=0.1)
    assert isinstance(m.physics.data_term, ShiftedPoissonLikelihood)
    assert m.info["background"] == 50.0 and m.info["read_noise"] == 5.0 and m.info["psf"].shape == (13, 13)


def test_simulate_is_reproducible():
    a = telescope.simulate(_sky(16), psf=telescope.gaussian_psf(2.0), seed=3).y
    assert torch.equal(a, telescope.simulate(_sky(16), psf=telescope.gaussian_psf(2.0), seed=3).y)
    assert not torch.equal(a, telescope.simulate(_sky(16), psf=telescope.gaussian_psf(2.0), seed=4).y)


def test_shifted_poisson_data_term_is_smallest_near_the_truth():
    x = _sky(32)
    m = telescope.simulate(x, psf=telescope.moffat_psf(3.0), background=20.0, read_noise=4.0, seed=0)
    nll = lambda image: float(m.physics.data_term(m.y, m.physics.A(image)))
    assert nll(x) < nll(1.1 * x) and nll(x) < nll(0.9 * x) and nll(x) < nll(m.y - 20.0)


def _hubble(n=64):
    """A crop of scikit-image's Hubble deep field (galaxies of all sizes), scaled to 2000 electrons at peak."""
    from skimage import data

    crop = data.hubble_deep_field()[200:200 + n, 200:200 + n].mean(-1).astype(np.float32)
    return torch.from_numpy(crop / crop.max() * 2000.0)[None, None]


@pytest.mark.parametrize("psf", [telescope.gaussian_psf(3.0), telescope.moffat_psf(3.0), telescope.airy_psf()],
                         ids=["gauss", "moffat", "airy"])
def test_wiener_and_richardson_lucy_beat_the_raw_image(psf):
    # measured: naive 0.31-0.38, Wiener 0.25-0.31 (about 0.83 x), RL(30) 0.16-0.21 (about 0.54 x)
    x = _hubble()
    m = telescope.simulate(x, psf=psf, background=20.0, read_noise=3.0, seed=0)
    error = lambda estimate: float((estimate - x).norm() / x.norm())
    naive = error(m.y - 20.0)
    wiener = error(telescope.wiener(m.y, m.physics, background=20.0, read_noise=3.0))
    rl = error(telescope.richardson_lucy(m.y, m.physics, background=20.0, read_noise=3.0, iterations=30))
    inverse = error(telescope.wiener(m.y, m.physics, background=20.0, balance=1e-8))
    assert wiener < 0.9 * naive, (wiener, naive)
    assert rl < 0.7 * naive, (rl, naive)
    assert inverse > 2 * naive  # the unregularised inverse filter amplifies noise: why Wiener balances it


def test_tiled_psf_matches_each_tile_at_its_centre():
    narrow, wide = telescope.gaussian_psf(1.0, size=9), telescope.gaussian_psf(3.0, size=9)
    physics = telescope.tiled_blur_physics(torch.stack([torch.stack([narrow, wide])] * 2), (32, 32))
    for column, psf in ((8, narrow), (24, wide)):  # tile centres along x at 7.5 and 23.5: use the nearest pixel
        star = torch.zeros(1, 1, 32, 32)
        star[..., 8, column] = 1.0
        response = physics.A(star)[0, 0, 4:13, column - 4:column + 5]
        assert float((response - psf).abs().max()) < 0.25 * float(psf.max())
    left = torch.zeros(1, 1, 32, 32)
    left[..., 8, 8] = 1.0
    right = torch.zeros(1, 1, 32, 32)
    right[..., 8, 24] = 1.0
    assert float(physics.A(left).max()) > 2 * float(physics.A(right).max())


@pytest.mark.parametrize("call, field", [
    (lambda: telescope.simulate(torch.full((1, 1, 8, 8), -1.0), psf=np.ones((3, 3))), "image_counts"),
    (lambda: telescope.simulate(torch.full((1, 1, 8, 8), float("nan")), psf=np.ones((3, 3))), "image_counts"),
    (lambda: telescope.simulate(torch.ones(1, 2, 8, 8), psf=np.ones((3, 3))), "image_counts"),
    (lambda: telescope.simulate(torch.ones(1, 1, 8, 8), psf=np.ones((3, 3)), background=-1.0), "background"),
    (lambda: telescope.simulate(torch.ones(1, 1, 8, 8), psf=np.ones((3, 3)), read_noise=float("inf")), "read_noise"),
    (lambda: telescope.simulate(torch.ones(1, 1, 8, 8), psf=np.ones((3, 3)), padding="mirror"), "padding"),
    (lambda: telescope.moffat_psf(-1.0), "fwhm"),
    (lambda: telescope.moffat_psf(2.0, beta=1.0), "beta"),
    (lambda: telescope.airy_psf(obscuration=1.0), "obscuration"),
    (lambda: telescope.richardson_lucy(torch.ones(1, 1, 8, 8), telescope.blur_physics(np.ones((3, 3))),
                                       iterations=0), "iterations"),
])
def test_bad_arguments_name_the_field(call, field):
    with pytest.raises(InputError, match=rf"\[{field}\] .*(expected|must)"):
        call()
