"""RED-Diff's cost beyond its network: per-step overhead, DPS on the same network,
batched vs sequential samples, peak memory (see :mod:`reddiff.benchmark`).

Run: ``python benchmarks/bench_solver.py`` (the same as ``reddiff benchmark``;
options: ``--size --steps --samples --repeats --threads --device``).

Measured (``reddiff benchmark --size 128 --steps 20 --samples 8 --repeats 5``, torch's
default 2 threads, AMD EPYC 2-core machine): network forward 52.1 ms, RED-Diff step
52.1 ms (1.00x a forward), deepinv DPS step on the same network 106.2 ms (2.04x);
8 samples batched 7.34 s vs one at a time 7.78 s (1.06x); peak memory beyond the loaded
model: forward 38.6 MiB, RED-Diff 42.7 MiB (1.11x), DPS 111.5 MiB (2.89x).
"""

from __future__ import annotations

import argparse

import torch

from reddiff.benchmark import format_report, solver_benchmark


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(format_report(solver_benchmark(size=args.size, steps=args.steps, n_samples=args.samples,
                                         repeats=args.repeats, device=args.device)))


if __name__ == "__main__":
    main()
