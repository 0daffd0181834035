r"""An analytic Gaussian prior whose noise prediction is exact.

If :math:`x_0 \sim \mathcal N(m, s^2 I)` (network units), then
:math:`x_t \sim \mathcal N(\sqrt{\bar\alpha_t} m, (\bar\alpha_t s^2 + 1 - \bar\alpha_t) I)` and the
MMSE noise estimate is

.. math:: \hat\epsilon(x_t, t) = \frac{\sqrt{1 - \bar\alpha_t}\,(x_t - \sqrt{\bar\alpha_t}\, m)}
          {\bar\alpha_t s^2 + 1 - \bar\alpha_t}.

With it, RED-Diff on a linear problem has a closed-form fixed point (a Tikhonov
solution), which the tests use to check the solver.
"""

from __future__ import annotations

import torch

from .base import Prior, ValueTransform, ddpm_linear_schedule


class GaussianPrior(Prior):
    """Independent Gaussian pixels, :math:`x_0 \\sim \\mathcal N(m, s^2)` in network units.

    Parameters
    ----------
    mean : float or torch.Tensor
        :math:`m`, broadcastable to ``(B, C, H, W)``.
    std : float or torch.Tensor
        :math:`s > 0`, broadcastable likewise.
    channels : int
        Number of image channels.
    alphas_cumprod : torch.Tensor, optional
        Schedule; DDPM linear with 1000 steps by default.
    transform : ValueTransform, optional
        Physical to network units.

    Examples
    --------
    >>> import torch
    >>> prior = GaussianPrior(mean=0.0, std=1.0)
    >>> x_t = torch.randn(2, 1, 4, 4)
    >>> t = torch.tensor([10, 500])
    >>> torch.allclose(prior.eps(x_t, t), x_t * (1 - prior.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1))
    True
    """

    def __init__(self, mean=0.0, std=1.0, *, channels: int = 1, alphas_cumprod=None,
                 transform: ValueTransform | None = None):
        super().__init__(ddpm_linear_schedule() if alphas_cumprod is None else alphas_cumprod,
                         channels, transform, name="gaussian")
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (1 - a).sqrt() * (x_t - a.sqrt() * self.mean) / (a * self.std**2 + 1 - a)
