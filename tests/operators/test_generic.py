import pytest
import torch

from reddiff.errors import InputError
from reddiff.likelihood import GaussianLikelihood
from reddiff.operators import generic


@pytest.mark.parametrize("task, shape", [
    ("inpaint-random", (1, 3, 16, 16)), ("inpaint-box", (1, 3, 16, 16)), ("sr-average", (1, 3, 4, 4)),
    ("sr-bicubic", (1, 3, 4, 4)), ("deblur-gaussian", (1, 3, 16, 16)), ("deblur-uniform", (1, 3, 16, 16)),
])
def test_every_task_simulates_with_its_noise_and_info(task, shape):
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    m = generic.simulate(x, task=task, sigma=0.1, seed=0)
    assert m.y.shape == shape and m.info["task"] == task
    assert isinstance(m.physics.data_term, GaussianLikelihood) and m.physics.data_term.sigma == 0.1
    residual = m.y - m.physics.A(x)
    observed = residual[residual != 0]
    assert abs(float(observed.std()) - 0.1) < 0.02
    assert torch.equal(m.y, generic.simulate(x, task=task, sigma=0.1, seed=0).y)


def test_hidden_pixels_read_zero_and_masks_have_the_requested_area():
    m = generic.simulate(torch.ones(1, 1, 64, 64), task="inpaint-random", missing=0.7, sigma=0.1, seed=0)
    mask = m.info["mask"]
    assert abs(float(mask.mean()) - 0.3) < 0.03
    assert float(m.y[0, 0][mask == 0].abs().max()) == 0.0
    box = generic.box_mask((32, 32), missing=0.25)
    assert float(1 - box.mean()) == 0.25 and float(box[8:24, 8:24].sum()) == 0.0


def test_block_average_pseudo_inverse_and_bicubic_preserve_constants():
    physics = generic.super_resolution_physics(factor=4)
    y = torch.rand(1, 1, 4, 4)
    torch.testing.assert_close(physics.A(physics.A_dagger(y)), y)
    bicubic = generic.super_resolution_physics(factor=2, kind="bicubic", image_shape=(16, 16))
    torch.testing.assert_close(bicubic.A(torch.full((1, 1, 16, 16), 3.0)), torch.full((1, 1, 8, 8), 3.0))


def test_deblur_kernels():
    assert generic.gaussian_kernel(1.5).shape == (11, 11)
    physics = generic.deblur_physics(kind="gaussian", blur_sigma=2.0)
    torch.testing.assert_close(physics.A(torch.full((1, 1, 16, 16), 2.0)), torch.full((1, 1, 16, 16), 2.0))
    assert generic.simulate(torch.rand(1, 1, 16, 16), task="deblur-uniform", blur_size=5, seed=0).info[
        "kernel"].shape == (5, 5)


@pytest.mark.parametrize("call, field", [
    (lambda: generic.simulate(torch.rand(1, 1, 8, 8), task="colorize"), "task"),
    (lambda: generic.simulate(torch.rand(1, 1, 10, 10), task="sr-average", factor=4), "x"),
    (lambda: generic.simulate(torch.rand(1, 1, 10, 10), task="sr-bicubic", factor=4), "image_shape"),
    (lambda: generic.simulate(torch.rand(2, 1, 8, 8)), "image"),
    (lambda: generic.simulate(torch.full((1, 1, 8, 8), float("nan"))), "image"),
    (lambda: generic.simulate(torch.rand(1, 1, 8, 8), sigma=-0.1), "sigma"),
    (lambda: generic.box_mask((8, 8), box=(6, 6, 4, 4)), "box"),
    (lambda: generic.random_mask((8, 8), missing=1.0), "missing"),
    (lambda: generic.deblur_physics(kind="motion"), "kind"),
])
def test_bad_arguments_name_the_field(call, field):
    with pytest.raises(InputError, match=rf"\[{field}\] .*(expected|must)"):
        call()
