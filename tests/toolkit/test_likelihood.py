import pytest
import torch

from reddiff import GaussianLikelihood, InputError, PoissonLikelihood


def test_gaussian_is_half_squared_residual_over_variance_per_sample():
    y = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    ax = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(GaussianLikelihood(2.0)(y, ax), torch.tensor([5 / 8, 2 / 8]))


def test_gaussian_complex_uses_modulus():
    y = torch.tensor([[1 + 1j]], dtype=torch.complex64)
    torch.testing.assert_close(GaussianLikelihood(1.0)(y, torch.zeros_like(y)), torch.tensor([1.0]))


def test_poisson_gradient_vanishes_at_the_counts():
    y = torch.tensor([[3.0, 7.0]])
    rate = y.clone().requires_grad_(True)
    PoissonLikelihood()(y, rate).sum().backward()
    torch.testing.assert_close(rate.grad, torch.zeros_like(y))


@pytest.mark.parametrize("make", [lambda: GaussianLikelihood(0.0), lambda: PoissonLikelihood(-1)])
def test_invalid_parameters(make):
    with pytest.raises(InputError):
        make()
