r"""Data terms: negative log-likelihoods of a measurement given ``A(x)``.

A data term is any callable ``(y, Ax) -> Tensor`` whose sum is the negative
log-likelihood :math:`-\log p(y \mid x)` up to a constant.  The built-in ones
return one value per batch element (shape ``(B,)``), summed over every other
axis: reddiff uses **sum reduction** everywhere (see :func:`reddiff.red_diff`),
so a data term is the full negative log-likelihood, not a per-pixel mean.

Complex measurements may be real tensors with a channel axis of 2 (deepinv's
convention) or complex tensors; both give :math:`|y - Ax|^2` summed.
"""

from __future__ import annotations

from typing import Callable

import torch

from .errors import InputError

DataTerm = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _sum_per_sample(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).sum(dim=1)


class GaussianLikelihood:
    r"""Additive white Gaussian noise, :math:`y = Ax + n,\ n \sim \mathcal N(0, \sigma^2 I)`.

    .. math:: -\log p(y \mid x) = \frac{1}{2\sigma^2} \lVert y - Ax \rVert_2^2

    Parameters
    ----------
    sigma : float
        Noise standard deviation, in the units of ``y``. Must be positive.

    Examples
    --------
    >>> import torch
    >>> nll = GaussianLikelihood(sigma=0.5)
    >>> nll(torch.ones(1, 3), torch.zeros(1, 3))
    tensor([6.])
    """

    def __init__(self, sigma: float):
        if not (sigma > 0):
            raise InputError(f"sigma must be positive, got {sigma!r}", field="sigma")
        self.sigma = float(sigma)

    def __call__(self, y: torch.Tensor, Ax: torch.Tensor) -> torch.Tensor:
        residual = y - Ax
        squared = residual.abs() ** 2 if residual.is_complex() else residual**2
        return _sum_per_sample(squared) / (2.0 * self.sigma**2)

    def __repr__(self) -> str:
        return f"GaussianLikelihood(sigma={self.sigma:g})"


class PoissonLikelihood:
    r"""Photon counts, :math:`y \sim \mathrm{Poisson}(Ax)` with ``Ax`` in counts.

    .. math:: -\log p(y \mid x) = \sum_i \left[(Ax)_i - y_i \log (Ax)_i\right] + \text{const}

    ``Ax`` is clamped below at ``floor`` so the logarithm stays finite while the
    optimiser explores negative values.

    Parameters
    ----------
    floor : float, optional
        Smallest expected count used inside the logarithm.
    """

    def __init__(self, floor: float = 1e-6):
        if not (floor > 0):
            raise InputError(f"floor must be positive, got {floor!r}", field="floor")
        self.floor = float(floor)

    def __call__(self, y: torch.Tensor, Ax: torch.Tensor) -> torch.Tensor:
        rate = Ax.clamp(min=self.floor)
        return _sum_per_sample(rate - y * torch.log(rate))

    def __repr__(self) -> str:
        return f"PoissonLikelihood(floor={self.floor:g})"


def as_data_term(data_term) -> DataTerm:
    """Return a data term from a callable or a positive float (a Gaussian ``sigma``)."""
    if callable(data_term):
        return data_term
    if isinstance(data_term, (int, float)):
        return GaussianLikelihood(float(data_term))
    raise InputError(
        f"data_term must be a callable (y, Ax) -> loss or a Gaussian sigma, got {type(data_term).__name__}",
        field="data_term",
    )
