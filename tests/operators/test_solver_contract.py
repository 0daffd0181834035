"""Each modality's Measurement plugs into red_diff as is: its physics and data term drive the solver."""

import pytest
import torch

from reddiff import GaussianPrior, red_diff
from reddiff.priors.base import AffineTransform
from reddiff.operators import ct, generic, mri, telescope


def _run(m, channels, init="pinv", prior=None):
    prior = prior or GaussianPrior(mean=float(m.x_true.mean()), std=float(m.x_true.std()) + 1e-3, channels=channels)
    return red_diff(m.y, m.physics, prior, steps=20, lr=0.05, n_samples=2, seed=0, init=init)


def test_mri_multicoil():
    m = mri.simulate(torch.rand(1, 1, 16, 16), acceleration=2, center_fraction=0.25, coils=3, sigma=0.05, seed=0)
    result = _run(m, channels=2)
    assert result.mean.shape == (2, 16, 16) and bool(torch.isfinite(torch.as_tensor(result.mean.values)).all())


def test_ct_transmission_uses_the_beer_lambert_data_term():
    x = torch.full((1, 1, 16, 16), ct.MU_WATER)
    m = ct.simulate(x, views=20, I0=1e4, seed=0)
    start = ct.fbp(ct.line_integrals(m.y, 1e4), m.physics)
    prior = GaussianPrior(mean=0.0, std=0.5, transform=AffineTransform(offset=ct.MU_WATER, scale=ct.MU_WATER))
    result = _run(m, channels=1, init=start, prior=prior)
    assert "TransmissionLikelihood" in result.config["data_term"]
    mean = torch.as_tensor(result.mean.values)
    assert abs(float(mean.mean()) - ct.MU_WATER) < 0.1 * ct.MU_WATER


@pytest.mark.parametrize("simulate", [
    lambda: telescope.simulate(torch.full((1, 1, 16, 16), 100.0), psf=telescope.gaussian_psf(2.0), seed=0),
    lambda: generic.simulate(torch.rand(1, 1, 16, 16), task="sr-average", factor=2, sigma=0.05, seed=0),
], ids=["telescope", "super-resolution"])
def test_other_modalities(simulate):
    m = simulate()
    result = _run(m, channels=1)
    assert repr(m.physics.data_term) == result.config["data_term"]
