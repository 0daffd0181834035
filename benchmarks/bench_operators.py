"""Forward and adjoint time of every operator at 128 and 256 px, and our CT projector against deepinv's.

Usage::

    python benchmarks/bench_operators.py                 # both tables, 128 and 256 px
    python benchmarks/bench_operators.py --sizes 128     # one size
    python benchmarks/bench_operators.py --threads 2 --repeats 5

Prints two Markdown tables. ``operators``: median wall time of ``A`` and
``A_adjoint`` on one image after a warm-up call; ``build+first_s`` is the time to
build the physics and make its first forward and adjoint calls (lazy caches such
as the CT projection matrix included). ``ct``: our Joseph projector
(:class:`reddiff.operators.ct.ParallelBeam`, 180 views) against
:class:`deepinv.physics.Tomography` (same views, exact adjoint via autograd,
``normalize=False``): build, forward, adjoint, and the adjointness error of each.
Not run by the tests; CPU only.

Measured (``--sizes 256 --repeats 3 --threads 2``, AMD EPYC, shared 2-core machine):
reddiff's parallel-beam projector 12.1 ms forward / 11.7 ms adjoint (build 1.09 s),
deepinv Tomography 146 ms / 368 ms (build 0.50 s): 12x and 31.5x faster per call,
adjointness error 2.9e-6 vs 6.1e-8 (float32 sparse sums).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from reddiff.operators import ct, generic, mri, telescope


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def built(make, shape):
    """``(physics, seconds to build it and make its first A and A_adjoint calls)``: lazy caches included."""
    start = time.perf_counter()
    physics = make()
    physics.A_adjoint(physics.A(torch.zeros(shape)))
    return physics, time.perf_counter() - start


def operators(n: int) -> dict:
    """name -> (factory, image shape) at size ``n``."""
    mask = mri.cartesian_mask((n, n), kind="random", acceleration=4, seed=0)
    return {
        "mri single-coil": (lambda: mri.mri_physics(mask), (1, 2, n, n)),
        "mri 8 coils": (lambda: mri.mri_physics(mask, coil_maps=mri.birdcage_maps(8, (n, n))), (1, 2, n, n)),
        "ct parallel 180 views (ours)": (lambda: ct.ct_physics(n, views=180), (1, 1, n, n)),
        "ct fan 360 views (ours)": (lambda: ct.ct_physics(n, geometry="fan", views=360), (1, 1, n, n)),
        "telescope moffat 4 px (zeros)": (lambda: telescope.blur_physics(telescope.moffat_psf(4.0)), (1, 1, n, n)),
        "telescope airy 2.4 m (zeros, fft)": (lambda: telescope.blur_physics(telescope.airy_psf()), (1, 1, n, n)),
        "telescope tiled 3x3": (lambda: telescope.tiled_blur_physics(
            torch.stack([torch.stack([telescope.moffat_psf(f, size=25) for f in (2.0, 3.0, 4.0)])] * 3), (n, n)),
            (1, 1, n, n)),
        "inpaint random": (lambda: generic.task_physics("inpaint-random", (n, n), channels=3, seed=0), (1, 3, n, n)),
        "sr block average x4": (lambda: generic.task_physics("sr-average", (n, n), factor=4), (1, 3, n, n)),
        "sr bicubic x4": (lambda: generic.task_physics("sr-bicubic", (n, n), factor=4, channels=3), (1, 3, n, n)),
        "deblur gaussian 3 px": (lambda: generic.task_physics("deblur-gaussian", (n, n)), (1, 3, n, n)),
        "deblur uniform 9 px": (lambda: generic.task_physics("deblur-uniform", (n, n)), (1, 3, n, n)),
    }


def operator_rows(sizes, repeats: int) -> list[dict]:
    rows = []
    for n in sizes:
        for name, (make, shape) in operators(n).items():
            physics, build = built(make, shape)
            x = torch.randn(shape)
            y = physics.A(x)
            rows.append({"operator": name, "px": n, "build+first_s": build,
                         "forward_ms": 1e3 * timed(lambda: physics.A(x), repeats),
                         "adjoint_ms": 1e3 * timed(lambda: physics.A_adjoint(y), repeats)})
    return rows


def adjoint_error(physics, n: int) -> float:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, n, n, generator=g)
    y = physics.A(x)
    z = torch.randn(y.shape, generator=g)
    lhs, rhs = float((y.double() * z).sum()), float((x.double() * physics.A_adjoint(z)).sum())
    return abs(lhs - rhs) / abs(lhs)


def ct_rows(sizes, repeats: int, views: int = 180) -> list[dict]:
    from deepinv.physics import Tomography

    rows = []
    for n in sizes:
        ct._projection_matrix.cache_clear()
        ct._backprojection_matrix.cache_clear()
        x = torch.rand(1, 1, n, n)
        start = time.perf_counter()
        ours = ct.ct_physics(n, views=views)
        ours.A_adjoint(ours.A(x))  # builds the matrix and its transpose
        ours_build = time.perf_counter() - start
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            theirs = Tomography(angles=views, img_width=n, normalize=False, adjoint_via_backprop=True)
            theirs_build = time.perf_counter() - start
        for name, physics, build in (("reddiff Joseph (sparse, cached)", ours, ours_build),
                                     ("deepinv Tomography (autograd adjoint)", theirs, theirs_build)):
            y = physics.A(x)
            rows.append({"projector": name, "px": n, "sinogram": "x".join(map(str, y.shape[-2:])),
                         "build_s": build, "forward_ms": 1e3 * timed(lambda: physics.A(x), repeats),
                         "adjoint_ms": 1e3 * timed(lambda: physics.A_adjoint(y), repeats),
                         "adjoint_rel_err": adjoint_error(physics, n)})
        ours_row, theirs_row = rows[-2], rows[-1]
        rows.append({"projector": "speed-up (deepinv / ours)", "px": n, "build_s": theirs_row["build_s"] /
                     ours_row["build_s"], "forward_ms": theirs_row["forward_ms"] / ours_row["forward_ms"],
                     "adjoint_ms": theirs_row["adjoint_ms"] / ours_row["adjoint_ms"]})
    return rows


def table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-deepinv", action="store_true", help="skip the CT comparison table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# operators: torch {torch.__version__}, CPU, {args.threads} thread(s), median of {args.repeats}\n")
    print(table(operator_rows(args.sizes, args.repeats),
                ["operator", "px", "build+first_s", "forward_ms", "adjoint_ms"]))
    if not args.skip_deepinv:
        print("\n# CT projector, 180 views: reddiff vs deepinv\n")
        print(table(ct_rows(args.sizes, args.repeats),
                    ["projector", "px", "sinogram", "build_s", "forward_ms", "adjoint_ms", "adjoint_rel_err"]))


if __name__ == "__main__":
    main()
