r"""From a measurement file to a saved, reported reconstruction: the job behind the CLI.

Generic over modalities (:mod:`reddiff.modalities`): :func:`load_problem` finds the
modality that reads a file and lets it build the :class:`Problem` (measurement,
physics with its data term, classical baseline, starting image, reference);
:func:`problem_from_measurement` does the same for an in-memory simulation;
:func:`reconstruct` runs RED-Diff with the modality's measured defaults, ``lam``
scaled to the measurement's noise, and gives the result in the modality's display
units; :func:`save_outputs` writes the NetCDF (plus DICOM/FITS next to such a
source), the uncertainty figure and the report, all or nothing.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import modalities
from .errors import InputError
from .calibration import apply as apply_calibration
from .modalities import Problem
from .result import Reconstruction

#: Output formats :func:`save_outputs` knows (a modality offers a subset).
FORMATS = ("netcdf", "dicom", "fits", "nifti", "png")
#: Formats a volume (several slices) can be written in: ``dicom`` where the slices come with their
#: DICOM series' geometry (a sinogram simulated from a DICOM series), ``fits`` for a FITS cube.
VOLUME_FORMATS = ("netcdf", "dicom", "fits", "nifti", "png")


# -- building problems ---------------------------------------------------------------

def problem_from_measurement(measurement, modality: str, *, source=None) -> Problem:
    """A :class:`Problem` from a simulated :class:`reddiff.operators.Measurement`.

    Parameters
    ----------
    measurement : reddiff.operators.Measurement
        From a ``simulate`` of :mod:`reddiff.operators`.
    modality : str
        A registered modality name (:func:`reddiff.modalities.names`).
    source : object, optional
        The image it was simulated from (geometry, DICOM/FITS outputs).
    """
    return modalities.get(modality).from_measurement(measurement, source=source)


def load_problem(path, *, modality: str = "auto", reference=None, seed: int = 0, slice_index: int = 0,
                 **options) -> Problem:
    """Read a measurement file and build its :class:`Problem`.

    Parameters
    ----------
    path : str or os.PathLike
        A measurement file a registered modality reads (:func:`reddiff.modalities.for_file`).
    modality : str
        ``"auto"`` takes it from the file; otherwise it must agree with the file.
    reference : str or os.PathLike, optional
        An image file of the truth (e.g. the slice a measurement was simulated from), for PSNR and, for DICOM, derived DICOM outputs with its geometry.
    seed : int
        Seeds anything random in reading (a retrospective undersampling mask).
    slice_index : int
        The slice of a multi-slice file (:func:`slice_indices`).
    **options
        The modality's own options (``Modality.load_options``); None values are ignored.

    Returns
    -------
    Problem
    """
    found = modalities.for_file(path)
    if modality != "auto" and modalities.get(modality) is not found:
        raise InputError(f"is a {found.title} measurement ({found.name}), not {modality}; "
                         f"drop --modality or pick {found.name}", path=path, field="modality")
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - {o.name for o in found.load_options})
    if unknown:
        owners = modalities.option_owners("load_options")
        said = "; ".join(f"{owners[k][0]} applies to {owners[k][1]} only" if k in owners else f"{k} is not an option"
                         for k in unknown)
        raise InputError(f"is a {found.title} measurement ({found.name}): {said}", path=path, field=unknown[0])
    try:
        count = found.slice_count(path, **given)
        if not (isinstance(slice_index, int) and 0 <= slice_index < count):
            raise InputError(f"slice {slice_index!r} is out of range: the file holds {count} slice(s)",
                             field="slices")
        problem = found.load(path, seed=seed, slice_index=slice_index, **given)
    except InputError as err:
        raise err.about(path) from err
    if reference is not None:
        try:
            attach_reference(problem, reference)
        except InputError as err:
            raise err.about(reference) from err
    return problem


def slice_indices(path, spec=None, **options) -> list[int]:
    """The slices of a measurement file a run reconstructs.

    Parameters
    ----------
    path : str or os.PathLike
    spec : str or int, optional
        ``None`` or ``"all"``: every slice; ``"N"``: slice N; ``"A:B"``: slices A to B-1
        (either end may be left out, as in Python).
    **options
        The modality's load options (an HDU chosen with ``extension``); None values are ignored.

    Examples
    --------
    >>> from reddiff.datasets import sample_path
    >>> slice_indices(sample_path("m13"))
    [0]
    """
    count = modalities.for_file(path).slice_count(path, **{k: v for k, v in options.items() if v is not None})
    text = "all" if spec is None else str(spec).strip()
    try:
        if text == "all":
            chosen = list(range(count))
        elif ":" in text:
            start, _, stop = text.partition(":")
            chosen = list(range(count))[slice(int(start) if start else None, int(stop) if stop else None)]
        else:
            chosen = [int(text)]
    except ValueError:
        raise InputError(f"slices {spec!r}: expected all, N or A:B", path=path, field="slices") from None
    if not chosen or not all(0 <= i < count for i in chosen):
        raise InputError(f"slices {spec!r} select nothing in a file of {count} slice(s)", path=path, field="slices")
    return chosen


def attach_reference(problem: Problem, reference) -> None:
    """Read a reference image file into ``problem.truth``, on the measurement's scale where the
    modality's units are relative (``Modality.truth_from_reference``), and a DICOM/FITS one as
    the geometry source of the outputs."""
    from reddiff.datasets import detect_format, read_dicom, read_fits, read_image

    ref = read_image(reference)
    array = np.asarray(ref.array, dtype=np.float32)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    shape = tuple(problem.baseline.shape[-2:])
    if array.shape != shape:
        raise InputError(f"has shape {array.shape}; expected the reconstruction grid {shape}", path=reference)
    if not float(np.ptp(array)) > 0:
        raise InputError("is constant: a reference image needs contrast (PSNR, error maps)", path=reference)
    problem.truth = modalities.get(problem.modality).truth_from_reference(problem, array, ref.unit)
    fmt = detect_format(reference)
    if fmt == "dicom":  # DICOM outputs in the reference's geometry
        problem.source = read_dicom(reference)
    elif fmt == "fits" and problem.source is None:  # a measured FITS frame keeps its own header and WCS
        problem.source = read_fits(reference)


# -- solving -------------------------------------------------------------------------

def noise_level(problem: Problem) -> float:
    r"""The measurement's noise level in its modality's reference measure.

    ``lam`` was tuned at one noise level per modality and the best ``lam`` was
    measured to scale as :math:`1/\sigma` across a decade of noise (see
    ``docs/tuning.md``), so :func:`reconstruct` scales the default by
    this level (``Modality.noise_level`` says what it measures).
    """
    return modalities.get(problem.modality).noise_level(problem)


def prior_for(problem: Problem, prior=None):
    """The prior for a problem: the modality's default, a name or a folder, or a
    :class:`reddiff.priors.Prior`, adapted to the problem by its modality (``Modality.prior``)."""
    return modalities.get(problem.modality).prior(problem, prior)


def reconstruct(problem: Problem, *, prior=None, n_samples: int = 8, seed: int | None = 0,
                device: str | None = None, callback=None, progress: bool = True, keep_samples: bool = False,
                calibration="default", **overrides) -> Reconstruction:
    """RED-Diff on a :class:`Problem` with the modality's defaults, in display units.

    Parameters
    ----------
    problem : Problem
    prior : str, path or Prior, optional
        Default: the modality's shipped prior (:data:`reddiff.DEFAULTS`).
    n_samples : int
        Stochastic runs, for the uncertainty map.
    seed : int, optional
    device : str, optional
        ``"cpu"``, ``"cuda"``, ...; default the GPU when there is one.
    callback : callable, optional
        Progress callback (see :func:`reddiff.red_diff`).
    progress : bool
        Without a ``callback``, show a progress bar (:class:`reddiff.progress.ProgressBar`:
        a widget in Jupyter, text in a terminal); ``False`` for none.
    keep_samples : bool
        Store every sample.
    calibration : "default", "none", None, path or Calibration
        Widening of the intervals (:func:`reddiff.calibration.apply`): ``"default"`` the
        modality's shipped calibration, ``"none"`` (or None) the raw spread, a path a
        ``reddiff calibrate`` JSON. A calibrated result adds ``std_calibrated``,
        ``lower`` and ``upper``.
    **overrides
        Any :func:`reddiff.red_diff` setting (``steps``, ``lr``, ``lam``, ``weighting``,
        ``timesteps``, ``sigma_x0``, ``batch_size``, ...); None values keep the default.
        The default ``lam`` is scaled to the measurement's noise
        (:meth:`reddiff.defaults.SolverDefaults.lam_for` with :func:`noise_level`) and,
        where the modality's row has a ``lam_target``, chosen by the discrepancy
        principle with pilots around it (:mod:`reddiff.discrepancy`); ``lam="auto"``
        asks for that choice, a number is used as is.

    Returns
    -------
    Reconstruction
        In the modality's display units (``Modality.to_display_units``); ``attrs``
        also record the modality, the baseline and, when the truth is known, PSNR of
        mean and baseline.
    """
    from .progress import progress_callback
    from .solver import red_diff

    import inspect

    modality = modalities.get(problem.modality)
    noise = modality.noise_level(problem)
    settings = modality.defaults.as_kwargs(noise=noise, shape=problem.baseline.shape)
    known = set(inspect.signature(red_diff).parameters) - {"y", "physics", "prior", "init", "n_samples", "seed",
                                                           "callback", "keep_samples"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InputError(f"unknown solver setting(s) {', '.join(unknown)}; expected any of {', '.join(sorted(known))}",
                         field=unknown[0])
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(settings["lam"], str) and settings["lam"] == "auto":  # pilots around the scaled default
        settings["lam"] = modality.defaults.auto_lam(noise)
    try:
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as err:
        raise InputError(f"unknown device {device!r}; expected cpu, cuda or cuda:N", field="device") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but torch sees no CUDA GPU", field="device")
    chosen = modality.prior(problem, prior)
    physics = problem.physics.to(device) if hasattr(problem.physics, "to") else problem.physics
    started = time.perf_counter()
    with progress_callback(callback, progress, desc=f"RED-Diff {problem.modality}") as callback:
        result = red_diff(problem.y.to(device), physics, chosen, init=problem.init.to(device), n_samples=n_samples,
                          seed=seed, callback=callback, keep_samples=keep_samples, **settings)
    result.dataset.attrs.update({"modality": problem.modality, "baseline": problem.baseline_name,
                                 "problem": problem.description, "wall_time_s": time.perf_counter() - started})
    result = modality.to_display_units(result)
    if problem.truth is not None:
        from .report import image_quality

        truth, baseline = modality.display_image(problem.truth), modality.display_image(problem.baseline)
        result.dataset.attrs["psnr_db"] = image_quality(truth, result.tensor("mean"))["psnr"]
        result.dataset.attrs["baseline_psnr_db"] = image_quality(truth, baseline)["psnr"]
    return apply_calibration(result, problem, "none" if calibration is None else calibration)


def calibrate_on(problems: dict, *, level: float = 0.9, bins: int = 1, n_samples: int = 8, seed: int = 0,
                 progress=None, proxy: str = "", **settings):
    """Reconstruct simulated problems (uncalibrated) and fit their interval calibration.

    Parameters
    ----------
    problems : dict
        Name -> :class:`Problem` with a truth (:func:`reddiff.calibration.problems_like`).
    level, bins, proxy
        See :func:`reddiff.calibration.fit`.
    n_samples, seed, progress, **settings
        See :func:`reconstruct_references`.

    Returns
    -------
    reddiff.uncertainty.Calibration
    """
    from .calibration import fit

    results = reconstruct_references(problems, n_samples=n_samples, seed=seed, progress=progress, **settings)
    return fit(problems, results, level=level, bins=bins, proxy=proxy)


def reconstruct_references(problems: dict, *, n_samples: int = 8, seed: int = 0, progress=None,
                           **settings) -> list:
    """The uncalibrated reconstructions a calibration is fitted on, one per problem, in order.

    Parameters
    ----------
    problems : dict
        Name -> :class:`Problem` with a truth.
    n_samples, seed, **settings
        As for :func:`reconstruct` (problem ``i`` gets ``seed + i``): the settings the
        measurements to be calibrated will be reconstructed with.
    progress : callable, optional
        Called with ``(i, name)`` before each reconstruction.

    Returns
    -------
    list of Reconstruction
    """
    results = []
    for i, (name, problem) in enumerate(problems.items()):
        if progress is not None:
            progress(i, name)
        results.append(reconstruct(problem, n_samples=n_samples, seed=seed + i, calibration="none", progress=False,
                                   **settings))
    return results


@dataclass
class Volume:
    """The reconstructed slices of one measurement file (:func:`reconstruct_volume`).

    Attributes
    ----------
    results : list of Reconstruction
        One per slice, in display units, with the source's geometry.
    slices : list of int
        Their slice numbers in the file.
    problem : Problem
        The middle slice's problem (for the figure and report).
    sources : list
        Each slice's ``Problem.source`` (where it lies: the DICOM series or FITS cube
        outputs are written with them).
    """

    results: list
    slices: list
    problem: Problem
    sources: list = field(default_factory=list)

    @property
    def middle(self) -> Reconstruction:
        return self.results[len(self.results) // 2]


def reconstruct_volume(path, *, slices=None, modality: str = "auto", seed: int = 0, load_options=None,
                       callback=None, formats=None, **settings) -> Volume:
    """Reconstruct several slices of a measurement file (every slice by default), one after the other.

    Slice ``k`` is solved with seed ``seed + k`` (so ``--slices k`` alone reproduces it); a
    retrospective mask is drawn once from ``seed``, as one volume has one mask.

    Parameters
    ----------
    path : str or os.PathLike
    slices : str or int, optional
        See :func:`slice_indices`.
    modality, seed
        As for :func:`load_problem`.
    load_options : dict, optional
        The modality's own options (``load_problem``'s ``**options``).
    callback : callable, optional
        Progress callback; each dict also holds ``slice`` and ``n_slices``.
    formats : sequence of str, optional
        The output formats to be written (:func:`save_volume_outputs`), checked on the
        first slice before anything is solved (:func:`check_outputs`).
    **settings
        For :func:`reconstruct` (``prior``, ``n_samples``, ``device``, solver settings).

    Returns
    -------
    Volume
    """
    from reddiff.datasets import with_geometry

    indices = slice_indices(path, slices, **(load_options or {}))
    results, sources, middle = [], [], None
    for number, index in enumerate(indices):
        problem = load_problem(path, modality=modality, seed=seed, slice_index=index, **(load_options or {}))
        if number == 0 and formats is not None:
            try:
                check_outputs(problem, formats, n_slices=len(indices))
            except InputError as err:
                raise err.about(path) from err
        sources.append(problem.source)
        progress = None if callback is None else \
            (lambda info, number=number: callback({**info, "slice": number, "n_slices": len(indices)}))
        result = reconstruct(problem, seed=seed + index, callback=progress, **settings)
        result.dataset.attrs["slice"] = index
        results.append(with_provenance(with_geometry(result, problem.source) if problem.source is not None
                                       else result, problem))
        if number == len(indices) // 2:
            middle = problem
    return Volume(results, indices, middle, sources)


def with_provenance(result: Reconstruction, problem: Problem) -> Reconstruction:
    """A copy whose ``attrs["source_file"]`` names the measurement file the problem was read from.

    A reference file that gave the geometry (``--reference scan.dcm``) is kept as
    ``attrs["reference_file"]``; a simulated problem (no file) leaves the attributes as they are.
    """
    measured = problem.info.get("path")
    if measured is None:
        return result
    ds = result.dataset.copy()
    geometry_from = ds.attrs.get("source_file")
    ds.attrs["source_file"] = str(measured)
    if geometry_from is not None and geometry_from != str(measured):
        ds.attrs["reference_file"] = geometry_from
    return Reconstruction(ds)


def to_display_units(result: Reconstruction, problem: Problem) -> Reconstruction:
    """A result in physical units, in the problem's display units (``Modality.to_display_units``)."""
    return modalities.get(problem.modality).to_display_units(result)


def reference_for(result: Reconstruction, problem: Problem) -> torch.Tensor | None:
    """The truth in the result's units, ready for error maps and coverage (``Modality.reference_for``)."""
    return modalities.get(problem.modality).reference_for(result, problem)


def display_image(image: torch.Tensor, problem: Problem) -> torch.Tensor:
    """An image of the problem (baseline, truth, init) in the result's display units."""
    return modalities.get(problem.modality).display_image(image)


# -- writing -------------------------------------------------------------------------

def save_outputs(result: Reconstruction, problem: Problem, out_dir, *, formats=("netcdf", "png"),
                 stem: str = "reconstruction", overwrite: bool = False,
                 extra_files: dict | None = None, records: dict | None = None) -> dict[str, Path]:
    """Write the result, its figure and report into the folder ``out_dir`` as one unit.

    Everything is written into a staging folder beside ``out_dir`` and put in its
    place in one step (:func:`reddiff.files.staged_output`): an interrupted or failed
    run leaves the previous result whole and nothing else.

    Parameters
    ----------
    result : Reconstruction
        From :func:`reconstruct`.
    problem : Problem
    out_dir : str or os.PathLike
        The result folder: absent or empty, or an earlier result with ``overwrite``.
    formats : sequence of str
        Any of :data:`FORMATS` the modality offers. NetCDF is always written; ``dicom``
        needs a DICOM source (``reference=``), ``fits`` a FITS one; ``png`` adds the
        figure and ``report.md``.
    stem : str
        File name stem of the result files.
    overwrite : bool
        Replace an earlier reddiff result in ``out_dir``.
    extra_files : dict, optional
        Kind -> path of files to move into the result folder with it (the demo's
        measurement).
    records : dict, optional
        File name -> JSON-serialisable object, written into the result folder with it
        (a batch's ``run.json``).

    Returns
    -------
    dict
        Kind -> path of every file in the result folder.
    """
    from reddiff.datasets import source_for_formats, with_geometry, write_result

    from .files import staged_output
    from .report import write_report

    if isinstance(formats, str):
        raise InputError(f"formats must be a sequence of names, got the string {formats!r}", field="formats")
    check_outputs(problem, formats)
    modality = modalities.get(problem.modality)
    source = problem.source
    if source is not None:
        result = with_geometry(result, source)
    result = with_provenance(result, problem)
    keep = source_for_formats(source, formats)
    truth = modality.reference_for(result, problem)
    out_dir = Path(out_dir)
    with staged_output(out_dir, overwrite=overwrite) as staging:
        written = write_result(result, staging, source=keep, stem=stem, figure=False)
        if "nifti" in formats:
            written.update(_write_nifti(result, staging, [source]))
        if "png" in formats:
            report = write_report(result, staging, truth=truth, baseline=modality.display_image(problem.baseline),
                                  measurement_image=modality.display_image(problem.measurement_image),
                                  title=f"RED-Diff: {problem.description}",
                                  labels={"measurement": problem.measurement_name, "baseline": problem.baseline_name})
            written.update({"report": report, "png": report.parent / "uncertainty.png"})
        for kind, path in (extra_files or {}).items():
            written[kind] = Path(shutil.move(str(path), staging / Path(path).name))
        written.update(_write_records(staging, records))
    return {kind: out_dir / path.name for kind, path in written.items()}


def save_volume_outputs(volume: Volume, out_dir, *, formats=("netcdf", "png"), overwrite: bool = False,
                        records: dict | None = None) -> dict[str, Path]:
    """Write a reconstructed volume into the folder ``out_dir`` as one unit.

    ``reconstruction.nc`` holds every slice along a ``slice`` dimension (the slice
    numbers as its coordinate, per-slice PSNR in ``psnr_db_per_slice`` when references
    are known); ``nifti`` adds ``reconstruction_mean.nii.gz`` and
    ``reconstruction_std.nii.gz`` (magnitudes of complex images, mm spacing; in patient coordinates where
    the slices lie in a DICOM series); ``dicom`` a derived DICOM series per product,
    ``reconstruction_mean/0001.dcm ...``, one instance per slice, and
    ``reconstruction_std/0001.dcm``, a Parametric Map with a frame per slice
    (:func:`reddiff.datasets.dicom.write_dicom_series`; the slices must come with
    their series' geometry); ``fits`` a FITS cube ``reconstruction.fits`` of the planes of
    a FITS cube, with its 3-D WCS; ``png`` the figure and ``report.md`` of the middle slice.

    Parameters
    ----------
    volume : Volume
        From :func:`reconstruct_volume`.
    out_dir, overwrite, records
        As for :func:`save_outputs`.
    formats : sequence of str
        Any of :data:`VOLUME_FORMATS` the modality offers (checked by :func:`check_outputs`).

    Returns
    -------
    dict
        Kind -> path of every file in the result folder.
    """
    from reddiff.datasets import write_volume_sources

    from .files import staged_output
    from .report import write_report

    check_outputs(volume.problem, formats, n_slices=len(volume.results), sources=volume.sources)
    problem, modality = volume.problem, modalities.get(volume.problem.modality)
    attrs = dict(volume.results[0].dataset.attrs)
    attrs.pop("slice", None)
    psnrs = [r.dataset.attrs.get("psnr_db") for r in volume.results]
    if all(p is not None for p in psnrs):
        attrs.update(psnr_db=float(np.mean(psnrs)), psnr_db_per_slice=[float(p) for p in psnrs],
                     baseline_psnr_db=float(np.mean([r.dataset.attrs["baseline_psnr_db"] for r in volume.results])))
    stacked = Reconstruction.stack(volume.results, index=volume.slices, attrs=attrs)
    out_dir = Path(out_dir)
    with staged_output(out_dir, overwrite=overwrite) as staging:
        written = {"netcdf": stacked.to_netcdf(staging / "reconstruction.nc")}
        written.update(write_volume_sources(stacked, staging, volume.sources, formats))
        if "nifti" in formats:
            written.update(_write_nifti(stacked, staging, volume.sources or [problem.source]))
        if "png" in formats:
            middle = volume.middle
            report = write_report(middle, staging, truth=modality.reference_for(middle, problem),
                                  baseline=modality.display_image(problem.baseline),
                                  measurement_image=modality.display_image(problem.measurement_image),
                                  title=f"RED-Diff: {problem.description}, slice {middle.dataset.attrs['slice']} "
                                        f"of {len(volume.slices)} reconstructed",
                                  labels={"measurement": problem.measurement_name, "baseline": problem.baseline_name})
            written.update({"report": report, "png": report.parent / "uncertainty.png"})
        written.update(_write_records(staging, records))
    return {kind: out_dir / path.name for kind, path in written.items()}


def _write_records(folder: Path, records: dict | None) -> dict[str, Path]:
    """JSON files (name -> object) written into a result folder."""
    written = {}
    for name, record in (records or {}).items():
        written[Path(name).stem] = folder / name
        (folder / name).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return written


def _write_nifti(result: Reconstruction, folder: Path, sources) -> dict[str, Path]:
    """Mean and std as NIfTI volumes (real images as they are, HU keep their sign; complex ones as
    magnitudes), with the result's pixel spacing and the slices' spacing, in patient coordinates
    where the sources (one per slice) place them."""
    from reddiff.datasets import slice_spacing_mm, volume_affine, write_nifti

    spacing = [float(np.diff(result.dataset[axis].values[:2])[0]) if result.dataset.sizes[axis] > 1 else 1.0
               for axis in ("y", "x")]
    affine = volume_affine(sources, (result.dataset.sizes["y"], result.dataset.sizes["x"]))
    written = {}
    for name in ("mean", "std"):
        values = (result.dataset[name].isel(channel=0) if result.dataset.sizes["channel"] == 1
                  else result.magnitude(name)).values
        written[f"nifti_{name}"] = write_nifti(values, folder / f"reconstruction_{name}.nii.gz",
                                               spacing_mm=(slice_spacing_mm(sources[0]), *map(abs, spacing)),
                                               affine=affine,
                                               description=f"reddiff {name}, {result.mean.attrs.get('units', '')}")
    return written


def check_outputs(problem: Problem, formats, *, n_slices: int = 1, sources=None) -> None:
    """Refuse output formats the problem cannot give, before any long work: unknown ones,
    ones its modality does not offer, ones needing another source (DICOM, FITS), and a
    source whose geometry the outputs could not carry.

    For a volume of ``n_slices`` slices, ``problem`` is its first (or middle) slice's and
    ``sources`` every slice's source once known: ``dicom`` then needs slices that come with
    their DICOM series' geometry, ``fits`` the planes of a FITS cube, and the error says so.
    """
    from reddiff.datasets import check_source_formats, with_geometry

    known = FORMATS if n_slices == 1 else VOLUME_FORMATS
    unknown = sorted(set(formats) - set(known))
    if unknown:
        raise InputError(f"unknown output format(s) {', '.join(unknown)}; expected {', '.join(known)}",
                         field="format")
    offered = modalities.get(problem.modality).output_formats
    unavailable = sorted(set(formats) - set(offered))
    if unavailable:
        raise InputError(f"{', '.join(unavailable)} output is not available for {problem.modality}; "
                         f"expected {', '.join(offered)}", field="format")
    for source in sources or [problem.source]:
        try:
            check_source_formats(source, formats, volume=n_slices > 1)
        except InputError as err:
            if n_slices == 1:
                raise
            raise InputError(f"{err.message}; not available for {n_slices} slices", field="format") from None
    if problem.source is not None:
        with_geometry(Reconstruction.from_samples(problem.baseline.detach().float()[:1], quantiles=()),
                      problem.source)


def summary_line(result: Reconstruction) -> str:
    """One line: samples, time and, when the truth is known, PSNR of RED-Diff and the baseline."""
    attrs = result.dataset.attrs
    line = (f"{attrs.get('modality', '')}: {attrs['n_samples']} samples in {attrs.get('wall_time_s', attrs['time_s']):.1f} s"
            f" ({attrs['time_per_step_s'] * 1000:.0f} ms/step)")
    if "psnr_db" in attrs:
        line += (f", PSNR {attrs['psnr_db']:.2f} dB vs {attrs['baseline']} {attrs['baseline_psnr_db']:.2f} dB")
    return line


__all__ = ["Problem", "FORMATS", "VOLUME_FORMATS", "Volume", "slice_indices", "reconstruct_volume",
           "save_volume_outputs", "load_problem", "problem_from_measurement", "attach_reference", "prior_for",
           "reconstruct", "save_outputs", "check_outputs", "summary_line", "to_display_units",
           "reference_for", "noise_level", "display_image", "calibrate_on", "reconstruct_references"]
