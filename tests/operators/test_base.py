import deepinv as dinv
import numpy as np
import pytest
import torch

from reddiff.errors import InputError
from reddiff.operators import base, ct, generic, mri, telescope


def test_least_squares_damping_is_tikhonov():
    y = torch.rand(1, 1, 4, 4)
    x = base.least_squares_cg(y, dinv.physics.Denoising(), iterations=5, damping=0.5)
    torch.testing.assert_close(x, y / 1.5)


def test_make_generator_is_reproducible_and_validates():
    assert torch.equal(torch.rand(3, generator=base.make_generator(5)), torch.rand(3, generator=base.make_generator(5)))
    with pytest.raises(InputError, match=r"\[seed\]"):
        base.make_generator(-1)


IMAGE = torch.linspace(0, 1, 256).reshape(1, 1, 16, 16)


@pytest.mark.parametrize("simulate", [
    lambda: mri.simulate(IMAGE, mask="poisson-disc", coils=2, center_fraction=0.25, seed=0),
    lambda: ct.simulate(0.02 * IMAGE, views=8, I0=1e3, seed=0),
    lambda: telescope.simulate(10 * IMAGE, psf=telescope.zernike_psf({4: 0.1}), seed=0),
    lambda: generic.simulate(IMAGE, task="inpaint-random", seed=0),
    lambda: mri.simulate(IMAGE, seed=None),  # fresh entropy, still not from the global generator
], ids=["mri", "ct", "telescope", "generic", "unseeded"])
def test_simulations_never_touch_the_global_random_state(simulate):
    before = torch.random.get_rng_state()
    numpy_before = np.random.get_state()[1].copy()
    simulate()
    assert torch.equal(torch.random.get_rng_state(), before)
    assert np.array_equal(np.random.get_state()[1], numpy_before)


def test_convolution_padding_is_checked():
    with pytest.raises(InputError, match=r"\[padding\] unknown padding 'wrap'; expected one of"):
        base.convolution(torch.ones(3, 3), padding="wrap")
    with pytest.raises(InputError, match=r"\[kernel\]"):
        base.convolution(torch.ones(2, 3, 3))
