"""The ``reddiff`` command line: one typer app, one function per command.

Commands call library functions; errors a user can cause (:class:`ReddiffError`,
or a file the system refuses) print one line naming the file and the problem and
exit with status 1, with the traceback only under ``--debug``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import time
import typing
import warnings
from pathlib import Path

import typer

from . import modalities
from .errors import InputError, ReddiffError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="RED-Diff reconstruction of MRI, CT and telescope images, with uncertainty maps.")

MODALITY_HELP = ", ".join(modalities.names())
DEBUG = typer.Option(False, "--debug", help="Show the full traceback on errors.")


def modality_options(attribute: str):
    """Decorator: add every registered modality's options (``Modality.<attribute>``) as
    command-line options of the command; they arrive in ``**options`` only when given."""
    def wrap(func):
        signature = inspect.signature(func)
        hints = typing.get_type_hints(func)
        params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
                  if p.kind is not inspect.Parameter.VAR_KEYWORD]
        seen = {p.name for p in params}
        for name in modalities.names():
            for option in getattr(modalities.get(name), attribute):
                if option.name in seen:
                    continue
                seen.add(option.name)
                default = "" if option.default is None else f" [default: {option.default}]"
                params.append(inspect.Parameter(
                    option.name, inspect.Parameter.KEYWORD_ONLY,
                    default=typer.Option(None, option.cli_flag, help=option.help + default, show_default=False),
                    annotation=typing.Optional[option.value_type]))
        func.__signature__ = signature.replace(parameters=params)
        func.__annotations__ = {p.name: p.annotation for p in params}
        return func
    return wrap


def given(options: dict) -> dict:
    """The modality options the user gave (typer passes None for the others)."""
    return {k: v for k, v in options.items() if v is not None}


def check_modality_options(modality, options: dict, attribute: str, command: str) -> None:
    """Refuse options of other modalities, naming whose they are."""
    own = {o.name for o in getattr(modality, attribute)}
    foreign = sorted(set(options) - own)
    if foreign:
        owners = modalities.option_owners(attribute)
        said = ", ".join(f"{owners[k][0]} ({owners[k][1]})" for k in foreign)
        raise ReddiffError(f"{said}: not an option of {command} for {modality.name}")


@app.callback()
def main(max_memory: str = typer.Option(None, "--max-memory", metavar="SIZE",
                                        help="Memory budget for any one array, e.g. 16G (default: half the "
                                             "machine's memory); larger requests are refused up front.")) -> None:
    """RED-Diff reconstruction of MRI, CT and telescope images, with uncertainty maps."""
    import os

    from reddiff.operators.base import MEMORY_ENV

    if max_memory is not None:
        os.environ[MEMORY_ENV] = max_memory
    # the command says it once, plainly, after the run (_warn_calibration), not as a Python warning
    warnings.filterwarnings("ignore", message="lam='auto' (kept|raised) the", category=RuntimeWarning)


@contextlib.contextmanager
def user_errors(debug: bool):
    """Turn errors a user can cause into one line on stderr and exit status 1."""
    try:
        yield
    except (ReddiffError, OSError) as err:
        if debug:
            raise
        where = f"{err.filename}: " if isinstance(err, OSError) and err.filename else ""
        message = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        typer.echo(f"error: {where}{message}", err=True)
        raise typer.Exit(1) from None


@contextlib.contextmanager
def stop_on_sigterm():
    """Turn SIGTERM (``kill``, a scheduler's time limit) into KeyboardInterrupt, so a killed run
    cleans up after itself as Ctrl-C does."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (e.g. a test runner): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _lam(text: str | None):
    """``--lam``: a number >= 0, ``auto`` (the discrepancy principle), or None (the modality's default)."""
    if text is None or text.strip().lower() == "auto":
        return text and "auto"
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise InputError(f"--lam must be a number >= 0 or 'auto', got {text!r}", field="lam")
    return value


def _formats(text: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in text.split(",") if part.strip())


@app.command()
@modality_options("load_options")
def reconstruct(
    input: Path = typer.Argument(..., help="Measurement: fastMRI .h5, sinogram .h5/.nc/.npz or FITS."),
    out: Path = typer.Option(None, "--out", help="Output folder (default: INPUT's name + '-reddiff')."),
    modality: str = typer.Option("auto", help=f"{MODALITY_HELP} or auto (from the file)."),
    prior: str = typer.Option(None, help="Prior name (ct, mri, astro) or folder; default the modality's."),
    steps: int = typer.Option(None, help="Optimisation steps (one network call each)."),
    lr: float = typer.Option(None, help="Adam learning rate, network units."),
    lam: str = typer.Option(None, help="Prior weight against the (sum-reduced) likelihood, or 'auto' "
                                       "(discrepancy principle); default: the modality's."),
    weighting: str = typer.Option(None, help="SNR weighting: linear, sqrt, square, log1p, trunc_linear, constant."),
    timesteps: str = typer.Option(None, help="descending or random."),
    t_max: int = typer.Option(None, "--t-max", help="Top of the timestep grid (default: the modality's; the "
                              "prior's T-1 is the paper's full range)."),
    sigma_x0: float = typer.Option(None, "--sigma-x0", help="Noise added to the image each step (diversity)."),
    samples: int = typer.Option(8, help="Stochastic runs for the uncertainty map."),
    seed: int = typer.Option(0, help="Seed of every random draw."),
    device: str = typer.Option(None, help="cpu or cuda (default: the GPU when there is one)."),
    format: str = typer.Option("netcdf,png", "--format", help="Comma-separated: netcdf, dicom, fits, nifti, png "
                               "(several slices: a DICOM series per product, a FITS cube)."),
    reference: Path = typer.Option(None, help="Truth image (DICOM/FITS/...): PSNR, and DICOM output geometry."),
    slices: str = typer.Option(None, help="Slices of a multi-slice file: all (default), N, or A:B."),
    calibration: str = typer.Option("default", help="Interval calibration: default (the modality's shipped one), "
                                    "none, or a JSON file from 'reddiff calibrate'."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier result in the output folder."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    debug: bool = DEBUG,
    **options,
) -> None:
    """Reconstruct a measurement file with RED-Diff: mean, std, calibrated intervals, figure and report."""
    from .files import check_output_folder, locked_output
    from .pipeline import check_outputs, load_problem, reconstruct as run, save_outputs, slice_indices, summary_line
    from .progress import ProgressBar

    with user_errors(debug), stop_on_sigterm():
        lam = _lam(lam)
        formats = _formats(format)
        folder = out if out is not None else input.with_name(input.name.split(".")[0] + "-reddiff")
        check_output_folder(folder, overwrite=overwrite)
        calibration = _calibration(calibration, input, modality)
        indices = slice_indices(input, slices, **given(options))
        if len(indices) > 1:
            if reference is not None:
                raise ReddiffError(f"{reference}: a reference applies to one slice; add --slices N")
            _reconstruct_volume(input, slices, indices, folder, formats=formats, overwrite=overwrite, quiet=quiet,
                                modality=modality, seed=seed, load_options=given(options), prior=prior,
                                n_samples=samples, device=device, steps=steps, lr=lr, lam=lam,
                                weighting=weighting, timesteps=timesteps, t_max=t_max, sigma_x0=sigma_x0,
                                calibration=calibration)
            return
        problem = load_problem(input, modality=modality, reference=reference, seed=seed, slice_index=indices[0],
                               **given(options))
        check_outputs(problem, formats)
        with locked_output(folder):
            check_output_folder(folder, overwrite=overwrite)
            typer.echo(f"{input}: {problem.description}", err=True)
            with ProgressBar(desc="RED-Diff", disable=quiet) as bar:
                result = run(problem, prior=prior, n_samples=samples, seed=seed + indices[0], device=device,
                             callback=bar, calibration=calibration,
                             steps=steps, lr=lr, lam=lam, weighting=weighting, timesteps=timesteps,
                             t_max=t_max, sigma_x0=sigma_x0)
            written = save_outputs(result, problem, folder, formats=formats, overwrite=overwrite)
        _warn_calibration([result])
        typer.echo(summary_line(result) + f"; wrote {len(written)} files to {folder}")


def _calibration(spec: str, input: Path, modality: str):
    """A ``--calibration`` value read and checked before any long work (a file must load)."""
    from .calibration import resolve

    if spec in ("default", "none"):
        return spec
    path = Path(spec)
    try:
        resolve(path, modality if modality != "auto" else modalities.for_file(input).name)
    except InputError as err:
        raise err.about(path) from err
    return path


def _warn_calibration(results) -> None:
    """Say loudly when a calibration was applied to a measurement unlike what it was fitted on."""
    from .calibration import warnings_of

    said = {w for result in results for w in warnings_of(result)}
    for warning in sorted(said):
        typer.echo(f"warning: calibration: {warning}; the intervals may not hold their level", err=True)
    notes = {result.config.get("lam_choice", {}).get("note") for result in results} - {None}
    for note in sorted(notes):  # lam="auto" could not use the discrepancy principle
        typer.echo(f"warning: {note}", err=True)


def _reconstruct_volume(path: Path, slices, indices, folder: Path, *, formats, overwrite: bool, quiet: bool,
                        **settings) -> None:
    """``reconstruct`` of several slices: one progress bar over all their steps, one result folder."""
    from .files import locked_output
    from .pipeline import VOLUME_FORMATS, reconstruct_volume, save_volume_outputs, summary_line
    from .progress import ProgressBar

    unavailable = sorted(set(formats) - set(VOLUME_FORMATS))
    if unavailable:
        raise ReddiffError(f"{path}: {', '.join(unavailable)} output is not available for {len(indices)} slices; "
                           f"use {', '.join(VOLUME_FORMATS)} or --slices N")
    with locked_output(folder):
        typer.echo(f"{path}: {len(indices)} slices ({indices[0]}-{indices[-1]})", err=True)
        with ProgressBar(desc="RED-Diff", disable=quiet) as bar:
            volume = reconstruct_volume(path, slices=slices, callback=bar, formats=formats, **settings)
        written = save_volume_outputs(volume, folder, formats=formats, overwrite=overwrite)
    _warn_calibration(volume.results)
    psnrs = [r.dataset.attrs.get("psnr_db") for r in volume.results]
    quality = "" if None in psnrs else f", mean PSNR {sum(psnrs) / len(psnrs):.2f} dB"
    typer.echo(f"{len(indices)} slices; middle slice {summary_line(volume.middle)}{quality}; "
               f"wrote {len(written)} files to {folder}")


@app.command()
@modality_options("simulate_options")
def simulate(
    image: Path = typer.Argument(..., help="Clean image: DICOM file or series folder (CT/MR), NIfTI, FITS, PNG, "
                                 "NumPy, ..."),
    modality: str = typer.Option(..., help=MODALITY_HELP),
    out: Path = typer.Option(..., "--out", help="Measurement file to write (.h5; .fits for astro)."),
    seed: int = typer.Option(0, help="Seed of the noise (and mask)."),
    debug: bool = DEBUG,
    **options,
) -> None:
    """Make a measurement file (k-space, sinogram or blurred FITS) from a real image."""
    with user_errors(debug):
        chosen = modalities.get(modality)
        options = given(options)
        check_modality_options(chosen, options, "simulate_options", "simulate")
        if not out.name or out.is_dir():
            raise InputError(f"--out {str(out)!r} is empty or a folder; name the measurement file to write",
                             field="out")
        suffix = "".join(out.suffixes).lower()
        if chosen.measurement_suffixes and suffix not in chosen.measurement_suffixes:
            raise ReddiffError(f"{out}: {chosen.name} measurements are written as "
                               f"{' or '.join(chosen.measurement_suffixes)} files, not {suffix or 'no suffix'}")
        try:
            written = chosen.simulate_file(image, out, seed=seed, **options)
        except InputError as err:
            raise err.about(image) from err
        typer.echo(f"wrote {', '.join(map(str, written))}")


@app.command()
@modality_options("load_options")
def calibrate(
    references: list[Path] = typer.Argument(..., help="Reference images (fully sampled scans, high-dose slices, "
                                            "deep frames): DICOM, NIfTI, FITS, PNG, NumPy, ..."),
    like: Path = typer.Option(..., "--like", help="The measurement to calibrate for: its physics, noise and grid."),
    out: Path = typer.Option(..., "--out", help="Calibration JSON to write (for reconstruct --calibration)."),
    level: float = typer.Option(0.9, help="Central level of the intervals."),
    bins: int = typer.Option(1, help="Std bins, one widening factor each."),
    proxy: str = typer.Option(None, help="Error proxy added to the std before widening ('gradient' or 'none'; "
                              "default: the modality's, as its shipped calibration)."),
    prior: str = typer.Option(None, help="Prior name or folder; default the modality's."),
    steps: int = typer.Option(None, help="Optimisation steps (as the measurement will be reconstructed)."),
    lam: str = typer.Option(None, help="Prior weight or 'auto' (default: the modality's)."),
    samples: int = typer.Option(8, help="Stochastic runs per reference (as for reconstruct)."),
    seed: int = typer.Option(0, help="Seeds the simulated noise and the solver."),
    slice_index: int = typer.Option(0, "--slice", help="Slice of a multi-slice --like file."),
    device: str = typer.Option(None, help="cpu or cuda (default: the GPU when there is one)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress messages."),
    debug: bool = DEBUG,
    **options,
) -> None:
    """Fit interval calibration on your own reference images, measured like MEASUREMENT."""
    from .calibration import problems_like
    from .pipeline import calibrate_on, load_problem
    from .uncertainty import PROXIES

    with user_errors(debug), stop_on_sigterm():
        lam = _lam(lam)
        if out.exists() and not overwrite:
            raise ReddiffError(f"{out}: exists; add --overwrite to replace it")
        if out.suffix.lower() != ".json":
            raise ReddiffError(f"{out}: a calibration is written as a .json file")
        if proxy not in (None, "none", *PROXIES):
            raise ReddiffError(f"--proxy {proxy!r}: choose from {['none', *PROXIES]}")
        like_problem = load_problem(like, slice_index=slice_index, seed=seed, **given(options))
        names = [str(path) for path in references]
        if len(set(names)) != len(names):
            raise ReddiffError("a reference is given twice: each image must count once")
        problems = problems_like(like_problem, {name: Path(name) for name in names}, seed=seed)

        def say(i: int, name: str) -> None:
            if not quiet:
                typer.echo(f"[{i + 1}/{len(problems)}] {name}", err=True)

        if proxy is None:
            proxy = modalities.get(like_problem.modality).calibration_proxy
        fitted = calibrate_on(problems, level=level, bins=bins, n_samples=samples, seed=seed, progress=say,
                              proxy="" if proxy == "none" else proxy, prior=prior, device=device, steps=steps,
                              lam=lam)
        fitted = dataclasses.replace(fitted, context={**fitted.context, "like": str(like)})
        fitted.save(out)
        spread = fitted.context["factor_per_image"]
        law = (f" at noise level {fitted.noise_reference:.3g}, times (noise level / {fitted.noise_reference:.3g})"
               f"^{fitted.noise_exponent:.2f} elsewhere" if fitted.noise_conditioned else "")
        combined = (f" (combined with {fitted.proxy_weight:.3g} x the mean's {fitted.proxy})"
                    if fitted.proxy_weight > 0 else "")
        typer.echo(f"wrote {out}: std{combined} widened by {', '.join(f'{k:.3g}' for k in fitted.scales)}{law} for "
                   f"{fitted.level:.0%} intervals (raw coverage {fitted.coverage_before:.1%}); factors needed per "
                   f"image {min(spread):.3g}-{max(spread):.3g}")


@app.command()
def batch(
    inputs: list[str] = typer.Argument(..., help="Measurement files, folders, glob patterns or @list.txt files."),
    out: Path = typer.Option(..., "--out", help="Batch folder: one result folder per input, and manifest.json."),
    workers: int = typer.Option(1, help="Worker processes of the local Dask cluster (one thread each)."),
    scheduler: str = typer.Option(None, help="Address of a running Dask scheduler (e.g. tcp://host:8786)."),
    prior: str = typer.Option(None, help="Prior name or folder; default each modality's."),
    steps: int = typer.Option(None, help="Optimisation steps (default: each modality's)."),
    lr: float = typer.Option(None, help="Adam learning rate, network units."),
    lam: str = typer.Option(None, help="Prior weight or 'auto' (default: each modality's)."),
    samples: int = typer.Option(8, help="Stochastic runs per input."),
    seed: int = typer.Option(0, help="Batch seed; each input derives its own (recorded in the manifest)."),
    device: str = typer.Option(None, help="cpu or cuda (default: the GPU when there is one)."),
    format: str = typer.Option("netcdf,png", "--format", help="Comma-separated: netcdf, dicom, fits, png."),
    calibration: str = typer.Option("default", help="Interval calibration: default, none, or a JSON file from "
                                    "'reddiff calibrate' (applied to every input)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    debug: bool = DEBUG,
) -> None:
    """Reconstruct many measurement files on Dask; re-runs skip finished inputs, failures are recorded."""
    from .batch import BatchSettings, run_batch

    with user_errors(debug), stop_on_sigterm():
        lam = _lam(lam)
        solver = {k: v for k, v in {"steps": steps, "lr": lr, "lam": lam}.items() if v is not None}
        if calibration not in ("default", "none"):
            from .uncertainty import Calibration

            Calibration.load(calibration)  # fails now, not once per input
            calibration = str(Path(calibration).resolve())
        settings = BatchSettings(solver=solver, prior=prior, n_samples=samples, seed=seed,
                                 formats=_formats(format), device=device, calibration=calibration)
        manifest = run_batch(inputs, out, settings=settings, workers=workers, scheduler=scheduler,
                             progress=not quiet)
        counts = {}
        for entry in manifest["entries"].values():
            counts[entry["status"]] = counts.get(entry["status"], 0) + 1
        typer.echo(", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
                   + f"; manifest {out / 'manifest.json'}")
        failed = [e for e in manifest["entries"].values() if e["status"] == "failed"]
        for entry in failed:
            typer.echo(f"failed: {entry['input']}: {entry['error']}", err=True)
        if failed:
            raise typer.Exit(1)


@app.command()
def info(path: Path = typer.Argument(..., help="Any file reddiff reads."), debug: bool = DEBUG) -> None:
    """Say what is in a file: kind, shapes, units, geometry, metadata."""
    from reddiff.datasets import describe

    with user_errors(debug):
        typer.echo(describe(path))


@app.command()
def demo(
    out: Path = typer.Option(Path("reddiff-demo"), "--out", help="Output folder."),
    modality: str = typer.Option("ct", help=f"{MODALITY_HELP}."),
    samples: int = typer.Option(4, help="Stochastic runs for the uncertainty map."),
    steps: int = typer.Option(None, help="Optimisation steps (default: the modality's)."),
    seed: int = typer.Option(0, help="Seed of the simulated noise and of the solver."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier demo in the output folder."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    debug: bool = DEBUG,
) -> None:
    """Reconstruct a held-out real image from a simulated measurement, beside its baseline."""
    from .demo import run_demo
    from .pipeline import summary_line
    from .progress import ProgressBar

    with user_errors(debug), stop_on_sigterm():
        chosen = modalities.get(modality)
        started = time.perf_counter()
        typer.echo(f"demo: {chosen.demo.sample} (held out from training), {chosen.demo.description}", err=True)
        with ProgressBar(desc="RED-Diff", disable=quiet) as bar:
            result, written = run_demo(out, modality=chosen.name, n_samples=samples, seed=seed, callback=bar,
                                       overwrite=overwrite, steps=steps)
        typer.echo(summary_line(result))
        typer.echo(f"wrote {', '.join(sorted(p.name for p in written.values()))} to {out} "
                   f"in {time.perf_counter() - started:.0f} s")


benchmark_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.add_typer(benchmark_app, name="benchmark")


@benchmark_app.callback(invoke_without_command=True)
def benchmark(
    ctx: typer.Context,
    size: int = typer.Option(128, help="Image side, pixels."),
    steps: int = typer.Option(20, help="Solver steps per timing."),
    samples: int = typer.Option(8, help="Samples for batched vs sequential."),
    repeats: int = typer.Option(5, help="Repeats (medians are reported)."),
    device: str = typer.Option(None, help="cpu or cuda (default: the GPU when there is one)."),
    debug: bool = DEBUG,
) -> None:
    """Time the solver against the prior's forward pass, batched vs sequential samples, and memory
    ('reddiff benchmark solvers': RED-Diff against the other solvers)."""
    if ctx.invoked_subcommand is not None:
        return
    from .benchmark import format_report, solver_benchmark

    with user_errors(debug):
        typer.echo(format_report(solver_benchmark(size=size, steps=steps, n_samples=samples, repeats=repeats,
                                                  device=device)))


#: The solver comparison's script in a source checkout (it is not part of the installed package).
SOLVERS_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "solvers.py"


@benchmark_app.command("solvers", add_help_option=False,
                       context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def benchmark_solvers(ctx: typer.Context) -> None:
    """RED-Diff against DPS, PiGDM, DiffPIR, DDRM and the classical methods: benchmarks/solvers.py
    of a source checkout, with its options (--quick, --tasks, --size, ..., --help)."""
    import subprocess
    import sys

    if not SOLVERS_SCRIPT.is_file():
        typer.echo(f"error: {SOLVERS_SCRIPT}: the solver comparison runs from a source checkout of reddiff "
                   "(pip install -e .), and this installation has no benchmarks/ folder", err=True)
        raise typer.Exit(1)
    raise typer.Exit(subprocess.run([sys.executable, str(SOLVERS_SCRIPT), *ctx.args]).returncode)


@app.command("train-prior")
def train_prior_command(
    ctx: typer.Context,
    images: list[str] = typer.Argument(None, help="Image files or folders (PNG/TIFF/NumPy/DICOM/FITS/NIfTI/HDF5), "
                                       "in physical units."),
    out: Path = typer.Option(..., "--out", help="Prior folder to write (resumes from its checkpoint/)."),
    recipe: str = typer.Option(None, help="Rebuild a shipped prior: ct, mri or astro (no IMAGES then)."),
    channels: int = typer.Option(1, help="1 real, 2 complex (real images get a smooth random phase)."),
    transform: str = typer.Option(None, help='Value transform as JSON, e.g. \'{"kind": "affine", "offset": 0, '
                                  '"scale": 1000}\'; identity by default.'),
    patch_size: int = typer.Option(32, help="Training patch side (pixels)."),
    batch_size: int = typer.Option(32, help="Patches per step over all processes."),
    steps: int = typer.Option(1000, help="Total optimiser steps."),
    lr: float = typer.Option(5e-4, help="Adam learning rate."),
    ema_decay: float = typer.Option(0.999, help="EMA decay of the saved weights."),
    seed: int = typer.Option(0, help="Seeds the initial weights and every batch."),
    resume: bool = typer.Option(True, help="Continue from OUT/checkpoint if present."),
    device: str = typer.Option(None, help="cpu, cuda, cuda:1, ... (default: GPU if available)."),
    threads: int = typer.Option(None, help="CPU threads for torch (default: torch's choice)."),
    checkpoint_every: int = typer.Option(200, help="Steps between checkpoints."),
    block_out_channels: str = typer.Option("16,32,64", help="UNet channels per level, comma-separated."),
    layers_per_block: int = typer.Option(1, help="ResNet blocks per UNet level."),
    attention: bool = typer.Option(False, help="Self-attention at the lowest resolution."),
    name: str = typer.Option("", help="Prior name (default: the folder name)."),
    init_from: str = typer.Option(None, help="Fine-tune: start from this trained prior (a shipped name or a "
                                  "folder); its architecture, channels and transform are kept."),
    card: bool = typer.Option(True, help="Write MODEL_CARD.md and samples.png."),
    debug: bool = DEBUG,
) -> None:
    """Train a diffusion prior on your own images (also under torchrun for several GPUs)."""
    import json
    import os
    import shlex

    import torch
    from tqdm.auto import tqdm

    from .priors import ValueTransform, recipes, transform_from_config, train_prior
    from .priors.card import write_model_card

    if threads:
        torch.set_num_threads(threads)
    with user_errors(debug):
        if recipe and (images or transform or ctx.get_parameter_source("channels").name != "DEFAULT"):
            raise ReddiffError("--recipe sets its own images, channels and transform; "
                               "drop IMAGES/--channels/--transform")
        if not recipe and not images:
            raise ReddiffError("give IMAGES (files or folders) or --recipe ct|mri|astro")
        chosen = recipes.get_recipe(recipe) if recipe else None
        try:
            value_transform = chosen.transform if chosen else \
                transform_from_config(json.loads(transform)) if transform else None if init_from else ValueTransform()
            widths = [int(c) for c in block_out_channels.split(",")]
        except ValueError as err:  # JSONDecodeError is a ValueError
            raise ReddiffError(f"--transform must be a JSON object and --block-out-channels integers "
                               f"separated by commas ({err})") from err
        sources = chosen.images() if chosen else images
        command = ["reddiff", "train-prior", *(images or [])]
        for param in ctx.command.params:  # the options given, in their canonical spelling
            if param.name not in ("images", "debug") and ctx.get_parameter_source(param.name).name != "DEFAULT":
                value = ctx.params[param.name]
                flag = param.opts[0] if value or not param.secondary_opts else param.secondary_opts[0]
                command += [flag] if isinstance(value, bool) else [flag, str(value)]
        record = {"data": chosen.description if chosen else ", ".join(images), "command": shlex.join(command)}
        architecture = ("block_out_channels", "layers_per_block", "attention")
        given = any(ctx.get_parameter_source(key).name != "DEFAULT" for key in architecture)
        model_config = None if init_from and not given else \
            {"block_out_channels": widths, "layers_per_block": layers_per_block, "attention": attention}
        rank = int(os.environ.get("RANK", "0"))
        with tqdm(total=steps, desc="train-prior", unit="step", disable=rank != 0) as bar:
            def show(info: dict) -> None:
                bar.n = info["step"] + 1
                bar.set_postfix(loss=f"{info['loss']:.4f}", refresh=False)
                bar.refresh()

            result = train_prior(sources, out, channels=chosen.channels if chosen else channels,
                                 transform=value_transform, patch_size=patch_size, batch_size=batch_size,
                                 steps=steps, lr=lr, ema_decay=ema_decay, seed=seed, resume=resume,
                                 device=device, checkpoint_every=checkpoint_every,
                                 model_config=model_config, name=name or (recipe or ""), record=record,
                                 init_from=init_from, callback=show)
        if card and rank == 0:
            write_model_card(result.prior, out, evaluation=chosen.evaluation() if chosen else None)
