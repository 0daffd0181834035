"""Solver settings per modality, chosen by measurement (``benchmarks/tune_defaults.py``).

One table, used by :func:`reddiff.reconstruct`, the command line and the README.
Each row was tuned on held-out sample images (never the priors' training data) with
the measurement the modality's ``simulate`` writer makes by default; the
benchmark's docstring records the grid and the winning PSNRs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import InputError


@dataclass(frozen=True)
class SolverDefaults:
    """RED-Diff settings for one modality (see :func:`reddiff.red_diff` for their meaning)."""

    prior: str
    steps: int
    lr: float
    lam: float
    weighting: str
    timesteps: str
    sigma_x0: float

    def as_kwargs(self) -> dict:
        """The settings as keyword arguments for :func:`reddiff.red_diff` (without ``prior``)."""
        kwargs = asdict(self)
        kwargs.pop("prior")
        return kwargs


#: Modality name -> settings. Measured PSNRs are in ``benchmarks/tune_defaults.py``.
DEFAULTS = {
    "ct": SolverDefaults(prior="ct", steps=100, lr=0.1, lam=100.0, weighting="sqrt",
                         timesteps="descending", sigma_x0=0.0),
    "mri": SolverDefaults(prior="mri", steps=100, lr=0.1, lam=100.0, weighting="sqrt",
                          timesteps="descending", sigma_x0=0.0),
    "astro": SolverDefaults(prior="astro", steps=50, lr=0.00333, lam=100.0, weighting="linear",
                            timesteps="descending", sigma_x0=0.0),
}
MODALITIES = tuple(DEFAULTS)


def defaults_for(modality: str) -> SolverDefaults:
    """The settings row for ``modality`` (``"ct"``, ``"mri"`` or ``"astro"``).

    Examples
    --------
    >>> defaults_for("ct").prior
    'ct'
    """
    if modality not in DEFAULTS:
        raise InputError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}",
                         field="modality")
    return DEFAULTS[modality]
