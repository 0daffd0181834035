r"""Credible intervals, coverage, z-scores and calibration of RED-Diff uncertainty.

RED-Diff is mode-seeking: its runs differ less than samples of the true posterior
would, so the raw spread between runs under-states the error. This module turns
the per-pixel spread of a :class:`~reddiff.Reconstruction` into intervals, measures
how often those intervals contain the truth on simulated data, and fits a
**calibration**: a factor :math:`k` by which the nominal interval is widened about
the mean so that it reaches its nominal coverage on held-out simulated pairs.

Intervals
---------
For a central level :math:`L` (e.g. 0.9) each pixel's interval is

.. math:: [\,m - k\, d_-,\; m + k\, d_+\,]

with :math:`m` the mean over samples and the half-widths :math:`d_\pm` given by the
``method``:

* ``"normal"``: :math:`d_- = d_+ = z_L\, s`, with :math:`s` the std over samples and
  :math:`z_L = \Phi^{-1}((1 + L)/2)` (1.645 for 90 %);
* ``"quantile"``: :math:`d_- = m - q_{(1-L)/2}`, :math:`d_+ = q_{(1+L)/2} - m` from the
  per-pixel sample quantiles (clipped at 0).

Uncalibrated intervals have :math:`k = 1`.

Spread with an error proxy
--------------------------
RED-Diff's runs agree most where its error is often largest: at edges and structures
the prior draws with confidence. A calibration may therefore add a per-pixel **error
proxy** :math:`v` computed from the mean alone (:func:`error_proxy`) to the spread,

.. math:: u = \sqrt{s^2 + (a\, v)^2},

and use :math:`u` wherever :math:`s` stands above (``"normal"``: :math:`d_\pm = z_L u`;
``"quantile"``: :math:`d_\pm \leftarrow \sqrt{d_\pm^2 + (z_L a v)^2}`). The weight
:math:`a` is fitted with the factor (:func:`fit_calibration`); :math:`a = 0` is the raw
spread.

Calibration (split conformal)
-----------------------------
On calibration pairs (reconstruction, truth) every pixel gets the score

.. math:: r = \begin{cases} (m - x)/d_- & x < m \\ (x - m)/d_+ & x \ge m \end{cases},

the smallest :math:`k` whose interval contains the truth :math:`x`. With :math:`n`
pooled scores, :math:`k` is the :math:`\lceil (n + 1) L \rceil`-th smallest
(split-conformal finite-sample quantile), so a new pixel drawn like the calibration
pixels is covered with probability at least :math:`L`. Optionally the pixels are
split into ``bins`` by their std (Mondrian conformal) with one :math:`k` per bin,
so that confident and unsure pixels are each covered at the nominal rate.

The factor can also follow the measurement's noise level :math:`\sigma` (a
power law fitted across images measured at several noise levels, see
:func:`fit_calibration`): :math:`k(\sigma) = k_0 (\sigma/\sigma_0)^{b}`, resolved for
one measurement by :meth:`Calibration.at_noise`.

Coverage is marginal over pixels and images. Pixels of one image are correlated,
so the effective number of calibration points is smaller than :math:`n`; use a few
images (more than ~5) per calibration. Complex images are treated per channel (real
and imaginary parts separately).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import xarray as xr

from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from .result import Reconstruction

METHODS = ("normal", "quantile")
#: Weights :math:`a` tried for an error proxy, in units of rms(std) / rms(proxy) of the fit set.
PROXY_WEIGHT_GRID = (0.0, *(2.0 ** (k / 2) for k in range(-12, 13)))
CONTEXT_KEYS = ("prior", "prior_weights", "physics", "steps", "lr", "lam", "weighting", "timesteps",
                "t_max", "sigma_x0", "n_samples")
#: Noise levels spanning less than this ratio are too close to fit a noise power law on.
NOISE_LAW_MIN_RATIO = 1.5


def normal_quantile(level: float) -> float:
    r"""The half-width :math:`z_L = \Phi^{-1}((1 + L)/2)` of a central normal interval.

    Examples
    --------
    >>> round(normal_quantile(0.9), 3)
    1.645
    """
    _check_level(level)
    return NormalDist().inv_cdf((1 + level) / 2)


def central_quantiles(levels: Sequence[float]) -> tuple[float, ...]:
    """Quantiles to store for the central intervals at ``levels`` (and the median).

    Pass the result as ``quantiles=`` to :func:`reddiff.red_diff` to get
    ``method="quantile"`` intervals at those levels.

    Examples
    --------
    >>> central_quantiles([0.5, 0.9])
    (0.05, 0.25, 0.5, 0.75, 0.95)
    """
    for level in levels:
        _check_level(level)
    qs = {0.5} | {round((1 - L) / 2, 12) for L in levels} | {round((1 + L) / 2, 12) for L in levels}
    return tuple(sorted(qs))


def coverage(truth, lower, upper) -> float:
    r"""Fraction of entries with ``lower <= truth <= upper``.

    .. math:: \hat c = \frac{1}{N} \sum_i \mathbb 1[\ell_i \le x_i \le u_i]

    Parameters
    ----------
    truth, lower, upper : array-like
        Same shape (torch tensors, NumPy arrays or xarray objects).

    Examples
    --------
    >>> coverage([0.0, 1.0, 3.0], [-1, -1, -1], [2, 2, 2])
    0.6666666666666666
    """
    x, lo, hi = _arrays(truth=truth, lower=lower, upper=upper)
    return float(np.mean((lo <= x) & (x <= hi)))


def z_scores(truth, mean, std) -> np.ndarray:
    r"""Standardised errors :math:`z_i = (x_i - m_i) / s_i`.

    If the std is right and errors are Gaussian, :math:`z` has mean 0 and std 1;
    a std of :math:`z` above 1 means the spread is too small by that factor.
    Entries with :math:`s_i = 0` give :math:`\pm\infty` (or NaN where the error is 0 too).

    Examples
    --------
    >>> z_scores([1.0, 0.0], [0.0, 0.0], [2.0, 1.0])
    array([0.5, 0. ])
    """
    x, m, s = _arrays(truth=truth, mean=mean, std=std)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x - m) / s


def std_error_correlation(std, error) -> float:
    """Pearson correlation between the per-pixel std and the absolute error.

    High values mean the std map points at the places where the error is large.

    Examples
    --------
    >>> std_error_correlation([0.1, 0.2, 0.3], [-0.1, 0.25, -0.3])
    0.9607689228305227
    """
    return _std_error(std, error, lambda s, e: np.corrcoef(s, e)[0, 1])


def std_error_spearman(std, error) -> float:
    """Spearman (rank) correlation between the per-pixel std and the absolute error.

    Unlike :func:`std_error_correlation` it does not depend on how either is scaled:
    it asks only whether larger std goes with larger error.

    Examples
    --------
    >>> std_error_spearman([0.1, 0.2, 0.3], [-0.1, 0.25, -0.3])
    1.0
    """
    from scipy.stats import spearmanr

    return _std_error(std, error, lambda s, e: spearmanr(s, e).statistic)


def _std_error(std, error, correlation) -> float:
    """``correlation(std, |error|)`` over pixels; NaN when either is constant."""
    s, e = _arrays(std=std, error=error)
    s, e = s.ravel(), np.abs(e).ravel()
    if s.std() == 0 or e.std() == 0:
        return float("nan")
    return float(correlation(s, e))


def conformal_quantile(scores, level: float) -> float:
    r"""The split-conformal quantile: the :math:`\lceil (n+1) L \rceil`-th smallest score.

    Infinite when :math:`\lceil (n+1) L \rceil > n` (too few scores for the level).

    Examples
    --------
    >>> conformal_quantile(np.arange(1, 10), 0.9)   # ceil(10 * 0.9) = 9th smallest
    9.0
    """
    _check_level(level)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    rank = math.ceil((scores.size + 1) * level)
    if rank > scores.size:
        return float("inf")
    return float(np.partition(scores, rank - 1)[rank - 1])


def _gradient_magnitude(mean: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    flat = mean.reshape(-1, *mean.shape[-2:]).astype(np.float64)
    return np.stack([ndimage.gaussian_gradient_magnitude(c, 1.0) for c in flat]).reshape(mean.shape)


#: Error proxies by name: a map of the mean, same shape (see :func:`error_proxy`).
PROXIES = {"gradient": _gradient_magnitude}


def error_proxy(mean, name: str) -> np.ndarray:
    r"""A per-pixel guess of where the error is large, made from the mean alone.

    ``"gradient"``: the gradient magnitude of the mean smoothed over one pixel, per channel,

    .. math:: v = |\nabla (G_1 * m)|,

    in the mean's units per pixel: RED-Diff's error gathers at edges.

    Parameters
    ----------
    mean : array-like
        ``(..., H, W)``.
    name : str
        A key of :data:`PROXIES`.

    Examples
    --------
    >>> step = np.zeros((1, 8, 8)); step[:, :, 4:] = 1.0
    >>> v = error_proxy(step, "gradient")
    >>> bool(v[0, 4, 3] > 0.3 > v[0, 4, 0])
    True
    """
    if name not in PROXIES:
        raise InputError(f"unknown error proxy {name!r}; choose from {sorted(PROXIES)}", field="proxy")
    return PROXIES[name](np.asarray(mean))


@dataclass(frozen=True)
class Calibration:
    r"""Widening factors for RED-Diff intervals, fitted on simulated data.

    The calibrated interval at ``level`` is :math:`m \pm k(s)\, d_\pm` (see the
    module notes), with :math:`k(s)` = ``scales[b]`` for pixels whose std :math:`s`
    falls in bin ``b`` of ``edges``. A noise-conditioned calibration
    (``noise_reference > 0``) holds the factors at the noise level
    :math:`\sigma_0` = ``noise_reference``; at noise level :math:`\sigma` they are
    :math:`k(s)\,(\sigma/\sigma_0)^{b}` with :math:`b` = ``noise_exponent``
    (:meth:`at_noise`). With a ``proxy``, :math:`s` is the spread
    :math:`u = \sqrt{s^2 + (a v)^2}` (:func:`spread`, :math:`a` = ``proxy_weight``).

    Parameters
    ----------
    level : float
        Central level the factors were fitted for.
    scales : tuple of float
        One widening factor per std bin (one bin: a single factor).
    edges : tuple of float
        Std values (physical units) separating the bins, increasing; ``len(scales) - 1``.
    method : {"normal", "quantile"}
        How the uncalibrated half-widths are made.
    context : dict
        Prior, physics and solver settings of the reconstructions it was fitted on.
    n_images, n_pixels : int
        Size of the calibration set (pixels counted per channel).
    coverage_before, coverage_after : float
        Coverage on the calibration set with :math:`k = 1` and with the fitted factors.
    noise_exponent : float
        :math:`b` of the noise-level power law (0: the factors do not depend on it).
    noise_reference : float
        :math:`\sigma_0`, the noise level the ``scales`` hold at (0: not noise-conditioned).
    proxy : str
        Error proxy added to the std (a key of :data:`PROXIES`; ``""``: none).
    proxy_weight : float
        Its weight :math:`a`, in the mean's units per proxy unit (0 without a proxy).
    """

    level: float
    scales: tuple[float, ...]
    edges: tuple[float, ...] = ()
    method: str = "normal"
    context: dict = field(default_factory=dict)
    n_images: int = 0
    n_pixels: int = 0
    coverage_before: float = float("nan")
    coverage_after: float = float("nan")
    noise_exponent: float = 0.0
    noise_reference: float = 0.0
    proxy: str = ""
    proxy_weight: float = 0.0

    def __post_init__(self):
        _check_level(self.level)
        _check_method(self.method)
        if not (math.isfinite(self.noise_exponent) and math.isfinite(self.noise_reference)
                and self.noise_reference >= 0 and (self.noise_reference > 0 or self.noise_exponent == 0)):
            raise InputError(f"noise_exponent {self.noise_exponent!r} and noise_reference "
                             f"{self.noise_reference!r} must be finite, the reference >= 0 "
                             "(0 only with exponent 0)", field="noise_reference")
        if self.proxy not in ("", *PROXIES) or not (0 <= self.proxy_weight < math.inf) \
                or (self.proxy_weight > 0 and not self.proxy):
            raise InputError(f"proxy {self.proxy!r} with weight {self.proxy_weight!r}: need one of "
                             f"{sorted(PROXIES)} (or none, weight 0) and a finite weight >= 0", field="proxy")
        object.__setattr__(self, "scales", tuple(float(k) for k in self.scales))
        object.__setattr__(self, "edges", tuple(float(e) for e in self.edges))
        if not self.scales or not all(0 < k < math.inf for k in self.scales):
            raise InputError(f"scales must be finite and positive, got {self.scales}",
                             field="scales")
        if len(self.edges) != len(self.scales) - 1 or list(self.edges) != sorted(self.edges):
            raise InputError(f"need {len(self.scales) - 1} increasing edges for "
                             f"{len(self.scales)} scales, got {self.edges}", field="edges")

    def scale(self, std) -> np.ndarray:
        """The widening factor of each pixel, from its spread (:func:`spread`; same shape)."""
        bins = np.searchsorted(np.asarray(self.edges), np.asarray(std), side="right")
        return np.asarray(self.scales)[bins]

    @property
    def noise_conditioned(self) -> bool:
        """Whether the factors depend on the measurement's noise level (see :meth:`at_noise`)."""
        return self.noise_reference > 0

    def at_noise(self, noise_level: float, *, within: tuple[float, float] | None = None) -> "Calibration":
        r"""The factors at one measurement's noise level: :math:`k\,(\sigma/\sigma_0)^{b}`.

        Parameters
        ----------
        noise_level : float
            :math:`\sigma` of the measurement (``Modality.noise_level``).
        within : (float, float), optional
            :math:`\sigma` is clipped to this range first (the power law is not
            extrapolated beyond it).

        Returns
        -------
        Calibration
            Not noise-conditioned; ``context["noise_law"]`` says how its factors were made.
            Unchanged if this calibration is not noise-conditioned.

        Examples
        --------
        >>> cal = Calibration(level=0.9, scales=(4.0,), noise_exponent=-1.0, noise_reference=0.01)
        >>> cal.at_noise(0.02).scales
        (2.0,)
        """
        if not self.noise_conditioned:
            return self
        if not (isinstance(noise_level, (int, float, np.floating)) and 0 < noise_level < math.inf):
            raise InputError(f"noise level must be a positive number, got {noise_level!r}", field="noise_level")
        sigma = float(np.clip(noise_level, *within)) if within else float(noise_level)
        factor = (sigma / self.noise_reference) ** self.noise_exponent
        law = (f"k = {self.scales[0]:.3g} (sigma / {self.noise_reference:.3g})^{self.noise_exponent:.2f}"
               f" at sigma {sigma:.3g}" + (f" (measured {noise_level:.3g})" if sigma != noise_level else ""))
        return replace(self, scales=tuple(k * factor for k in self.scales), noise_exponent=0.0, noise_reference=0.0,
                       context={**self.context, "noise_law": law})

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (inverse: :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise InputError(f"unknown calibration fields {sorted(unknown)}", field="calibration")
        return cls(**data)

    def save(self, path) -> Path:
        """Write the calibration as JSON (atomically)."""
        from .files import atomic_write

        text = json.dumps(self.to_dict(), indent=2)
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    @classmethod
    def load(cls, path) -> "Calibration":
        """Read a calibration written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise InputError("no such calibration file", path=path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as err:
            raise InputError(f"not a calibration JSON file ({err})", path=path) from err


def interval(reconstruction: "Reconstruction", level: float = 0.9, *, method: str | None = None,
             calibration: Calibration | None = None) -> tuple[xr.DataArray, xr.DataArray]:
    r"""Per-pixel central interval :math:`[m - k d_-,\ m + k d_+]` at ``level``.

    Parameters
    ----------
    reconstruction : reddiff.Reconstruction
        The result; ``method="quantile"`` needs its quantiles at
        :math:`(1 \mp L)/2` (see :func:`central_quantiles`) or its samples.
    level : float
        Central level :math:`L` in (0, 1).
    method : {"normal", "quantile"}, optional
        Default: the calibration's, else ``"normal"``.
    calibration : Calibration, optional
        Widening factors; its level and method must match.

    Returns
    -------
    lower, upper : xarray.DataArray
        Same dims, coords and units as ``reconstruction.mean``.

    Examples
    --------
    >>> import torch
    >>> from reddiff import Reconstruction
    >>> rec = Reconstruction.from_samples(torch.tensor([0.0, 2.0]).view(2, 1, 1, 1))
    >>> lower, upper = interval(rec, 0.9)
    >>> round(float(upper.squeeze()), 3)   # 1 + 1.645 * 1
    2.645
    """
    method = calibration.method if method is None and calibration else (method or "normal")
    _check_method(method)
    if calibration is not None:
        if not math.isclose(level, calibration.level) or method != calibration.method:
            raise InputError(f"the calibration was fitted for level={calibration.level}, "
                             f"method={calibration.method!r}; got level={level}, "
                             f"method={method!r}", field="level")
    mean = reconstruction.mean.values
    u, term = _spread_and_term(reconstruction, calibration)
    below, above = _half_widths(reconstruction, level, method, term)
    k = calibration.scale(u) if calibration is not None else 1.0
    attrs = {**reconstruction.mean.attrs, "level": level, "method": method,
             "calibrated": int(calibration is not None)}
    lower = reconstruction.mean.copy(data=(mean - k * below).astype(np.float32))
    upper = reconstruction.mean.copy(data=(mean + k * above).astype(np.float32))
    lower.attrs, upper.attrs = dict(attrs), dict(attrs)
    return lower.rename("lower"), upper.rename("upper")


def spread(reconstruction: "Reconstruction", calibration: Calibration | None = None) -> np.ndarray:
    r"""The per-pixel spread a calibration widens: :math:`u = \sqrt{s^2 + (a v)^2}`.

    :math:`s` is the std over samples, :math:`v` the calibration's error proxy
    (:func:`error_proxy`) and :math:`a` its weight; without either, :math:`u = s`.

    Examples
    --------
    >>> import torch
    >>> from reddiff import Reconstruction
    >>> rec = Reconstruction.from_samples(torch.tensor([0.0, 2.0]).view(2, 1, 1, 1))
    >>> float(spread(rec).squeeze())
    1.0
    """
    return _spread_and_term(reconstruction, calibration)[0]


def _spread_and_term(reconstruction, calibration: Calibration | None):
    """:math:`(u, a v)`: the spread and the proxy's share of it (0 without one), the proxy made once."""
    term = 0.0
    if calibration is not None and calibration.proxy_weight > 0:
        term = calibration.proxy_weight * error_proxy(reconstruction.mean.values, calibration.proxy)
    return np.hypot(reconstruction.std.values.astype(np.float64), term), term


def fit_calibration(reconstructions: Sequence["Reconstruction"], truths, *, level: float = 0.9,
                    method: str = "normal", bins: int = 1,
                    noise_levels: Sequence[float] | None = None, proxy: str = "",
                    proxy_weight: float | None = None) -> Calibration:
    r"""Fit widening factors so intervals at ``level`` cover the truth (split conformal).

    Parameters
    ----------
    reconstructions : sequence of reddiff.Reconstruction
        Reconstructions of simulated measurements (same prior and physics), held
        out from any data the calibration will be judged on.
    truths : sequence of array-like
        The true images, each ``(C, H, W)`` or ``(1, C, H, W)`` in physical units.
    level : float
        Target central level :math:`L`.
    method : {"normal", "quantile"}
        Uncalibrated half-widths (see the module notes).
    bins : int
        Number of std bins (equal-count, from the pooled stds), one factor each.
    noise_levels : sequence of float, optional
        The noise level :math:`\sigma_i` of each reconstruction's measurement. Given, and
        spanning a ratio of at least :data:`NOISE_LAW_MIN_RATIO`, the factor follows a
        power law in it (see Notes).
    proxy : str
        An error proxy to add to the spread (a key of :data:`PROXIES`; ``""``: none).
    proxy_weight : float, optional
        Its weight :math:`a`; default: chosen from :data:`PROXY_WEIGHT_GRID` (see Notes).

    Returns
    -------
    Calibration

    Notes
    -----
    Each pixel's score is the factor its interval needs to reach the truth,
    :math:`r = (m - x)/d_-` below the mean and :math:`(x - m)/d_+` above; the
    factor of a bin with :math:`n` scores is its :math:`\lceil (n+1) L \rceil`-th
    smallest (:func:`conformal_quantile`).

    With noise levels, the exponent :math:`b` is the least-squares slope of
    :math:`\log k_i` on :math:`\log \sigma_i`, :math:`k_i` the factor image :math:`i`
    alone needs; each image's scores are divided by :math:`(\sigma_i/\sigma_0)^b`,
    :math:`\sigma_0` the geometric mean of the levels, before pooling, so the
    fitted factors hold at :math:`\sigma_0` and the pooled coverage stays :math:`L`.

    With a proxy and no weight, :math:`a` is the grid value (in units of the pooled
    rms std over the rms proxy) whose per-image factors :math:`k_i` agree best:
    the smallest spread of :math:`\log k_i` (after the noise law's slope, with noise
    levels), so that the factor transfers between images; ties keep the smaller weight.

    Examples
    --------
    >>> import torch
    >>> from reddiff import Reconstruction
    >>> g = torch.Generator().manual_seed(0)
    >>> truth = torch.randn(1, 1, 16, 16, generator=g)
    >>> samples = 0.5 * torch.randn(32, 1, 16, 16, generator=g)   # spread too small by 2
    >>> rec = Reconstruction.from_samples(samples)
    >>> cal = fit_calibration([rec], [truth], level=0.9)
    >>> 1.5 < cal.scales[0] < 3.0
    True
    """
    _check_level(level)
    _check_method(method)
    if len(reconstructions) == 0 or len(reconstructions) != len(truths):
        raise InputError(f"need as many truths as reconstructions (at least one), got "
                         f"{len(reconstructions)} and {len(truths)}", field="truths")
    if not (isinstance(bins, (int, np.integer)) and bins >= 1):
        raise InputError(f"bins must be a positive integer, got {bins!r}", field="bins")
    context = _common_context(reconstructions)
    xs = [_image_like(truth, rec, f"truths[{i}]") for i, (rec, truth) in enumerate(zip(reconstructions, truths))]
    if proxy and proxy_weight is None:
        proxy_weight = _best_proxy_weight(reconstructions, xs, proxy, level, method, noise_levels)
    shape = Calibration(level=level, scales=(1.0,), method=method, proxy=proxy, proxy_weight=proxy_weight or 0.0)
    spreads = [_spread_and_term(rec, shape) for rec in reconstructions]
    scores = [_scores(rec, x, level, method, term).ravel() for rec, x, (_, term) in zip(reconstructions, xs, spreads)]
    stds = [u.ravel() for u, _ in spreads]
    exponent, reference = _noise_law(scores, noise_levels, level)
    if reference > 0:
        scores = [r / (sigma / reference) ** exponent for r, sigma in zip(scores, noise_levels)]
    scores, stds = np.concatenate(scores), np.concatenate(stds)
    edges = np.unique(np.quantile(stds, np.arange(1, bins) / bins)) if bins > 1 else np.array([])
    which = np.searchsorted(edges, stds, side="right")
    scales = [conformal_quantile(scores[which == b], level) for b in range(len(edges) + 1)]
    if not all(math.isfinite(k) and k > 0 for k in scales):
        raise InputError(f"cannot fit finite positive factors {scales}: too few pixels per bin "
                         "for the level, or zero spread where the error is not zero (use "
                         "n_samples >= 2, sigma_x0 > 0 or fewer bins)", field="reconstructions")
    return Calibration(level=level, scales=tuple(scales), edges=tuple(edges), method=method,
                       context=context, n_images=len(reconstructions), n_pixels=int(scores.size),
                       coverage_before=float(np.mean(scores <= 1.0)),
                       coverage_after=float(np.mean(scores <= np.asarray(scales)[which])),
                       noise_exponent=exponent, noise_reference=reference, proxy=shape.proxy,
                       proxy_weight=shape.proxy_weight)


def _best_proxy_weight(reconstructions, truths, proxy: str, level: float, method: str, noise_levels) -> float:
    """The weight of :data:`PROXY_WEIGHT_GRID` whose per-image factors agree best (:func:`fit_calibration`)."""
    proxies = [error_proxy(rec.mean.values, proxy) for rec in reconstructions]
    typical = _rms(proxies)
    unit = _rms([rec.std.values for rec in reconstructions]) / typical if typical > 0 else 0.0
    best, best_dispersion = 0.0, math.inf
    for multiple in PROXY_WEIGHT_GRID:
        weight = multiple * unit
        log_k = np.log([conformal_quantile(_scores(rec, x, level, method, weight * v), level)
                        for rec, x, v in zip(reconstructions, truths, proxies)])
        dispersion = _log_dispersion(log_k, noise_levels)
        if dispersion < best_dispersion * (1 - 1e-6):
            best, best_dispersion = weight, dispersion
    return best


def _rms(arrays) -> float:
    return float(np.sqrt(np.mean(np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays]) ** 2)))


def _log_dispersion(log_k: np.ndarray, noise_levels) -> float:
    """Std of the per-image log factors, less what the noise law explains (where it applies)."""
    if not np.isfinite(log_k).all():
        return math.inf
    if noise_levels is not None:
        log_sigma = np.log(np.asarray(noise_levels, dtype=np.float64))
        if np.ptp(log_sigma) >= math.log(NOISE_LAW_MIN_RATIO):
            log_k = log_k - np.polyval(np.polyfit(log_sigma, log_k, 1), log_sigma)
    return float(np.std(log_k))


def _noise_law(scores: list, noise_levels, level: float) -> tuple[float, float]:
    """``(b, sigma_0)`` of :func:`fit_calibration`'s noise power law; ``(0, 0)`` without one."""
    if noise_levels is None:
        return 0.0, 0.0
    sigmas = np.asarray(noise_levels, dtype=np.float64)
    if sigmas.shape != (len(scores),) or not (np.isfinite(sigmas).all() and (sigmas > 0).all()):
        raise InputError(f"need one positive noise level per reconstruction ({len(scores)}), got "
                         f"{list(noise_levels)}", field="noise_levels")
    log_sigma = np.log(sigmas)
    if np.ptp(log_sigma) < math.log(NOISE_LAW_MIN_RATIO):
        return 0.0, 0.0
    log_k = np.log([conformal_quantile(r, level) for r in scores])
    if not np.isfinite(log_k).all():
        raise InputError("an image's own factor is zero or infinite: too few pixels or no spread",
                         field="reconstructions")
    slope = float(np.polyfit(log_sigma, log_k, 1)[0])
    return slope, float(np.exp(log_sigma.mean()))


def calibrate(reconstruction: "Reconstruction", calibration: Calibration, *,
              check: bool = True) -> "Reconstruction":
    r"""A new result with calibrated ``std_calibrated``, ``lower`` and ``upper`` variables.

    ``std_calibrated`` is :math:`k(u)\, u` (:func:`spread`); ``lower``/``upper`` the calibrated
    interval at ``calibration.level``; ``attrs["calibration"]`` the calibration as
    JSON. With ``check``, the calibration's prior and physics must match the
    reconstruction's config (a calibration does not transfer between them).
    """
    if not isinstance(calibration, Calibration):
        raise InputError(f"expected a Calibration, got {type(calibration).__name__}",
                         field="calibration")
    if check:
        config = reconstruction.config
        for key in ("prior", "physics"):
            fitted = calibration.context.get(key)
            if fitted is not None and config.get(key) not in (None, fitted):
                raise InputError(f"calibration fitted for {key}={fitted!r}, result has "
                                 f"{key}={config.get(key)!r}; fit one for this setting or "
                                 "pass check=False", field="calibration")
    lower, upper = interval(reconstruction, calibration.level, calibration=calibration)
    u = spread(reconstruction, calibration)
    ds = reconstruction.dataset.assign(
        std_calibrated=reconstruction.std.copy(data=(calibration.scale(u) * u).astype(np.float32)),
        lower=lower, upper=upper)
    ds.attrs["calibration"] = json.dumps(calibration.to_dict())
    return type(reconstruction)(ds)


def uncertainty_metrics(reconstruction: "Reconstruction", truth, *, level: float = 0.9,
                        method: str | None = None,
                        calibration: Calibration | None = None) -> dict[str, float]:
    r"""How well the uncertainty of one result describes its actual error.

    Returns a dict with ``level``, ``coverage`` (of the interval at ``level``,
    calibrated if ``calibration`` is given), ``mean_width`` (of that interval),
    ``rmse``, ``mean_std``, ``z_mean`` and ``z_std`` (of :func:`z_scores` over pixels
    with a non-zero std; ``z_std`` near 1 means the std has the right size) and
    ``std_error_correlation`` (Pearson) and ``std_error_spearman`` (rank). With a calibration, the std is the calibrated one
    :math:`k(u)\,u` (:func:`spread`). All per channel entry, physical units.

    Examples
    --------
    >>> import torch
    >>> from reddiff import Reconstruction
    >>> g = torch.Generator().manual_seed(0)
    >>> rec = Reconstruction.from_samples(torch.randn(64, 1, 16, 16, generator=g))
    >>> m = uncertainty_metrics(rec, torch.zeros(1, 16, 16))
    >>> m["coverage"]
    1.0
    """
    x = _image_like(truth, reconstruction, "truth")
    lower, upper = interval(reconstruction, level, method=method, calibration=calibration)
    mean, std = reconstruction.mean.values, reconstruction.std.values
    if calibration is not None:
        u = spread(reconstruction, calibration)
        std = calibration.scale(u) * u
    z = z_scores(x, mean, std)
    z = z[np.isfinite(z)]
    return {"level": level, "coverage": coverage(x, lower.values, upper.values),
            "mean_width": float(np.mean(upper.values - lower.values)),
            "rmse": float(np.sqrt(np.mean((mean - x) ** 2))), "mean_std": float(np.mean(std)),
            "z_mean": float(np.mean(z)) if z.size else float("nan"),
            "z_std": float(np.std(z)) if z.size else float("nan"),
            "std_error_correlation": std_error_correlation(std, mean - x),
            "std_error_spearman": std_error_spearman(std, mean - x)}


# -- helpers ----------------------------------------------------------------------

def _check_level(level) -> None:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise InputError(f"level must be a number in (0, 1), got {level!r}", field="level")


def _check_method(method) -> None:
    if method not in METHODS:
        raise InputError(f"unknown interval method {method!r}; expected one of "
                         f"{', '.join(METHODS)}", field="method")


def _numpy(value, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().astype(np.float64)
    if isinstance(value, (xr.DataArray, xr.Variable)):
        return np.asarray(value.values, dtype=np.float64)
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} must be an array or tensor of numbers ({err})",
                         field=name) from err


def _arrays(**named) -> list[np.ndarray]:
    """NumPy float64 arrays of one common shape (a leading batch axis of 1 is dropped)."""
    arrays = {k: _numpy(v, k) for k, v in named.items()}
    arrays = {k: a[0] if a.ndim == 4 and a.shape[0] == 1 else a for k, a in arrays.items()}
    shapes = {k: a.shape for k, a in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise InputError(f"shapes differ: {shapes}", field=next(iter(named)))
    return list(arrays.values())


def _image_like(truth, reconstruction, name: str) -> np.ndarray:
    x = _numpy(truth, name)
    x = x[0] if x.ndim == 4 and x.shape[0] == 1 else x
    expected = reconstruction.mean.shape
    if x.shape != expected:
        raise InputError(f"{name} has shape {x.shape}; expected (C, H, W) = {expected} "
                         "like the reconstruction (or with a leading 1)", field=name)
    return x


def _quantile(reconstruction, q: float) -> np.ndarray:
    ds = reconstruction.dataset
    if "quantiles" in ds:
        stored = ds["quantile"].values
        hit = np.flatnonzero(np.isclose(stored, q, atol=1e-9))
        if hit.size:
            return ds["quantiles"].values[hit[0]].astype(np.float64)
    if "samples" in ds:
        return np.quantile(ds["samples"].values.astype(np.float64), q, axis=0)
    have = list(ds["quantile"].values) if "quantile" in ds.coords else []
    raise InputError(f"quantile {q:g} is not stored (have {have}) and samples were not kept; "
                     "run with quantiles=central_quantiles([level]) or keep_samples=True",
                     field="quantiles")


def _half_widths(reconstruction, level: float, method: str, term=0.0) -> tuple[np.ndarray, np.ndarray]:
    """Uncalibrated half-widths below and above the mean, :math:`(d_-, d_+)`, with the proxy's
    share ``term`` (:math:`a v`) of the spread added in quadrature."""
    mean = reconstruction.mean.values.astype(np.float64)
    z = normal_quantile(level)
    if method == "normal":
        half = z * np.hypot(reconstruction.std.values.astype(np.float64), term)
        return half, half
    below = np.clip(mean - _quantile(reconstruction, (1 - level) / 2), 0, None)
    above = np.clip(_quantile(reconstruction, (1 + level) / 2) - mean, 0, None)
    return np.hypot(below, z * term), np.hypot(above, z * term)


def _scores(reconstruction, truth: np.ndarray, level: float, method: str, term=0.0) -> np.ndarray:
    """The factor each pixel's interval needs to contain the truth (0/0 counts as 0)."""
    below, above = _half_widths(reconstruction, level, method, term)
    error = truth - reconstruction.mean.values.astype(np.float64)
    needed = np.where(error < 0, -error, error)
    half = np.where(error < 0, below, above)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(needed == 0, 0.0, needed / half)


def _common_context(reconstructions) -> dict:
    contexts = [{k: rec.config.get(k) for k in CONTEXT_KEYS} for rec in reconstructions]
    for key in ("prior", "prior_weights", "physics"):
        values = {json.dumps(c[key]) for c in contexts}
        if len(values) > 1:
            raise InputError(f"reconstructions mix different {key} values {sorted(values)}; "
                             "fit one calibration per prior and physics", field="reconstructions")
    context = {k: v for k, v in contexts[0].items() if v is not None}
    choice = reconstructions[0].config.get("lam_choice")
    if choice is not None:  # chosen per image: the rule, not the first image's weight, describes the fit
        context["lam"] = f"auto ({choice['rule']}, target {choice['target']:g})"
    return context
