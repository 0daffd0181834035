"""Model error of ESPIRiT coil maps on generated MR heads: how well maps from each calibration block and kernel explain the k-space.

Run: ``python benchmarks/espirit_maps.py [--size 64] [--center-fraction 0.16] [--half 50 80 0]
[--kernels unpadded default 16x3 ...]`` (one thread; a Markdown table on stdout), or ``--cost`` for the time
and peak memory of the default estimate and of its JSENSE refinement on a fastMRI-sized slice (640 x 368 with readout
oversampling, 15 coils, 4x, 8 % centre; run it in a fresh process: the peak is the process's).

Per generated image (the MNI152 calibration slices and their synthetic contrasts, never a held-out
sample; cropped as ``benchmarks/model_error.py`` does: half-width 50 cuts the head, 80 lets it touch
the field of view's edges, 0 keeps the whole slice inside it), measured canonically (4x, 8 birdcage
coils, sigma 0.01, noise seed ``100 + i``), the maps are estimated from the noisy k-space and the
*noise-free* k-space :math:`y_0 = A x` is fitted by least squares with them (SENSE-CG, 100
iterations). The misfit :math:`\\|\\hat A \\hat x - y_0\\|^2 / (m \\sigma^2)` is the maps' model error
in units of the noise (0 for the exact maps; the data term's deviance ratio grows by about this much).

Kernels: ``default`` (what :func:`reddiff.operators.mri.estimate_sensitivity_maps` chooses: up to 24
calibration rows, a square kernel a third of the calibration columns wide, 3 to 6, on twice the
readout field of view), ``unpadded`` (the same on the grid's own field of view, the default before
2026-12-08), ``KYxKX`` (that kernel on every readout row of the grid's own field of view), ``exact``
(the simulation's maps).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

from reddiff import modalities  # noqa: E402
from reddiff.calibration import fit_to_grid  # noqa: E402
from reddiff.operators import mri  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is not a package
from model_error import filling_crop  # noqa: E402


def coil_maps(problem, kernel: str) -> torch.Tensor:
    """The simulation's maps (``exact``) or ESPIRiT's from the noisy k-space with the named calibration
    block and kernel (module docstring), ``(coils, H, W)``."""
    y = problem.y
    if kernel == "exact":
        return problem.physics.coil_maps.reshape(-1, *y.shape[-2:])
    if kernel == "default":
        return mri.estimate_sensitivity_maps(y)
    if kernel == "unpadded":
        return mri.estimate_sensitivity_maps(y, readout_padding=1)
    rows, cols = (int(k) for k in kernel.split("x"))
    columns = mri._calibration_width((y.abs().sum((0, 1, 2)) > 0).any(0))
    return mri.estimate_sensitivity_maps(y, calibration_size=(y.shape[-2], min(24, columns)),
                                         kernel_size=(rows, cols), readout_padding=1)


def misfit(problem, maps: torch.Tensor) -> float:
    r"""Least-squares misfit of the noise-free k-space with ``maps``, over :math:`m \sigma^2`."""
    physics = problem.physics
    clean = physics.A(problem.truth)
    fitted = mri.mri_physics(physics.mask, coil_maps=maps)
    residual = fitted.A(mri.sense_cg(clean, fitted, iterations=100)) - clean
    sampled = float((problem.y != 0).sum())
    return float((residual ** 2).sum()) / (sampled * float(physics.data_term.sigma) ** 2)


def image_for(image: np.ndarray, half: int, size: int) -> np.ndarray:
    """The crop (``half`` 0: the whole slice) on a ``size`` grid, maximum 1."""
    source = filling_crop(image, half)
    grid = np.clip(fit_to_grid(source, (size, size)), 0, None)
    return grid / grid.max()


def cost() -> str:
    """Seconds and peak-memory growth of the default estimate for one fastMRI-sized slice, its readout
    oversampling removed first as :meth:`reddiff.modalities.mri.MRIModality.load` does."""
    from reddiff.priors.recipes import mni_volumes

    t1, _ = mni_volumes()
    image = np.zeros((640, 368), np.float32)  # readout oversampled twice: the head in the middle half
    image[160:480] = np.clip(fit_to_grid(t1[90] / t1[90].max(), (320, 368)), 0, None)
    measured = mri.simulate(torch.as_tensor(image)[None, None], acceleration=4, center_fraction=0.08, mask="random",
                            coils=15, sigma=0.01, seed=0)
    y = mri.remove_readout_oversampling(measured.y, 320)
    mask = measured.info["mask"][:320]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    maps = mri.estimate_sensitivity_maps(y)
    seconds = time.perf_counter() - started
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2**20  # kB -> GiB (Linux)
    started = time.perf_counter()
    mri.refine_sensitivity_maps(y, mask, maps)
    refined = time.perf_counter() - started
    more = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2**20
    return (f"ESPIRiT maps, 640 x 368, 15 coils: {seconds:.1f} s, peak memory +{grown:.2f} GiB; "
            f"JSENSE refinement of them: {refined:.1f} s more, peak memory +{more:.2f} GiB in all")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--center-fraction", type=float, default=0.16)
    parser.add_argument("--half", nargs="+", type=int, default=[50, 80, 0],
                        help="crop half-widths in pixels (0: the whole slice)")
    parser.add_argument("--kernels", nargs="+", default=["unpadded", "default"],
                        help="default, unpadded, or KYxKX on every readout row")
    parser.add_argument("--images", type=int, help="only the first N calibration images")
    parser.add_argument("--cost", action="store_true", help="time and peak memory on a fastMRI-sized slice only")
    args = parser.parse_args(argv)
    if args.cost:
        print(cost())
        return
    chosen = modalities.get("mri")
    images = list(chosen.calibration_images().items())[:args.images]
    columns = ["exact", *args.kernels]
    print(f"model error of the maps at {args.size} px, centre fraction {args.center_fraction:g} "
          f"(least-squares misfit of noise-free k-space / m sigma^2)\n")
    print("| image | crop | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for i, (label, image) in enumerate(images):
        for half in args.half:
            problem = chosen.canonical_problem(image=image_for(image, half, args.size), seed=100 + i,
                                               center_fraction=args.center_fraction)
            values = [misfit(problem, coil_maps(problem, kernel)) for kernel in columns]
            crop = f"half {half}" if half else "whole slice"
            print(f"| {label} | {crop} | " + " | ".join(f"{v:.3f}" for v in values) + " |", flush=True)


if __name__ == "__main__":
    main()
