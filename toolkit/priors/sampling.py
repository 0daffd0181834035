r"""Unconditional sampling from a prior (DDIM), for model cards and sanity checks."""

from __future__ import annotations

import torch

from ..errors import InputError
from .base import Prior


@torch.no_grad()
def sample_ddim(prior: Prior, shape, *, steps: int = 50, eta: float = 0.0, clip=None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Draw unconditional samples with DDIM (Song et al., 2021), in network units.

    Parameters
    ----------
    prior : reddiff.Prior
    shape : tuple of int
        ``(B, C, H, W)`` with ``C == prior.channels``.
    steps : int
        Number of network calls, timesteps evenly spaced from ``T - 1`` to 0.
    eta : float
        0 for deterministic DDIM, 1 for DDPM-like ancestral noise.
    clip : (float, float), optional
        Clamp each :math:`\hat x_0` to this range (network units) and recompute
        :math:`\hat\epsilon` from it, as diffusers' ``clip_sample`` does: at high noise
        :math:`\hat x_0` amplifies small errors of :math:`\hat\epsilon` by
        :math:`1/\sqrt{\bar\alpha_t}` (up to 150 with the DDPM schedule).
    generator : torch.Generator, optional
        Source of the initial noise (and of the ancestral noise when ``eta > 0``).

    Returns
    -------
    torch.Tensor
        Samples ``(B, C, H, W)`` in network units (``prior.transform.to_physical``
        gives physical units).

    Notes
    -----
    From :math:`x_T \sim \mathcal N(0, I)`, for consecutive steps :math:`t > s`,

    .. math:: \hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon}{\sqrt{\bar\alpha_t}},\quad
              x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1 - \bar\alpha_s - \sigma^2}\,\hat\epsilon
              + \sigma z,

    with :math:`\sigma = \eta \sqrt{(1-\bar\alpha_s)/(1-\bar\alpha_t)}\sqrt{1-\bar\alpha_t/\bar\alpha_s}`;
    the last step returns :math:`\hat x_0`. Like any first-order ODE solver it
    shrinks the spread slightly with few steps (for a Gaussian prior of std 0.5:
    0.43 with 20 steps, 0.47 with 50, 0.48 with 100).

    Examples
    --------
    >>> from reddiff.priors import GaussianPrior
    >>> x = sample_ddim(GaussianPrior(std=0.5), (64, 1, 8, 8), steps=100,
    ...                 generator=torch.Generator().manual_seed(0))
    >>> round(x.std().item(), 1)
    0.5
    """
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}", field="steps")
    if len(shape) != 4 or shape[1] != prior.channels:
        raise InputError(f"shape must be (B, {prior.channels}, H, W), got {tuple(shape)}", field="shape")
    device = prior.alphas_cumprod.device
    x = torch.randn(shape, generator=generator).to(device)
    times = torch.linspace(prior.num_timesteps - 1, 0, steps).round().long().tolist()
    for i, t in enumerate(times):
        a_t = prior.alphas_cumprod[t]
        eps = prior.eps(x, torch.full((shape[0],), t, device=device))
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if clip is not None:
            x0 = x0.clamp(*clip)
            eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        if i == len(times) - 1:
            return x0
        a_s = prior.alphas_cumprod[times[i + 1]]
        sigma = eta * ((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)).sqrt()
        x = a_s.sqrt() * x0 + (1 - a_s - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0:
            x = x + sigma * torch.randn(shape, generator=generator).to(device)
    return x
