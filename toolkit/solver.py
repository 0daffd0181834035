r"""RED-Diff: a diffusion model as the regulariser of a stochastic optimisation.

Mardani, Song, Kautz and Vahdat, "A Variational Perspective on Solving Inverse
Problems with Diffusion Models", ICLR 2024 (arXiv 2305.04391).

The variable is the image :math:`\mu` in the prior's network units.  At each step
a timestep :math:`t` and noise :math:`\epsilon \sim \mathcal N(0, I)` are drawn,

.. math::

    x_t = \sqrt{\bar\alpha_t}\, \mu + \sqrt{1 - \bar\alpha_t}\, \epsilon, \qquad
    \ell(\mu) = -\log p\big(y \mid A(T^{-1}(\mu))\big)
              + \lambda\, w(t) \big\langle \operatorname{sg}[\hat\epsilon(x_t, t) - \epsilon],\, \mu \big\rangle,

and Adam takes one step on :math:`\ell`.  :math:`T^{-1}` is the prior's value
transform back to physical units, ``sg`` stops gradients: the network runs once
per step under :func:`torch.no_grad` and is never differentiated.

**Reduction.** Both terms are *sums*: the data term is the full negative
log-likelihood (for Gaussian noise :math:`\lVert y - Ax\rVert^2 / 2\sigma^2`), the
regulariser sums over pixels, and samples in a batch are summed too.  Because Adam
is invariant to a global scale of the loss, this makes ``lr`` (in network units)
and ``lam`` transfer between image sizes and physical units; ``lam`` is the weight
of the prior against a properly normalised likelihood.  The paper's code uses per-pixel
means with :math:`\sigma = 1`: its ``lam`` equals ours times :math:`\sigma^2`
(with :math:`\sigma` in network units) when ``y`` has as many entries as the image.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Callable, Sequence

import numpy as np
import torch

from .discrepancy import AutoLam, as_lam, check_data_term, choose_weight, deviance_ratio
from .errors import DivergenceError, InputError, ReddiffError
from .likelihood import as_data_term
from .priors.base import Prior
from .result import DEFAULT_QUANTILES, Reconstruction
from .weighting import get_weighting

INITS = ("pinv", "adjoint", "zeros")
TIMESTEP_ORDERS = ("descending", "random")


def sample_seeds(seed: int | None, n_samples: int) -> list[int]:
    """Independent per-sample seeds derived from one seed (NumPy ``SeedSequence.spawn``).

    Sample ``i`` of a run with ``seed`` uses ``sample_seeds(seed, n)[i]`` whatever
    ``n`` is, so a batched run and runs one at a time give the same samples.
    ``seed=None`` draws fresh entropy.
    """
    children = np.random.SeedSequence(seed).spawn(n_samples)
    return [int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for c in children]


def timestep_grid(prior: Prior, steps: int, t_max: int | None = None) -> torch.Tensor:
    """``steps`` integer timesteps evenly spaced from ``t_max`` (default ``T - 1``) down to ``0``."""
    top = prior.num_timesteps - 1 if t_max is None else t_max
    return torch.linspace(top, 0, steps).round().long()


def initial_image(y, physics, prior: Prior, init) -> torch.Tensor:
    """The starting image :math:`\\mu_0` in network units, shape ``(1, C, H, W)``.

    ``init`` is ``"pinv"`` (``physics.A_dagger(y)``), ``"adjoint"``
    (``physics.A_adjoint(y)``), ``"zeros"`` (zero in network units, the middle of
    the prior's range) or a tensor in physical units.
    """
    if isinstance(init, torch.Tensor):
        x = init.to(y.device, torch.float32)
    elif init in ("pinv", "adjoint", "zeros"):
        if not hasattr(physics, "A_adjoint"):
            raise InputError(f"init={init!r} needs a linear physics with A_adjoint; pass "
                             "init=<tensor in physical units> for a nonlinear one", field="init")
        with torch.no_grad():
            x = physics.A_dagger(y) if init == "pinv" else physics.A_adjoint(y)
        if init == "zeros":
            return torch.zeros_like(x)
    else:
        raise InputError(f"unknown init {init!r}; expected one of {', '.join(INITS)} or a tensor",
                         field="init")
    if x.ndim == 3:
        x = x[None]
    prior.check_image(x, "initial image")
    return prior.transform.to_model(x.float())


def default_data_term(physics):
    """The data term a physics object implies: its own ``data_term``, or Gaussian from its noise model."""
    own = getattr(physics, "data_term", None)
    if own is not None:
        return own
    sigma = getattr(getattr(physics, "noise_model", None), "sigma", None)
    if sigma is not None:
        sigma = float(torch.as_tensor(sigma).flatten()[0])
        if sigma > 0:
            return as_data_term(sigma)
    raise InputError("cannot tell the noise level from the physics; pass data_term= "
                     "(a Gaussian sigma or a callable (y, Ax) -> negative log-likelihood)",
                     field="data_term")


def _check_measurement(y: torch.Tensor) -> None:
    if not isinstance(y, torch.Tensor):
        raise InputError(f"y must be a torch.Tensor, got {type(y).__name__}", field="y")
    if y.ndim < 2 or y.shape[0] != 1:
        raise InputError(f"y must hold one measurement with a leading batch axis of 1, got shape "
                         f"{tuple(y.shape)}; loop over measurements to reconstruct several",
                         field="y")
    if not bool(torch.isfinite(y if not y.is_complex() else torch.view_as_real(y)).all()):
        raise InputError("y contains NaN or infinite values", field="y")


def red_diff(y: torch.Tensor, physics, prior: Prior, *, data_term=None, steps: int = 100,
             lr: float = 0.1, lam: float | str | AutoLam = 0.25, weighting: str | Callable = "linear",
             timesteps: str | Sequence[int] = "descending", t_max: int | None = None,
             sigma_x0: float = 0.0, init="pinv", n_samples: int = 1, batch_size: int | None = None,
             seed: int | Sequence[int] | None = None, betas=(0.9, 0.99),
             quantiles=DEFAULT_QUANTILES, keep_samples: bool = False,
             callback: Callable[[dict], None] | None = None) -> Reconstruction:
    r"""Reconstruct an image from ``y = A(x) + noise`` with RED-Diff.

    Parameters
    ----------
    y : torch.Tensor
        One measurement, shape ``(1, ...)`` as ``physics.A`` returns it.
    physics : deepinv.physics.Physics
        The forward model; ``physics.A(x)`` maps ``(B, C, H, W)`` images in physical
        units to measurements and must be differentiable in ``x``.
    prior : reddiff.Prior, str or os.PathLike
        The diffusion prior (noise predictor, schedule, value transform), or a
        shipped prior's name (``"ct"``, ``"mri"``, ``"astro"``) or a prior folder
        for :func:`reddiff.priors.load_prior`.
    data_term : callable or float, optional
        Negative log-likelihood ``(y, Ax) -> loss`` (see :mod:`reddiff.likelihood`),
        or a Gaussian sigma. Default: ``physics.data_term`` if present, else
        Gaussian with the sigma of ``physics.noise_model``.
    steps : int
        Optimisation steps, one network call each.
    lr : float
        Adam learning rate, in network units (the prior's range is about [-1, 1]).
    lam : float, "auto" or AutoLam
        Regularisation weight :math:`\lambda` (see the module notes on reduction), or
        chosen from the data by the discrepancy principle (:mod:`reddiff.discrepancy`):
        ``"auto"`` is ``AutoLam()`` (pilots around 1), an :class:`~reddiff.discrepancy.AutoLam`
        sets the starting weight and pilots. The pilots (one sample each) run before the
        samples; ``attrs["config"]["lam"]`` is the weight chosen and ``["lam_choice"]``
        the pilots' weights and deviance ratios.
    weighting : str or callable
        SNR weighting :math:`w(t)`: a name in :data:`reddiff.WEIGHTINGS` or a function
        of ``alpha_bar``.
    timesteps : {"descending", "random"} or sequence of int
        Order of timesteps: ``steps`` values evenly spaced from ``t_max`` to 0,
        visited in descending order (the paper) or drawn at random per sample;
        or an explicit sequence of length ``steps``.
    t_max : int, optional
        Largest timestep of the grid: ``steps`` values from ``t_max`` down to 0
        (default ``T - 1``, the paper's full range). A start that is already an
        estimate of the image (FBP, Richardson-Lucy, zero-filled) needs no steps at
        noise levels far above its own error; those steps pull towards the prior's
        mean image, and a truncated grid spends the budget where the prior sharpens.
        Not allowed with an explicit sequence of timesteps.
    sigma_x0 : float
        Standard deviation of Gaussian noise added to :math:`\mu` at each step
        (the paper's :math:`\sigma_{x_0}`), a diversity control.
    init : {"pinv", "adjoint", "zeros"} or torch.Tensor
        Starting image (see :func:`initial_image`).
    n_samples : int
        Independent stochastic runs, each with its own noise stream.
    batch_size : int, optional
        Samples run together. Default: all of them on a CPU; on a GPU as many as
        fit in 80 % of free memory (see :func:`auto_batch_size`). Results do not
        depend on it.
    seed : int or sequence of int, optional
        One seed (expanded with :func:`sample_seeds`) or one seed per sample.
    betas : tuple of float
        Adam's betas; the paper uses (0.9, 0.99).
    quantiles : sequence of float
        Per-pixel quantiles stored in the result.
    keep_samples : bool
        Store every sample in the result.
    callback : callable, optional
        Called after each step with a dict: ``step``, ``steps``, ``t``, ``chunk``,
        ``n_chunks``, ``sample_start``,
        ``loss``, ``data_loss``, ``reg_loss`` (floats, summed over the batch) and ``image``
        (current images in physical units, a copy the solver does not change: safe to keep).

    Returns
    -------
    reddiff.Reconstruction
        Mean, std and quantiles over samples, with the config and seeds in attrs.

    Raises
    ------
    InputError
        For a malformed measurement, an unknown weighting, init or timestep order.
    DivergenceError
        If the loss becomes NaN or infinite (lower ``lr`` or ``lam``).

    Notes
    -----
    Each step computes, for each sample,

    .. math::

        x_t = \sqrt{\bar\alpha_t}\,\tilde\mu + \sqrt{1 - \bar\alpha_t}\,\epsilon, \quad
        \tilde\mu = \mu + \sigma_{x_0}\,\epsilon', \\
        \ell = -\log p(y \mid A(T^{-1}\tilde\mu))
               + \lambda\, w(t) \sum_i \operatorname{sg}[\hat\epsilon(x_t, t) - \epsilon]_i\, \tilde\mu_i ,

    then one Adam step on :math:`\mu`. Samples are independent: the loss is a sum
    over samples and Adam acts elementwise.

    Examples
    --------
    >>> import torch, deepinv as dinv
    >>> from reddiff import red_diff, GaussianPrior
    >>> physics = dinv.physics.Inpainting((1, 8, 8), mask=0.5, rng=torch.Generator().manual_seed(0),
    ...                                   noise_model=dinv.physics.GaussianNoise(0.1))
    >>> y = physics(torch.zeros(1, 1, 8, 8))
    >>> result = red_diff(y, physics, GaussianPrior(), steps=20, n_samples=2, seed=0)
    >>> result.mean.shape
    (1, 8, 8)
    """
    _check_measurement(y)
    _check_count("steps", steps, MAX_STEPS)
    _check_count("n_samples", n_samples, MAX_SAMPLES)
    if not _is_real(lr) or not (lr > 0 and math.isfinite(lr)):
        raise InputError(f"lr must be a positive number, got {lr!r}", field="lr")
    lam = as_lam(lam)
    if not _is_real(sigma_x0) or not (sigma_x0 >= 0 and math.isfinite(sigma_x0)):
        raise InputError(f"sigma_x0 must be a number >= 0, got {sigma_x0!r}", field="sigma_x0")
    weight_fn = get_weighting(weighting)
    nll = as_data_term(data_term) if data_term is not None else default_data_term(physics)
    if isinstance(lam, AutoLam):
        check_data_term(nll)
    seeds = _resolve_seeds(seed, n_samples)
    if prior is None:
        raise InputError("prior is required: a reddiff.priors.Prior, a shipped prior's name or a prior folder",
                         field="prior")
    if not isinstance(prior, Prior):
        from .priors import load_prior

        prior = load_prior(prior)
    schedule = _timestep_schedule(prior, steps, timesteps, t_max)
    prior = prior.to(y.device).eval()
    mu0 = initial_image(y, physics, prior, init)
    _check_sample_memory(mu0, n_samples, keep_samples, quantiles)
    if batch_size is None:
        batch_size = auto_batch_size(prior, mu0, n_samples)
    batch_size = max(1, min(int(batch_size), n_samples))

    started = time.perf_counter()

    def solve(chunk_seeds, progress, lams=None):
        weight = lam if lams is None else torch.tensor([lams[s] for s in chunk_seeds], device=y.device)
        return _optimise(y, physics, prior, nll, mu0, chunk_seeds, schedule, steps=steps, t_max=t_max, lr=lr,
                         lam=weight,
                         weight_fn=weight_fn, sigma_x0=sigma_x0, betas=betas, callback=callback,
                         progress=progress)

    lam_choice, pilot_chunks = None, 0
    if isinstance(lam, AutoLam):
        lam, lam_choice, pilot_chunks = _choose_lam(
            lam, solve, seeds[0], batch_size, n_samples,
            lambda mu: deviance_ratio(nll, y, physics.A(prior.transform.to_physical(mu))))
    chunks, batch_size = _in_chunks(solve, seeds, batch_size, offset=pilot_chunks)
    samples = prior.transform.to_physical(torch.cat(chunks))
    elapsed = time.perf_counter() - started

    config = {"solver": "red_diff", "steps": steps, "lr": lr, "lam": lam,
              "weighting": weighting if isinstance(weighting, str) else repr(weighting),
              "timesteps": timesteps if isinstance(timesteps, str) else list(map(int, timesteps)),
              "t_max": None if not isinstance(timesteps, str) else
              int(t_max) if t_max is not None else prior.num_timesteps - 1,
              "sigma_x0": sigma_x0, "init": init if isinstance(init, str) else "tensor",
              "n_samples": n_samples, "batch_size": batch_size, "betas": list(betas),
              "prior": prior.name, "prior_weights": prior.weights_sha256(), "transform": prior.transform.to_config(),
              "physics": type(physics).__name__, "data_term": repr(nll), "reduction": "sum"}
    if lam_choice is not None:
        config["lam_choice"] = lam_choice
    attrs = {"config": config, "seeds": seeds, "time_s": elapsed,
             "time_per_step_s": elapsed / (steps * (pilot_chunks + math.ceil(n_samples / batch_size))),
             "device": str(y.device), "torch_version": str(torch.__version__),
             "reddiff_version": _version()}
    return Reconstruction.from_samples(samples, quantiles=quantiles, keep_samples=keep_samples,
                                       attrs=attrs)


def auto_batch_size(prior: Prior, mu0: torch.Tensor, n_samples: int,
                    memory_fraction: float = 0.8) -> int:
    """How many samples to run at once: all on a CPU; on a GPU, what fits in free memory.

    On CUDA one probe forward of the prior (batch 1, no autograd) measures the
    peak memory per sample; the batch is the number of such samples that fit in
    ``memory_fraction`` of the free memory, with a factor 2 for the optimiser state
    and the data term. The solver keeps no autograd graph through the network, so
    the network's activations are the dominant cost.
    """
    if mu0.device.type != "cuda":
        return n_samples
    torch.cuda.synchronize(mu0.device)
    torch.cuda.reset_peak_memory_stats(mu0.device)
    before = torch.cuda.memory_allocated(mu0.device)
    with torch.no_grad():
        prior.eps(mu0, torch.zeros(1, dtype=torch.long, device=mu0.device))
    per_sample = 2 * max(torch.cuda.max_memory_allocated(mu0.device) - before, 1)
    free, _ = torch.cuda.mem_get_info(mu0.device)
    return max(1, min(n_samples, int(memory_fraction * free // per_sample)))


def _choose_lam(auto: AutoLam, solve, first_seed: int, batch_size: int, n_samples: int,
                ratio_of) -> tuple[float, dict, int]:
    """Run the pilots of ``auto`` (one sample each, seeds spawned from ``first_seed``) and pick
    the weight whose deviance ratio reaches the target (:func:`reddiff.discrepancy.choose_weight`).
    Their progress comes first in the chunk count (``"pilots": True`` in the callback's dict).

    Returns the weight, the record of the choice (``config["lam_choice"]``) and the number of
    chunks the pilots ran in."""
    lams = auto.pilots()
    pilot_seeds = sample_seeds(first_seed, len(lams))
    by_seed = dict(zip(pilot_seeds, lams))
    chunks, _ = _in_chunks(lambda chunk, progress: solve(chunk, {**progress, "pilots": True}, by_seed),
                           pilot_seeds, batch_size, later=math.ceil(n_samples / batch_size))
    ratios = [float(r) for r in ratio_of(torch.cat(chunks))]
    chosen, note = choose_weight(auto, lams, ratios)
    if note is not None:
        warnings.warn(note, RuntimeWarning, stacklevel=3)
    record = {**auto.to_config(), "pilot_lams": lams, "pilot_ratios": ratios, "pilot_seeds": pilot_seeds,
              **({"note": note} if note else {})}
    return chosen, record, len(chunks)


def _in_chunks(solve, seeds: list, batch_size: int, *, offset: int = 0, later: int = 0) -> tuple[list, int]:
    """Run ``solve(chunk_seeds, progress)`` over the seeds in chunks of ``batch_size``, halving
    the chunk and retrying it when the GPU runs out of memory (samples depend only on their
    seeds, so the result is the same); returns the chunks' samples and the size that ran.
    The progress count has ``offset`` chunks before these (the ``lam`` pilots) and ``later`` after."""
    chunks, start = [], 0
    while start < len(seeds):
        progress = {"chunk": offset + len(chunks),
                    "n_chunks": offset + len(chunks) + math.ceil((len(seeds) - start) / batch_size) + later,
                    "sample_start": start}
        try:
            chunks.append(solve(seeds[start:start + batch_size], progress))
        except torch.cuda.OutOfMemoryError as err:
            if batch_size == 1:
                raise ReddiffError("out of GPU memory with one sample at a time: use a smaller image, "
                                   "a smaller prior or --device cpu") from err
            torch.cuda.empty_cache()
            batch_size = max(1, batch_size // 2)
            warnings.warn(f"out of GPU memory: retrying with {batch_size} samples at a time", RuntimeWarning,
                          stacklevel=3)
            continue
        start += len(chunks[-1])
    return chunks, batch_size


def _describe(lam) -> str:
    return f"{lam:g}" if not isinstance(lam, torch.Tensor) else ", ".join(f"{v:g}" for v in lam.flatten().tolist())


def _version() -> str:
    from . import __version__
    return __version__


#: Most optimisation steps and samples one call takes (far beyond any useful run).
MAX_STEPS = 1_000_000
MAX_SAMPLES = 10_000


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_count(name: str, value, limit: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 1 <= value <= limit:
        raise InputError(f"{name} must be an integer in [1, {limit}], got {value!r}", field=name)


def _check_sample_memory(mu0: torch.Tensor, n_samples: int, keep_samples: bool, quantiles) -> None:
    """Refuse a run whose samples alone (all are summarised at the end) exceed the memory budget."""
    from reddiff.operators.base import check_memory

    per_sample = 4 * mu0[0].numel() * (3 + bool(keep_samples))  # sample, Adam moments, kept copy
    check_memory(per_sample * n_samples + 4 * mu0[0].numel() * len(quantiles or ()),
                 f"{n_samples} samples of {tuple(mu0.shape[1:])}", field="n_samples")


def _resolve_seeds(seed, n_samples: int) -> list[int]:
    if seed is None or isinstance(seed, (int, np.integer)):
        if seed is not None and (isinstance(seed, bool) or seed < 0):
            raise InputError(f"seed must be a non-negative integer, got {seed!r}", field="seed")
        return sample_seeds(None if seed is None else int(seed), n_samples)
    try:
        seeds = [int(s) for s in seed]
    except (TypeError, ValueError) as err:
        raise InputError(f"seed must be an integer or one integer per sample, got {seed!r}", field="seed") from err
    if any(s < 0 for s in seeds):
        raise InputError("seeds must be non-negative integers", field="seed")
    if len(seeds) != n_samples:
        raise InputError(f"got {len(seeds)} seeds for n_samples={n_samples}; give one seed "
                         "or one per sample", field="seed")
    return seeds


def _timestep_schedule(prior: Prior, steps: int, timesteps, t_max: int | None = None):
    """``(steps,)`` tensor of timesteps, or the string ``"random"`` (drawn per sample from the grid)."""
    if t_max is not None:
        if not isinstance(timesteps, str):
            raise InputError("t_max sets the top of the descending or random grid; leave it out with an "
                             "explicit sequence of timesteps", field="t_max")
        _check_count("t_max", t_max, prior.num_timesteps - 1)
    if isinstance(timesteps, str):
        if timesteps not in TIMESTEP_ORDERS:
            raise InputError(f"unknown timesteps {timesteps!r}; expected one of "
                             f"{', '.join(TIMESTEP_ORDERS)} or a sequence of ints",
                             field="timesteps")
        return "random" if timesteps == "random" else timestep_grid(prior, steps, t_max)
    schedule = torch.as_tensor(list(timesteps), dtype=torch.long)
    if schedule.shape != (steps,) or bool((schedule < 0).any() | (schedule >= prior.num_timesteps).any()):
        raise InputError(f"timesteps must be {steps} integers in [0, {prior.num_timesteps - 1}]",
                         field="timesteps")
    return schedule


def _optimise(y, physics, prior, nll, mu0, seeds, schedule, *, steps, t_max, lr, lam, weight_fn,
              sigma_x0, betas, callback, progress) -> torch.Tensor:
    """Run the Adam loop for one batch of samples; returns ``mu`` in network units."""
    device = y.device
    n = len(seeds)
    if isinstance(lam, torch.Tensor):  # one weight per sample (the lam pilots)
        lam = lam.to(device, torch.float32).view(n, *([1] * (mu0.ndim - 1)))
    mu = mu0.expand(n, *mu0.shape[1:]).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([mu], lr=lr, betas=betas)
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    grid = timestep_grid(prior, steps, t_max).to(device)

    def per_sample_normal():
        return torch.cat([torch.randn(mu.shape[1:], generator=g, device=device)[None]
                          for g in generators])

    for step in range(steps):
        if isinstance(schedule, str):  # random: one draw per sample, from its own stream
            idx = torch.cat([torch.randint(steps, (1,), generator=g, device=device)
                             for g in generators])
            t = grid[idx]
        else:
            t = schedule[step].to(device).expand(n)
        eps = per_sample_normal()
        x0 = mu + sigma_x0 * per_sample_normal() if sigma_x0 > 0 else mu
        alpha_bar = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
        with torch.no_grad():
            x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
            reg_grad = lam * weight_fn(alpha_bar) * (prior.eps(x_t, t) - eps)
        data_loss = nll(y, physics.A(prior.transform.to_physical(x0))).sum()
        reg_loss = (reg_grad * x0).sum()
        loss = data_loss + reg_loss
        if not bool(torch.isfinite(loss)):
            raise DivergenceError(
                f"loss became {loss.item()} at step {step} (t={t[0].item()}); lower lr "
                f"(now {lr:g}) or lam (now {_describe(lam)}), or check the data term's noise level")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if callback is not None:
            callback({"step": step, "steps": steps, "t": t.detach().cpu(), **progress,
                      "loss": loss.item(),
                      "data_loss": data_loss.item(), "reg_loss": reg_loss.item(),
                      "image": prior.transform.to_physical(mu.detach().clone())})
    return mu.detach()
