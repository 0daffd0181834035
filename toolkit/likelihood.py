r"""Data terms: negative log-likelihoods of a measurement given ``A(x)``.

A data term is any callable ``(y, Ax) -> Tensor`` whose sum is the negative
log-likelihood :math:`-\log p(y \mid x)` up to a constant. The built-in ones also
``sample(Ax)`` a measurement from their noise model (re-simulating a measurement
like another one, :meth:`reddiff.modalities.Modality.measure_like`).  The built-in ones
return one value per batch element (shape ``(B,)``), summed over every other
axis: reddiff uses **sum reduction** everywhere (see :func:`reddiff.red_diff`),
so a data term is the full negative log-likelihood, not a per-pixel mean.

Complex measurements may be real tensors with a channel axis of 2 (deepinv's
convention) or complex tensors; both give :math:`|y - Ax|^2` summed.

The built-in data terms also give their **deviance** :math:`D(y, Ax)` (twice the
log-likelihood ratio against a perfect fit) and its expectation at the true image,
about one per measured entry: the discrepancy principle behind ``lam="auto"``
(:mod:`reddiff.discrepancy`) picks the weight whose reconstruction has
:math:`D \approx \mathbb E[D]`.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch

from .errors import InputError

DataTerm = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _sum_per_sample(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).sum(dim=1)


def poisson_deviance(counts: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    r"""Poisson deviance per batch element, :math:`2\sum_i [k_i \log(k_i/\mu_i) - (k_i - \mu_i)]`.

    ``counts`` :math:`k \ge 0` and ``rate`` :math:`\mu > 0` broadcast together; :math:`0 \log 0 = 0`.

    Examples
    --------
    >>> poisson_deviance(torch.tensor([[4.0, 0.0]]), torch.tensor([[4.0, 1.0]]))
    tensor([2.])
    """
    counts, rate = torch.broadcast_tensors(counts, rate)
    return _sum_per_sample(2.0 * (torch.xlogy(counts, counts / rate) - (counts - rate)))


#: Rates above which the expected Poisson deviance follows its large-rate expansion.
_EXPANSION_FROM = 20.0


@functools.cache
def _expected_deviance_table() -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact :math:`\mathbb E[D]` of one Poisson entry on a log grid of rates up to ``_EXPANSION_FROM``."""
    rates = torch.logspace(-4, math.log10(_EXPANSION_FROM), 160, dtype=torch.float64)
    k = torch.arange(0, 200, dtype=torch.float64)[:, None]
    log_pmf = torch.xlogy(k, rates) - rates - torch.lgamma(k + 1)
    deviance = 2.0 * (torch.xlogy(k, k / rates) - (k - rates))
    return rates.log(), (log_pmf.exp() * deviance).sum(dim=0)


def expected_poisson_deviance(rate: torch.Tensor) -> torch.Tensor:
    r"""Expected Poisson deviance per batch element when the counts are drawn at ``rate``.

    .. math:: \mathbb E[D] = \sum_i e(\mu_i), \qquad
              e(\mu) = 1 + \frac{1}{6\mu} + \frac{1}{6\mu^2} + O(\mu^{-3}) \quad (\mu \ge 20),

    and the exact sum over the Poisson distribution below (about 1.15 at :math:`\mu = 1`,
    0.47 at :math:`\mu = 0.1`: few-count entries carry less than one unit of deviance).

    Examples
    --------
    >>> round(float(expected_poisson_deviance(torch.full((1, 10), 100.0))), 3)
    10.017
    """
    log_rates, values = _expected_deviance_table()
    mu = rate.detach().double().clamp(min=1e-4)
    large = 1 + 1 / (6 * mu) + 1 / (6 * mu**2)
    index = torch.searchsorted(log_rates, mu.log().clamp(max=float(log_rates[-1])).contiguous())
    index = index.clamp(1, len(log_rates) - 1)
    left, right = log_rates[index - 1], log_rates[index]
    weight = ((mu.log() - left) / (right - left)).clamp(0, 1)
    small = values[index - 1] * (1 - weight) + values[index] * weight
    dtype = rate.dtype if rate.is_floating_point() else torch.float32
    return _sum_per_sample(torch.where(mu >= _EXPANSION_FROM, large, small)).to(dtype)


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

    def sample(self, Ax: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""A measurement drawn from the model, :math:`y = Ax + \sigma n`, :math:`n \sim \mathcal N(0, I)`."""
        return Ax + self.sigma * torch.randn(Ax.shape, generator=generator, dtype=Ax.dtype)

    def deviance(self, y: torch.Tensor, Ax: torch.Tensor) -> torch.Tensor:
        r""":math:`D = \lVert y - Ax \rVert^2 / \sigma^2` per batch element."""
        return 2.0 * self(y, Ax)

    def expected_deviance(self, y: torch.Tensor, Ax: torch.Tensor) -> torch.Tensor:
        r""":math:`\mathbb E[D]` at the true image: the number of measured real entries.

        Entries of ``y`` that are exactly zero are taken as not measured (the
        unsampled k-space of a masked MRI measurement is stored as zeros; a noisy
        measured value is never exactly zero). Complex entries count twice.
        """
        measured = (y != 0).float() * (2.0 if y.is_complex() else 1.0)
        return _sum_per_sample(measured.expand(Ax.shape))

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

    def sample(self, Ax: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""A measurement drawn from the model, :math:`y \sim \mathrm{Poisson}(\max(Ax, 0))`."""
        return torch.poisson(Ax.clamp_min(0), generator=generator)

    def deviance(self, y: torch.Tensor, Ax: torch.Tensor) -> torch.Tensor:
        """Poisson deviance of the counts at the rate ``Ax`` (:func:`poisson_deviance`)."""
        return poisson_deviance(y, Ax.clamp(min=self.floor))

    def expected_deviance(self, y: torch.Tensor, Ax: torch.Tensor) -> torch.Tensor:
        """Its expectation at the rate ``Ax`` (:func:`expected_poisson_deviance`)."""
        return expected_poisson_deviance(Ax.clamp(min=self.floor))

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


class TransmissionLikelihood:
    r"""Transmission (Beer-Lambert) counts, :math:`y \sim \mathrm{Poisson}(I_0\, e^{-Ax})`.

    ``Ax`` are dimensionless line integrals of the attenuation (CT) and ``y`` the
    detected photon counts; the physics stays linear and this data term does the
    exponential, so a solver needs only its gradient.

    .. math:: -\log p(y \mid x) = \sum_i \left[ I_0\, e^{-(Ax)_i} + y_i\,(Ax)_i \right] + \text{const}

    Parameters
    ----------
    I0 : float or torch.Tensor
        Unattenuated counts per detector bin (blank scan), positive; a tensor
        broadcasts against ``y`` (e.g. a bow-tie profile).

    Examples
    --------
    >>> import torch
    >>> nll = TransmissionLikelihood(I0=100.0)
    >>> line = torch.zeros(1, 2, requires_grad=True)
    >>> nll(torch.full((1, 2), 100.0), line).sum().backward()
    >>> line.grad  # zero where the counts equal their expectation
    tensor([[0., 0.]])
    """

    def __init__(self, I0):
        I0 = torch.as_tensor(I0, dtype=torch.float32)
        if not bool(torch.isfinite(I0).all()) or not bool((I0 > 0).all()):
            raise InputError(f"I0 must be positive and finite, got {I0!r}", field="I0")
        self.I0 = I0

    def __call__(self, y: torch.Tensor, Ax: torch.Tensor) -> torch.Tensor:
        return _sum_per_sample(self._rate(Ax) + y * Ax)

    def _rate(self, Ax: torch.Tensor) -> torch.Tensor:
        r"""Expected counts :math:`I_0 e^{-Ax}`."""
        return self.I0.to(Ax.device) * torch.exp(-Ax)

    def sample(self, Ax: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Counts drawn from the model, :math:`y \sim \mathrm{Poisson}(I_0\, e^{-Ax})`."""
        return torch.poisson(self._rate(Ax), generator=generator)

    def deviance(self, y: torch.Tensor, Ax: torch.Tensor) -> torch.Tensor:
        r"""Poisson deviance of the counts at the rate :math:`I_0 e^{-Ax}` (:func:`poisson_deviance`)."""
        return poisson_deviance(y, self._rate(Ax))

    def expected_deviance(self, y: torch.Tensor, Ax: torch.Tensor) -> torch.Tensor:
        """Its expectation at that rate (:func:`expected_poisson_deviance`)."""
        return expected_poisson_deviance(self._rate(Ax))

    def __repr__(self) -> str:
        value = f"{float(self.I0):g}" if self.I0.numel() == 1 else f"tensor{tuple(self.I0.shape)}"
        return f"TransmissionLikelihood(I0={value})"


class ShiftedPoissonLikelihood:
    r"""Photon counts with sky background and Gaussian read noise (CCD model), by the shifted-Poisson approximation.

    The measurement is :math:`y = \mathrm{Poisson}(Ax + b) + \mathcal N(0, r^2)` in
    electrons. Its exact likelihood is a Poisson-Gaussian convolution; the
    shifted-Poisson approximation treats :math:`y + r^2` as
    :math:`\mathrm{Poisson}(Ax + b + r^2)`, which matches the mean and variance exactly:

    .. math:: -\log p(y \mid x) \approx \sum_i \left[\lambda_i - (y_i + r^2)\log \lambda_i\right] + \text{const},
              \qquad \lambda_i = (Ax)_i + b + r^2 .

    ``y + r^2`` is clamped at 0 and :math:`\lambda` below at ``floor``.

    Parameters
    ----------
    background : float
        Sky (plus dark) level :math:`b` in electrons per pixel, ``>= 0``.
    read_noise : float
        Read-noise standard deviation :math:`r` in electrons, ``>= 0``.
    floor : float, optional
        Smallest rate used inside the logarithm.

    Examples
    --------
    >>> import torch
    >>> nll = ShiftedPoissonLikelihood(background=10.0, read_noise=3.0)
    >>> rate = torch.full((1, 2), 5.0, requires_grad=True)
    >>> nll(torch.full((1, 2), 15.0), rate).sum().backward()
    >>> rate.grad  # zero where y equals its mean A x + b
    tensor([[0., 0.]])
    """

    def __init__(self, background: float = 0.0, read_noise: float = 0.0, floor: float = 1e-6):
        for name, value in (("background", background), ("read_noise", read_noise)):
            if not (value >= 0 and value < float("inf")):
                raise InputError(f"{name} must be finite and >= 0, got {value!r}", field=name)
        if not (floor > 0):
            raise InputError(f"floor must be positive, got {floor!r}", field="floor")
        self.background, self.read_noise, self.floor = float(background), float(read_noise), float(floor)

    def __call__(self, y: torch.Tensor, Ax: torch.Tensor) -> torch.Tensor:
        rate, counts = self._rate(Ax), self._counts(y)
        return _sum_per_sample(rate - counts * torch.log(rate))

    def sample(self, Ax: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""A frame drawn from the CCD model, :math:`y = \mathrm{Poisson}(\max(Ax, 0) + b) + r\, n`."""
        counts = torch.poisson(Ax.clamp_min(0) + self.background, generator=generator)
        return counts + self.read_noise * torch.randn(Ax.shape, generator=generator, dtype=Ax.dtype)

    def _rate(self, Ax: torch.Tensor) -> torch.Tensor:
        r""":math:`\lambda = Ax + b + r^2`, clamped at ``floor``."""
        return (Ax + self.background + self.read_noise**2).clamp(min=self.floor)

    def _counts(self, y: torch.Tensor) -> torch.Tensor:
        r""":math:`y + r^2`, clamped at 0."""
        return (y + self.read_noise**2).clamp(min=0)

    def deviance(self, y: torch.Tensor, Ax: torch.Tensor) -> torch.Tensor:
        r"""Poisson deviance of :math:`y + r^2` at the rate :math:`\lambda = Ax + b + r^2`."""
        return poisson_deviance(self._counts(y), self._rate(Ax))

    def expected_deviance(self, y: torch.Tensor, Ax: torch.Tensor) -> torch.Tensor:
        """Its expectation at that rate (:func:`expected_poisson_deviance`; the shift makes rates >= r^2)."""
        return expected_poisson_deviance(self._rate(Ax))

    def __repr__(self) -> str:
        return f"ShiftedPoissonLikelihood(background={self.background:g}, read_noise={self.read_noise:g})"
