r"""From a measurement file to a saved, reported reconstruction: the job behind the CLI.

:func:`load_problem` reads a fastMRI k-space file, a sinogram or a FITS image and
builds a :class:`Problem`: the measurement, the forward model with its data term,
a classical baseline (SENSE-CG, FBP, Richardson-Lucy), the starting image and,
where the file has one, the reference image. :func:`problem_from_measurement` does
the same for an in-memory simulation. :func:`reconstruct` runs RED-Diff with the
modality's measured defaults (:data:`reddiff.defaults.DEFAULTS`) and
:func:`save_outputs` writes the NetCDF (plus DICOM/FITS next to such a source), the
uncertainty figure and the report, all or nothing.

Units. CT is reconstructed as linear attenuation (1/mm, the prior's unit) and
reported in HU. MRI images are in the file's k-space units: the prior, trained on
images of maximum magnitude 1, is rescaled to the zero-filled image's maximum.
Telescope images are in electrons: as read for ``BUNIT = 'electron'``, else ADU times
the ``GAIN`` card (a file in ADU without one is refused); ``RDNOISE`` and reddiff's
``SKYLEVEL`` card are in electrons, and the sky is estimated (sigma-clipped median) without it.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .defaults import defaults_for
from .errors import InputError
from .likelihood import GaussianLikelihood, ShiftedPoissonLikelihood, TransmissionLikelihood
from .priors.base import AffineTransform, Prior
from .result import Reconstruction

#: Output formats :func:`save_outputs` knows.
FORMATS = ("netcdf", "dicom", "fits", "png")


@dataclass(eq=False)
class Problem:
    """One reconstruction problem: the measurement, its physics and what surrounds it.

    Attributes
    ----------
    modality : {"ct", "mri", "astro"}
    y : torch.Tensor
        The measurement ``(1, ...)`` as ``physics.A`` returns it.
    physics : deepinv.physics.Physics
        Forward model in physical units, with its ``data_term``.
    baseline : torch.Tensor
        ``(1, C, H, W)`` classical reconstruction, physical units.
    baseline_name : str
    init : torch.Tensor
        Starting image for RED-Diff, physical units.
    measurement_image : torch.Tensor
        The naive image of the measurement (zero-filled, FBP, the raw frame), for figures.
    measurement_name : str
        What ``measurement_image`` is.
    truth : torch.Tensor, optional
        Reference image ``(1, C, H, W)`` (simulation truth or the file's reference).
    source : object, optional
        What the measurement was read from (:class:`reddiff.datasets.MRIData`,
        ``Sinogram``, ``SkyImage``) or a DICOM/FITS reference, for geometry and outputs.
    image_scale : float
        Physical value mapped to 1 by the prior (MRI: the zero-filled maximum).
    description : str
        One line saying what the problem is.
    """

    modality: str
    y: torch.Tensor
    physics: object
    baseline: torch.Tensor
    baseline_name: str
    init: torch.Tensor
    measurement_image: torch.Tensor
    truth: torch.Tensor | None = None
    source: object = None
    measurement_name: str = "Measurement"
    image_scale: float = 1.0
    description: str = ""
    info: dict = field(default_factory=dict)



# -- building problems ---------------------------------------------------------------

def problem_from_measurement(measurement, modality: str, *, source=None) -> Problem:
    """A :class:`Problem` from a simulated :class:`reddiff.operators.Measurement`.

    Parameters
    ----------
    measurement : reddiff.operators.Measurement
        From ``reddiff.operators.ct|mri|telescope.simulate``.
    modality : {"ct", "mri", "astro"}
    source : object, optional
        The image it was simulated from (geometry, DICOM/FITS outputs).

    Examples
    --------
    >>> import torch
    >>> from reddiff.operators import ct
    >>> m = ct.simulate(torch.full((1, 1, 32, 32), ct.MU_WATER), views=12, I0=1e4, seed=0)
    >>> problem_from_measurement(m, "ct").baseline_name
    'FBP (Hann)'
    """
    defaults_for(modality)
    info = dict(measurement.info)
    builder = {"ct": _ct_problem, "mri": _mri_problem, "astro": _astro_problem}[modality]
    return builder(measurement.y, measurement.physics, truth=measurement.x_true, source=source, info=info)


def load_problem(path, *, modality: str = "auto", slice_index: int = 0, psf=None, reference=None,
                 acceleration: float | None = None, seed: int = 0) -> Problem:
    """Read a measurement file and build its :class:`Problem`.

    Parameters
    ----------
    path : str or os.PathLike
        fastMRI HDF5 (MRI), reddiff sinogram ``.h5``/``.nc``/``.npz`` (CT) or FITS (telescope).
    modality : {"auto", "mri", "ct", "astro"}
        ``"auto"`` takes it from the file; otherwise it must agree with the file.
    slice_index : int
        fastMRI slice to reconstruct.
    psf : str or array-like, optional
        Telescope PSF (a FITS file or an array); default the file named by the
        image's ``PSFFILE`` card, next to it.
    reference : str or os.PathLike, optional
        An image file of the truth (e.g. the DICOM slice a sinogram was simulated
        from), for PSNR and, for DICOM, derived DICOM outputs with its geometry.
        CT references are read as HU unless their unit is ``1/mm`` or every value
        is below 1 (attenuation).
    acceleration : float, optional
        Retrospective undersampling of a fully sampled fastMRI file.
    seed : int
        Seeds the retrospective mask.

    Returns
    -------
    Problem
    """
    from reddiff.datasets import MODALITY, file_kind, read_fastmri, read_fits, read_sinogram

    kind = file_kind(path)
    if kind not in MODALITY:
        raise InputError(f"holds a {kind}, not a measurement (fastMRI k-space, sinogram or FITS); "
                         "make one from an image with `reddiff simulate`", path=path)
    found = MODALITY[kind]
    if modality not in ("auto", found):
        raise InputError(f"is a {kind} file ({found}), not {modality}; drop --modality or pick {found}",
                         path=path, field="modality")
    if psf is not None and found != "astro":
        raise InputError(f"is a {kind} file: a PSF applies to FITS sky images only", path=path, field="psf")
    if (slice_index or acceleration is not None) and found != "mri":
        raise InputError(f"is a {kind} file: slice and acceleration apply to fastMRI files only", path=path,
                         field="slice")
    if found == "mri":
        problem = _mri_from_file(read_fastmri(path, slices=[slice_index], acceleration=acceleration, seed=seed))
    elif found == "ct":
        problem = _ct_from_file(read_sinogram(path))
    else:
        problem = _astro_from_file(read_fits(path), psf)
    if reference is not None:
        _attach_reference(problem, reference)
    return problem


def _attach_reference(problem: Problem, reference) -> None:
    from reddiff.datasets import detect_format, read_dicom, read_fits, read_image

    ref = read_image(reference)
    array = np.asarray(ref.array, dtype=np.float32)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    shape = tuple(problem.baseline.shape[-2:])
    if array.shape != shape:
        raise InputError(f"has shape {array.shape}; expected the reconstruction grid {shape}", path=reference)
    truth = torch.from_numpy(array)[None, None]
    if problem.modality == "ct":
        from reddiff.operators.ct import hu_to_mu

        # HU unless the file says 1/mm or its values can only be attenuations (below 1/mm everywhere)
        in_mu = ref.unit == "1/mm" or (ref.unit != "HU" and float(array.max()) < 1.0)
        truth = truth if in_mu else hu_to_mu(truth)
    elif problem.modality == "mri":
        truth = torch.cat([truth, torch.zeros_like(truth)], dim=1)
    problem.truth = truth
    fmt = detect_format(reference)
    if fmt == "dicom":  # DICOM outputs in the reference's geometry
        problem.source = read_dicom(reference)
    elif fmt == "fits" and problem.source is None:  # a measured FITS frame keeps its own header and WCS
        problem.source = read_fits(reference)


# -- CT ------------------------------------------------------------------------------

def _ct_problem(y, physics, *, truth=None, source=None, info=None) -> Problem:
    from reddiff.operators import ct

    term = getattr(physics, "data_term", None)
    if isinstance(term, TransmissionLikelihood):
        sinogram = ct.line_integrals(y, term.I0)
    elif isinstance(term, GaussianLikelihood):
        sinogram = y
    else:
        raise InputError("a CT problem needs physics.data_term: TransmissionLikelihood (counts) or "
                         "GaussianLikelihood (line integrals)", field="data_term")
    baseline = ct.fbp(sinogram, physics, filter="hann")
    views = int(physics.angles.numel())
    return Problem("ct", y, physics, baseline, "FBP (Hann)", init=baseline.clamp_min(0),
                   measurement_image=ct.fbp(sinogram, physics, filter="ramp"), measurement_name="FBP (ramp)",
                   truth=truth, source=source,
                   description=f"CT, {physics.geometry.kind} beam, {views} views, {term!r}", info=info or {})


def _ct_from_file(sino) -> Problem:
    from reddiff.operators import ct

    physics = ct.ct_physics(sino.image_shape, geometry=sino.geometry, angles=sino.angles,
                            pixel_spacing_mm=sino.pixel_spacing_mm, detector_spacing_mm=sino.detector_spacing_mm,
                            n_detectors=sino.sinogram.shape[1],
                            **({"source_distance_mm": sino.source_distance_mm,
                                "detector_distance_mm": sino.detector_distance_mm} if sino.geometry == "fan" else {}))
    y = torch.from_numpy(np.ascontiguousarray(sino.sinogram.T))[None, None]
    if sino.quantity == "counts":
        physics.data_term = TransmissionLikelihood(sino.I0)
    elif sino.sigma:
        physics.data_term = GaussianLikelihood(sino.sigma)
    else:
        raise InputError("holds line integrals without a noise level; add the sigma attribute "
                         "(standard deviation of the line integrals)", path=sino.path, field="sigma")
    return _ct_problem(y, physics, source=sino, info={"path": str(sino.path)})


# -- MRI -----------------------------------------------------------------------------

def _mri_problem(y, physics, *, truth=None, source=None, info=None) -> Problem:
    from reddiff.operators import mri

    zero_filled = mri.zero_filled(y, physics)
    baseline = mri.sense_cg(y, physics, iterations=SENSE_ITERATIONS)
    scale = float(_magnitude(zero_filled).max())
    if not scale > 0:
        raise InputError("the k-space is all zeros", field="kspace")
    coils = "multi-coil" if y.ndim == 5 else "single-coil"
    fraction = float(getattr(physics, "mask", torch.ones(1)).float().mean())
    return Problem("mri", y, physics, baseline, f"SENSE-CG ({SENSE_ITERATIONS} it.)", init=zero_filled,
                   measurement_image=zero_filled, measurement_name="Zero-filled", truth=truth, source=source,
                   image_scale=scale,
                   description=f"MRI, {coils}, {fraction:.0%} of k-space sampled, {physics.data_term!r}",
                   info=info or {})


#: CG iterations of the SENSE baseline (early stopping is its regulariser).
SENSE_ITERATIONS = 10


def _mri_from_file(data) -> Problem:
    from reddiff.operators import mri

    kspace = torch.from_numpy(data.kspace[0])  # (coils, H, W) complex
    shape = tuple(kspace.shape[-2:])
    columns = np.ones(shape[1], bool) if data.mask is None else data.mask
    mask = torch.from_numpy(np.broadcast_to(columns[None, :], shape).astype(np.float32).copy())
    y = torch.view_as_real(kspace).permute(3, 0, 1, 2)[None].contiguous()  # (1, 2, coils, H, W)
    sigma = float(data.attrs.get("sigma") or estimate_kspace_noise(kspace, mask))
    if data.multicoil and kspace.shape[0] > 1:
        # ESPIRiT's kernel must fit the calibration block several times over, or the maps degrade
        kernel = max(3, min(6, _central_run(columns) // 3))
        maps = mri.estimate_sensitivity_maps(y, kernel_size=kernel)
        physics = mri.mri_physics(mask, coil_maps=maps, sigma=sigma)  # sets the Gaussian data term
    else:
        y = y[:, :, 0]
        physics = mri.mri_physics(mask, sigma=sigma)
    truth = None
    if data.target is not None and data.target.shape[-2:] == shape:
        target = torch.from_numpy(data.target[0])[None, None]
        truth = torch.cat([target, torch.zeros_like(target)], dim=1)
    return _mri_problem(y, physics, truth=truth, source=data, info={"path": str(data.path)})


def _central_run(columns: np.ndarray) -> int:
    """Length of the contiguous run of sampled columns through the centre."""
    centre = len(columns) // 2
    left = right = centre
    while left > 0 and columns[left - 1]:
        left -= 1
    while right < len(columns) - 1 and columns[right + 1]:
        right += 1
    return right - left + 1 if columns[centre] else 0


def estimate_kspace_noise(kspace: torch.Tensor, mask: torch.Tensor, *, edge: float = 0.1) -> float:
    r"""Noise standard deviation of k-space from its outermost sampled rows.

    The readout edges of k-space hold little signal; the noise per real/imaginary
    part is estimated robustly there as :math:`\hat\sigma = 1.4826\,\mathrm{MAD}`.
    Residual signal makes this an over-estimate, never an under-estimate.

    Parameters
    ----------
    kspace : torch.Tensor
        ``(coils, H, W)`` complex.
    mask : torch.Tensor
        ``(H, W)`` sampling mask.
    edge : float
        Fraction of rows at each readout end used.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> k = torch.complex(torch.randn(2, 64, 64, generator=g), torch.randn(2, 64, 64, generator=g))
    >>> round(estimate_kspace_noise(0.1 * k, torch.ones(64, 64)), 2)
    0.1
    """
    rows = max(1, int(edge * kspace.shape[-2]))
    picked = torch.cat([kspace[..., :rows, :], kspace[..., -rows:, :]], dim=-2)
    sampled = torch.cat([mask[:rows], mask[-rows:]], dim=0).bool().expand_as(picked)
    values = torch.view_as_real(picked[sampled]).flatten()
    if values.numel() < 8:
        raise InputError("too few sampled k-space values to estimate the noise", field="kspace")
    sigma = 1.4826 * float((values - values.median()).abs().median())
    if not sigma > 0:
        raise InputError("k-space edges are exactly zero: cannot estimate the noise level", field="kspace")
    return sigma


def _magnitude(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).sum(1, keepdim=True).sqrt() if x.shape[1] == 2 else x.abs()


# -- telescope -----------------------------------------------------------------------

#: Richardson-Lucy iterations of the telescope baseline, and of RED-Diff's starting image
#: (an under-converged RL start measured 0.8-1.6 dB better than the converged one).
RL_ITERATIONS = 30
RL_INIT_ITERATIONS = 10


def _astro_problem(y, physics, *, truth=None, source=None, info=None) -> Problem:
    from reddiff.operators import telescope

    term = getattr(physics, "data_term", None)
    if not isinstance(term, ShiftedPoissonLikelihood):
        raise InputError("a telescope problem needs physics.data_term = ShiftedPoissonLikelihood", field="data_term")
    start = telescope.richardson_lucy(y, physics, background=term.background, read_noise=term.read_noise,
                                      iterations=RL_INIT_ITERATIONS)
    baseline = telescope.richardson_lucy(y, physics, background=term.background, read_noise=term.read_noise,
                                         iterations=RL_ITERATIONS - RL_INIT_ITERATIONS, init=start)
    return Problem("astro", y, physics, baseline, f"Richardson-Lucy ({RL_ITERATIONS} it.)", init=start,
                   measurement_image=y - term.background, measurement_name="Frame - sky", truth=truth,
                   source=source,
                   description=f"telescope, PSF {tuple(physics.filter.shape[-2:])}, {term!r}", info=info or {})


def _astro_from_file(sky, psf) -> Problem:
    from astropy.stats import sigma_clipped_stats

    from reddiff.operators import telescope

    if sky.array.ndim != 2:
        raise InputError(f"holds a cube of shape {sky.array.shape}; expected one 2-D image", path=sky.path)
    if psf is None:
        name = sky.header.get("PSFFILE")
        if not name:
            raise InputError("has no PSFFILE card; give the PSF with --psf FILE", path=sky.path, field="PSFFILE")
        psf = Path(sky.path).parent / str(name)
    kernel = telescope.psf_from_fits(psf) if isinstance(psf, (str, Path)) else telescope.as_psf(psf)
    electrons = np.where(sky.valid, sky.electrons(), np.nan)  # ADU x GAIN, or as is if in electrons
    _, sky_median, sky_std = sigma_clipped_stats(electrons[np.isfinite(electrons)], sigma=3.0)
    background = float(sky.header.get("SKYLEVEL", sky_median))  # reddiff's card, in electrons
    read_noise = sky.read_noise if sky.read_noise is not None else \
        math.sqrt(max(float(sky_std) ** 2 - max(background, 0.0), 1.0))
    y = torch.from_numpy(np.nan_to_num(electrons, nan=background).astype(np.float32))[None, None]
    physics = telescope.blur_physics(kernel)
    physics.data_term = ShiftedPoissonLikelihood(max(background, 0.0), read_noise)
    return _astro_problem(y, physics, source=sky, info={"path": str(sky.path), "gain": sky.gain})


# -- solving -------------------------------------------------------------------------

def noise_level(problem: Problem) -> float:
    r"""The measurement's noise level in the modality's reference measure.

    ``lam`` was tuned at one noise level per modality and the best ``lam`` was
    measured to scale as :math:`1/\sigma` across a decade of noise (see
    ``benchmarks/tune_defaults.py``), so :func:`reconstruct` scales the default by
    this level. The measures:

    - CT, transmission counts: :math:`1/\sqrt{I_0}`, the std of a line integral
      through air; Gaussian line integrals: their :math:`\sigma`.
    - MRI: :math:`\sigma` of the k-space noise over the image scale (the prior's units).
    - Sky: :math:`\sqrt{b + r^2}` electrons (sky photon noise and read noise), at least 1.

    Examples
    --------
    >>> import torch
    >>> from reddiff.operators import ct
    >>> m = ct.simulate(torch.full((1, 1, 16, 16), ct.MU_WATER), views=8, I0=1e4, seed=0)
    >>> round(noise_level(problem_from_measurement(m, "ct")), 4)
    0.01
    """
    term = problem.physics.data_term
    if isinstance(term, TransmissionLikelihood):
        return float(term.I0.float().mean()) ** -0.5
    if isinstance(term, ShiftedPoissonLikelihood):
        return max(math.sqrt(term.background + term.read_noise**2), 1.0)
    if isinstance(term, GaussianLikelihood):
        return term.sigma / problem.image_scale
    raise InputError(f"no noise level for the data term {term!r}; pass lam explicitly", field="lam")


def prior_for(problem: Problem, prior=None) -> Prior:
    """The prior for a problem: the modality's default, a name or a folder, or a :class:`Prior`.

    MRI priors are rescaled so the problem's ``image_scale`` maps to the
    magnitude 1 they were trained on.
    """
    from .priors import load_prior

    chosen = prior if isinstance(prior, Prior) else load_prior(prior or defaults_for(problem.modality).prior)
    if problem.modality == "mri" and problem.image_scale != 1.0:
        if chosen.transform.to_config().get("kind") != "identity":
            return chosen
        chosen = copy.copy(chosen)
        chosen.transform = AffineTransform(0.0, problem.image_scale, unit="a.u.")
    return chosen


def reconstruct(problem: Problem, *, prior=None, n_samples: int = 8, seed: int | None = 0,
                device: str | None = None, callback=None, keep_samples: bool = False,
                **overrides) -> Reconstruction:
    """RED-Diff on a :class:`Problem` with the modality's defaults, in display units.

    Parameters
    ----------
    problem : Problem
    prior : str, path or Prior, optional
        Default: the modality's shipped prior (:data:`reddiff.defaults.DEFAULTS`).
    n_samples : int
        Stochastic runs, for the uncertainty map.
    seed : int, optional
    device : str, optional
        ``"cpu"``, ``"cuda"``, ...; default the GPU when there is one.
    callback : callable, optional
        Progress callback (see :func:`reddiff.red_diff`).
    keep_samples : bool
        Store every sample.
    **overrides
        Any :func:`reddiff.red_diff` setting (``steps``, ``lr``, ``lam``, ``weighting``,
        ``timesteps``, ``sigma_x0``, ``batch_size``, ...); None values keep the default.
        The default ``lam`` is scaled to the measurement's noise
        (:meth:`reddiff.defaults.SolverDefaults.lam_for` with :func:`noise_level`); a
        given ``lam`` is used as is.

    Returns
    -------
    Reconstruction
        In HU for CT, electrons for sky images; ``attrs`` also record the modality,
        the baseline and, when the truth is known, PSNR of mean and baseline.
    """
    from .solver import red_diff

    settings = defaults_for(problem.modality).as_kwargs(noise=noise_level(problem))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    try:
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as err:
        raise InputError(f"unknown device {device!r}; expected cpu, cuda or cuda:N", field="device") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but torch sees no CUDA GPU", field="device")
    chosen = prior_for(problem, prior)
    physics = problem.physics.to(device) if hasattr(problem.physics, "to") else problem.physics
    started = time.perf_counter()
    result = red_diff(problem.y.to(device), physics, chosen, init=problem.init.to(device), n_samples=n_samples,
                      seed=seed, callback=callback, keep_samples=keep_samples, **settings)
    result.dataset.attrs.update({"modality": problem.modality, "baseline": problem.baseline_name,
                                 "problem": problem.description, "wall_time_s": time.perf_counter() - started})
    result = to_display_units(result, problem)
    if problem.truth is not None:
        from .report import image_quality

        truth, baseline = display_image(problem.truth, problem), display_image(problem.baseline, problem)
        result.dataset.attrs["psnr_db"] = image_quality(truth, result.tensor("mean"))["psnr"]
        result.dataset.attrs["baseline_psnr_db"] = image_quality(truth, baseline)["psnr"]
    return result


def to_display_units(result: Reconstruction, problem: Problem) -> Reconstruction:
    """CT results from 1/mm to HU, sky images labelled in electrons; MRI unchanged."""
    if problem.modality == "astro":
        return result.in_units(scale=1.0, units="electron")
    if problem.modality != "ct":
        return result
    from reddiff.operators.ct import MU_WATER

    return result.in_units(scale=1000.0 / MU_WATER, offset=-1000.0, units="HU")


def reference_for(result: Reconstruction, problem: Problem) -> torch.Tensor | None:
    r"""The truth in the result's units, ready for error maps and coverage.

    A magnitude-only MRI reference (fastMRI's ``reconstruction_rss``, a magnitude
    image) has no phase, while the reconstruction carries the coil maps' phase: the
    reference is given the mean's phase, :math:`x = |x_{ref}|\, \hat x / |\hat x|`,
    so errors and coverage measure magnitude and noise, not an unknowable phase.
    """
    if problem.truth is None:
        return None
    truth = display_image(problem.truth, problem)
    if problem.modality == "mri" and not bool(truth[:, 1].any()):
        mean = result.tensor("mean")
        phase = torch.atan2(mean[:, 1], mean[:, 0])
        truth = torch.stack([truth[:, 0] * torch.cos(phase), truth[:, 0] * torch.sin(phase)], dim=1)
    return truth


def display_image(image: torch.Tensor, problem: Problem) -> torch.Tensor:
    """An image of the problem (baseline, truth, init) in the result's display units."""
    if problem.modality == "ct":
        from reddiff.operators.ct import mu_to_hu

        return mu_to_hu(image)
    return image


# -- writing -------------------------------------------------------------------------

def save_outputs(result: Reconstruction, problem: Problem, out_dir, *, formats=("netcdf", "png"),
                 stem: str = "reconstruction") -> dict[str, Path]:
    """Write the result, its figure and report into ``out_dir``, all or nothing.

    Parameters
    ----------
    result : Reconstruction
        From :func:`reconstruct`.
    problem : Problem
    out_dir : str or os.PathLike
        Created if missing.
    formats : sequence of str
        Any of :data:`FORMATS`. NetCDF is always written; ``dicom`` needs a DICOM
        source (``reference=``), ``fits`` a FITS one; ``png`` adds the figure and
        ``report.md``.
    stem : str
        File name stem of the result files.

    Returns
    -------
    dict
        Kind -> path of every file written.
    """
    from reddiff.datasets import DicomVolume, SkyImage, with_geometry, write_result

    from .report import write_report

    check_outputs(problem, formats)
    source = problem.source
    out_dir = output_folder(out_dir)
    if source is not None:
        result = with_geometry(result, source)
    keep = source if (isinstance(source, DicomVolume) and "dicom" in formats) or \
        (isinstance(source, SkyImage) and "fits" in formats) else None
    truth = reference_for(result, problem)
    written = write_result(result, out_dir, source=keep, stem=stem, figure=False)
    if "png" in formats:
        try:
            report = write_report(result, out_dir, truth=truth, baseline=display_image(problem.baseline, problem),
                                  measurement_image=display_image(problem.measurement_image, problem),
                                  title=f"RED-Diff: {problem.description}",
                                  labels={"measurement": problem.measurement_name, "baseline": problem.baseline_name})
        except BaseException:
            for path in written.values():
                path.unlink(missing_ok=True)
            raise
        written.update({"report": report, "png": report.parent / "uncertainty.png"})
    return written


def check_outputs(problem: Problem, formats) -> None:
    """Refuse output formats the problem cannot give, before any long work.

    Examples
    --------
    >>> import torch
    >>> from reddiff.operators import ct
    >>> m = ct.simulate(torch.full((1, 1, 16, 16), ct.MU_WATER), views=8, I0=1e4, seed=0)
    >>> check_outputs(problem_from_measurement(m, "ct"), ("netcdf", "dicom"))
    Traceback (most recent call last):
    ...
    reddiff.errors.InputError: [format] DICOM output needs a DICOM source: pass the original slice as the reference
    """
    from reddiff.datasets import DicomVolume, SkyImage

    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise InputError(f"unknown output format(s) {', '.join(unknown)}; expected {', '.join(FORMATS)}",
                         field="format")
    if "dicom" in formats and not isinstance(problem.source, DicomVolume):
        raise InputError("DICOM output needs a DICOM source: pass the original slice as the reference",
                         field="format")
    if "fits" in formats and not isinstance(problem.source, SkyImage):
        raise InputError("FITS output needs a FITS measurement or reference", field="format")


def output_folder(path) -> Path:
    """Create ``path`` if needed and check it is a writable folder (before any long work)."""
    import os

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the output folder ({err.strerror})", path=path) from err
    if not os.access(path, os.W_OK):
        raise InputError("output folder is not writable", path=path)
    return path


def summary_line(result: Reconstruction) -> str:
    """One line: samples, time and, when the truth is known, PSNR of RED-Diff and the baseline."""
    attrs = result.dataset.attrs
    line = (f"{attrs.get('modality', '')}: {attrs['n_samples']} samples in {attrs.get('wall_time_s', attrs['time_s']):.1f} s"
            f" ({attrs['time_per_step_s'] * 1000:.0f} ms/step)")
    if "psnr_db" in attrs:
        line += (f", PSNR {attrs['psnr_db']:.2f} dB vs {attrs['baseline']} {attrs['baseline_psnr_db']:.2f} dB")
    return line


__all__ = ["Problem", "FORMATS", "load_problem", "problem_from_measurement", "prior_for",
           "reconstruct", "save_outputs", "check_outputs", "output_folder", "summary_line", "estimate_kspace_noise", "to_display_units",
           "reference_for", "noise_level",
           "display_image"]
