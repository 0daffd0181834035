"""The RED-Diff settings a modality ships with, chosen by measurement (``benchmarks/tune_defaults.py``).

Each modality holds one :class:`SolverDefaults` (``reddiff.modalities.get(name).defaults``;
all of them: :data:`reddiff.DEFAULTS`), used by :func:`reddiff.reconstruct`, the command
line and the README. ``lr`` and ``steps`` are tuned on generated validation images (never a
held-out sample, never training data) measured like the modality's canonical measurement;
``docs/tuning.md`` records the grid, the winners and the earlier tuning they replaced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .discrepancy import AutoLam
from .errors import InputError


@dataclass(frozen=True)
class SolverDefaults:
    r"""RED-Diff settings for one modality (see :func:`reddiff.red_diff` for their meaning).

    ``lam`` is the best weight at the noise level ``noise_reference`` (in the measure
    of the modality's ``noise_level``). The best weight was measured to scale as
    :math:`1/\sigma` over a decade of noise in every modality, so
    :meth:`lam_for` scales it: :math:`\lambda(\sigma) = \lambda\,\sigma_\text{ref}/\sigma`.

    ``lam_target`` set: the weight is chosen per measurement by the discrepancy principle
    (:class:`reddiff.discrepancy.AutoLam`, pilots around :meth:`lam_for`), aiming at this
    deviance ratio :math:`\tau` (measured on generated images per modality); None: the
    scaled ``lam`` is used as is.

    ``t_max`` is the top of the timestep grid (None: the prior's ``T - 1``, the paper's
    full range); a modality whose start is already a good estimate of the image may skip
    the pure-noise timesteps.

    ``large_size`` set: the row holds for images up to that many pixels a side, and larger ones
    run it with the settings in ``large`` instead (:meth:`for_shape`; e.g. CT's full timestep
    range above 181 px). The shipped calibrations hold a variant fitted with them
    (``<name>@large-grid.json``).
    """

    prior: str
    steps: int
    lr: float
    lam: float
    noise_reference: float
    weighting: str
    timesteps: str
    sigma_x0: float
    lam_target: float | None = None
    t_max: int | None = None
    large_size: int | None = None
    large: dict = field(default_factory=dict)

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

    def auto_lam(self, noise: float) -> AutoLam:
        """The discrepancy-principle choice of ``lam`` for a measurement with noise level ``noise``.

        Examples
        --------
        >>> row = SolverDefaults(prior="ct", steps=100, lr=0.1, lam=100.0, noise_reference=0.01,
        ...                      weighting="sqrt", timesteps="descending", sigma_x0=0.0, lam_target=1.1)
        >>> auto = row.auto_lam(0.02)
        >>> [round(lam, 2) for lam in auto.pilots()], auto.target
        ([16.67, 50.0, 150.0], 1.1)
        """
        return AutoLam(start=self.lam_for(noise), target=self.lam_target or 1.0)

    def for_shape(self, shape) -> SolverDefaults:
        r"""The row an image on a grid of ``shape`` (rows, columns) runs: this one up to ``large_size``
        pixels a side (:math:`\sqrt{HW}`), with the settings in ``large`` beyond it.

        Examples
        --------
        >>> row = SolverDefaults(prior="ct", steps=400, lr=0.03, lam=100.0, noise_reference=0.003,
        ...                      weighting="sqrt", timesteps="descending", sigma_x0=0.0, t_max=40,
        ...                      large_size=181, large={"t_max": None})
        >>> row.for_shape((128, 128)).t_max, row.for_shape((256, 256)).t_max
        (40, None)
        """
        if self.large_size is None or (float(shape[-2]) * float(shape[-1])) ** 0.5 <= self.large_size:
            return self
        return replace(self, **self.large, large_size=None, large={})

    def as_kwargs(self, noise: float | None = None, shape=None) -> dict:
        """Keyword arguments for :func:`reddiff.red_diff`: the row for an image of ``shape``
        (:meth:`for_shape`) when given; ``lam`` scaled to ``noise`` when given, and an
        :class:`~reddiff.discrepancy.AutoLam` when the row has a ``lam_target``."""
        row = self if shape is None else self.for_shape(shape)
        kwargs = asdict(row)
        for key in ("prior", "noise_reference", "lam_target", "large_size", "large"):
            del kwargs[key]
        if noise is not None:
            kwargs["lam"] = row.auto_lam(noise) if row.lam_target else row.lam_for(noise)
        return kwargs
