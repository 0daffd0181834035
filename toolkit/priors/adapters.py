r"""Adapters between reddiff priors and deepinv denoisers, both ways.

deepinv's denoisers and diffusion samplers (DPS, DiffPIR, DDRM) work on images in
:math:`[0, 1]` (they map their :math:`[-1, 1]` diffusion state to it with
:class:`deepinv.models.MinusOneOneDenoiserWrapper`). Our priors' network units are
about :math:`[-1, 1]`, so the two adapters use the same map

.. math:: v = (u + 1) / 2, \qquad \sigma_v = \sigma_u / 2

between network units :math:`u` and deepinv units :math:`v` (configurable with
``data_range`` in :class:`DenoiserPrior`).
"""

from __future__ import annotations

import torch
from deepinv.models import Denoiser, MinusOneOneDenoiserWrapper

from ..errors import InputError
from .base import Prior, ValueTransform, ddpm_linear_schedule


class DenoiserPrior(Prior):
    r"""A Gaussian denoiser :math:`D(x, \sigma)` (e.g. any deepinv denoiser) as a diffusion prior.

    Parameters
    ----------
    denoiser : callable
        ``denoiser(x, sigma)`` with ``x`` ``(B, C, H, W)`` in ``data_range`` and
        ``sigma`` a tensor of shape ``(B,)`` in the same units, returning the
        denoised image; a :class:`deepinv.models.Denoiser` fits.
    channels : int
        Image channels the denoiser takes.
    alphas_cumprod : torch.Tensor, optional
        Schedule; DDPM linear with 1000 steps by default.
    transform : ValueTransform, optional
        Physical units to network units (network range :math:`[-1, 1]` maps to
        ``data_range``).
    data_range : (float, float)
        The denoiser's image range, deepinv's :math:`[0, 1]` by default.

    Notes
    -----
    A diffusion state :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon` is a
    scaled noisy image, :math:`x_t/\sqrt{\bar\alpha_t} = x_0 + s_t\,\epsilon` with
    :math:`s_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}`, so by Tweedie's formula

    .. math:: \hat\epsilon(x_t, t) = \frac{x_t - \sqrt{\bar\alpha_t}\, D(x_t/\sqrt{\bar\alpha_t}, s_t)}
              {\sqrt{1-\bar\alpha_t}},

    with :math:`D` applied through the range map of the module notes.

    Examples
    --------
    >>> import deepinv as dinv
    >>> prior = DenoiserPrior(dinv.models.MedianFilter(), channels=1)
    >>> prior.eps(torch.zeros(1, 1, 8, 8), torch.tensor([500])).abs().max().item()
    0.0
    """

    def __init__(self, denoiser, *, channels: int, alphas_cumprod=None,
                 transform: ValueTransform | None = None, data_range=(0.0, 1.0)):
        if not callable(denoiser):
            raise InputError("denoiser must be callable as denoiser(x, sigma)", field="denoiser")
        low, high = (float(v) for v in data_range)
        if not high > low:
            raise InputError(f"data_range must be (low, high) with high > low, got {data_range!r}",
                             field="data_range")
        super().__init__(ddpm_linear_schedule() if alphas_cumprod is None else alphas_cumprod,
                         channels, transform, name=f"denoiser:{type(denoiser).__name__}")
        self.denoiser = MinusOneOneDenoiserWrapper(denoiser, xmin=low, xmax=high)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.check_image(x_t, "x_t")
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        s_t = ((1 - a) / a).sqrt().flatten()
        denoised = self.denoiser(x_t / a.sqrt(), s_t)
        return (x_t - a.sqrt() * denoised) / (1 - a).sqrt()


class PriorDenoiser(Denoiser):
    r"""A reddiff prior as a deepinv denoiser, for deepinv's DPS, DiffPIR, DDRM, PnP...

    ``forward(x, sigma)`` takes images in deepinv's :math:`[0, 1]` units
    :math:`v = (u + 1)/2` of the prior's network units :math:`u` (physical images map
    with :meth:`to_deepinv` / :meth:`from_deepinv`) and returns Tweedie's estimate of
    the clean image in the same units, using the step whose noise level is nearest
    :math:`2\sigma` in network units (:meth:`reddiff.Prior.denoise`). At :math:`\sigma = 0`
    (the last step of deepinv's DDRM) it returns ``x`` without calling the network.

    Parameters
    ----------
    prior : reddiff.Prior

    Notes
    -----
    .. math:: D(v, \sigma) = \tfrac12\big(\hat u_0(2v - 1, 2\sigma) + 1\big), \quad
              \hat u_0(u, \sigma_u) = u - \sigma_t\,\hat\epsilon(\sqrt{\bar\alpha_t}\,u, t).

    Examples
    --------
    >>> import deepinv as dinv
    >>> from reddiff.priors import GaussianPrior
    >>> denoiser = PriorDenoiser(GaussianPrior())
    >>> denoiser(torch.full((1, 1, 4, 4), 0.5), 0.1).shape
    torch.Size([1, 1, 4, 4])
    """

    def __init__(self, prior: Prior):
        super().__init__()
        if not isinstance(prior, Prior):
            raise InputError(f"prior must be a reddiff Prior, got {type(prior).__name__}", field="prior")
        self.prior = prior

    def forward(self, x: torch.Tensor, sigma, **kwargs) -> torch.Tensor:
        sigma = self._handle_sigma(sigma, reference_tensor=x).flatten().expand(x.shape[0])
        clean = sigma == 0  # deepinv's DDRM ends at sigma 0: nothing to remove, no network call
        if bool(clean.all()):
            return x
        u = self.prior.denoise(2 * x - 1, 2 * torch.where(clean, sigma.max(), sigma))
        return torch.where(clean.view(-1, 1, 1, 1), x, (u + 1) / 2)

    def to_deepinv(self, x: torch.Tensor) -> torch.Tensor:
        """Physical units to this denoiser's :math:`[0, 1]` units."""
        return (self.prior.transform.to_model(x) + 1) / 2

    def from_deepinv(self, v: torch.Tensor) -> torch.Tensor:
        """This denoiser's :math:`[0, 1]` units back to physical units."""
        return self.prior.transform.to_physical(2 * v - 1)
