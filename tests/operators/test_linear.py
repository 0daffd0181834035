"""Shared checks run over every linear operator in conftest.OPERATORS."""

import torch


def _inner(a, b):
    return float((a.double() * b.double()).sum())


def _measurement_shape(physics, shape):
    return physics.A(torch.zeros(shape)).shape


def test_adjointness(operator, generator):
    physics, shape, _ = operator
    x = torch.randn(shape, generator=generator)
    y = torch.randn(_measurement_shape(physics, shape), generator=generator)
    lhs, rhs = _inner(physics.A(x), y), _inner(x, physics.A_adjoint(y))
    assert abs(lhs - rhs) <= 1e-5 * max(abs(lhs), 1.0)


def test_linearity(operator, generator):
    physics, shape, _ = operator
    x, z = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
    combined = physics.A(2.5 * x - 0.75 * z)
    expected = 2.5 * physics.A(x) - 0.75 * physics.A(z)
    torch.testing.assert_close(combined, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def test_shapes_and_dtype(operator, generator):
    physics, shape, is_complex = operator
    x = torch.randn(shape, generator=generator)
    y = physics.A(x)
    back = physics.A_adjoint(y)
    assert y.dtype == back.dtype == torch.float32
    assert back.shape == x.shape
    assert y.shape[0] == shape[0]
    if is_complex:
        assert y.shape[1] == 2  # (real, imag) channels in k-space too


def test_complex_operators_commute_with_multiplication_by_i(operator, generator):
    """Complex-linear: A(i x) = i A(x), with i acting on the (real, imag) channels."""
    physics, shape, is_complex = operator
    if not is_complex:
        return
    x = torch.randn(shape, generator=generator)

    def times_i(t):
        return torch.stack([-t[:, 1], t[:, 0]], dim=1)

    torch.testing.assert_close(physics.A(times_i(x)), times_i(physics.A(x)), rtol=1e-4, atol=1e-5)


def test_gradient_of_data_fit_is_the_adjoint(operator, generator):
    """RED-Diff differentiates through A: the gradient of <Ax, y> must be A^T y."""
    physics, shape, _ = operator
    x = torch.randn(shape, generator=generator).requires_grad_(True)
    y = torch.randn(_measurement_shape(physics, shape), generator=generator)
    (gradient,) = torch.autograd.grad((physics.A(x) * y).sum(), x)
    torch.testing.assert_close(gradient, physics.A_adjoint(y), rtol=1e-4, atol=1e-5)


def test_batch_items_are_independent(operator, generator):
    physics, shape, _ = operator
    x = torch.randn(shape, generator=generator)
    whole = physics.A(x)
    torch.testing.assert_close(physics.A(x[-1:]), whole[-1:], rtol=1e-5, atol=1e-6)
