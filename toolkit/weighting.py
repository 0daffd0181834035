r"""SNR weightings of the RED-Diff regulariser, chosen by name.

RED-Diff weights the denoising term at timestep :math:`t` by a function of the
signal-to-noise ratio :math:`\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)`.
The paper's default is the *linear* weighting

.. math:: w(t) = \frac{\sqrt{1 - \bar\alpha_t}}{\sqrt{\bar\alpha_t}} = \mathrm{SNR}(t)^{-1/2},

and the others are monotone transforms of it.  Every entry of :data:`WEIGHTINGS`
maps ``alpha_bar`` (a tensor) to ``w(t)`` (a tensor of the same shape).
"""

from __future__ import annotations

from typing import Callable

import torch

from .errors import InputError

Weighting = Callable[[torch.Tensor], torch.Tensor]


def inverse_sqrt_snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{SNR}^{-1/2} = \sqrt{(1 - \bar\alpha)/\bar\alpha}`."""
    return torch.sqrt((1.0 - alpha_bar) / alpha_bar)


WEIGHTINGS: dict[str, Weighting] = {
    "linear": inverse_sqrt_snr,
    "sqrt": lambda a: torch.sqrt(inverse_sqrt_snr(a)),
    "square": lambda a: inverse_sqrt_snr(a) ** 2,
    "log1p": lambda a: torch.log1p(inverse_sqrt_snr(a)),
    "trunc_linear": lambda a: inverse_sqrt_snr(a).clamp(max=1.0),
    "constant": lambda a: torch.ones_like(a),
}
"""Named SNR weightings :math:`w(\bar\alpha_t)`; ``linear`` is the paper's."""


def get_weighting(weighting: str | Weighting) -> Weighting:
    """Return the weighting function for a name in :data:`WEIGHTINGS` or a callable.

    Raises
    ------
    InputError
        If ``weighting`` is a string that is not a known name; the message lists
        the valid names.
    """
    if callable(weighting):
        return weighting
    try:
        return WEIGHTINGS[weighting]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(WEIGHTINGS))
        raise InputError(
            f"unknown weighting {weighting!r}; expected one of: {valid}, or a callable "
            "alpha_bar -> w"
        ) from None
