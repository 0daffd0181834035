"""Throughput of many scans: slices per minute, one slice per run vs a volume per run, 1 vs 2 Dask workers.

Run: ``python benchmarks/bench_batch.py [--files 4] [--slices 3] [--steps 50] [--size 64]``

Generates ``--files`` fastMRI files of ``--slices`` slices each (MNI152 T1 slices, a
training source, at ``--size`` px), then times:

* **one slice per run**: ``reddiff.pipeline.reconstruct`` on every slice in turn in this
  process (what a shell loop over ``--slices N`` does, without the process start-up);
* **a volume per run**: :func:`reddiff.pipeline.reconstruct_volume` per file;
* **batch, 1 and 2 workers**: :func:`reddiff.batch.run_batch` over the files on a local
  Dask cluster of single-threaded workers (each file one task, every slice written).

Reports wall seconds and slices per minute; the ratio against one slice per run is
the figure to read (a 2-core machine can give at most 2x with 2 workers).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

from reddiff.batch import BatchSettings, run_batch  # noqa: E402
from reddiff.pipeline import load_problem, reconstruct, reconstruct_volume, slice_indices  # noqa: E402


def make_files(folder: Path, *, files: int, slices: int, size: int) -> list[Path]:
    """fastMRI files of MNI152 T1 axial slices (4x, 8 coils)."""
    from reddiff.calibration import fit_to_grid
    from reddiff.datasets import simulate_fastmri
    from reddiff.priors.recipes import mni_volumes

    t1, _ = mni_volumes()
    paths = []
    for f in range(files):
        volume = np.stack([fit_to_grid(t1[40 + 10 * f + 3 * s], (size, size)) for s in range(slices)])
        paths.append(simulate_fastmri(volume, folder / f"scan{f}.h5", acceleration=4.0, center_fraction=0.16, seed=f))
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--slices", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp())
    (folder / "in").mkdir()
    paths = make_files(folder / "in", files=args.files, slices=args.slices, size=args.size)
    total = args.files * args.slices
    solver = {"steps": args.steps}
    rows = []

    started = time.perf_counter()
    for path in paths:
        for index in slice_indices(path):
            reconstruct(load_problem(path, slice_index=index), n_samples=args.samples, seed=index, **solver)
    rows.append(("one slice per run (in-process)", time.perf_counter() - started))

    started = time.perf_counter()
    for path in paths:
        reconstruct_volume(path, n_samples=args.samples, **solver)
    rows.append(("a volume per run", time.perf_counter() - started))

    settings = BatchSettings(solver=solver, n_samples=args.samples, formats=("netcdf",))
    for workers in (1, 2):
        started = time.perf_counter()
        run_batch(paths, folder / f"batch{workers}", settings=settings, workers=workers, progress=False)
        rows.append((f"batch, {workers} worker(s)", time.perf_counter() - started))

    base = rows[0][1]
    print(f"\n{args.files} files x {args.slices} slices of {args.size} px, {args.steps} steps, "
          f"{args.samples} samples, {torch.get_num_threads()} thread(s) per process\n")
    print("| run | wall s | slices/min | vs one slice per run |\n|---|---|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} | {total / seconds * 60:.1f} | {base / seconds:.2f}x |")


if __name__ == "__main__":
    main()
