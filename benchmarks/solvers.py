r"""The paper's comparison, reproduced: RED-Diff against DPS, PiGDM, DiffPIR and DDRM on the same priors.

Run (one thread per process; the table, CSV and figure go into ``docs/``)::

    python benchmarks/solvers.py                       # the full protocol, 128 px
    python benchmarks/solvers.py --workers 2           # tasks on 2 processes (2 cores)
    python benchmarks/solvers.py --quick --out /tmp/q  # the CI smoke run (about a minute)
    python benchmarks/solvers.py --tasks inpainting ct30 --size 64   # a part of it
    python benchmarks/solvers.py --tasks mri4 --size 64 --merge     # redo one task, keep the rest

**Tasks.** Held-out real images only (:mod:`reddiff.datasets.samples`), each task's
solver settings tuned on a *validation* image that is neither held out nor trained on:

=============  ==========================================  ===========================  ============
task           measurement                                  test image (held out)        validation
=============  ==========================================  ===========================  ============
inpainting     50 % random pixels, Gaussian noise           ``ct_small`` (1/mm)          phantom 1000
sr4            4x bicubic downsampling, Gaussian noise      ``ct_small``                 phantom 1000
deblur         Gaussian blur (std 3 px, circular)           ``ct_small``                 phantom 1000
ct30           30 parallel views, 1e5 photons per bin       ``ct_small``                 phantom 1000
mri4 / mri8    8-coil Cartesian MRI, 4x / 8x random lines   ``mr_small`` (64 px)         MNI slice 60
sky            Moffat PSF, sky 10 e-, read noise 3 e-       ``m13`` centre               simulated sky
=============  ==========================================  ===========================  ============

The generic tasks (the paper's inpainting, 4x super-resolution and Gaussian deblurring)
use the CT prior on the CT slice with noise of 2 % of the image's range; the phantom is
:func:`reddiff.datasets.ellipse_phantom` seed 1000 (one of the CT prior's evaluation
images, never trained on), the MNI slice one the MRI prior left out, the sky
:func:`reddiff.priors.recipes.simulated_sky` seed 1000 (training used seeds 0-31).

**Solvers**, all on the same network through :class:`reddiff.benchmark.CountingPrior`
(which counts its evaluations):

* ``RED-Diff``: :func:`reddiff.red_diff` with the modality's shipped defaults
  (:data:`reddiff.DEFAULTS`; generic tasks: :data:`GENERIC_DEFAULTS`), at its default
  budget and at 25/50/100/200/500 steps; ``RED-Diff (tuned)``: ``lam`` tuned on the
  validation image like every other solver (the shipped defaults were tuned on generated
  images for CT and MRI and on untrained Hubble deep field fields for the sky, never on a
  test image here; ``docs/tuning.md``);
* ``DPS`` (:class:`deepinv.sampling.DPS`, the original residual-norm guidance, DDPM
  steps), ``PiGDM`` (:class:`deepinv.sampling.PiGDMDataFidelity` in the same
  :class:`~deepinv.sampling.PosteriorDiffusion` sampler), ``DiffPIR`` and ``DDRM``
  (:class:`deepinv.sampling.DiffPIR`, :class:`~deepinv.sampling.DDRM`), through
  :class:`reddiff.priors.PriorDenoiser`;
* ``classical``: the best of the modality's truth-tuned classical methods
  (``benchmarks/heldout.py``'s oracle; TV for the generic tasks).

deepinv's samplers work in the denoiser's units :math:`v = (u + 1)/2` of the network
units :math:`u = T(x)`; for a linear value transform
:math:`x = T^{-1}(2v - 1) = 2 s\,v + T^{-1}(-1)` (:math:`s` the transform's scale) the
problem becomes :math:`y - A\,T^{-1}(-1) = (2 s A) v + n`, with Gaussian noise (CT:
line integrals with :math:`\sigma^2 = \operatorname{mean}(1/y)`, the transmission
noise linearised). PiGDM, DiffPIR and DDRM need exactly this linear Gaussian form,
DDRM also an SVD (:class:`deepinv.physics.DecomposablePhysics`); DPS only needs a
differentiable :math:`A`. Where a solver does not apply the table says why.

**Protocol.** Budgets are network evaluations (NFE) per run: RED-Diff spends one per
step, DPS and PiGDM one forward *and one backward* pass, DiffPIR and DDRM one forward.
Each solver's one setting (RED-Diff ``lam``; DPS guidance :math:`\zeta` in units of
:math:`1/\lVert J_A\rVert`; PiGDM ``weight``; DiffPIR :math:`\zeta`; DDRM :math:`\eta`)
is tuned by PSNR on the validation image at the default budget over a grid, extended
past a winning edge; then on the test image, one run per budget (seed 0) and
``--repeats`` runs at the default budget for the spread (per-pixel std and the raw
90 % interval's coverage of the truth, :func:`reddiff.uncertainty.uncertainty_metrics`).
Every run records PSNR and SSIM (:func:`reddiff.report.image_quality`, in display units),
data consistency :math:`\lVert (y - \mu(\hat x))/\sigma\rVert / \lVert (y - \mu(x))/\sigma\rVert`
(1 = the residual of the truth, i.e. the noise), wall time (:func:`reddiff.benchmark.measure`),
counted NFE and peak memory: the peak of the bytes its tensors hold
(:func:`reddiff.benchmark.tensor_peak`, on a CPU as on CUDA), measured once per solver and
budget on a run of at most :data:`MEMORY_NFE` steps (an iteration's peak does not grow with
the step count; checked in the tests), since the profiler that counts the allocations slows
the work. ``--remeasure-memory`` re-measures that column of a saved result alone.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import heldout  # noqa: E402  (held-out images and the truth-tuned classical oracle)

import deepinv as dinv  # noqa: E402

import reddiff  # noqa: E402
from reddiff import modalities  # noqa: E402
from reddiff.benchmark import CountingPrior, measure, tensor_peak  # noqa: E402
from reddiff.defaults import SolverDefaults  # noqa: E402
from reddiff.errors import DivergenceError  # noqa: E402
from reddiff.likelihood import GaussianLikelihood, ShiftedPoissonLikelihood, TransmissionLikelihood  # noqa: E402
from reddiff.modalities import Classical, Modality, Problem  # noqa: E402
from reddiff.priors import PriorDenoiser, load_prior  # noqa: E402
from reddiff.report import image_quality  # noqa: E402
from reddiff.result import Reconstruction  # noqa: E402
from reddiff.uncertainty import uncertainty_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------- tasks

@dataclass(frozen=True)
class Task:
    """One measurement setting: a modality (or ``"generic"``) and its options.

    Its default budget is RED-Diff's default step count for the modality (:attr:`budget`).
    """

    name: str
    title: str
    modality: str
    settings: dict = field(default_factory=dict)

    @property
    def budget(self) -> int:
        """NFE of RED-Diff's shipped defaults (one per step): the budget every solver is tuned at."""
        return modalities.get(self.modality).defaults.steps


TASKS = (
    Task("inpainting", "inpainting, 50 % random pixels", "generic", {"task": "inpaint-random"}),
    Task("sr4", "4x super-resolution (bicubic)", "generic", {"task": "sr-bicubic"}),
    Task("deblur", "Gaussian deblurring (3 px)", "generic", {"task": "deblur-gaussian"}),
    Task("ct30", "CT, 30 views, 1e5 photons", "ct", {"views": 30}),
    Task("mri4", "MRI, 8 coils, 4x", "mri", {"acceleration": 4.0}),
    Task("mri8", "MRI, 8 coils, 8x", "mri", {"acceleration": 8.0}),
    Task("sky", "sky, Moffat PSF, Poisson + read noise", "astro", {}),
)
TASK_NAMES = tuple(t.name for t in TASKS)
QUICK_TASKS = ("inpainting", "ct30", "sky")

#: Relative noise of the generic tasks: standard deviation over the image's range.
GENERIC_NOISE = 0.02
#: RED-Diff's row for the generic tasks (the CT prior): ``lam`` at noise 0.04 in network
#: units, scaled as 1/noise like the modalities' rows; chosen from a 64 px exploration on
#: the validation phantom (inpainting, 50 steps: lam 10-100 within 0.2 dB, 1000 -5 dB).
GENERIC_DEFAULTS = SolverDefaults(prior="ct", steps=100, lr=0.1, lam=25.0, noise_reference=0.04,
                                  weighting="sqrt", timesteps="descending", sigma_x0=0.0)


class GenericTasks(Modality):
    """The paper's restoration tasks on CT attenuation images (a benchmark-only modality).

    Registered under ``"generic"`` so that the pipeline's helpers and the held-out
    oracle treat them like any modality: images in 1/mm, the CT prior, Gaussian noise,
    TV (truth-tuned weight) as the classical method.
    """

    name = "generic"
    title = "generic restoration (CT prior)"
    defaults = GENERIC_DEFAULTS

    def noise_level(self, problem: Problem) -> float:
        """Gaussian sigma in the CT prior's network units."""
        return float(problem.physics.data_term.sigma) / shipped_prior("ct").transform.scale

    def classical_methods(self, problem: Problem) -> list[Classical]:
        """Non-negative TV-regularised least squares (FISTA, 100 iterations) over its weight."""
        from reddiff.operators.base import tv_reconstruction

        sigma = float(problem.physics.data_term.sigma)
        return [Classical("TV", "lam", tuple(sigma * f for f in (0.03, 0.1, 0.3, 1.0)),
                          lambda lam: tv_reconstruction(problem.y, problem.physics, lam=lam, iterations=100,
                                                        init=problem.init, nonnegative=True))]


modalities.register(GenericTasks, replace=True)


@functools.lru_cache(maxsize=None)
def shipped_prior(name: str):
    """A shipped prior, loaded once per process (setups wrap it, they never change it)."""
    return load_prior(name).eval()


def get_task(name: str) -> Task:
    for task in TASKS:
        if task.name == name:
            return task
    raise KeyError(f"unknown task {name!r}; expected one of {', '.join(TASK_NAMES)}")


def heldout_image(task: Task, size: int, mri_size: int) -> np.ndarray:
    """The held-out image of a task (physical units), resized to ``size`` (MRI: ``mri_size``)."""
    sample = {"ct": "ct_small", "generic": "ct_small", "mri": "mr_small", "astro": "m13"}[task.modality]
    modality = "ct" if task.modality == "generic" else task.modality
    native = {"ct_small": 128, "mr_small": 64, "m13": 128}[sample]
    side = mri_size if modality == "mri" else size
    if sample == "m13":  # a centre cutout of the cluster, not a resampled one
        return heldout._centre(heldout.image_for(heldout.Case("astro", "m13", "m13 256", {})), side)
    image = heldout.image_for(heldout.Case(modality, sample, f"{sample} {native}", {}))
    return image if side == native else heldout._resize(image, (side, side))


def validation_image(task: Task, size: int, mri_size: int) -> np.ndarray:
    """An image of the task's kind that is neither held out nor trained on (see the module notes)."""
    from reddiff.priors.recipes import MRI_EVALUATION_SLICES, simulated_sky

    if task.modality in ("ct", "generic"):
        from reddiff.datasets import ellipse_phantom
        from reddiff.operators.ct import hu_to_mu

        return np.asarray(hu_to_mu(ellipse_phantom((size, size), seed=1000)), dtype=np.float32)
    if task.modality == "mri":
        from reddiff.datasets import sample_image

        slice_ = sample_image("mni152_t1").array[MRI_EVALUATION_SLICES[0]][52:180, 34:162]
        slice_ = heldout._resize(np.clip(slice_, 0, None), (mri_size, mri_size))
        return slice_ / slice_.max()
    return simulated_sky(size, seed=1000).astype(np.float32)


def build_problem(task: Task, image: np.ndarray, seed: int) -> Problem:
    """The task's measurement simulated from ``image`` with noise ``seed``."""
    if task.modality == "generic":
        return generic_problem(task.settings["task"], image, seed)
    return modalities.get(task.modality).canonical_problem(image=image, seed=seed, **task.settings)


def generic_problem(name: str, image: np.ndarray, seed: int) -> Problem:
    """Inpainting / super-resolution / deblurring of ``image`` with Gaussian noise (``GENERIC_NOISE``)."""
    from reddiff.operators import generic

    x = torch.as_tensor(image, dtype=torch.float32)[None, None]
    sigma = GENERIC_NOISE * float(x.max() - x.min())
    if name == "deblur-gaussian":  # circular, so DDRM has its SVD (deepinv's BlurFFT)
        physics = dinv.physics.BlurFFT(img_size=tuple(x.shape[1:]), filter=generic.gaussian_kernel(3.0)[None, None])
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            y = physics.A(x) + sigma * torch.randn(physics.A(x).shape, generator=g)
        physics.noise_model = dinv.physics.GaussianNoise(sigma)
        physics.data_term = GaussianLikelihood(sigma)
        start = y
    else:
        m = generic.simulate(x, task=name, sigma=sigma, seed=seed)
        physics, y = m.physics, m.y
        with torch.no_grad():
            start = physics.A_adjoint(y) if name.startswith("inpaint") else physics.A_dagger(y)
    start = start.clamp_min(0)
    return Problem("generic", y, physics, start, "start", init=start, measurement_image=start, truth=x,
                   description=f"{name}, Gaussian noise {sigma:.3g} 1/mm")


# ------------------------------------------------------------------------- deepinv's view

@dataclass
class View:
    """A problem as deepinv's samplers see it: images in the denoiser's [0, 1] units.

    ``physics`` maps :math:`v` to the measurement ``y``; ``linear`` says whether it is
    a :class:`deepinv.physics.LinearPhysics` with Gaussian noise (``sigma``),
    ``decomposable`` whether it also has an SVD.
    """

    y: torch.Tensor
    physics: object
    linear: bool
    decomposable: bool
    sigma: float | None
    why_not_linear: str = ""


def gaussian_measurement(problem: Problem):
    """``(y, sigma)`` of a Gaussian form of the measurement, or ``(None, reason)``.

    Transmission counts become line integrals :math:`-\\log(y/I_0)` with
    :math:`\\sigma^2 = \\operatorname{mean}(1/y)` (their variance, linearised).
    """
    term = problem.physics.data_term
    if isinstance(term, GaussianLikelihood):
        return problem.y, float(term.sigma)
    if isinstance(term, TransmissionLikelihood):
        from reddiff.operators import ct

        counts = problem.y.clamp_min(1.0)
        return ct.line_integrals(problem.y, term.I0), float((1.0 / counts).mean().sqrt())
    return None, f"{type(term).__name__} noise has no Gaussian form"


def deepinv_view(problem: Problem, prior, device) -> View:
    """The problem in the denoiser's units (see :class:`View` and the module notes)."""
    physics = problem.physics
    kind = prior.transform.to_config().get("kind")
    y, sigma = gaussian_measurement(problem)
    reason = ("" if kind in ("identity", "affine") else f"the prior's value transform ({kind}) is nonlinear")
    reason = reason or ("" if isinstance(physics, dinv.physics.LinearPhysics) else "the physics is nonlinear")
    reason = reason or ("" if y is not None else sigma)
    shape = (1, *problem.init.shape[1:])
    if reason:
        mean = expected_measurement(problem)
        nonlinear = dinv.physics.Physics(A=lambda v: mean(physics.A(prior.transform.to_physical(2 * v - 1))))
        return View(problem.y.to(device), nonlinear.to(device), False, False, None, reason)
    to_physical = prior.transform.to_physical
    scale = 2 * float(to_physical(torch.ones(())) - to_physical(torch.zeros(())))
    with torch.no_grad():
        y = (y - physics.A(to_physical(-torch.ones(shape, device=device)))).to(device)
    noise = dinv.physics.GaussianNoise(sigma)
    if isinstance(physics, dinv.physics.DecomposablePhysics):
        view = dinv.physics.DecomposablePhysics(U=physics.U, U_adjoint=physics.U_adjoint, V=physics.V,
                                                V_adjoint=physics.V_adjoint, mask=scale * physics.mask,
                                                noise_model=noise, device=device)
        return View(y, view.to(device), True, True, sigma)
    view = dinv.physics.LinearPhysics(A=lambda v: physics.A(scale * v),
                                      A_adjoint=lambda r: scale * physics.A_adjoint(r),
                                      noise_model=noise, device=device)
    return View(y, view.to(device), True, False, sigma)


def expected_measurement(problem: Problem):
    """:math:`\\mu(Ax)`, the mean of the measurement given ``A(x)``, for the problem's data term."""
    term = problem.physics.data_term
    if isinstance(term, TransmissionLikelihood):
        return lambda ax: term.I0.to(ax.device) * torch.exp(-ax)
    if isinstance(term, ShiftedPoissonLikelihood):
        return lambda ax: ax + term.background
    return lambda ax: ax


def measurement_variance(problem: Problem, ax_true: torch.Tensor) -> torch.Tensor:
    """The measurement's variance at the truth, for the data term."""
    term = problem.physics.data_term
    if isinstance(term, GaussianLikelihood):
        return torch.full_like(ax_true, float(term.sigma) ** 2)
    if isinstance(term, ShiftedPoissonLikelihood):
        return (ax_true + term.background).clamp_min(0) + term.read_noise ** 2 + 1e-6
    return expected_measurement(problem)(ax_true).clamp_min(1e-6)


def data_consistency(problem: Problem, x: torch.Tensor) -> float:
    r"""Whitened residual of ``x`` over that of the truth: :math:`\lVert (y - \mu(Ax))/\sigma\rVert /
    \lVert (y - \mu(Ax_{true}))/\sigma\rVert` (1: fits the data as well as the truth, i.e. to the noise)."""
    physics, mean = problem.physics, expected_measurement(problem)
    with torch.no_grad():
        ax_true = physics.A(problem.truth)
        std = measurement_variance(problem, ax_true).sqrt()
        ours = ((problem.y - mean(physics.A(x.to(problem.y.device)))) / std).norm()
        noise = ((problem.y - mean(ax_true)) / std).norm()
    return float(ours / noise)


# ------------------------------------------------------------------------------- the solvers

@dataclass
class Setup:
    """Everything a solver needs for one problem: the problem, its prior and deepinv's view."""

    task: Task
    problem: Problem
    prior: CountingPrior
    view: View
    red_diff: dict
    device: torch.device
    guidance_unit: float = 1.0

    @property
    def start(self) -> torch.Tensor:
        """The problem's starting image in the denoiser's units."""
        return ((self.prior.transform.to_model(self.problem.init) + 1) / 2).to(self.device)

    def physical(self, v: torch.Tensor) -> torch.Tensor:
        """Denoiser units back to physical units (CPU, float32)."""
        return self.prior.transform.to_physical(2 * v.float() - 1).detach().cpu()


def make_setup(task: Task, image: np.ndarray, seed: int, device) -> Setup:
    device = torch.device(device)
    problem = build_problem(task, image, seed)
    modality = modalities.get(problem.modality)
    prior = modality.prior(problem, CountingPrior(shipped_prior(modality.defaults.prior))).to(device).eval()
    physics = problem.physics.to(device) if hasattr(problem.physics, "to") else problem.physics
    problem.physics = physics
    problem.y, problem.init = problem.y.to(device), problem.init.to(device)
    problem.truth = problem.truth.to(device)
    settings = modality.defaults.as_kwargs(noise=modality.noise_level(problem), shape=problem.baseline.shape)
    # a fixed weight: lam="auto"'s pilot runs would spend network evaluations outside the budget
    settings["lam"] = modality.defaults.lam_for(modality.noise_level(problem))
    setup = Setup(task, problem, prior, deepinv_view(problem, prior, device), settings, device)
    setup.guidance_unit = 1.0 / jacobian_norm(setup.view, setup.start)
    return setup


def jacobian_norm(view: View, v0: torch.Tensor, iterations: int = 20) -> float:
    r""":math:`\lVert J_A(v_0)\rVert_2` by power iteration on :math:`J^T J` (the scale of DPS's guidance gradient)."""
    physics = view.physics
    u = torch.randn(v0.shape, generator=torch.Generator(device=v0.device).manual_seed(0), device=v0.device)
    value = 1.0
    for _ in range(iterations):
        u = u / u.norm()
        if view.linear:
            with torch.no_grad():
                u = physics.A_adjoint(physics.A(u))
        else:
            _, ju = torch.autograd.functional.jvp(physics.A, v0, u)
            _, u = torch.autograd.functional.vjp(physics.A, v0, ju)
        value = float(u.norm())
    return math.sqrt(value)


def run_red_diff(setup: Setup, value, budget: int, seed: int) -> torch.Tensor:
    """RED-Diff with the row's settings, ``lam`` times ``value`` (1: the defaults)."""
    settings = {**setup.red_diff, "steps": budget, "lam": setup.red_diff["lam"] * value}
    result = reddiff.red_diff(setup.problem.y, setup.problem.physics, setup.prior, init=setup.problem.init,
                              seed=seed, **settings)
    return result.tensor("mean").cpu()


def _rng(setup: Setup, seed: int) -> torch.Generator:
    return torch.Generator(setup.device).manual_seed(seed)


def run_dps(setup: Setup, value, budget: int, seed: int) -> torch.Tensor:
    """deepinv's DPS (residual-norm guidance, DDPM steps); ``value`` is :math:`\\zeta\\,\\lVert J_A\\rVert`."""
    sampler = dinv.sampling.DPS(PriorDenoiser(setup.prior), num_steps=budget + 1, weight=value * setup.guidance_unit,
                                rng=_rng(setup, seed), device=setup.device)
    return setup.physical(sampler(setup.view.y.clone(), setup.view.physics, x_init=tuple(setup.start.shape),
                                  seed=seed))


def run_pigdm(setup: Setup, value, budget: int, seed: int) -> torch.Tensor:
    """PiGDM: deepinv's :class:`~deepinv.sampling.PiGDMDataFidelity` (``weight=value``) in DPS's sampler."""
    known = setup.prior.info.get("network_range")  # clip the denoised image to the prior's range, if known
    clip = None if known is None else ((known[0] + 1) / 2, (known[1] + 1) / 2)
    fidelity = dinv.sampling.PiGDMDataFidelity(weight=value, clip=clip)
    timesteps = torch.linspace(1, 0, budget + 1, dtype=torch.float64, device=setup.device)
    sampler = dinv.sampling.PosteriorDiffusion(
        data_fidelity=fidelity, denoiser=PriorDenoiser(setup.prior),
        sde=dinv.sampling.VariancePreservingDiffusion(device=setup.device),
        solver=dinv.sampling.DDPMSolver(timesteps=timesteps, rng=_rng(setup, seed)), device=setup.device)
    return setup.physical(sampler(setup.view.y.clone(), setup.view.physics, x_init=tuple(setup.start.shape),
                                  seed=seed))


def run_diffpir(setup: Setup, value, budget: int, seed: int) -> torch.Tensor:
    """deepinv's DiffPIR (``lambda_`` 7, ``zeta=value``) from the problem's starting image."""
    sampler = dinv.sampling.DiffPIR(PriorDenoiser(setup.prior), dinv.optim.data_fidelity.L2(), sigma=setup.view.sigma,
                                    max_iter=budget, zeta=value, device=setup.device)
    with torch.random.fork_rng(devices=[setup.device] if setup.device.type == "cuda" else []):
        torch.manual_seed(seed)  # DiffPIR draws from the global generator
        return setup.physical(sampler(setup.view.y.clone(), setup.view.physics, x_init=setup.start))


def run_ddrm(setup: Setup, value, budget: int, seed: int) -> torch.Tensor:
    """deepinv's DDRM (``eta=value``, noise levels 1 to 0 in ``budget`` steps; the last, at 0, is free)."""
    sampler = dinv.sampling.DDRM(PriorDenoiser(setup.prior), sigmas=np.linspace(1, 0, budget + 1), eta=value)
    with torch.random.fork_rng(devices=[setup.device] if setup.device.type == "cuda" else []):
        torch.manual_seed(seed)  # DDRM draws from the global generator
        return setup.physical(sampler(setup.view.y.clone(), setup.view.physics))  # it writes into y


@dataclass(frozen=True)
class Solver:
    """A solver of the comparison: how to run it, what it needs and its tuned setting.

    ``grid`` holds values of ``parameter`` tried on the validation image (extended
    geometrically past a winning edge when ``extend``); ``needs`` is ``"any"``,
    ``"linear"`` (linear Gaussian in the prior's units) or ``"svd"`` (also decomposable).
    """

    name: str
    parameter: str
    grid: tuple
    run: object
    needs: str = "any"
    extend: bool = True
    backprop: bool = False


SOLVERS = (
    Solver("RED-Diff", "lam factor", (1.0,), run_red_diff, extend=False),
    Solver("RED-Diff (tuned)", "lam factor", (0.1, 0.3, 1.0, 3.0, 10.0), run_red_diff),
    Solver("DPS", "zeta", (10.0, 30.0, 100.0, 300.0), run_dps, backprop=True),
    Solver("PiGDM", "weight", (0.1, 0.3, 1.0, 3.0), run_pigdm, needs="linear", backprop=True),
    Solver("DiffPIR", "zeta", (0.1, 0.3, 0.6, 1.0), run_diffpir, needs="linear", extend=False),
    Solver("DDRM", "eta", (0.25, 0.5, 0.85, 1.0), run_ddrm, needs="svd", extend=False),
)
SOLVER_NAMES = tuple(s.name for s in SOLVERS) + ("classical",)


def why_not(solver: Solver, setup: Setup) -> str | None:
    """Why ``solver`` does not apply to ``setup`` (None if it does)."""
    view = setup.view
    if solver.needs in ("linear", "svd") and not view.linear:
        return f"needs a linear Gaussian problem in the prior's units; here {view.why_not_linear}"
    if solver.needs == "svd" and not view.decomposable:
        return (f"needs an SVD of the forward operator (deepinv DecomposablePhysics); "
                f"{type(setup.problem.physics).__name__} has none in deepinv")
    return None


# ------------------------------------------------------------------------------ evaluation

def quality(problem: Problem, x: torch.Tensor) -> dict:
    """PSNR and SSIM in the modality's display units (MRI on magnitudes)."""
    modality = modalities.get(problem.modality)
    truth = modality.display_image(problem.truth.cpu())
    return image_quality(truth, modality.display_image(x.cpu()))


def spread(problem: Problem, samples: torch.Tensor) -> dict:
    """Std and raw 90 % coverage of repeated runs (display units)."""
    modality = modalities.get(problem.modality)
    result = modality.to_display_units(Reconstruction.from_samples(samples))
    reference = modality.reference_for(result, dataclasses.replace(problem, truth=problem.truth.cpu()))
    metrics = uncertainty_metrics(result, reference[0].cpu())
    return {"std": metrics["mean_std"], "coverage90": metrics["coverage"],
            "psnr_of_mean": image_quality(reference.cpu(), result.tensor("mean"))["psnr"]}


def safe_psnr(setup: Setup, solver: Solver, value, budget: int, seed: int = 0) -> float:
    """PSNR of one run, -inf when the run diverges."""
    try:
        psnr = quality(setup.problem, solver.run(setup, value, budget, seed))["psnr"]
    except DivergenceError:
        return -math.inf
    return psnr if math.isfinite(psnr) else -math.inf


def best_on_grid(score, values, *, extend: bool = True, limit: int = 3):
    """The value with the highest ``score(value)``, the grid extended geometrically past a winning
    edge (at most ``limit`` times); returns ``(best, {value: score})``."""
    scores = {v: score(v) for v in values}
    for _ in range(limit if extend and len(values) > 1 else 0):
        ordered, top = sorted(scores), max(scores, key=scores.get)
        if top not in (ordered[0], ordered[-1]):
            break
        value = top * (ordered[-1] / ordered[-2] if top == ordered[-1] else ordered[0] / ordered[1])
        scores[value] = score(value)
    return max(scores, key=scores.get), scores


def tune(solver: Solver, validation: Setup, budget: int):
    """The solver's setting with the best PSNR on the validation problem at ``budget``."""
    return best_on_grid(lambda v: safe_psnr(validation, solver, v, budget), solver.grid, extend=solver.extend)


def one_run(solver: Solver, setup: Setup, value, budget: int, seed: int) -> dict:
    """One timed run: the image (physical units), its quality, seconds and NFE counts."""
    setup.prior.reset()
    done = measure(lambda: solver.run(setup, value, budget, seed), setup.device)
    return {"image": done.value, **quality(setup.problem, done.value), "seconds": done.seconds,
            **setup.prior.counts}


#: Steps of the run whose tensor peak stands for a solver's at any budget.
MEMORY_NFE = 10


def peak_mib(solver: Solver, setup: Setup, value, budget: int) -> float:
    """The peak MiB held by tensors in a run of ``min(budget, MEMORY_NFE)`` steps (seed 0)."""
    return tensor_peak(lambda: solver.run(setup, value, min(budget, MEMORY_NFE), 0), setup.device) / 2**20


def summarise(setup: Setup, runs: list[dict], peak: float) -> dict:
    """One row from runs at one budget and its ``peak`` MiB: medians, the first run's data
    consistency and NFE, the spread."""
    first = runs[0]
    row = {"psnr": statistics.median(r["psnr"] for r in runs), "ssim": statistics.median(r["ssim"] for r in runs),
           "data_consistency": data_consistency(setup.problem, first["image"]),
           "seconds": statistics.median(r["seconds"] for r in runs), "peak_mib": peak,
           "nfe": first["forward"], "nfe_backprop": first["backprop"], "runs": len(runs)}
    if len(runs) > 1:
        row.update(spread(setup.problem, torch.cat([r["image"] for r in runs])))
    return row


def classical(problem: Problem) -> tuple[dict, str]:
    """The truth-tuned classical method (``heldout.oracle``, on the CPU), re-run once to time it
    and once to measure its tensor peak."""
    label, _, _ = heldout.oracle(problem, problem.truth)
    work = classical_work(problem, label)
    done = measure(work)
    row = {**quality(problem, done.value), "data_consistency": data_consistency(problem, done.value),
           "seconds": done.seconds, "peak_mib": tensor_peak(work) / 2**20, "nfe": 0, "nfe_backprop": 0, "runs": 1}
    return row, label


def classical_work(problem: Problem, label: str):
    """The classical method a label such as ``"TV (lam 0.01)"`` names, at its value, as a call."""
    name, value = label.split(" (")[0], float(label.rsplit(" ", 1)[1].rstrip(")"))
    method = next(m for m in modalities.get(problem.modality).classical_methods(problem) if m.name == name)
    return lambda: method.run(int(value) if method.integer else value)


@dataclass
class Config:
    """What one run of the benchmark does."""

    size: int = 128
    mri_size: int = 64
    repeats: int = 3
    red_diff_steps: tuple = (25, 50, 100, 200, 500)
    budgets: tuple = (25, 50, 100, 200)
    default_budget: int | None = None  # None: each task's own
    device: str = "cpu"
    solvers: tuple = SOLVER_NAMES


def schedule(config: Config, budget: int, solvers) -> list[tuple]:
    """``(nfe, seed, solver)`` in run order: each budget of the curves (one seed), then the
    default ``budget`` ``config.repeats`` times, the solvers interleaved within each."""
    def budgets(solver):
        own = {"RED-Diff": config.red_diff_steps, "RED-Diff (tuned)": ()}.get(solver.name, config.budgets)
        return set(own) - {budget}

    order = [(nfe, 0, s) for nfe in sorted(set().union(*map(budgets, solvers))) for s in solvers if nfe in budgets(s)]
    return order + [(budget, seed, s) for seed in range(config.repeats) for s in solvers]


def run_task(task_name: str, config: Config) -> dict:
    """Tune every solver on the validation image, then run and score them on the test image;
    returns rows, tuned settings and notes."""
    torch.set_num_threads(1)
    task = get_task(task_name)
    budget = config.default_budget or task.budget
    started = time.perf_counter()
    image = heldout_image(task, config.size, config.mri_size)
    test = make_setup(task, image, seed=0, device=config.device)
    validation = make_setup(task, validation_image(task, config.size, config.mri_size), seed=1,
                            device=config.device)
    base = {"task": task.name, "title": task.title, "size": tuple(test.problem.truth.shape[-2:])[0],
            "default_budget": budget}
    rows, tuned, notes, chosen = [], [], [], {}
    for solver in (s for s in SOLVERS if s.name in config.solvers):
        reason = why_not(solver, test)
        if reason:
            notes.append({"task": task.name, "solver": solver.name, "reason": reason})
            continue
        chosen[solver.name], scores = tune(solver, validation, budget)
        tuned.append({"task": task.name, "solver": solver.name, "parameter": solver.parameter,
                      "value": chosen[solver.name], "grid": {f"{k:g}": round(v, 2) for k, v in sorted(scores.items())}})
    # the runs interleave the solvers (budget by budget, seed by seed), so a machine whose load
    # drifts slows them all alike
    runs = {}
    for nfe, seed, solver in schedule(config, budget, [s for s in SOLVERS if s.name in chosen]):
        runs.setdefault((solver.name, nfe), []).append(one_run(solver, test, chosen[solver.name], nfe, seed))
    for (name, nfe), done in runs.items():
        solver = next(s for s in SOLVERS if s.name == name)
        row = summarise(test, done, peak_mib(solver, test, chosen[name], nfe))
        rows.append({**base, "solver": name, "budget": nfe, "setting": f"{solver.parameter}={chosen[name]:.3g}", **row})
        print(f"{task.name:10s} {name:17s} NFE {row['nfe']:4d}: PSNR {row['psnr']:6.2f}  {row['seconds']:7.2f} s  "
              f"{row['peak_mib']:7.1f} MiB", flush=True)
    if "classical" in config.solvers:
        row, label = classical(build_problem(task, image, seed=0))
        rows.append({**base, "solver": "classical", "budget": 0, "setting": label, **row})
        print(f"{task.name:10s} classical {label}: PSNR {row['psnr']:.2f}", flush=True)
    return {"rows": rows, "tuned": tuned, "notes": notes, "seconds": time.perf_counter() - started}


# ------------------------------------------------------------------------- targets, outputs

COLUMNS = ("task", "title", "size", "solver", "budget", "default_budget", "setting", "nfe", "nfe_backprop", "psnr",
           "ssim", "data_consistency", "seconds", "peak_mib", "runs", "std", "coverage90", "psnr_of_mean")
#: Solvers whose curves RED-Diff's default point is compared with.
RIVALS = ("DPS", "PiGDM", "DiffPIR", "DDRM")


def curve_at(points, seconds: float) -> float | None:
    """A solver's quality-against-time curve at ``seconds``: the line through its points that no
    faster point beats (the frontier), linear in log time; None before its fastest point."""
    points = sorted(points)
    if not points or seconds < points[0][0]:
        return None
    frontier = []
    for t, psnr in points:
        if not frontier or psnr > frontier[-1][1]:
            frontier.append((math.log(t), psnr))
    x = math.log(seconds)
    for (x0, p0), (x1, p1) in zip(frontier, frontier[1:]):
        if x0 <= x <= x1:
            return p0 if x1 == x0 else p0 + (p1 - p0) * (x - x0) / (x1 - x0)
    return frontier[-1][1]


def targets(rows: list[dict]) -> list[dict]:
    """Per task, the issue's targets at RED-Diff's default budget (None where a solver did not run).

    ``speedup`` = DPS seconds / RED-Diff seconds (target >= 2), ``memory_ratio`` = DPS peak /
    RED-Diff peak (>= 2), ``psnr_margin`` = RED-Diff - DPS (>= 0), ``beaten_by``: rivals whose
    curve lies above RED-Diff's default point at its time (target: none).
    """
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        at = {r["solver"]: r for r in mine if r["budget"] == r["default_budget"]}
        red, dps = at.get("RED-Diff"), at.get("DPS")
        if red is None:
            continue
        entry = {"task": task, "budget": red["default_budget"], "red": red, "dps": dps, "speedup": None,
                 "memory_ratio": None, "psnr_margin": None, "curves": {}, "beaten_by": []}
        if dps is not None:
            entry["speedup"] = dps["seconds"] / red["seconds"]
            entry["memory_ratio"] = dps["peak_mib"] / red["peak_mib"] if red["peak_mib"] > 0 else math.nan
            entry["psnr_margin"] = red["psnr"] - dps["psnr"]
        for rival in RIVALS:
            value = curve_at([(r["seconds"], r["psnr"]) for r in mine if r["solver"] == rival], red["seconds"])
            if value is not None:
                entry["curves"][rival] = value
                if value > red["psnr"]:
                    entry["beaten_by"].append(rival)
        classical_row = next((r for r in mine if r["solver"] == "classical"), None)
        entry["classical_margin"] = red["psnr"] - classical_row["psnr"] if classical_row else None
        out.append(entry)
    return out


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})


def _cell(value):
    """A CSV cell: floats to 6 significant digits, a missing number (NaN) empty, as :func:`load` reads it back."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def figure(rows: list[dict], path: Path) -> None:
    """PSNR against seconds per run, one panel per task, one curve per solver."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    columns = min(3, len(tasks))
    lines = math.ceil(len(tasks) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.4 * lines), squeeze=False)
    colours = dict(zip(SOLVER_NAMES, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, task in zip(axes.flat, tasks):
        mine = [r for r in rows if r["task"] == task]
        for solver in SOLVER_NAMES:
            points = sorted((r["seconds"], r["psnr"], r["budget"]) for r in mine if r["solver"] == solver)
            if not points:
                continue
            t, p, _ = zip(*points)
            style = {"marker": "s", "linestyle": "none"} if solver == "classical" or len(points) == 1 else \
                {"marker": "o", "linestyle": "-"}
            ax.plot(t, p, color=colours[solver], label=solver, markersize=4, **style)
        red = next(r for r in mine if r["solver"] == "RED-Diff" and r["budget"] == r["default_budget"]) \
            if any(r["solver"] == "RED-Diff" for r in mine) else None
        if red:
            ax.plot([red["seconds"]], [red["psnr"]], marker="*", markersize=12, color=colours["RED-Diff"],
                    linestyle="none")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{task} ({mine[0]['size']} px)", fontsize=9)
        ax.set_xlabel("seconds per run")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _f(value, fmt: str, missing: str = "–") -> str:
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def _verdict(value, target: float, fmt: str) -> str:
    if value is None:
        return "not run"
    return f"{value:{fmt}} {'met' if value >= target else '**not met**'}"


def targets_table(entries: list[dict]) -> list[str]:
    lines = ["| task | NFE | RED-Diff s / MiB | DPS s / MiB | DPS/RED-Diff time (>= 2) | DPS/RED-Diff memory (>= 2) "
             "| PSNR RED-Diff - DPS (>= 0) | rival curves above RED-Diff's point | RED-Diff - classical |",
             "|" + "---|" * 9]
    for e in entries:
        red, dps = e["red"], e["dps"]
        curves = ", ".join(f"{k} {v:.2f}" for k, v in e["curves"].items() if k in e["beaten_by"])
        lines.append(f"| {e['task']} | {e['budget']} | {red['seconds']:.2f} / {_f(red['peak_mib'], '.0f')} | "
                     f"{_f(dps and dps['seconds'], '.2f')} / {_f(dps and dps['peak_mib'], '.0f')} | "
                     f"{_verdict(e['speedup'], 2.0, '.2f')} | {_verdict(e['memory_ratio'], 2.0, '.2f')} | "
                     f"{_verdict(e['psnr_margin'], 0.0, '+.2f')} | "
                     f"{'none (met)' if not e['beaten_by'] else '**' + curves + '** (not met)'} | "
                     f"{_f(e['classical_margin'], '+.2f')} |")
    return lines


def default_budget_table(rows: list[dict], task: str) -> list[str]:
    mine = [r for r in rows if r["task"] == task and (r["budget"] == r["default_budget"] or r["solver"] == "classical")]
    lines = ["| solver | setting | NFE (with backprop) | PSNR | SSIM | data consistency | s/run | peak MiB "
             "| runs | mean std | raw 90% coverage |", "|" + "---|" * 11]
    for r in sorted(mine, key=lambda r: SOLVER_NAMES.index(r["solver"])):
        lines.append(f"| {r['solver']} | {r['setting']} | {r['nfe']} ({r['nfe_backprop']}) | {r['psnr']:.2f} | "
                     f"{r['ssim']:.3f} | {r['data_consistency']:.2f} | {r['seconds']:.2f} | "
                     f"{_f(r['peak_mib'], '.0f')} | "
                     f"{r['runs']} | {_f(r.get('std'), '.3g')} | {_f(r.get('coverage90'), '.0%')} |")
    return lines


def curves_table(rows: list[dict]) -> list[str]:
    budgets = sorted({r["budget"] for r in rows if r["solver"] != "classical"})
    lines = ["| task | solver | " + " | ".join(f"NFE {b}" for b in budgets) + " |", "|" + "---|" * (len(budgets) + 2)]
    for task in dict.fromkeys(r["task"] for r in rows):
        for solver in SOLVER_NAMES[:-1]:
            got = {r["budget"]: r for r in rows if r["task"] == task and r["solver"] == solver}
            if got:
                cells = [f"{got[b]['psnr']:.2f} dB, {got[b]['seconds']:.2f} s" if b in got else "" for b in budgets]
                lines.append(f"| {task} | {solver} | " + " | ".join(cells) + " |")
    return lines


def markdown(result: dict, figure_name: str) -> str:
    """docs/benchmarks.md: what was run, the targets, the tables, the figure and what was not run."""
    rows, entries = result["rows"], targets(result["rows"])
    run_tasks = list(dict.fromkeys(r["task"] for r in rows))
    runs = result["runs"]
    lines = ["# Solver comparison: RED-Diff, DPS, PiGDM, DiffPIR, DDRM and classical methods", "",
             *(f"*{_provenance(run, len(runs) > 1)}*" for run in runs), "",
             "*Tasks, images, solvers and protocol: the docstring of `benchmarks/solvers.py`; every number "
             "of a task comes from the one run named for it.*", "",
             "## Targets", "",
             "At RED-Diff's default budget (NFE column), RED-Diff with its default settings against DPS on the "
             "same network; then whether any rival's quality-against-time curve (through its undominated points, "
             "linear in log time) lies above RED-Diff's default point at RED-Diff's time.", "",
             *targets_table(entries), "",
             f"![PSNR against seconds per run]({figure_name})", "",
             "*PSNR against wall time per run, one curve per solver over its budgets (the star: RED-Diff at its "
             "default budget; squares: single settings, e.g. the truth-tuned classical method).*", ""]
    for task in run_tasks:
        first = next(r for r in rows if r["task"] == task)
        repeats = _config(next(run for run in runs if task in run["tasks"])).repeats
        lines += [f"## {task}: {first['title']}, {first['size']} px", "",
                  f"At the default budget, {repeats} runs (PSNR and SSIM: medians of single runs; "
                  "data consistency: whitened residual over the truth's, 1 = the noise level).", "",
                  *default_budget_table(rows, task), ""]
    lines += ["## Quality against time (single runs, seed 0; the default budget: median of the runs)", "",
              *curves_table(rows), "", "## Settings tuned on the validation image", "",
              "| task | solver | parameter | chosen | PSNR on the validation image per value |",
              "|---|---|---|---|---|"]
    for t in result["tuned"]:
        grid = ", ".join(f"{k}: {v}" for k, v in t["grid"].items())
        lines.append(f"| {t['task']} | {t['solver']} | {t['parameter']} | {t['value']:.3g} | {grid} |")
    lines += ["", "## Where a solver does not apply", ""]
    lines += [f"- **{n['solver']}** on {n['task']}: {n['reason']}." for n in result["notes"]] or ["- (none)"]
    missing_tasks = [t.name for t in TASKS if t.name not in run_tasks]
    full = Config()
    lines += ["", "## Not covered by this run", ""]
    lines.append(f"- Tasks not run: {', '.join(missing_tasks)}." if missing_tasks else "- All tasks ran.")
    for run in runs:
        config, where = _config(run), f" ({', '.join(run['tasks'])})" if len(runs) > 1 else ""
        for key, label in (("size", "image side"), ("mri_size", "MRI image side"),
                           ("repeats", "runs at the default budget"), ("red_diff_steps", "RED-Diff steps"),
                           ("budgets", "rival budgets"),
                           ("default_budget", "default budget (None: each task's own)")):
            if getattr(config, key) != getattr(full, key):
                lines.append(f"- {label}{where}: {getattr(config, key)} instead of the full protocol's "
                             f"{getattr(full, key)}.")
    lines.append("- Only one test image and one noise seed per task: differences below a few tenths of a dB "
                 "are within what another image or seed would change.")
    lines += ["", "## Caveats", "", *(f"- {c}" for c in CAVEATS)]
    return "\n".join(lines) + "\n"


def remeasure_memory(result: dict, tasks, device="cpu") -> dict:
    """``result`` with the peak MiB of ``tasks``' rows measured again (:func:`peak_mib`; the classical
    method's by :func:`~reddiff.benchmark.tensor_peak`) on the test problem of the run that made them,
    with each solver's tuned setting; nothing else changes."""
    rows = [dict(row) for row in result["rows"]]
    for name in tasks:
        task, config = get_task(name), _config(next(run for run in result["runs"] if name in run["tasks"]))
        image = heldout_image(task, config.size, config.mri_size)
        test = make_setup(task, image, seed=0, device=device)
        tuned = {t["solver"]: t["value"] for t in result["tuned"] if t["task"] == name}
        for row in (r for r in rows if r["task"] == name):
            if row["solver"] == "classical":
                work = classical_work(build_problem(task, image, seed=0), row["setting"])
                row["peak_mib"] = tensor_peak(work) / 2**20
            else:
                solver = next(s for s in SOLVERS if s.name == row["solver"])
                row["peak_mib"] = peak_mib(solver, test, tuned[row["solver"]], row["budget"])
            print(f"{name:10s} {row['solver']:17s} NFE {row['budget']:4d}: {row['peak_mib']:7.2f} MiB", flush=True)
    return {**result, "rows": rows}


def _config(run: dict) -> Config:
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in run["config"].items()})


def _provenance(run: dict, name_tasks: bool) -> str:
    """Which command made which tasks' numbers, where, and how loaded the machine was."""
    load = run.get("load") or {}
    tasks = f"{', '.join(run['tasks'])}: g" if name_tasks else "G"
    return (f"{tasks}enerated by `{run['command']}` on {run['date']} ({run['machine']}, {run['device']}, one "
            f"thread per process, {run['workers']} process(es)); the run took {run['seconds'] / 60:.1f} min. "
            f"The machine was shared: load average {_f(load.get('start'), '.1f')} at the start and "
            f"{_f(load.get('end'), '.1f')} at the end on {load.get('cpus', '?')} cores, so absolute seconds are "
            "inflated and noisy; ratios within one task (same load, minutes apart) mean more."
            + (f" Its peak-memory column was re-measured by `{run['memory']['command']}` on "
               f"{run['memory']['date']}." if run.get("memory") else ""))


#: What every run of this comparison should be read with.
CAVEATS = (
    "RED-Diff's shipped defaults (steps, lr and t_max of the `RED-Diff` rows) were tuned on images that are "
    "no test image here (`benchmarks/tune_defaults.py`: generated ones for CT and MRI, the Hubble deep "
    "field's untrained columns for the sky); the other solvers saw only the validation image. "
    "`RED-Diff (tuned)` is RED-Diff under the same rule as the rest (its `lam` tuned on the validation image).",
    "Each rival is tuned in one setting, at the default budget only; its other budgets reuse that setting. DPS "
    "is deepinv's original residual-norm guidance (no annealing); the DPS paper runs it for 1000 steps.",
    "CT for PiGDM, DiffPIR and DPS: the transmission counts are linearised to line integrals with one Gaussian "
    "sigma (their RMS standard deviation); RED-Diff and the classical methods use the counts' own likelihood.",
    "deepinv's DiffPIR clips its denoised image to the denoiser's [0, 1], i.e. the prior's [-1, 1]: CT values "
    "above +1000 HU (the CT prior reaches 1.9 in network units) are clipped by it.",
    "Peak MiB is the peak of the memory the run's tensors hold (`reddiff.benchmark.tensor_peak`: on a CPU from "
    "the profiler's allocation events, on CUDA `max_memory_allocated`), on a run of at most 10 steps; it leaves "
    "out library workspaces and Python objects. The growth of the resident set, measured before 2026-12-06, "
    "was 19-22 MiB for RED-Diff at 64 px whatever its tensors held (about 7 MiB): allocator state and one-time "
    "library set-up, which the first run of a process pays.",
    "Times are wall-clock seconds on one thread of a machine shared with other jobs; the solvers run "
    "interleaved, so a change of load touches them alike, but single timings can be off by tens of per cent.",
)


QUICK = {"size": 32, "mri_size": 32, "repeats": 2, "red_diff_steps": (5, 10, 20), "budgets": (5, 10),
         "default_budget": 10}


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=TASK_NAMES, help="default: all (--quick: " +
                        " ".join(QUICK_TASKS) + ")")
    parser.add_argument("--solvers", nargs="+", choices=SOLVER_NAMES, default=list(SOLVER_NAMES))
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 32 px, budgets 5-20, 2 runs")
    parser.add_argument("--size", type=int, help="image side in pixels (default 128)")
    parser.add_argument("--mri-size", type=int, help="MRI image side (default 64, mr_small's own)")
    parser.add_argument("--repeats", type=int, help="runs at the default budget, for the spread (default 3)")
    parser.add_argument("--budgets", type=int, nargs="+", help="rivals' NFE budgets (default 25 50 100 200)")
    parser.add_argument("--red-diff-steps", type=int, nargs="+", help="RED-Diff's steps (default 25 50 100 200 500)")
    parser.add_argument("--default-budget", type=int, help="override every task's default budget")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--workers", type=int, default=1, help="tasks run in this many processes")
    parser.add_argument("--render", action="store_true", help="only redraw the page and figure from --out's "
                        "benchmarks.csv and benchmarks.json")
    parser.add_argument("--remeasure-memory", action="store_true", help="only measure the peak-memory column of "
                        "--out's saved result again (of --tasks, default all), on the settings it records")
    parser.add_argument("--merge", action="store_true", help="keep --out's other tasks (each with the command "
                        "that made it); the tasks run now replace theirs")
    parser.add_argument("--out", type=Path, help="folder for benchmarks.md, benchmarks.csv, benchmarks.json and "
                        "images/solvers_quality_time.png (default docs/; --quick: out/solvers-quick/)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = ROOT / ("out/solvers-quick" if args.quick else "docs")
    return args


def config_from(args) -> Config:
    values = dict(QUICK) if args.quick else {}
    for key in ("size", "mri_size", "repeats", "default_budget"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    for key in ("budgets", "red_diff_steps"):
        if getattr(args, key):
            values[key] = tuple(getattr(args, key))
    return Config(**values, device=args.device, solvers=tuple(args.solvers))


def run(tasks, config: Config, workers: int = 1, on_task=None) -> dict:
    """All tasks (in ``workers`` processes); rows, tuned settings and notes in task order.

    ``on_task(result)`` is called with the results so far after each task (to save them).
    """
    started = time.perf_counter()
    parts = []

    def merged() -> dict:
        """The results so far; ``tasks`` names only the finished ones, so that a merge into a saved result
        replaces nothing a killed run did not redo."""
        out = {key: [item for part in parts for item in part[key]] for key in ("rows", "tuned", "notes")}
        return {**out, "seconds": time.perf_counter() - started, "workers": workers,
                "tasks": list(tasks)[:len(parts)], "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()}, {_cpu_name()}", "device": config.device}

    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for part in pool.map(run_task, tasks, [config] * len(tasks)):
                parts.append(part)
                if on_task:
                    on_task(merged())
    else:
        for task in tasks:
            parts.append(run_task(task, config))
            if on_task:
                on_task(merged())
    return merged()


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


FIGURE = "images/solvers_quality_time.png"
#: Integer columns of the CSV (the rest are text or floats).
INTEGERS = ("size", "budget", "default_budget", "nfe", "nfe_backprop", "runs")


def save(result: dict, out: Path) -> None:
    """The Markdown page, the CSV, the figure and the run's record (JSON) into ``out``.

    All four are written beside their targets first and then renamed over them, so a run stopped while
    saving leaves the previous set whole rather than a page that disagrees with its CSV.
    """
    targets = [out / FIGURE, out / "benchmarks.csv", out / "benchmarks.md", out / "benchmarks.json"]
    staged = [path.with_name(f".partial-{path.name}") for path in targets]
    staged[0].parent.mkdir(parents=True, exist_ok=True)
    figure(result["rows"], staged[0])
    write_csv(result["rows"], staged[1])
    staged[2].write_text(markdown(result, FIGURE))
    staged[3].write_text(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1, default=str))
    for path, target in zip(staged, targets):
        os.replace(path, target)


#: Keys of one run's record (the rest of a saved result: rows, tuned settings, notes, runs).
RUN_KEYS = ("tasks", "command", "config", "date", "machine", "device", "workers", "seconds", "load")


def load(out: Path) -> dict:
    """A saved result back from ``out``'s CSV and JSON (for ``--render`` and ``--merge``).

    A file from before per-run records holds one run's record at its top level.
    """
    result = json.loads((out / "benchmarks.json").read_text())
    with (out / "benchmarks.csv").open() as f:
        result["rows"] = [{k: (int(v) if k in INTEGERS else _number(v)) for k, v in row.items()}
                          for row in csv.DictReader(f)]
    if "runs" not in result:
        tasks = list(dict.fromkeys(r["task"] for r in result["rows"]))
        result = {**{k: v for k, v in result.items() if k not in RUN_KEYS},
                  "runs": [{"tasks": tasks, **{k: result[k] for k in RUN_KEYS if k in result}}]}
    return result


def merge(previous: dict, new: dict) -> dict:
    """``new``'s tasks replace ``previous``'s, the other tasks are kept (in the order of :data:`TASKS`),
    each with the record of the run that made it."""
    redone = set(new["runs"][0]["tasks"])
    kept = {key: [item for item in previous[key] if item["task"] not in redone] for key in ("rows", "tuned", "notes")}
    runs = [{**run, "tasks": [t for t in run["tasks"] if t not in redone]} for run in previous["runs"]]
    order = {name: i for i, name in enumerate(TASK_NAMES)}
    out = {key: sorted(kept[key] + new[key], key=lambda item: order[item["task"]]) for key in kept}
    return {**out, "runs": [run for run in runs if run["tasks"]] + new["runs"]}


def _number(text: str):
    try:
        return float(text) if text else math.nan
    except ValueError:
        return text


def main(argv=None) -> dict:
    args = parse(argv)
    words = sys.argv[1:] if argv is None else [str(a) for a in argv]
    command = " ".join(["python benchmarks/solvers.py", *map(shlex.quote, words)])
    if args.render or args.remeasure_memory:
        result = load(args.out)
        if args.remeasure_memory:
            tasks = args.tasks or [t for run in result["runs"] for t in run["tasks"]]
            result = remeasure_memory(result, tasks, args.device)
            memory = {"command": command, "date": time.strftime("%Y-%m-%d")}
            result["runs"] = [{**run, "memory": memory} if set(run["tasks"]) & set(tasks) else run
                              for run in result["runs"]]
        save(result, args.out)
        return result
    config = config_from(args)
    tasks = args.tasks or (list(QUICK_TASKS) if args.quick else list(TASK_NAMES))
    record = {"command": command,
              "config": dataclasses.asdict(config), "load": {"start": os.getloadavg()[0], "cpus": os.cpu_count()}}

    previous = load(args.out) if args.merge and (args.out / "benchmarks.json").exists() else None

    def as_result(partial: dict) -> dict:
        record["load"]["end"] = os.getloadavg()[0]
        result = {**{k: partial[k] for k in ("rows", "tuned", "notes")},
                  "runs": [{**record, **{k: partial[k] for k in RUN_KEYS if k in partial}}]}
        return merge(previous, result) if previous else result

    partial = run(tasks, config, args.workers, on_task=lambda partial: save(as_result(partial), args.out))
    print(f"wrote {args.out / 'benchmarks.md'}, benchmarks.csv and the figure in {partial['seconds']:.0f} s")
    return as_result(partial)


if __name__ == "__main__":
    main()
