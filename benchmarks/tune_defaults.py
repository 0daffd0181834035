"""Tune RED-Diff's per-modality ``lr`` and ``steps`` (``reddiff.DEFAULTS``) on images no prior trained on and no held-out sample.

Run: ``python benchmarks/tune_defaults.py [--modality ct mri astro] [--images 3] [--quick]
[--prior NAME=FOLDER ...] [--t-max N ...] [--size N] [--oracle] [--estimated-coil-maps]`` (one thread; ``--quick`` is a smoke test with a tiny grid).

No held-out sample and no training image takes part: the validation images are the
modality's generated calibration images (:meth:`reddiff.modalities.Modality.calibration_images`:
ellipse phantoms and pseudo-CT heads, MNI152 slices the prior left out and synthetic
contrasts, simulated sky fields), ``--images`` of them spread over the set, and its real
tuning images (:meth:`~reddiff.modalities.Modality.tuning_images`: for the sky three fields of
the Hubble deep field's columns the prior never saw; none for CT and MRI), each measured
like the modality's canonical measurement (:meth:`~reddiff.modalities.Modality.canonical_problem`,
built from the first of them; :func:`reddiff.calibration.problems_like`, noise seed
``100 + i``). On every image RED-Diff runs with the shipped defaults (``lam="auto"``, so the
weight is chosen per run by the discrepancy principle) at ``lr`` times
(1/3, 1, 3) of the shipped one and ``steps`` of (1/2, 1, 2) of it, one sample, solver seed 0.

A setting's score is its mean PSNR over the real tuning images where the modality has any
(the generated ones are reported beside it: on the sky they reward long runs that real skies
do not, ``docs/tuning.md``), else over all the validation images. When the best setting has
the most (fewest) steps tried and beats the same ``lr`` at half (twice) as many by more than
0.1 dB, that ``lr`` is tried at twice (half) as many again (from 1/8 to 8x the shipped steps).
The winner has the best score; a setting within 0.1 dB of it with fewer steps wins the tie
(it is cheaper). ``--lr-multiples`` and ``--steps-multiples`` run another
grid (e.g. one more point), and ``--t-max`` tries tops of the timestep grid other than the
shipped one (each with the whole ``lr`` x ``steps`` grid). The table gives every setting's mean and per-image PSNR
and its gain over the shipped row; ``--oracle`` adds the classical method tuned on each image's
truth (the held-out script's bar: TV, SIRT(+TV), Richardson-Lucy). Changing a row means refitting the default calibrations
(``benchmarks/fit_calibrations.py``), which check ``steps``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

import reddiff  # noqa: E402
from reddiff import modalities  # noqa: E402
from reddiff.calibration import fit_to_grid, problems_like  # noqa: E402

LR_MULTIPLES = (1 / 3, 1.0, 3.0)
STEP_MULTIPLES = (0.5, 1.0, 2.0)
TIE_DB = 0.1


def validation_problems(name: str, n_images: int, size: int | None = None,
                        estimated_coil_maps: bool = False) -> tuple[dict, set]:
    """``n_images`` generated images spread over the modality's calibration set and the modality's
    real tuning images (:meth:`~reddiff.modalities.Modality.tuning_images`), measured canonically
    (on a ``size`` x ``size`` grid when given: the images resampled to it, as the held-out 256 px
    cases are; MRI with ``estimated_coil_maps`` reconstructed with ESPIRiT's maps, as the command
    line does); and the labels of the real ones."""
    modality = modalities.get(name)
    images = modality.calibration_images()
    labels = list(images)[:: max(1, len(images) // n_images)][:n_images]
    grid = (size, size) if size else tuple(modality.canonical_problem(seed=0).baseline.shape[-2:])
    target = modality.canonical_problem(image=fit_to_grid(images[labels[0]], grid), seed=0)
    real = modality.tuning_images()
    problems = {}
    for i, (label, image) in enumerate(({label: images[label] for label in labels} | real).items()):
        problems.update(problems_like(target, {label: image}, seed=100 + i))
    if estimated_coil_maps:
        problems = {label: modality.with_estimated_coil_maps(p) for label, p in problems.items()}
    return problems, set(real)


#: The longest and shortest runs the steps extension tries, as multiples of the shipped steps.
MAX_STEP_MULTIPLE, MIN_STEP_MULTIPLE = 8, 1 / 8


def shipped_row(name: str, size: int | None = None):
    """The modality's defaults row as it runs on a ``size`` px grid (the canonical one when None;
    :meth:`~reddiff.defaults.SolverDefaults.for_shape`)."""
    row = modalities.get(name).defaults
    return row.for_shape((size, size)) if size else row


def grid(name: str, quick: bool, lr_multiples=LR_MULTIPLES, step_multiples=STEP_MULTIPLES,
         t_maxes=(None,), size: int | None = None) -> list[dict]:
    """The ``lr`` x ``steps`` x ``t_max`` settings tried (the shipped row among them by default, the
    one it runs on a ``size`` px grid when given: :meth:`~reddiff.defaults.SolverDefaults.for_shape`;
    a ``t_max`` of None there keeps that row's, spelled out in the setting)."""
    row = shipped_row(name, size)
    if quick:
        return [{"lr": row.lr, "steps": 3}, {"lr": row.lr * 3, "steps": 3}]
    return [{"lr": row.lr * a, "steps": max(1, round(row.steps * b)), "t_max": row.t_max if t is None else t}
            for t, a, b in itertools.product(t_maxes, lr_multiples, step_multiples)]


def tune(name: str, n_images: int, *, quick: bool = False, prior=None, size: int | None = None,
         with_oracle: bool = False, estimated_coil_maps: bool = False, **multiples) -> tuple[list[dict], dict | None]:
    """Every setting's PSNR on every validation image (on a ``size`` px grid when given), as rows
    (one per setting); and, ``with_oracle``, the truth-tuned classical method's (:func:`classical`)."""
    problems, real = validation_problems(name, 2 if quick else n_images, size, estimated_coil_maps)
    best_classical = classical(problems, real) if with_oracle else None
    rows = [run(name, problems, setting, prior, real) for setting in grid(name, quick, size=size, **multiples)]
    while not quick and (extra := _steps_beyond_edge(name, rows)) is not None:
        rows.append(run(name, problems, extra, prior, real))
    return rows, best_classical


def classical(problems: dict, real=frozenset()) -> dict:
    """The classical method tuned on each image's truth (``benchmarks/heldout.py``'s :func:`oracle`:
    TV for MRI, SIRT(+TV) for CT, Richardson-Lucy for the sky), scored like :func:`run`: the
    bar RED-Diff has to clear on the tuning images too."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is not a package (as in solvers.py)
    from heldout import oracle

    started, psnrs, methods = time.perf_counter(), {}, {}
    for label, problem in problems.items():
        methods[label], psnr, _ = oracle(problem, problem.truth)
        psnrs[label] = round(float(psnr), 2)
    row = {"classical": methods, **_scores(psnrs, real), "seconds": round(time.perf_counter() - started)}
    print(json.dumps(row), flush=True)
    return row


def run(name: str, problems: dict, setting: dict, prior, real=frozenset()) -> dict:
    """One setting on every validation image (one sample, solver seed 0); its ``score`` is the mean
    PSNR over the ``real`` tuning images where there are any, else over all of them."""
    started, psnrs = time.perf_counter(), {}
    for label, problem in problems.items():
        result = reddiff.reconstruct(problem, prior=prior, n_samples=1, seed=0, calibration="none",
                                     progress=False, **setting)
        psnrs[label] = round(float(result.dataset.attrs["psnr_db"]), 2)
    t_max = setting.get("t_max", modalities.get(name).defaults.t_max)
    row = {"modality": name, "lr": float(f"{setting['lr']:.4g}"), "steps": setting["steps"], "t_max": t_max,
           **_scores(psnrs, real), "seconds": round(time.perf_counter() - started), "_lr": setting["lr"]}
    print(json.dumps({k: v for k, v in row.items() if k != "_lr"}), flush=True)
    return row


def _scores(psnrs: dict, real=frozenset()) -> dict:
    """``score`` (mean PSNR over the ``real`` tuning images where there are any, else over all),
    ``mean_psnr`` (over all) and the per-image ``psnr``."""
    scored = [v for k, v in psnrs.items() if k in real] or list(psnrs.values())
    return {"score": round(float(np.mean(scored)), 2), "mean_psnr": round(float(np.mean(list(psnrs.values()))), 2),
            "psnr": psnrs}


def _steps_beyond_edge(name: str, rows: list[dict]) -> dict | None:
    """The best row's ``lr`` at twice (half) its steps when it has the most (fewest) steps tried at
    that ``lr`` and beats half (twice) as many by more than :data:`TIE_DB`, within
    :data:`MAX_STEP_MULTIPLE` (:data:`MIN_STEP_MULTIPLE`) of the shipped steps; else None."""
    best = max(rows, key=lambda r: r["score"])
    tried = {r["steps"]: r for r in rows if r["_lr"] == best["_lr"] and r["t_max"] == best["t_max"]}
    shipped = modalities.get(name).defaults.steps
    for factor, edge in ((2, max(tried)), (0.5, min(tried))):
        steps, neighbour = round(best["steps"] * factor), tried.get(round(best["steps"] / factor))
        if (best["steps"] == edge and neighbour and best["score"] - neighbour["score"] > TIE_DB
                and max(1, MIN_STEP_MULTIPLE * shipped) <= steps <= MAX_STEP_MULTIPLE * shipped):
            return {"lr": best["_lr"], "steps": steps, "t_max": best["t_max"]}
    return None


def winner(rows: list[dict]) -> dict:
    """The best score; within :data:`TIE_DB` of it, the fewest steps (then the best)."""
    best = max(r["score"] for r in rows)
    close = [r for r in rows if r["score"] >= best - TIE_DB]
    return min(close, key=lambda r: (r["steps"], -r["score"]))


def table(name: str, rows: list[dict], best_classical: dict | None = None, size: int | None = None) -> str:
    """The settings' scores as a Markdown table, with their gain over the shipped row (the one it runs on a
    ``size`` px grid when given) and the truth-tuned classical row when given."""
    row = shipped_row(name, size)
    shipped = next((r for r in rows if np.isclose(r["lr"], row.lr) and r["steps"] == row.steps
                    and r["t_max"] == row.t_max), None)
    chosen = winner(rows)
    labels = list(rows[0]["psnr"])
    lines = [f"### {name}: shipped lr {row.lr:g}, {row.steps} steps, t_max {_top(row.t_max)}; winner lr "
             f"{chosen['lr']:g}, {chosen['steps']} steps, t_max {_top(chosen['t_max'])}", "",
             "| lr | steps | t_max | score | vs shipped | mean PSNR | " + " | ".join(labels) + " | s |",
             "|---|---|---|---|---|---|" + "---|" * len(labels) + "---|"]
    for r in rows:
        gain = f"{r['score'] - shipped['score']:+.2f}" if shipped else ""
        mark = "**" if r is chosen else ""
        lines.append(f"| {r['lr']:g} | {r['steps']} | {_top(r['t_max'])} | {mark}{r['score']:.2f}{mark} | {gain} | {r['mean_psnr']:.2f} | "
                     + " | ".join(f"{r['psnr'][k]:.2f}" for k in labels) + f" | {r['seconds']} |")
    if best_classical is not None:
        c = best_classical
        gain = f"{c['score'] - shipped['score']:+.2f}" if shipped else ""
        lines.append(f"| truth-tuned classical | | | {c['score']:.2f} | {gain} | {c['mean_psnr']:.2f} | "
                     + " | ".join(f"{c['psnr'][k]:.2f} {c['classical'][k]}" for k in labels) + f" | {c['seconds']} |")
    return "\n".join(lines) + "\n"


def _top(t_max: int | None) -> str:
    return "T-1" if t_max is None else str(t_max)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", nargs="+", default=["ct", "mri", "astro"])
    parser.add_argument("--images", type=int, default=3, help="validation images per modality")
    parser.add_argument("--quick", action="store_true", help="two images, two 3-step settings")
    parser.add_argument("--prior", nargs="+", default=[], metavar="NAME=FOLDER", help="another prior")
    parser.add_argument("--lr-multiples", nargs="+", type=float, default=LR_MULTIPLES)
    parser.add_argument("--steps-multiples", nargs="+", type=float, default=STEP_MULTIPLES)
    parser.add_argument("--t-max", nargs="+", type=int, default=[None],
                        help="tops of the timestep grid to try (default the shipped one)")
    parser.add_argument("--size", type=int, default=None,
                        help="validation images resampled to this many pixels a side (default the canonical grid)")
    parser.add_argument("--oracle", action="store_true",
                        help="also the classical method tuned on each image's truth (the held-out script's bar)")
    parser.add_argument("--estimated-coil-maps", action="store_true",
                        help="MRI: reconstruct with ESPIRiT coil maps estimated from the k-space (as the command line)")
    args = parser.parse_args(argv)
    priors = dict(item.split("=", 1) for item in args.prior)
    for name in args.modality:
        rows, best_classical = tune(name, args.images, quick=args.quick, prior=priors.get(name),
                                    lr_multiples=args.lr_multiples, step_multiples=args.steps_multiples,
                                    t_maxes=args.t_max, size=args.size, with_oracle=args.oracle,
                                    estimated_coil_maps=args.estimated_coil_maps)
        print(table(name, rows, best_classical, args.size), flush=True)


if __name__ == "__main__":
    main()
