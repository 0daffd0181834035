"""``lam="auto"`` (discrepancy principle) against the fixed, noise-scaled default ``lam``.

Run: ``python benchmarks/auto_lam.py [--modality ct mri astro] [--cases N ...] [--samples 2]
[--sweep [--multiples M ...]] [--only auto|fixed] [--prior NAME=FOLDER ...]`` (one thread).

``--sweep`` (the measurement the per-modality targets come from): on the validation images
of ``benchmarks/tune_defaults.py`` (generated ones,
:meth:`reddiff.modalities.Modality.calibration_images`, and the modality's real tuning images,
:meth:`~reddiff.modalities.Modality.tuning_images`; never held out, never trained on),
measured like the canonical problem, RED-Diff runs with fixed weights ``lam_0 x
(0.1, 0.3, 1, 3, 10)`` (or ``--multiples``) and records PSNR and the final deviance ratio
:math:`\\rho = D / \\mathbb E[D]`; the PSNR-best :math:`\\rho` per image is the evidence for
the modality's ``lam_target``.

Default: on the held-out cases of ``benchmarks/heldout.py`` (noise seed 0), RED-Diff with
the fixed noise-scaled default ``lam`` and with ``lam="auto"`` (the shipped defaults
otherwise, the same solver seed), PSNR of the mean of ``--samples`` runs, the weight
chosen (as a multiple of the fixed one) and the pilots' deviance ratios.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

torch.set_num_threads(1)

import reddiff  # noqa: E402
from reddiff import modalities  # noqa: E402
from reddiff.discrepancy import deviance_ratio  # noqa: E402

from heldout import cases, image_for  # noqa: E402
from tune_defaults import validation_problems  # noqa: E402

MULTIPLES = (0.1, 0.3, 1.0, 3.0, 10.0)


def fixed_lam(problem) -> float:
    modality = modalities.get(problem.modality)
    return modality.defaults.lam_for(modality.noise_level(problem))


def final_ratio(problem, result_steps: dict):
    """A callback recording the deviance ratio of the image after the last step."""
    def callback(info):
        if info["step"] == info["steps"] - 1 and not info.get("pilots"):
            with torch.no_grad():
                ratio = deviance_ratio(problem.physics.data_term, problem.y, problem.physics.A(info["image"]))
            result_steps["ratio"] = float(ratio.mean())
    return callback


def sweep(name: str, n_images: int = 3, multiples=MULTIPLES) -> list[dict]:
    rows = []
    problems, _ = validation_problems(name, n_images)
    for label, problem in problems.items():
        for multiple in multiples:
            seen = {}
            result = reddiff.reconstruct(problem, n_samples=1, seed=0, calibration="none", progress=False,
                                         lam=fixed_lam(problem) * multiple, callback=final_ratio(problem, seen))
            rows.append({"modality": name, "image": label, "multiple": multiple,
                         "psnr": round(result.dataset.attrs["psnr_db"], 2), "ratio": round(seen["ratio"], 3)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def compare(name: str, chosen_cases, n_samples: int, *, only=None, prior=None) -> list[dict]:
    rows = []
    for index, case in enumerate(cases(name, quick=False)):
        if chosen_cases and index not in chosen_cases:
            continue
        problem = modalities.get(name).canonical_problem(image=image_for(case), seed=0, **case.settings)
        fixed = fixed_lam(problem)
        row = {"modality": name, "case": case.label}
        for label, lam in (("fixed", fixed), ("auto", "auto")):
            if only not in (None, label):
                continue
            started = time.perf_counter()
            result = reddiff.reconstruct(problem, prior=prior, n_samples=n_samples, seed=0, calibration="none",
                                         progress=False, lam=lam)
            row[f"{label}_psnr"] = round(result.dataset.attrs["psnr_db"], 2)
            row[f"{label}_s"] = round(time.perf_counter() - started)
            choice = result.config.get("lam_choice")
            if choice:
                row["auto_multiple"] = round(result.config["lam"] / fixed, 2)
                row["pilot_ratios"] = [round(r, 3) for r in choice["pilot_ratios"]]
        if only is None:
            row["gain"] = round(row["auto_psnr"] - row["fixed_psnr"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", nargs="+", default=["ct", "mri", "astro"])
    parser.add_argument("--cases", nargs="+", type=int, default=None)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--multiples", nargs="+", type=float, default=MULTIPLES, help="--sweep's lam_0 multiples")
    parser.add_argument("--only", choices=("auto", "fixed"), default=None, help="run one of the two")
    parser.add_argument("--prior", nargs="+", default=[], metavar="NAME=FOLDER", help="another prior")
    args = parser.parse_args(argv)
    priors = dict(item.split("=", 1) for item in args.prior)
    for name in args.modality:
        if args.sweep:
            sweep(name, multiples=args.multiples)
        else:
            compare(name, args.cases, args.samples, only=args.only, prior=priors.get(name))


if __name__ == "__main__":
    main()
