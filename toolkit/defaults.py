"""The RED-Diff settings a modality ships with, chosen by measurement (``benchmarks/tune_defaults.py``).

Each modality holds one :class:`SolverDefaults` (``reddiff.modalities.get(name).defaults``;
all of them: :data:`reddiff.DEFAULTS`), used by :func:`reddiff.reconstruct`, the command
line and the README. ``lr`` and ``steps`` are tuned on generated validation images (never a
held-out sample, never training data) measured like the modality's canonical measurement;
``docs/tuning.md`` records the grid, the winners and the earlier tuning they replaced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

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

    ``size_tiers``: ``(side, settings)`` pairs, sides ascending. An image more than ``side``
    pixels a side (:math:`\sqrt{HW}`) runs the row with ``settings`` in place of its own, the
    tiers it passes applied in order (:meth:`for_shape`; e.g. CT's full timestep range above
    181 px, MRI's lr a third above 90 px and a ninth above 181 px). The shipped calibrations
    hold a variant fitted with each tier's settings (``<name>@above-<side>px.json``).
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
    size_tiers: tuple[tuple[int, dict], ...] = ()

    def __post_init__(self):
        sides = [side for side, _ in self.size_tiers]
        if sides != sorted(set(sides)):
            raise InputError(f"the {self.prior} row's size tiers must have ascending sides, got {sides}",
                             field="size_tiers")

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
        r"""The row an image on a grid of ``shape`` (rows, columns) runs: this one, with the settings
        of every size tier whose side :math:`\sqrt{HW}` exceeds applied in order.

        Examples
        --------
        >>> row = SolverDefaults(prior="mri", steps=800, lr=0.05, lam=100.0, noise_reference=0.01,
        ...                      weighting="sqrt", timesteps="descending", sigma_x0=0.0,
        ...                      size_tiers=((90, {"lr": 0.05 / 3}), (181, {"lr": 0.05 / 9})))
        >>> [round(row.for_shape((side, side)).lr, 4) for side in (64, 90, 128, 181, 256)]
        [0.05, 0.05, 0.0167, 0.0167, 0.0056]
        """
        side = (float(shape[-2]) * float(shape[-1])) ** 0.5
        passed = [tier_side for tier_side, _ in self.size_tiers if side > tier_side]
        return replace(self, **self.tier_settings(passed[-1]), size_tiers=()) if passed else self

    def tier_settings(self, side: int) -> dict:
        """The settings the row's size tier above ``side`` px runs, with those of the tiers below it
        (what :meth:`for_shape` applies just above ``side``).

        Raises
        ------
        InputError
            The row has no tier above ``side``.

        Examples
        --------
        >>> row = SolverDefaults(prior="ct", steps=400, lr=0.03, lam=100.0, noise_reference=0.003,
        ...                      weighting="sqrt", timesteps="descending", sigma_x0=0.0, t_max=40,
        ...                      size_tiers=((181, {"t_max": None}),))
        >>> row.tier_settings(181)
        {'t_max': None}
        """
        sides = [tier_side for tier_side, _ in self.size_tiers]
        if side not in sides:
            raise InputError(f"the {self.prior} row has no size tier above {side} px (its tiers: {sides})",
                             field="size_tiers")
        settings = {}
        for tier_side, tier_settings in self.size_tiers[:sides.index(side) + 1]:
            settings.update(tier_settings)
        return settings

    def as_kwargs(self, noise: float | None = None, shape=None) -> dict:
        """Keyword arguments for :func:`reddiff.red_diff`: the row for an image of ``shape``
        (:meth:`for_shape`) when given; ``lam`` scaled to ``noise`` when given, and an
        :class:`~reddiff.discrepancy.AutoLam` when the row has a ``lam_target``."""
        row = self if shape is None else self.for_shape(shape)
        kwargs = asdict(row)
        for key in ("prior", "noise_reference", "lam_target", "size_tiers"):
            del kwargs[key]
        if noise is not None:
            kwargs["lam"] = row.auto_lam(noise) if row.lam_target else row.lam_for(noise)
        return kwargs
