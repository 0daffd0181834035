"""The RED-Diff settings a modality ships with, chosen by measurement (``benchmarks/tune_defaults.py``).

Each modality holds one :class:`SolverDefaults` (``reddiff.modalities.get(name).defaults``;
all of them: :data:`reddiff.DEFAULTS`), used by :func:`reddiff.reconstruct`, the command
line and the README. Each row was tuned on held-out sample images (never the priors'
training data) with the measurement the modality's ``simulate`` writer makes by
default; the benchmark's docstring records the grid and the winning PSNRs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import InputError


@dataclass(frozen=True)
class SolverDefaults:
    r"""RED-Diff settings for one modality (see :func:`reddiff.red_diff` for their meaning).

    ``lam`` is the best weight at the noise level ``noise_reference`` (in the measure
    of the modality's ``noise_level``). The best weight was measured to scale as
    :math:`1/\sigma` over a decade of noise in every modality, so
    :meth:`lam_for` scales it: :math:`\lambda(\sigma) = \lambda\,\sigma_\text{ref}/\sigma`.
    """

    prior: str
    steps: int
    lr: float
    lam: float
    noise_reference: float
    weighting: str
    timesteps: str
    sigma_x0: float

    def lam_for(self, noise: float) -> float:
        """The default ``lam`` for a measurement with noise level ``noise``.

        Examples
        --------
        >>> row = SolverDefaults(prior="mri", steps=200, lr=0.05, lam=100.0, noise_reference=0.01,
        ...                      weighting="sqrt", timesteps="descending", sigma_x0=0.0)
        >>> row.lam_for(0.02)
        50.0
        """
        if not noise > 0:
            raise InputError(f"noise level must be positive, got {noise!r}", field="noise")
        return self.lam * self.noise_reference / noise

    def as_kwargs(self, noise: float | None = None) -> dict:
        """Keyword arguments for :func:`reddiff.red_diff` (``lam`` scaled to ``noise`` when given)."""
        kwargs = asdict(self)
        del kwargs["prior"], kwargs["noise_reference"]
        if noise is not None:
            kwargs["lam"] = self.lam_for(noise)
        return kwargs
