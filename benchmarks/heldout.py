"""RED-Diff on real images nobody tuned for: every held-out sample, against the classical methods.

Run: ``python benchmarks/heldout.py [--modality ct mri astro] [--seeds 3] [--quick]
[--prior NAME=FOLDER ...] [--calibration NAME=JSON ...] [--cases N ...] [--out docs/heldout.md]
[--save DIR] [--estimated-coil-maps] [--center-fraction F]`` (one thread); ``--rescore DIR`` scores the results a ``--save`` run wrote with
another calibration (calibrated coverage only, no solve), e.g. one refitted meanwhile.

For each held-out sample image (:func:`reddiff.datasets.list_samples` with
``held_out=True``; never training data) and each measurement setting, the
modality's canonical problem (:meth:`reddiff.modalities.Modality.canonical_problem`,
what the demo and the defaults were tuned on) is simulated from the image with
several noise seeds, and three reconstructions are scored against the truth:

* **RED-Diff** through :func:`reddiff.reconstruct` with the shipped defaults
  (or ``--prior``) and the shipped default calibration, ``--samples`` runs; the mean
  is scored, and the 90 % interval's coverage (raw and calibrated) and the Spearman
  correlation of the std with the absolute error are recorded;
* the **pipeline baseline** (FBP-Hann, SENSE-CG, Richardson-Lucy 30);
* the **truth-tuned classical method**: every method of
  :meth:`~reddiff.modalities.Modality.classical_methods` (SIRT and SIRT+TV for CT,
  SENSE-CG and TV for MRI, Richardson-Lucy and Wiener for the sky) over its parameter
  grid, extended geometrically past a winning edge, best PSNR kept: an oracle no
  user has, so beating it is the bar.

PSNR and SSIM are those of :func:`reddiff.report.image_quality` (data range of the
truth; MRI on magnitudes). Rows report medians over the noise seeds; ``margin`` is
RED-Diff minus the oracle. The table goes to stdout, ``--out`` (Markdown) and a CSV
beside it.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

import reddiff  # noqa: E402
from reddiff import modalities  # noqa: E402
from reddiff.datasets import sample_image  # noqa: E402
from reddiff.report import image_quality  # noqa: E402
from reddiff.uncertainty import uncertainty_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    """One held-out image under one measurement setting."""

    modality: str
    image: str
    label: str
    settings: dict


def _resize(array: np.ndarray, shape) -> np.ndarray:
    from skimage.transform import resize

    return resize(array, shape, order=3, anti_aliasing=True, preserve_range=True).astype(np.float32)


def _centre(array: np.ndarray, size: int) -> np.ndarray:
    r, c = (array.shape[0] - size) // 2, (array.shape[1] - size) // 2
    return array[r:r + size, c:c + size]


def image_for(case: Case) -> np.ndarray:
    """The held-out image of a case in the modality's physical units (CT 1/mm, MRI max 1, sky electrons)."""
    from reddiff.operators.ct import hu_to_mu

    name, label = case.image, case.label
    array = sample_image(name).array.astype(np.float32)
    if name == "ct_small":
        array = _resize(array, (256, 256)) if "256" in label else array
        return np.asarray(hu_to_mu(np.clip(array, -1000.0, None)), dtype=np.float32)
    if name == "shepp_logan":  # grey levels 0-255 as air -1000 .. bone +1000 HU
        size = 256 if "256" in label else 128
        return np.asarray(hu_to_mu(_resize(array, (size, size)) / 255.0 * 2000.0 - 1000.0), dtype=np.float32)
    if name == "mr_small":
        size = next((n for n in (128, 256) if str(n) in label), None)
        array = _resize(array, (size, size)) if size else array
        return np.clip(array, 0, None) / array.max()
    if name == "anatomical":  # (25, 41, 33) axial slices of 2 mm; the slice is in the label
        index = int(label.split("slice ")[1].split()[0])
        slice_ = np.clip(array[index], 0, None)[:40, :32]
        return slice_ / slice_.max()
    if name == "m13":
        return _centre(array, 256 if "256" in label else 128)
    if name == "radio_1904_66":  # Jy/beam with a NaN border: as a sky of peak 5e4 electrons
        array = np.nan_to_num(array - np.nanmin(array), nan=0.0)
        return _centre(array, 128) / array.max() * 5e4
    if name == "star_field":  # a real CCD frame in ADU, pedestal and all, as electrons
        return array[:48, :96]
    raise KeyError(name)


def cases(modality: str, quick: bool) -> list[Case]:
    """The measurement settings per held-out image (``quick``: one small case per modality)."""
    table = {
        "ct": [Case("ct", "ct_small", "ct_small 128, 30 views", {"views": 30}),
               Case("ct", "ct_small", "ct_small 128, 20 views", {"views": 20}),
               Case("ct", "shepp_logan", "shepp_logan 128, 30 views", {"views": 30}),
               Case("ct", "shepp_logan", "shepp_logan 256, 30 views", {"views": 30}),
               Case("ct", "shepp_logan", "shepp_logan 256, 20 views", {"views": 20}),
               Case("ct", "ct_small", "ct_small 256 (upsampled), 30 views", {"views": 30})],
        "mri": [Case("mri", "mr_small", "mr_small 64, 4x", {"acceleration": 4.0}),
                Case("mri", "mr_small", "mr_small 64, 8x", {"acceleration": 8.0}),
                Case("mri", "anatomical", "anatomical slice 8 (40x32), 4x", {"acceleration": 4.0}),
                Case("mri", "anatomical", "anatomical slice 12 (40x32), 4x", {"acceleration": 4.0}),
                Case("mri", "anatomical", "anatomical slice 16 (40x32), 4x", {"acceleration": 4.0}),
                Case("mri", "mr_small", "mr_small 128 (upsampled), 4x", {"acceleration": 4.0}),
                Case("mri", "mr_small", "mr_small 128 (upsampled), 8x", {"acceleration": 8.0}),
                Case("mri", "mr_small", "mr_small 256 (upsampled), 4x", {"acceleration": 4.0})],
        "astro": [Case("astro", "m13", "m13 128", {}),
                  Case("astro", "m13", "m13 256", {}),
                  Case("astro", "radio_1904_66", "radio_1904_66 128, peak 5e4 e-", {}),
                  Case("astro", "star_field", "star_field 48x96", {})],
    }[modality]
    return table[:1] if quick else table


def oracle(problem, truth) -> tuple[str, float, float]:
    """The best classical reconstruction by PSNR against the truth: (label, PSNR, SSIM)."""
    chosen = modalities.get(problem.modality)
    best = ("", -math.inf, float("nan"))
    for method in chosen.classical_methods(problem):
        scores = {}

        def score(value):
            if value not in scores:
                scores[value] = image_quality(truth, method.run(value))
            return scores[value]

        for value in method.values:
            score(value)
        for _ in range(3):  # extend past a winning edge
            ordered = sorted(scores)
            top = max(scores, key=lambda v: scores[v]["psnr"])
            if top not in (ordered[0], ordered[-1]) or len(ordered) < 2:
                break
            step = ordered[-1] / ordered[-2] if top == ordered[-1] else ordered[0] / ordered[1]
            value = top * step
            if method.integer:
                value = max(1, int(round(value)))
            if value in scores:
                break
            score(value)
        top = max(scores, key=lambda v: scores[v]["psnr"])
        if scores[top]["psnr"] > best[1]:
            best = (f"{method.name} ({method.parameter} {top:g})", scores[top]["psnr"], scores[top]["ssim"])
    return best


def saved_path(folder: Path, case: Case, seed: int) -> Path:
    """Where ``--save`` keeps a case's result for one noise seed (NetCDF)."""
    slug = "".join(c if c.isalnum() else "-" for c in case.label).strip("-")
    return Path(folder) / f"{case.modality}-{slug}-seed{seed}.nc"


def mri_variant(case: Case, center_fraction: float | None, estimated_coil_maps: bool) -> Case:
    """An MRI case with another fully sampled centre, labelled with it and the coil maps used."""
    settings, label = dict(case.settings), case.label
    if center_fraction is not None:
        settings["center_fraction"] = center_fraction
        label += f", {center_fraction:g} centre"
    return Case(case.modality, case.image, label + (", estimated maps" if estimated_coil_maps else ""), settings)


def problem_for(case: Case, image: np.ndarray, seed: int, estimated_coil_maps: bool = False):
    """The case's canonical problem for one noise seed; MRI with ``estimated_coil_maps`` reconstructs
    with maps estimated from the simulated k-space (ESPIRiT, refined by JSENSE where the object reaches
    the phase-encode edges), as the command line does with a scanner's file
    (:meth:`reddiff.modalities.mri.MRIModality.with_estimated_coil_maps`), not the simulation's exact ones."""
    chosen = modalities.get(case.modality)
    problem = chosen.canonical_problem(image=image, seed=seed, **case.settings)
    return chosen.with_estimated_coil_maps(problem) if estimated_coil_maps and case.modality == "mri" else problem


def run_case(case: Case, seeds, n_samples: int, priors: dict, calibrations: dict, save: Path | None = None,
             estimated_coil_maps: bool = False) -> dict:
    chosen = modalities.get(case.modality)
    image = image_for(case)
    rows = []
    for seed in seeds:
        problem = problem_for(case, image, seed, estimated_coil_maps)
        truth = problem.truth
        started = time.perf_counter()
        result = reddiff.reconstruct(problem, prior=priors.get(case.modality), n_samples=n_samples, seed=seed,
                                     calibration=calibrations.get(case.modality, "default"))
        seconds = time.perf_counter() - started
        if save is not None:
            result.to_netcdf(saved_path(save, case, seed))
        shown_truth = chosen.reference_for(result, problem)
        quality = image_quality(shown_truth, result.tensor("mean"))
        spread = uncertainty_metrics(result, shown_truth[0])
        calibrated = uncertainty_metrics(result, shown_truth[0], calibration=result.calibration) \
            if result.calibration is not None else {"coverage": math.nan, "std_error_spearman": math.nan}
        baseline = image_quality(truth, problem.baseline)
        name, best_psnr, best_ssim = oracle(problem, truth)
        rows.append({"psnr": quality["psnr"], "ssim": quality["ssim"], "baseline_psnr": baseline["psnr"],
                     "oracle": name, "oracle_psnr": best_psnr, "oracle_ssim": best_ssim,
                     "coverage": spread["coverage"], "calibrated_coverage": calibrated["coverage"],
                     "std_error_rank": spread["std_error_spearman"],
                     "calibrated_std_error_rank": calibrated["std_error_spearman"],
                     "seconds": seconds})
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "oracle"}
    oracles = [r["oracle"] for r in rows]
    return {"modality": case.modality, "case": case.label, **median,
            "margin": median["psnr"] - median["oracle_psnr"],
            "oracle": max(set(oracles), key=oracles.count), "seeds": len(rows)}


def rescore_case(case: Case, seeds, folder: Path, calibrations: dict, estimated_coil_maps: bool = False) -> dict:
    """Calibrated coverage of the saved results of a case under ``calibrations`` (default: the
    shipped one): the problem is rebuilt from its seed (no solve), the result read back."""
    from reddiff.calibration import apply
    from reddiff.result import Reconstruction

    chosen = modalities.get(case.modality)
    image, coverages, ranks, sources = image_for(case), [], [], set()
    for seed in seeds:
        problem = problem_for(case, image, seed, estimated_coil_maps)
        result = apply(Reconstruction.from_netcdf(saved_path(folder, case, seed)), problem,
                       calibrations.get(case.modality, "default"))
        if result.calibration is None:
            raise SystemExit(f"{case.label}: no calibration applied ({result.dataset.attrs['calibration_source']})")
        truth = chosen.reference_for(result, problem)[0]
        metrics = uncertainty_metrics(result, truth, calibration=result.calibration)
        coverages.append(metrics["coverage"])
        ranks.append(metrics["std_error_spearman"])
        sources.add(f"{result.dataset.attrs['calibration_source']} {result.dataset.attrs['calibration_warnings']}")
    return {"modality": case.modality, "case": case.label, "calibrated_coverage": statistics.median(coverages),
            "calibrated_std_error_rank": statistics.median(ranks), "seeds": len(coverages),
            "calibration": "; ".join(sorted(sources))}


COLUMNS = [("case", "case", "{}"), ("RED-Diff PSNR (SSIM)", None, None), ("baseline", "baseline_psnr", "{:.2f}"),
           ("truth-tuned classical", None, None), ("margin", "margin", "{:+.2f}"),
           ("raw 90% coverage", "coverage", "{:.0%}"), ("calibrated 90% coverage", "calibrated_coverage", "{:.0%}"),
           ("std-error Spearman", "std_error_rank", "{:.2f}"),
           ("calibrated std-error Spearman", "calibrated_std_error_rank", "{:.2f}"),
           ("s/run", "seconds", "{:.0f}")]


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(c[0] for c in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = []
        for title, key, fmt in COLUMNS:
            if title.startswith("RED-Diff"):
                cells.append(f"{row['psnr']:.2f} ({row['ssim']:.3f})")
            elif title.startswith("truth-tuned"):
                cells.append(f"{row['oracle_psnr']:.2f} ({row['oracle_ssim']:.3f}) {row['oracle']}")
            else:
                cells.append(fmt.format(row[key]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", nargs="+", default=["ct", "mri", "astro"])
    parser.add_argument("--seeds", type=int, default=3, help="noise seeds per case (medians reported)")
    parser.add_argument("--samples", type=int, default=8,
                        help="RED-Diff runs per reconstruction (8, as reconstruct and the default calibrations)")
    parser.add_argument("--cases", nargs="+", type=int, help="only these case numbers per modality (0-based)")
    parser.add_argument("--quick", action="store_true", help="one case per modality, one seed (smoke test)")
    parser.add_argument("--prior", action="append", default=[], metavar="MODALITY=FOLDER",
                        help="evaluate another prior for a modality (e.g. mri=training/mri)")
    parser.add_argument("--calibration", action="append", default=[], metavar="MODALITY=JSON",
                        help="apply another calibration for a modality (default: the shipped one)")
    parser.add_argument("--out", type=Path, help="Markdown file for the table (a CSV is written beside it)")
    parser.add_argument("--save", type=Path, help="folder to keep every RED-Diff result in (NetCDF, for --rescore)")
    parser.add_argument("--rescore", type=Path, metavar="DIR",
                        help="no solve: the calibrated coverage of the results a --save run wrote to DIR")
    parser.add_argument("--estimated-coil-maps", action="store_true",
                        help="MRI: reconstruct with coil maps estimated from the k-space, as the command "
                             "line does (default: the simulation's exact maps)")
    parser.add_argument("--center-fraction", type=float,
                        help="MRI: fully sampled central fraction of k-space (default the canonical 0.08)")
    args = parser.parse_args(argv)
    priors = dict(p.split("=", 1) for p in args.prior)
    calibrations = dict(c.split("=", 1) for c in args.calibration)
    seeds = range(1 if args.quick else args.seeds)
    rows = []
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
    for modality in args.modality:
        chosen = cases(modality, args.quick)
        for case in ([chosen[i] for i in args.cases if i < len(chosen)] if args.cases else chosen):
            if modality == "mri":
                case = mri_variant(case, args.center_fraction, args.estimated_coil_maps)
            if args.rescore is not None:
                row = rescore_case(case, seeds, args.rescore, calibrations, args.estimated_coil_maps)
                print(f"{row['case']}: calibrated coverage {row['calibrated_coverage']:.1%}, calibrated std-error "
                      f"Spearman {row['calibrated_std_error_rank']:.2f} ({row['calibration']})", flush=True)
                continue
            row = run_case(case, seeds, args.samples, priors, calibrations, args.save, args.estimated_coil_maps)
            rows.append(row)
            print(f"{row['case']}: RED-Diff {row['psnr']:.2f}, baseline {row['baseline_psnr']:.2f}, "
                  f"{row['oracle']} {row['oracle_psnr']:.2f} (margin {row['margin']:+.2f}), "
                  f"coverage {row['coverage']:.0%} raw, {row['calibrated_coverage']:.0%} calibrated, "
                  f"{row['seconds']:.0f} s/run", flush=True)
    if args.rescore is not None:
        return
    table = markdown(rows)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
        with args.out.with_suffix(".csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
