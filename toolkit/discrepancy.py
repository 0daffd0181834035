r"""``lam="auto"``: the regularisation weight chosen per measurement by the discrepancy principle.

A weight tuned on one image is wrong for another: too small and the reconstruction
fits the noise, too large and it no longer explains the data. Morozov's
discrepancy principle picks the weight whose reconstruction :math:`\hat x_\lambda`
explains the data *as well as the truth would*: its deviance (twice the negative
log-likelihood ratio against a perfect fit; for Gaussian noise
:math:`\lVert y - A\hat x\rVert^2/\sigma^2`) equals the deviance expected at the
true image, about one per measured entry,

.. math:: \rho(\lambda) = \frac{D(y, A\hat x_\lambda)}{\mathbb E[D]} = \tau, \qquad \tau = 1 .

RED-Diff's deviance is far from its end value during a run (the regulariser acts at
large timesteps first), so the weight is chosen by a **short bracketing** rather than
by feedback inside one run: a few pilot runs (one sample each, run together as one
batch) at weights :math:`\lambda_0 f_j` around a starting weight give
:math:`\rho_j`; :math:`\log\rho` is fitted as a straight line in :math:`\log\lambda`
and solved for :math:`\rho = \tau` (at most ``max_extrapolation`` beyond the pilots).
The samples then run at that weight. Cost: ``len(factors)`` extra runs of one sample.
Where even the least regularised pilot cannot explain the data to the noise level (a
forward model that does not fit, such as coil maps estimated for an object that fills the
field of view, or an underestimated noise level), the unexplained misfit is treated as
noise and the weight raised; where :math:`\rho` barely changes with the weight (the noise
swamps what the prior does), the starting weight is kept; both with a warning
(:func:`choose_weight`).

Measured on generated images (``benchmarks/auto_lam.py``), the PSNR-best fixed weight
sits near :math:`\rho = 1` in every modality, and :math:`\rho` grows monotonically
with :math:`\lambda`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import InputError

#: Pilot weights around the start, as factors.
DEFAULT_FACTORS = (1 / 3, 1.0, 3.0)


@dataclass(frozen=True)
class AutoLam:
    r"""Choose ``lam`` per measurement so the deviance matches its expectation (see the module notes).

    Parameters
    ----------
    start : float
        The middle pilot weight :math:`\lambda_0` (the pipeline uses the modality's
        default scaled to the noise level).
    factors : tuple of float
        Pilot weights :math:`\lambda_0 f_j`; at least two distinct values.
    target : float
        :math:`\tau`, the deviance over its expectation to reach.
    max_extrapolation : float
        The chosen weight stays within this factor of the smallest and largest pilot.

    Examples
    --------
    >>> [round(lam, 1) for lam in AutoLam(start=100.0).pilots()]
    [33.3, 100.0, 300.0]
    """

    start: float = 1.0
    factors: tuple = field(default=DEFAULT_FACTORS)
    target: float = 1.0
    max_extrapolation: float = 10.0

    def __post_init__(self):
        for name in ("start", "target", "max_extrapolation"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"AutoLam {name} must be a positive number, got {value!r}", field="lam")
        if len({float(f) for f in self.factors}) < 2 or not all(f > 0 for f in self.factors):
            raise InputError(f"AutoLam factors must hold at least two distinct positive values, got "
                             f"{self.factors!r}", field="lam")

    def pilots(self) -> list[float]:
        """The pilot weights :math:`\\lambda_0 f_j`."""
        return [self.start * float(f) for f in self.factors]

    def to_config(self) -> dict:
        return {"rule": "discrepancy", "start": self.start, "factors": [float(f) for f in self.factors],
                "target": self.target}


def as_lam(lam) -> float | AutoLam:
    """A fixed weight (a number >= 0) or an :class:`AutoLam` (``"auto"`` is ``AutoLam()``)."""
    if isinstance(lam, AutoLam):
        return lam
    if isinstance(lam, str):
        if lam != "auto":
            raise InputError(f"lam must be a number >= 0 or 'auto', got {lam!r}", field="lam")
        return AutoLam()
    if not isinstance(lam, (int, float, np.integer, np.floating)) or isinstance(lam, bool) \
            or not (lam >= 0 and math.isfinite(lam)):
        raise InputError(f"lam must be a number >= 0 or 'auto', got {lam!r}", field="lam")
    return float(lam)


def check_data_term(nll) -> None:
    """Refuse ``lam="auto"`` for a data term that cannot give its deviance."""
    if not (hasattr(nll, "deviance") and hasattr(nll, "expected_deviance")):
        raise InputError(f"lam='auto' needs a data term with deviance() and expected_deviance() (the "
                         f"built-in ones in reddiff.likelihood); {nll!r} has none: give a number", field="lam")


def deviance_ratio(nll, y: torch.Tensor, Ax: torch.Tensor) -> torch.Tensor:
    r""":math:`\rho = D(y, Ax) / \mathbb E[D]` per batch element (``Ax`` of shape ``(B, ...)``)."""
    with torch.no_grad():
        return nll.deviance(y, Ax) / nll.expected_deviance(y, Ax).clamp(min=1e-12)


#: A least-regularised pilot whose deviance ratio is this many times the target shows that the data
#: cannot be explained to the stated noise level: lowering the weight would only fit the misfit.
#: Measured: 0.23-1.01 where the forward model is exact (CT, MRI with the simulation's coil maps,
#: the sky; held-out and generated images), 1.31-9.6 on generated MR images that fill the field of
#: view reconstructed with ESPIRiT maps. There the old threshold of 1.5 let the 1.31 case extrapolate
#: the weight down to its bound (16.0 dB against TV's 24.0, 8.3 below the best weight tried). The
#: threshold is near the geometric middle of 1.01 and 1.31. Between the target and this threshold the
#: least-regularised pilot's weight is kept: following the fitted line below the pilots took the
#: weight to a tenth of the start on a command-line MRI case whose pilots flattened at 1.11 times the
#: target (taller ESPIRiT kernels; 22.58 dB against 27.52 with the shipped maps).
UNREACHABLE = 1.15
#: Where the data cannot be explained (``UNREACHABLE``), the data term is trusted less: the weight is
#: the start times :math:`(\rho_{min}/\tau)^p`. Chosen on six generated MNI152 slices cropped so the
#: head fills a 64 px field of view, 4x, ESPIRiT coil maps (:math:`\rho_{min}/\tau` 1.3-9.6): the
#: PSNR-best weight of the start times 1, 3, 10, 30, 100 grew about as the square of
#: :math:`\rho_{min}/\tau`, and the rule gained 0.06-8.0 dB (mean 4.0) over the old rule
#: (``docs/tuning.md``, "When the forward model does not fit"); on two generated heads at 128 px it
#: lost 0.39-1.46 dB to the start, on held-out mr_small at 128 px it gained 1.85. A power of 1 would be
#: the noise inflation alone.
MODEL_ERROR_POWER = 2.0
#: The least slope :math:`b` of :math:`\log\rho` in :math:`\log\lambda` at which the pilots pin the
#: weight. Below it (:math:`\rho` changes by under 8 % over the pilots' 9x range of weights) the data
#: barely respond to the weight, and the fitted line would be extrapolated to its bound from noise.
#: Measured: 0.056-0.108 on 8 of the 9 generated sky calibration fields, 0.11-0.17 on the
#: held-out MRI and sky images and 0.8-1.1 on CT, where the principle chose well; 0.020 on the
#: noise-dominated held-out star field, where extrapolating to the bound cost 2.5 dB. The threshold
#: is the geometric middle of 0.020 and 0.056.
FLAT_SLOPE = 0.035


def choose_weight(auto: AutoLam, lams, ratios) -> tuple[float, str | None]:
    r"""The weight for the samples, and a note where the discrepancy principle had to give up.

    The principle cannot be applied in two cases:

    * even the smallest pilot weight leaves :math:`\rho` above ``UNREACHABLE`` times the
      target: the misfit is not the prior's, the forward model is wrong (coil maps
      estimated from few calibration lines or for an object that fills the field of view)
      or the noise level is underestimated. Fitting the data harder would put that misfit
      into the image, so the data term is trusted less: the weight is
      :math:`\lambda_0 (\rho_{min}/\tau)^p`, ``p = MODEL_ERROR_POWER``, at most
      ``max_extrapolation`` times the largest pilot;
    * :math:`\rho` hardly depends on the weight (a fitted slope under ``FLAT_SLOPE``): the
      noise swamps what the prior changes, so no weight is singled out by the data and the
      starting weight is kept;
    * the least-regularised pilot misses the target, by less than ``UNREACHABLE``: the line is
      not extrapolated below the pilots (where :math:`\rho` flattens under a small model error the
      extrapolation runs far below any weight measured), the smallest pilot weight is kept.

    Examples
    --------
    >>> choose_weight(AutoLam(start=10.0, target=0.8), [10 / 3, 10.0, 30.0], [2.0, 2.1, 2.3])[0]  # 10 * 2.5**2
    62.5
    >>> choose_weight(AutoLam(start=10.0, target=0.8), [10 / 3, 10.0, 30.0], [0.88, 0.90, 0.92])[0]
    10.0
    >>> round(choose_weight(AutoLam(start=10.0, target=1.0), [1.0, 10.0], [0.5, 2.0])[0], 2)
    3.16
    >>> round(choose_weight(AutoLam(start=10.0, target=0.8), [10 / 3, 10.0, 30.0], [0.87, 0.92, 1.03])[0], 2)
    3.33
    """
    lowest = min(ratios)
    if lowest > UNREACHABLE * auto.target:
        raised = min(auto.start * (lowest / auto.target) ** MODEL_ERROR_POWER, max(lams) * auto.max_extrapolation)
        return raised, (f"lam='auto' raised the weight to {raised:.3g}, {raised / auto.start:.3g}x the start: even the "
                        f"least regularised pilot explains the data only to a deviance ratio of {lowest:.3g}, over "
                        f"{UNREACHABLE:g}x the target {auto.target:g}, so the data term is trusted less (the forward "
                        "model does not fit the data, e.g. coil maps from few calibration lines or for an object "
                        "that fills the field of view, or the noise level is underestimated)")
    slope, _ = fit_line(lams, ratios)
    if slope < FLAT_SLOPE:
        return auto.start, (f"lam='auto' kept the starting weight {auto.start:.3g}: the pilots' deviance ratios "
                            f"{', '.join(f'{r:.3g}' for r in ratios)} barely change with the weight (slope "
                            f"{slope:.3g} in log-log, under {FLAT_SLOPE:g}), so the data do not single one out")
    if lowest > auto.target:
        least = min(lams)
        return least, (f"lam='auto' kept the least regularised pilot's weight {least:.3g}: its deviance ratio "
                       f"{lowest:.3g} is over the target {auto.target:g}, and the weight is not extrapolated "
                       "below the pilots (a small misfit of the forward model, e.g. estimated coil maps, "
                       "flattens the ratio there)")
    return solve_for_target(lams, ratios, auto.target, auto.max_extrapolation), None


def fit_line(lams, ratios) -> tuple[float, float]:
    r"""Slope :math:`b` and intercept :math:`a` of :math:`\log\rho = a + b\log\lambda`, least squares.

    Examples
    --------
    >>> [round(v, 3) for v in fit_line([1.0, 10.0], [0.5, 2.0])]
    [0.602, -0.693]
    """
    log_lam, log_rho = np.log(np.asarray(lams, float)), np.log(np.asarray(ratios, float))
    if not np.all(np.isfinite(log_rho)):
        raise InputError(f"pilot deviance ratios {list(ratios)} are not all positive and finite", field="lam")
    slope, intercept = np.polyfit(log_lam, log_rho, 1)
    return float(slope), float(intercept)


def solve_for_target(lams, ratios, target: float, max_extrapolation: float) -> float:
    r"""The weight at which the fitted line :math:`\log\rho = a + b\log\lambda` (:func:`fit_line`)
    reaches ``target``.

    Where the pilots do not show :math:`\rho` growing with :math:`\lambda` (a slope
    :math:`b \le 0`), the pilot whose :math:`\rho` is closest to the target (in log) is kept.

    Examples
    --------
    >>> round(solve_for_target([1.0, 10.0], [0.5, 2.0], 1.0, 10.0), 3)  # rho = 0.5 * lam**0.602
    3.162
    >>> round(solve_for_target([1.0, 10.0], [0.1, 0.2], 1.0, 10.0), 6)  # far off: 10 x the largest pilot
    100.0
    """
    slope, intercept = fit_line(lams, ratios)
    log_lam, log_rho = np.log(np.asarray(lams, float)), np.log(np.asarray(ratios, float))
    if not slope > 0:
        return float(np.exp(log_lam[np.argmin(np.abs(log_rho - math.log(target)))]))
    chosen = (math.log(target) - intercept) / slope
    low, high = log_lam.min() - math.log(max_extrapolation), log_lam.max() + math.log(max_extrapolation)
    return float(np.exp(np.clip(chosen, low, high)))
