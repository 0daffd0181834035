r"""Solver benchmarks: what RED-Diff costs beyond its network, in time and memory.

Measured on the shipped ``ct`` prior and a random-inpainting problem (cheap
physics, so the numbers isolate the solver):

- **overhead**: median seconds per solver step over median seconds of one
  network forward pass (batch 1). RED-Diff calls the network once per step under
  :func:`torch.no_grad`; the rest is the data-term gradient and Adam. Target ≤ 1.2.
- **DPS**: deepinv's DPS (:class:`deepinv.sampling.DPS`) on the very same network
  (:class:`reddiff.priors.PriorDenoiser`), seconds per step over RED-Diff's: DPS
  differentiates through the network at every step.
- **batched vs sequential**: ``n`` samples as one batch against one at a time
  (same seeds, identical results), as a throughput ratio.
- **peak memory**: on CUDA ``torch.cuda.max_memory_allocated``; on Linux CPUs the
  peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``) during
  the work minus the resident set before it, each probe in a fresh process.

Timings on a shared machine are noisy: every figure is a median over ``repeats``
runs, and the interesting numbers are the ratios within one run.

For comparisons between solvers (``benchmarks/solvers.py``), :class:`CountingPrior`
counts a prior's network evaluations (and those differentiated through), :func:`measure`
times one piece of work and :func:`tensor_peak` measures the peak memory its tensors hold
(in-process and deterministic, on a CPU as on CUDA).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

from .priors.base import Prior

def inpainting_problem(size: int, *, steps: int, device="cpu", prior_name: str = "ct"):
    """The benchmark's problem: 50 % random inpainting of a flat image with the named prior.

    Returns ``(prior, physics, y, x_physical, x_network, t, dps)``.
    """
    import deepinv as dinv

    from .likelihood import GaussianLikelihood
    from .priors import PriorDenoiser, load_prior

    prior = load_prior(prior_name).to(device).eval()
    generator = torch.Generator(device).manual_seed(0)
    physics = dinv.physics.Inpainting((prior.channels, size, size), mask=0.5, device=device, rng=generator)
    physics.data_term = GaussianLikelihood(0.01)
    x_phys = prior.transform.to_physical(torch.zeros(1, prior.channels, size, size, device=device))
    y = physics.A(x_phys)
    x = torch.randn(1, prior.channels, size, size, device=device, generator=generator)
    t = torch.full((1,), 500, device=device)
    dps = dinv.sampling.DPS(PriorDenoiser(prior), num_steps=steps, rng=torch.Generator(device).manual_seed(0),
                            device=device)
    return prior, physics, y, x_phys, x, t, dps


def _median_seconds(work, repeats: int, sync) -> float:
    times = []
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        work()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def solver_benchmark(*, size: int = 128, steps: int = 20, n_samples: int = 8, repeats: int = 3,
                     device: str | None = None, memory: bool = True) -> dict:
    """Time RED-Diff against its network, DPS and itself (batched vs sequential).

    Parameters
    ----------
    size : int
        Image side in pixels.
    steps : int
        Solver steps per timed run.
    n_samples : int
        Samples for the batched-vs-sequential comparison.
    repeats : int
        Timed repeats; medians are reported.
    device : str, optional
        Default: CUDA when available.
    memory : bool
        Also measure peak memory (CPU: fresh processes).

    Returns
    -------
    dict
        Seconds (``forward_s``, ``step_s``, ``dps_step_s``, ``batched_s``,
        ``sequential_s``), ratios (``overhead``, ``dps_over_red_diff``,
        ``batched_speedup``) and, with ``memory``, peak bytes per probe.
    """
    from .solver import red_diff

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    prior, physics, y, x_phys, x, t, dps = inpainting_problem(size, steps=steps, device=device)

    def forward():
        with torch.no_grad():
            prior.eps(x, t)

    forward()  # warm-up (allocations, kernels)
    solve = dict(steps=steps, init=x_phys, seed=0)
    red_diff(y, physics, prior, **{**solve, "steps": 2})
    forward_s = _median_seconds(forward, max(repeats, 5), sync)
    step_s = _median_seconds(lambda: red_diff(y, physics, prior, **solve), repeats, sync) / steps
    dps_s = _median_seconds(lambda: dps(y, physics, seed=0), repeats, sync) / steps
    batched_s = _median_seconds(lambda: red_diff(y, physics, prior, n_samples=n_samples,
                                                 batch_size=n_samples, **solve), repeats, sync)
    sequential_s = _median_seconds(lambda: red_diff(y, physics, prior, n_samples=n_samples, batch_size=1,
                                                    **solve), repeats, sync)
    report = {"device": str(device), "size": size, "steps": steps, "n_samples": n_samples, "repeats": repeats,
              "threads": torch.get_num_threads(), "forward_s": forward_s, "step_s": step_s, "dps_step_s": dps_s,
              "batched_s": batched_s, "sequential_s": sequential_s, "overhead": step_s / forward_s,
              "dps_over_red_diff": dps_s / step_s, "batched_speedup": sequential_s / batched_s}
    if memory:
        report["peak_memory_bytes"] = peak_memory(size, device)
    return report


def peak_memory(size: int, device) -> dict:
    """Peak memory (bytes) of one forward, a 5-step RED-Diff and a 5-step DPS, beyond what was resident.

    On a CPU each probe runs in a fresh process (``python -m reddiff.benchmark
    PROBE SIZE``), so memory freed by an earlier probe cannot hide its peak.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return {name: probe(name, size, device) for name in PROBES}
    peaks = {}
    for name in PROBES:
        out = subprocess.run([sys.executable, "-m", "reddiff.benchmark", name, str(size)], capture_output=True,
                             text=True, check=True)
        value = out.stdout.strip().splitlines()[-1]
        peaks[name] = None if value == "None" else int(value)
    return peaks


#: The work whose peak memory is measured.
PROBES = ("forward", "red_diff", "dps")


def probe(name: str, size: int, device="cpu") -> int | None:
    """Peak memory growth (bytes) of one probe, after loading the prior and building the problem."""
    from .solver import red_diff

    device = torch.device(device)
    prior, physics, y, x_phys, x, t, dps = inpainting_problem(size, steps=5, device=device)
    works = {"forward": lambda: prior.eps(x, t),
             "red_diff": lambda: red_diff(y, physics, prior, steps=5, init=x_phys, seed=0),
             "dps": lambda: dps(y, physics, seed=0)}
    with torch.no_grad() if name == "forward" else torch.enable_grad():
        return _cuda_peak(works[name], device) if device.type == "cuda" else _cpu_peak(works[name])


class CountingPrior(Prior):
    r"""A prior that counts its network evaluations, for comparing solvers at equal budgets.

    Wraps any :class:`reddiff.Prior`; ``eps`` is the wrapped prior's, unchanged.

    Parameters
    ----------
    prior : reddiff.Prior

    Attributes
    ----------
    counts : dict
        ``"forward"``: images passed through the network (a batch of ``B`` counts ``B``);
        ``"backprop"``: those evaluated with autograd tracking their input (DPS and
        PiGDM differentiate through the network; RED-Diff never does). Shared by
        shallow copies (the MRI modality rescales a copy of its prior).

    Examples
    --------
    >>> from reddiff import GaussianPrior
    >>> prior = CountingPrior(GaussianPrior())
    >>> _ = prior.eps(torch.zeros(3, 1, 4, 4), torch.tensor([1, 2, 3]))
    >>> prior.counts
    {'forward': 3, 'backprop': 0}
    """

    def __init__(self, prior: Prior):
        super().__init__(prior.alphas_cumprod, prior.channels, prior.transform, name=prior.name)
        self.inner = prior
        self.info = getattr(prior, "info", {})
        self.counts = {"forward": 0, "backprop": 0}

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.counts["forward"] += x_t.shape[0]
        if torch.is_grad_enabled() and x_t.requires_grad:
            self.counts["backprop"] += x_t.shape[0]
        return self.inner.eps(x_t, t)

    def reset(self) -> None:
        """Zero the counts."""
        self.counts.update(forward=0, backprop=0)


@dataclass
class Measured:
    """What :func:`measure` returns: the work's value and its wall time.

    Attributes
    ----------
    value : object
        What the work returned.
    seconds : float
        Wall time.
    """

    value: object
    seconds: float


def measure(work, device="cpu") -> Measured:
    """Run ``work()`` once and time it (on CUDA, between synchronisations)."""
    device = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    value = work()
    sync()
    return Measured(value, time.perf_counter() - started)


def tensor_peak(work, device="cpu") -> int:
    r"""Peak growth of the memory held by tensors while ``work()`` runs, in bytes.

    :math:`\max_k \sum_{a \le k} b_a \ (\ge 0)`, the running sum of the sizes :math:`b_a` of the
    tensor allocations (positive) and frees (negative) during the work, in the order they
    happen. On CUDA it is ``torch.cuda.max_memory_allocated`` beyond what was allocated before;
    on a CPU the same quantity from the allocation events of :func:`torch.profiler.profile`
    (``profile_memory=True``). Unlike the resident set it is deterministic (it does not depend
    on what the allocator kept from earlier work, nor on one-time library set-up), and it
    leaves out memory that is not a tensor's (library workspaces, Python objects), as the CUDA
    figure does. The profiler slows the work: time it separately (:func:`measure`).

    Examples
    --------
    >>> tensor_peak(lambda: torch.zeros(1024, dtype=torch.float64))  # 1024 float64 values
    8192
    """
    device = torch.device(device)
    if device.type == "cuda":
        return _cuda_peak(work, device)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as recorded:
        work()
    events = sorted((e.start_ns(), e.nbytes()) for e in recorded.profiler.kineto_results.events()
                    if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU)
    live, peak = 0, 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def _cuda_peak(work, device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    work()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def _cpu_peak(work) -> int | None:
    """Peak RSS growth during ``work`` (Linux), None where the kernel cannot reset the peak."""
    def status(key: str) -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        before = status("VmRSS:")
    except OSError:
        return None
    work()
    return status("VmHWM:") - before


def format_report(report: dict) -> str:
    """The benchmark as a few readable lines."""
    lines = [f"RED-Diff solver benchmark: {report['size']}x{report['size']} ct prior, inpainting, "
             f"{report['device']}, {report['threads']} thread(s), medians of {report['repeats']}",
             f"  network forward (batch 1)   {report['forward_s'] * 1e3:8.1f} ms",
             f"  RED-Diff step               {report['step_s'] * 1e3:8.1f} ms  = {report['overhead']:.2f} x forward "
             "(target <= 1.2)",
             f"  DPS step (same network)     {report['dps_step_s'] * 1e3:8.1f} ms  = "
             f"{report['dps_over_red_diff']:.2f} x RED-Diff",
             f"  {report['n_samples']} samples batched         {report['batched_s']:8.2f} s",
             f"  {report['n_samples']} samples one at a time   {report['sequential_s']:8.2f} s   "
             f"batched speed-up {report['batched_speedup']:.2f} x"]
    peaks = report.get("peak_memory_bytes") or {}
    if peaks and None not in peaks.values():
        for name, value in peaks.items():
            lines.append(f"  peak memory {name:<15} {value / 2**20:8.1f} MiB")
        lines.append(f"  RED-Diff / forward memory   {peaks['red_diff'] / max(peaks['forward'], 1):8.2f} x   "
                     f"DPS / forward {peaks['dps'] / max(peaks['forward'], 1):.2f} x")
    return "\n".join(lines)


if __name__ == "__main__":  # one CPU memory probe in a fresh process: PROBE SIZE
    torch.set_num_threads(1)
    print(probe(sys.argv[1], int(sys.argv[2])))
