"""RED-Diff where the forward model does not fit the data: generated MR heads that fill the field of view, reconstructed with estimated coil maps.

Run: ``python benchmarks/model_error.py [--images T1 ...] [--half 50 80] [--size 64]
[--center-fraction 0.16] [--factors 1 3 10 30 100] [--quick]`` (one thread; JSON lines on stdout).

A scanner's file is reconstructed with coil maps estimated from its own calibration lines
(:func:`reddiff.modalities.mri.estimated_coil_physics`: ESPIRiT, refined by JSENSE where the object
reaches the phase-encode edges). Where the object fills the field of view, estimated maps cannot
explain the data to the noise level, and fitting the data harder puts that misfit into the image.
This measures how the weight should respond, on generated images only
(never a held-out sample): the MNI152 calibration slices and their synthetic contrasts
(:meth:`reddiff.modalities.mri.MRIModality.calibration_images`; no prior trained on them), cropped
to ``2 half`` pixels around the head's centre (50: the head cut by the field of view; 80: the
head touching its edges; 0: the whole slice, the head inside), resampled to ``size``, measured
canonically (4x, 8 birdcage coils, sigma 0.01, noise seed ``100 + i`` for the ``i``-th of
``--images``) and reconstructed with estimated maps
(:meth:`~reddiff.modalities.mri.MRIModality.with_estimated_coil_maps`). Per image:

* ``lam="auto"`` with the shipped defaults: the pilots' deviance ratios, the weight chosen, PSNR;
* the fixed weights ``start x factors`` (``start`` the pilots' middle weight): PSNR and the
  deviance ratio of the result;
* the classical method tuned on the truth (``benchmarks/heldout.py``'s oracle: TV, SENSE-CG).

One sample, solver seed 0, no calibration.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

import reddiff  # noqa: E402
from reddiff import modalities  # noqa: E402
from reddiff.calibration import fit_to_grid  # noqa: E402
from reddiff.discrepancy import deviance_ratio  # noqa: E402

FACTORS = (1.0, 3.0, 10.0, 30.0, 100.0)


def filling_crop(image: np.ndarray, half: int) -> np.ndarray:
    """The ``2 half`` square around the image centre (five rows above it: the MNI152 head's centre),
    scaled to maximum 1; ``half`` 0: the whole slice, the head inside the field of view."""
    if half == 0:
        return image / image.max()
    h, w = image.shape
    crop = image[max(0, h // 2 - half - 5):h // 2 + half - 5, max(0, w // 2 - half):w // 2 + half]
    return crop / crop.max()


def problem_for(image: np.ndarray, size: int, center_fraction: float, seed: int):
    """The canonical MRI problem of ``image`` on a ``size`` grid, reconstructed with ESPIRiT maps."""
    mri = modalities.get("mri")
    grid = np.clip(fit_to_grid(image, (size, size)), 0, None)
    problem = mri.canonical_problem(image=grid / grid.max(), seed=seed, center_fraction=center_fraction)
    return mri.with_estimated_coil_maps(problem)


def measure(label: str, problem, factors, steps: int | None = None) -> list[dict]:
    """The rows for one problem: the oracle, ``lam="auto"`` and each fixed weight."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is not a package
    from heldout import oracle

    extra = {} if steps is None else {"steps": steps}
    method, oracle_psnr, _ = oracle(problem, problem.truth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the lam='auto' note, recorded below instead
        auto = reddiff.reconstruct(problem, n_samples=1, seed=0, calibration="none", progress=False, **extra)
    config = auto.config
    choice = config["lam_choice"]
    rows = [{"image": label, "oracle": method, "oracle_psnr": round(oracle_psnr, 2),
             "pilot_lams": [round(v, 3) for v in choice["pilot_lams"]],
             "pilot_ratios": [round(v, 3) for v in choice["pilot_ratios"]],
             "auto_lam": round(config["lam"], 3), "auto_factor": round(config["lam"] / choice["start"], 3),
             "auto_psnr": round(float(auto.dataset.attrs["psnr_db"]), 2)}]
    for factor in factors:
        result = reddiff.reconstruct(problem, n_samples=1, seed=0, calibration="none", progress=False,
                                     lam=choice["start"] * factor, **extra)
        mean = result.tensor("mean")
        rho = float(deviance_ratio(problem.physics.data_term, problem.y, problem.physics.A(mean))[0])
        rows.append({"image": label, "factor": factor, "psnr": round(float(result.dataset.attrs["psnr_db"]), 2),
                     "rho": round(rho, 3)})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=["MNI152 T1 axial 60", "synthetic contrast 0 (MNI152 axial 100)"],
                        help="calibration images by label, measured with noise seeds 100, 101, ... in this order")
    parser.add_argument("--half", nargs="+", type=int, default=[50, 80],
                        help="half-widths of the crops, pixels (0: the whole slice)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--center-fraction", type=float, default=0.16)
    parser.add_argument("--factors", nargs="*", type=float, default=list(FACTORS),
                        help="fixed weights as multiples of the start (none: lam=\"auto\" only)")
    parser.add_argument("--quick", action="store_true", help="one 32 px image, one crop, 3 steps (smoke test)")
    args = parser.parse_args(argv)
    images = modalities.get("mri").calibration_images()
    labels, halves, size, factors, steps = args.images, args.half, args.size, args.factors, None
    if args.quick:
        labels, halves, size, factors, steps = labels[:1], halves[:1], 32, factors[:1], 3
    for half in halves:
        for i, label in enumerate(labels):
            problem = problem_for(filling_crop(images[label], half), size, args.center_fraction, seed=100 + i)
            for row in measure(f"{label}, half {half}", problem, factors, steps):
                print(json.dumps({"size": size, "center_fraction": args.center_fraction, **row}), flush=True)


if __name__ == "__main__":
    main()
