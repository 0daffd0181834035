r"""Calibrated intervals without Python: fit on your own references, apply with checks.

RED-Diff's runs differ less than the posterior does, so its raw std must be widened
before an interval means what it says (:mod:`reddiff.uncertainty`). How much depends
on the prior, the operator, the noise and the images, so a calibration is fitted on
measurements *like the one to be reconstructed*:

1. every reference image (a fully sampled scan, a high-dose slice, a deep frame) is
   brought onto the target's grid (:func:`fit_to_grid`) and measured with the
   target's physics and noise model (:meth:`reddiff.modalities.Modality.measure_like`);
2. each is reconstructed with the settings the target will get
   (:func:`reddiff.pipeline.calibrate_on` runs 2 and 3);
3. the widening factor :math:`k` is the split-conformal quantile of the scores
   :math:`|x - m| / (z_L s)` pooled over the references
   (:func:`reddiff.uncertainty.fit_calibration`); references measured at several noise
   levels give a factor that follows the noise level, :math:`k_0 (\sigma/\sigma_0)^b`,
   resolved for each measurement by :func:`at_noise_of`.

Each modality ships a **default** calibration, fitted the same way on generated images
and real images no prior trained on (``Modality.calibration_images`` and
``Modality.tuning_images``; never a held-out sample) at three noise levels around
its canonical measurement (``benchmarks/fit_calibrations.py``), and where its defaults row runs
other settings at other sizes a variant fitted with those (``<name>@<variant>.json``), chosen by
the run's settings. :func:`apply` refuses a
calibration of another modality or prior and records a warning when the measurement
is unlike what the calibration was fitted on (noise outside the fitted range by more
than :data:`NOISE_TOLERANCE`, another measurement shape, other steps, ``lr``, ``sigma_x0``, timesteps or ``t_max``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from . import modalities
from .errors import InputError
from .modalities import Problem
from .result import Reconstruction
from .uncertainty import Calibration, fit_calibration

#: Folder of the shipped default calibrations, ``<modality>.json``.
DEFAULTS_FOLDER = Path(__file__).parent / "calibrations"
#: A measurement whose noise level is outside the fitted range by more than this factor gets a warning.
NOISE_TOLERANCE = 2.0
#: Solver settings that must match the calibration's for it to apply without a warning (not the
#: number of samples: the std of 4 or 8 runs estimates the same spread, within a few per cent).
SETTINGS_CHECKED = ("steps", "lr", "sigma_x0", "timesteps", "t_max")


# -- building calibration problems ---------------------------------------------------

def fit_to_grid(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An image cropped about its centre to the aspect ratio of ``shape``, then resampled to it.

    Examples
    --------
    >>> fit_to_grid(np.ones((40, 20)), (8, 8)).shape
    (8, 8)
    """
    from skimage.transform import resize

    image = np.asarray(image, dtype=np.float32)
    while image.ndim > 2 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2:
        raise InputError(f"has shape {image.shape}; expected one 2-D image", field="reference")
    height, width = image.shape
    target = shape[0] / shape[1]
    if height / width > target:
        keep = max(1, round(width * target))
        image = image[(height - keep) // 2:(height - keep) // 2 + keep]
    else:
        keep = max(1, round(height / target))
        image = image[:, (width - keep) // 2:(width - keep) // 2 + keep]
    if image.shape == tuple(shape):
        return image
    return resize(image, shape, order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def problems_like(like: Problem, references: dict, *, seed: int = 0) -> dict[str, Problem]:
    """Each reference measured like ``like``: same physics and noise model, its own noise draw.

    Parameters
    ----------
    like : Problem
        The target measurement (:func:`reddiff.pipeline.load_problem`).
    references : dict
        Name -> an image file path, or a 2-D array in physical units.
    seed : int
        Reference ``i`` gets the noise seed ``seed + i``.

    Returns
    -------
    dict
        Name -> :class:`Problem` with its truth.
    """
    from reddiff.datasets import read_image

    modality = modalities.get(like.modality)
    grid = tuple(like.baseline.shape[-2:])
    problems = {}
    for i, (name, reference) in enumerate(references.items()):
        try:
            if isinstance(reference, (str, Path)):
                read = read_image(reference)
                array, unit = read.array, read.unit
            else:
                array, unit = reference, ""
            array = fit_to_grid(array, grid)
            if not (np.isfinite(array).all() and float(np.ptp(array)) > 0):
                raise InputError("must be finite and not constant to calibrate with", field="reference")
            truth = modality.reference_truth(array, unit)
            problems[name] = modality.measure_like(like, truth, seed=seed + i)
        except InputError as err:
            if isinstance(reference, (str, Path)):
                raise err.about(reference) from err
            raise
    return problems


# -- fitting -------------------------------------------------------------------------

def fit(problems: dict[str, Problem], results: list[Reconstruction], *, level: float = 0.9,
        bins: int = 1, proxy: str = "") -> Calibration:
    r"""The widening factor that makes the results' intervals cover their problems' truths.

    Parameters
    ----------
    problems : dict
        Name -> :class:`Problem` with a truth, all of one modality (:func:`problems_like`).
    results : list of Reconstruction
        Their uncalibrated reconstructions, in order (:func:`reddiff.pipeline.calibrate_on`
        makes both).
    level : float
        Central level :math:`L` of the intervals.
    bins : int
        Std bins, one factor each (see :func:`reddiff.uncertainty.fit_calibration`).
    proxy : str
        An error proxy added to the spread, its weight fitted
        (:func:`reddiff.uncertainty.fit_calibration`; ``""``: the raw spread).

    Returns
    -------
    Calibration
        Noise-conditioned when the problems' noise levels span a ratio of at least
        :data:`reddiff.uncertainty.NOISE_LAW_MIN_RATIO` (:func:`reddiff.uncertainty.fit_calibration`).
        Its ``context`` adds the modality, the noise levels and measurement shapes fitted
        on, the references' names and the factor each alone would need (its spread
        says how far the calibration transfers between images).
    """
    if not problems or len(problems) != len(results):
        raise InputError(f"need one result per problem (at least one), got {len(problems)} problems "
                         f"and {len(results)} results", field="results")
    kinds = {p.modality for p in problems.values()}
    if len(kinds) > 1:
        raise InputError(f"references of several modalities {sorted(kinds)}", field="references")
    modality = modalities.get(kinds.pop())
    truths = []
    for (name, problem), result in zip(problems.items(), results):
        if problem.truth is None:
            raise InputError(f"problem {name!r} has no truth", field="problems")
        truths.append(modality.reference_for(result, problem))
    levels = [modality.noise_level(p) for p in problems.values()]
    calibration = fit_calibration(results, truths, level=level, bins=bins, noise_levels=levels, proxy=proxy)
    alone = [fit_calibration([r], [t], level=level, proxy=proxy, proxy_weight=calibration.proxy_weight).scales[0]
             for r, t in zip(results, truths)]
    context = {**calibration.context, "modality": modality.name, "noise_levels": [min(levels), max(levels)],
               "measurement_shapes": sorted({json.dumps(list(p.y.shape[1:])) for p in problems.values()}),
               "fitted_on": list(problems), "factor_per_image": [round(k, 4) for k in alone]}
    return dataclasses.replace(calibration, context=context)


# -- choosing and applying -----------------------------------------------------------

def default_path(modality: str) -> Path:
    """Where the modality's shipped default calibration lives (it may not exist)."""
    return DEFAULTS_FOLDER / f"{modalities.get(modality).name}.json"


def variant_paths(modality: str) -> list[Path]:
    """The modality's shipped variants of its default, ``<name>@<variant>.json``: fitted with the
    settings of a size tier of its defaults row (``above-181px``: CT's full timestep range above
    181 px; MRI's lr a third above 90 px and a ninth above 181 px)."""
    return sorted(DEFAULTS_FOLDER.glob(f"{modalities.get(modality).name}@*.json"))


def resolve(spec, modality: str, config: dict | None = None) -> tuple[Calibration | None, str]:
    """The calibration a run asks for, and where it came from.

    Parameters
    ----------
    spec : None, "default", "none", path or Calibration
        ``"default"`` (or None): the modality's shipped one, if any, or the shipped variant
        fitted with the run's own settings (:data:`SETTINGS_CHECKED`) where the default was not;
        ``"none"``: raw intervals.
    modality : str
    config : dict, optional
        The run's settings (``Reconstruction.config``), to choose among the shipped variants.

    Returns
    -------
    (Calibration or None, str)
        The calibration and a description of its source (``"default for ct"``,
        ``"default for ct (above-181px)"``, a path).
    """
    if isinstance(spec, Calibration):
        return spec, "given"
    if spec is None or str(spec) == "default":
        return _default_for(modality, config or {})
    if str(spec) == "none":
        return None, "none"
    return Calibration.load(spec), str(spec)


def _default_for(modality: str, config: dict) -> tuple[Calibration | None, str]:
    """The shipped default, or the first shipped variant whose settings are the run's where the default's are not."""
    name = modalities.get(modality).name
    path = default_path(modality)
    if not path.is_file():
        return None, "none shipped"
    default = Calibration.load(path)
    if settings_differing(default.context, config):
        for variant in variant_paths(modality):
            calibration = Calibration.load(variant)
            if not settings_differing(calibration.context, config):
                return calibration, f"default for {name} ({variant.stem.split('@', 1)[1]})"
    return default, f"default for {name}"


def settings_differing(context: dict, config: dict) -> list[str]:
    """The solver settings (:data:`SETTINGS_CHECKED`) a run's ``config`` has other than a calibration's ``context``.

    Examples
    --------
    >>> settings_differing({"steps": 400, "t_max": 40}, {"steps": 400, "t_max": 999})
    ['t_max']
    """
    return [key for key in SETTINGS_CHECKED
            if key in context and config.get(key) is not None and context[key] != config[key]]


def mismatches(calibration: Calibration, problem: Problem, result: Reconstruction) -> list[str]:
    """How the measurement differs from what the calibration was fitted on (empty: alike).

    Raises
    ------
    InputError
        The calibration is for another modality or another prior: its factor means nothing here.
    """
    context = calibration.context
    fitted = context.get("modality")
    if fitted is not None and modalities.get(fitted).name != problem.modality:
        raise InputError(f"was fitted for {fitted}, not {problem.modality}", field="calibration")
    prior = result.config.get("prior")
    if context.get("prior") not in (None, prior):
        raise InputError(f"was fitted with the prior {context['prior']!r}, this run uses {prior!r}",
                         field="calibration")
    found = []
    fitted_weights, weights = context.get("prior_weights"), result.config.get("prior_weights")
    if fitted_weights and weights and fitted_weights != weights:
        found.append(f"the prior {prior!r} has other weights (SHA-256 {weights[:12]}...) than it was fitted with "
                     f"({fitted_weights[:12]}...): a retrained prior spreads differently, refit the calibration")
    if "noise_levels" in context:
        low, high = context["noise_levels"]
        level = modalities.get(problem.modality).noise_level(problem)
        if not low / NOISE_TOLERANCE <= level <= high * NOISE_TOLERANCE:
            found.append(f"noise level {level:.3g} is outside the fitted {low:.3g}-{high:.3g} "
                         f"(x{NOISE_TOLERANCE:g} either way)")
    shape = json.dumps(list(problem.y.shape[1:]))
    if context.get("measurement_shapes") and shape not in context["measurement_shapes"]:
        found.append(f"measurement shape {shape} differs from the fitted {', '.join(context['measurement_shapes'])}")
    for key in settings_differing(context, result.config):
        found.append(f"{key}={result.config[key]} differs from the fitted {key}={context[key]}")
    return found


def apply(result: Reconstruction, problem: Problem, spec="default") -> Reconstruction:
    """``result`` with calibrated ``std_calibrated``, ``lower`` and ``upper`` (when a calibration applies).

    The attrs record ``calibration_source`` and, as a JSON list, ``calibration_warnings``
    (:func:`mismatches`). A default calibration fitted with another prior is not applied
    (a warning says so); a named one is refused.

    Parameters
    ----------
    result : Reconstruction
        In display units (:func:`reddiff.pipeline.reconstruct`).
    problem : Problem
    spec : see :func:`resolve`
    """
    calibration, source = resolve(spec, problem.modality, result.config)
    if calibration is None:
        result.dataset.attrs["calibration_source"] = source
        return result
    try:
        warnings = mismatches(calibration, problem, result)
    except InputError as err:
        if not source.startswith("default"):
            raise err.about(source) from err
        result.dataset.attrs.update(calibration_source=f"{source}: not applied",
                                    calibration_warnings=json.dumps([f"the default calibration {err.message}"]))
        return result
    calibration = at_noise_of(calibration, problem)
    calibrated = result.calibrated(calibration, check=False)
    calibrated.dataset.attrs.update(calibration_source=source, calibration_warnings=json.dumps(warnings))
    return calibrated


def at_noise_of(calibration: Calibration, problem: Problem) -> Calibration:
    """The calibration's factors at the problem's noise level (:meth:`Calibration.at_noise`).

    The power law is followed up to :data:`NOISE_TOLERANCE` beyond the fitted noise
    range and held constant further out (where :func:`mismatches` warns).
    """
    if not calibration.noise_conditioned:
        return calibration
    level = modalities.get(problem.modality).noise_level(problem)
    low, high = calibration.context.get("noise_levels", (calibration.noise_reference,) * 2)
    return calibration.at_noise(level, within=(low / NOISE_TOLERANCE, high * NOISE_TOLERANCE))


def warnings_of(result: Reconstruction) -> list[str]:
    """The calibration warnings recorded in a result by :func:`apply`."""
    text = result.dataset.attrs.get("calibration_warnings")
    return json.loads(text) if text else []


__all__ = ["DEFAULTS_FOLDER", "NOISE_TOLERANCE", "fit_to_grid", "problems_like", "fit", "default_path", "variant_paths",
           "resolve", "settings_differing", "mismatches", "apply", "at_noise_of", "warnings_of"]
