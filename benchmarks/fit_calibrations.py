"""Fit the default interval calibration each modality ships (``toolkit/calibrations/<name>.json``).

Run: ``python benchmarks/fit_calibrations.py [--modality ct mri astro] [--samples 8] [--quick] [--above SIDE]
[--proxy gradient] [--save DIR | --refit DIR]`` (one thread; 5-77 CPU-minutes per modality: CT with
``--samples 4`` took 65-77). ``--save`` keeps every reference's reconstruction (NetCDF); ``--refit DIR`` fits
again from them without solving (e.g. with another ``--proxy``).

For each modality its real tuning images where it has any
(:meth:`~reddiff.modalities.Modality.tuning_images`: the sky's three Hubble deep field fields
the prior never trained on), else the generated images of
:meth:`reddiff.modalities.Modality.calibration_images` (phantoms, MNI152 slices and synthetic
contrasts; never a held-out sample and never a training image), given what a real reference of
them would carry
(:meth:`~reddiff.modalities.Modality.as_reference`: CT adds a scan's fine-scale texture),
are measured like the modality's canonical measurement
(:meth:`~reddiff.modalities.Modality.canonical_problem`, on its grid, built from the first
generated image so no held-out image sets even the scale) at three noise levels around it,
image ``i`` at level ``i mod 3`` (:func:`reddiff.calibration.problems_like`), reconstructed
with the shipped defaults and no calibration, and the split-conformal factor of their 90 %
intervals is fitted (:func:`reddiff.pipeline.calibrate_on`); the three levels make it
a noise power law :math:`k_0 (\sigma/\sigma_0)^b` (:func:`reddiff.uncertainty.fit_calibration`). ``--quick`` fits on two images
with 10 steps into a temporary folder (a smoke test; nothing shipped is touched). ``--above SIDE``
fits the variant the defaults row's size tier above ``SIDE`` px runs (``size_tiers``: CT's full
timestep range above 181, MRI's lr a third above 90 and a ninth above 181) on the same references,
into ``<name>@above-<SIDE>px.json``.

Real references decide where a modality has them, as they decide the tuning score in
``benchmarks/tune_defaults.py``: pooled with the sky's nine generated fields (which need factors of
5.2-13.2 at 50 steps) the three real fields (15.7-16.5) were outvoted and the factor fell to 11.3, too
narrow for real sky (``docs/uncertainty.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from reddiff import modalities  # noqa: E402
from reddiff.calibration import DEFAULTS_FOLDER, fit_to_grid, problems_like  # noqa: E402
from reddiff.calibration import fit  # noqa: E402
from reddiff.errors import InputError  # noqa: E402
from reddiff.pipeline import reconstruct_references  # noqa: E402
from reddiff.priors import load_prior  # noqa: E402
from reddiff.result import Reconstruction  # noqa: E402

#: Noise settings of the canonical problem the defaults are fitted across (low, canonical, high noise).
NOISE = {"ct": [{"I0": 3e5}, {"I0": 1e5}, {"I0": 3e4}],
         "mri": [{"sigma": 0.005}, {"sigma": 0.01}, {"sigma": 0.02}],
         "astro": [{"background": 3.0}, {"background": 10.0}, {"background": 30.0}]}


def fit_default(name: str, *, n_samples: int, quick: bool = False, seed: int = 0, above: int | None = None,
                proxy: str = "", save: Path | None = None, refit: Path | None = None):
    """The default calibration of one modality (see the module notes); ``above``: fitted with the
    settings the row's size tier above that many px runs (:func:`tier_settings`); ``save``/``refit``:
    a folder to keep the reconstructions in / to read them back from instead of solving."""
    modality = modalities.get(name)
    overrides = tier_settings(modality.defaults, above) if above is not None else {}
    if quick:
        overrides["steps"] = 10
    problems = reference_problems(name, quick=quick, seed=seed)
    started = time.perf_counter()
    results = []
    for i, (label, problem) in enumerate(problems.items()):
        if refit is not None:
            results.append(Reconstruction.from_netcdf(_saved(refit, name, i)))
            continue
        print(f"  [{i + 1}/{len(problems)}] {label}", flush=True)
        results += reconstruct_references({label: problem}, n_samples=n_samples, seed=seed + i, **overrides)
        if save is not None:  # each as it is done: an interrupted run keeps what it solved
            results[-1].to_netcdf(_saved(save, name, i))
    calibration = fit(problems, results, proxy=proxy)
    levels = ", ".join(map(_describe, NOISE[modality.name]))
    context = {**calibration.context, "like": f"{name} canonical measurement at {levels}",
               "fitted_by": "python benchmarks/fit_calibrations.py" + (f" --above {above}" if above is not None else "")
               + (f" --proxy {proxy}" if proxy else "")}
    law = (f" at noise level {calibration.noise_reference:.3g}, x (noise / that)^{calibration.noise_exponent:.2f}"
           if calibration.noise_conditioned else "")
    extra = f", proxy {proxy} weight {calibration.proxy_weight:.3g}" if proxy else ""
    print(f"{name}: k = {calibration.scales[0]:.3g}{law}{extra} (raw coverage {calibration.coverage_before:.1%}); "
          f"per image {context['factor_per_image']}; {time.perf_counter() - started:.0f} s", flush=True)
    return dataclasses.replace(calibration, context=context)


def tier_settings(row, side: int) -> dict:
    """The solver settings a defaults ``row`` runs in its size tier above ``side`` px
    (:meth:`~reddiff.defaults.SolverDefaults.tier_settings`), with a ``t_max`` of None spelled out as
    the prior's full range (None would mean the row's own)."""
    try:
        settings = row.tier_settings(side)
    except InputError as error:
        raise SystemExit(str(error)) from None
    if "t_max" in settings and settings["t_max"] is None:
        settings["t_max"] = load_prior(row.prior).num_timesteps - 1
    return settings


def variant_name(name: str, above: int | None) -> str:
    """The file a modality's default (``above`` None) or its size tier's variant is saved as."""
    return f"{name}.json" if above is None else f"{name}@above-{above}px.json"


def _saved(folder: Path, name: str, i: int) -> Path:
    return Path(folder) / f"{name}-reference{i}.nc"


def reference_problems(name: str, *, quick: bool = False, seed: int = 0) -> dict:
    """Label -> simulated problem (with its truth) of every reference a default is fitted on
    (see the module notes; ``quick``: the first two)."""
    modality = modalities.get(name)
    generated = modality.calibration_images()
    images = modality.tuning_images() or generated  # real references decide where there are any
    if quick:
        images = dict(list(images.items())[:2])
    settings = NOISE[modality.name]
    grid = _canonical_grid(modality)
    first = fit_to_grid(next(iter(generated.values())), grid)  # the target is built from a generated image
    targets = [modality.canonical_problem(image=first, seed=seed, **noise) for noise in settings]
    problems = {}
    for i, (label, image) in enumerate(images.items()):
        level = i % len(targets)
        image, note = modality.as_reference(fit_to_grid(image, grid), seed=seed + 200 + i)
        label = ", ".join(filter(None, [label, note, _describe(settings[level])]))
        problems.update(problems_like(targets[level], {label: image}, seed=seed + 100 + i))
    return problems


def _canonical_grid(modality) -> tuple[int, int]:
    """The image grid of the modality's canonical problem (its demo sample's size)."""
    return tuple(modality.canonical_problem(seed=0).baseline.shape[-2:])


def _proxy(given: str | None, name: str) -> str:
    if given is None:
        return modalities.get(name).calibration_proxy
    return "" if given == "none" else given


def _describe(noise: dict) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in noise.items())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", nargs="+", default=["ct", "mri", "astro"])
    parser.add_argument("--samples", type=int, default=8, help="RED-Diff runs per image (as reconstruct's default)")
    parser.add_argument("--quick", action="store_true", help="two images, 10 steps, into a temporary folder")
    parser.add_argument("--out", type=Path, default=None, help="folder for <modality>.json (default: shipped)")
    parser.add_argument("--above", type=int, metavar="SIDE",
                        help="fit with the settings of the defaults row's size tier above SIDE px into "
                             "<modality>@above-<SIDE>px.json (CT's full timestep range above 181, MRI's "
                             "smaller lr above 90 and 181)")
    parser.add_argument("--proxy", default=None,
                        help="error proxy added to the spread (reddiff.uncertainty.PROXIES, or none; default: the "
                             "modality's calibration_proxy)")
    stored = parser.add_mutually_exclusive_group()
    stored.add_argument("--save", type=Path, help="folder to keep each reference's reconstruction in (for --refit)")
    stored.add_argument("--refit", type=Path, metavar="DIR", help="no solve: fit on the reconstructions --save wrote")
    args = parser.parse_args(argv)
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
    out = args.out or (Path(tempfile.mkdtemp()) if args.quick else DEFAULTS_FOLDER)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.modality:
        calibration = fit_default(name, n_samples=args.samples, quick=args.quick, above=args.above,
                                  proxy=_proxy(args.proxy, name), save=args.save, refit=args.refit)
        path = calibration.save(out / variant_name(name, args.above))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
