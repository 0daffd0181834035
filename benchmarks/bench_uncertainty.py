"""How far to trust RED-Diff's uncertainty: diversity knobs, calibration, throughput.

Usage::

    python benchmarks/bench_uncertainty.py diversity      # Gaussian prior, exact posterior known
    python benchmarks/bench_uncertainty.py kspace         # MRI k-space std, sampled vs not
    python benchmarks/bench_uncertainty.py calibration    # real priors, simulated MRI/CT/sky
    python benchmarks/bench_uncertainty.py spread         # which spread tracks the error (generated images)
    python benchmarks/bench_uncertainty.py transfer       # raw vs Tweedie spread: fit on the default's
                                                          # references, test on the held-out images
    python benchmarks/bench_uncertainty.py throughput     # batched vs sequential, 8 samples
    python benchmarks/bench_uncertainty.py all

Each part prints a Markdown table. ``diversity`` uses inpainting with an analytic
Gaussian prior, where the true posterior is known in closed form (observed pixel:
variance :math:`(1/\\sigma^2 + 1/s^2)^{-1}`; masked pixel: :math:`s^2`), so the
spread of RED-Diff can be compared with the truth. ``calibration`` fits a
split-conformal factor per modality on simulated calibration images and measures
90 % coverage on *other* (held-out) simulated images, before and after.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch

from reddiff import GaussianPrior, Prior, Reconstruction, red_diff
from reddiff.operators.base import Measurement
from reddiff.priors import ddpm_linear_schedule
from reddiff.uncertainty import (fit_calibration, interval, normal_quantile,
                                 uncertainty_metrics)

LEVEL = 0.9


@dataclass
class Problem:
    y: torch.Tensor
    physics: object
    truth: torch.Tensor
    prior: torch.nn.Module
    init: object = "pinv"


def table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# -- diversity knobs on a problem with a known posterior -------------------------------

def inpainting_problems(n: int, *, size: int, sigma: float, prior_std: float, seed: int):
    import deepinv as dinv

    prior = GaussianPrior(std=prior_std)
    problems = []
    for i in range(n):
        g = torch.Generator().manual_seed(seed + i)
        physics = dinv.physics.Inpainting((1, size, size), mask=0.5, rng=g,
                                          noise_model=dinv.physics.GaussianNoise(sigma))
        truth = prior_std * torch.randn(1, 1, size, size, generator=g)
        y = physics.A(truth) + sigma * torch.randn(1, 1, size, size, generator=g)
        problems.append(Problem(y, physics, truth, prior))
    return problems


def exact_posterior(problem: Problem, sigma: float, prior_std: float):
    """Mean and std of the exact Gaussian posterior of inpainting with an iid Gaussian prior."""
    observed = problem.physics.mask.expand_as(problem.truth) > 0
    precision = 1 / sigma**2 + 1 / prior_std**2
    mean = torch.where(observed, problem.y / sigma**2 / precision, torch.zeros(()))
    std = torch.where(observed, torch.tensor(precision ** -0.5), torch.tensor(prior_std))
    return mean, std, observed


def diversity(args) -> None:
    sigma, prior_std = 0.1, 1.0
    problems = inpainting_problems(args.images, size=args.size, sigma=sigma, prior_std=prior_std,
                                   seed=100)
    settings = [dict(timesteps="descending", sigma_x0=0.0, lam=0.25)]
    settings += [dict(timesteps="random", sigma_x0=0.0, lam=0.25)]
    settings += [dict(timesteps=t, sigma_x0=s, lam=0.25) for t in ("descending", "random")
                 for s in (0.05, 0.1, 0.2)]
    settings += [dict(timesteps="descending", sigma_x0=0.1, lam=lam) for lam in (1.0, 4.0)]
    settings += [dict(timesteps="descending", sigma_x0=0.1, lam=0.25, lr=lr) for lr in (0.03, 0.3)]
    settings += [dict(timesteps="descending", sigma_x0=0.1, lam=0.25, steps=s) for s in (30, 300)]
    settings += [dict(timesteps="descending", sigma_x0=s, lam=0.25, draw="variational")
                 for s in (0.1, 0.2)]
    rows = [_exact_row(problems, sigma, prior_std)]
    for setting in settings:
        rows.append(_diversity_row(problems, sigma, prior_std, dict(setting), args))
    print(f"\n### Diversity knobs: inpainting {args.size}x{args.size}, 50 % pixels observed, "
          f"sigma={sigma}, Gaussian prior N(0, {prior_std}^2), {args.images} images, "
          f"{args.samples} samples, steps={args.steps} unless set, lr=0.1 unless set\n")
    print(table(rows, ["setting", "std observed", "std masked", "std/true observed",
                       "std/true masked", "coverage 90%", "corr(std, abs err)", "rmse",
                       "rmse vs exact mean"]))


def _exact_row(problems, sigma, prior_std) -> dict:
    cover, rmse = [], []
    for p in problems:
        mean, std, _ = exact_posterior(p, sigma, prior_std)
        z = normal_quantile(LEVEL)
        cover.append(float(((p.truth - mean).abs() <= z * std).float().mean()))
        rmse.append(float(((p.truth - mean) ** 2).mean().sqrt()))
    _, std, observed = exact_posterior(problems[0], sigma, prior_std)
    return {"setting": "exact posterior", "std observed": float(std[observed].mean()),
            "std masked": float(std[~observed].mean()), "std/true observed": 1.0,
            "std/true masked": 1.0, "coverage 90%": float(np.mean(cover)),
            "rmse": float(np.mean(rmse)), "rmse vs exact mean": 0.0}


def _diversity_row(problems, sigma, prior_std, setting, args) -> dict:
    draw = setting.pop("draw", "mu")
    setting.setdefault("steps", args.steps)
    label = ", ".join(f"{k}={v}" for k, v in setting.items() if k != "steps" or v != args.steps)
    label += ", draw mu+sigma_x0*eps" if draw == "variational" else ""
    stats = {k: [] for k in ("obs", "mask", "robs", "rmask", "cov", "corr", "rmse", "rexact")}
    for i, p in enumerate(problems):
        rec = red_diff(p.y, p.physics, p.prior, n_samples=args.samples, seed=i,
                       keep_samples=draw == "variational", **setting)
        if draw == "variational":  # a sample of q = N(mu, sigma_x0^2), the variational posterior
            mu = torch.from_numpy(rec.dataset["samples"].values)
            g = torch.Generator().manual_seed(1000 + i)
            rec = Reconstruction.from_samples(mu + setting["sigma_x0"] * torch.randn(
                mu.shape, generator=g), attrs={"config": rec.config})
        exact_mean, exact_std, observed = exact_posterior(p, sigma, prior_std)
        std = rec.tensor("std")
        m = uncertainty_metrics(rec, p.truth, level=LEVEL)
        stats["obs"].append(float(std[observed].mean()))
        stats["mask"].append(float(std[~observed].mean()))
        stats["robs"].append(float((std / exact_std)[observed].mean()))
        stats["rmask"].append(float((std / exact_std)[~observed].mean()))
        stats["cov"].append(m["coverage"])
        stats["corr"].append(m["std_error_correlation"])
        stats["rmse"].append(m["rmse"])
        stats["rexact"].append(float(((rec.tensor() - exact_mean) ** 2).mean().sqrt()))
    s = {k: float(np.mean(v)) for k, v in stats.items()}
    return {"setting": label, "std observed": s["obs"], "std masked": s["mask"],
            "std/true observed": s["robs"], "std/true masked": s["rmask"],
            "coverage 90%": s["cov"], "corr(std, abs err)": s["corr"], "rmse": s["rmse"],
            "rmse vs exact mean": s["rexact"]}


def kspace(args) -> None:
    """Std of k-space coefficients over samples, sampled vs unsampled lines (Gaussian prior)."""
    import deepinv as dinv

    size, sigma = args.size, 0.05
    lines = torch.zeros(size)
    lines[::4] = 1
    lines[size // 2 - size // 16:size // 2 + size // 16] = 1
    mask = lines.view(1, size).expand(size, size)
    physics = dinv.physics.MRI(mask=mask, img_size=(2, size, size))
    rows = []
    for i in range(args.images):
        g = torch.Generator().manual_seed(400 + i)
        truth = torch.randn(1, 2, size, size, generator=g)
        y = physics.A(truth) + sigma * torch.randn(1, 2, size, size, generator=g)
        for timesteps in ("descending", "random"):
            for sigma_x0 in (0.0, 0.05, 0.1):
                rec = red_diff(y, physics, GaussianPrior(channels=2), data_term=sigma,
                               steps=args.steps, timesteps=timesteps, sigma_x0=sigma_x0,
                               n_samples=args.samples, seed=i, keep_samples=True)
                k = physics.im_to_kspace(torch.from_numpy(rec.dataset["samples"].values))
                kstd = k.std(0).norm(dim=0)
                rows.append({"timesteps": timesteps, "sigma_x0": sigma_x0,
                             "sampled": float(kstd[mask > 0].mean()),
                             "unsampled": float(kstd[mask == 0].mean())})
    merged = []
    for key in dict.fromkeys((r["timesteps"], r["sigma_x0"]) for r in rows):
        group = [r for r in rows if (r["timesteps"], r["sigma_x0"]) == key]
        sampled = float(np.mean([r["sampled"] for r in group]))
        unsampled = float(np.mean([r["unsampled"] for r in group]))
        merged.append({"timesteps": key[0], "sigma_x0": key[1], "k-space std sampled": sampled,
                       "k-space std unsampled": unsampled, "ratio": unsampled / sampled})
    true_sampled = (2 / (1 / sigma**2 + 1)) ** 0.5  # |(std re, std im)| of the exact posterior
    print(f"\n### MRI {size}x{size}, {int(lines.sum())}/{size} lines, sigma={sigma}, Gaussian "
          f"prior N(0, 1), {args.images} images, {args.samples} samples, steps={args.steps}; "
          f"std = |(std real, std imag)| per coefficient; exact posterior: sampled "
          f"{true_sampled:.3f}, unsampled {2 ** 0.5:.3f}, ratio {2 ** 0.5 / true_sampled:.1f}\n")
    print(table(merged, list(merged[0])))


# -- calibration on held-out simulated data ------------------------------------------

class RandomUNetPrior(Prior):
    """A diffusers UNet with random weights: the compute cost of a network prior, for timing
    only (its noise predictions are meaningless)."""

    def __init__(self, size: int):
        from diffusers import UNet2DModel

        super().__init__(ddpm_linear_schedule(), channels=1, name="random-unet")
        with torch.random.fork_rng():  # fixed weights without touching the caller's RNG
            torch.manual_seed(0)
            self.net = UNet2DModel(
                sample_size=size, in_channels=1, out_channels=1,
                block_out_channels=(32, 64, 64, 128), layers_per_block=1,
                down_block_types=("DownBlock2D",) * 3 + ("AttnDownBlock2D",),
                up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * 3)

    def eps(self, x_t, t):
        return 0.01 * self.net(x_t, t).sample


def problems_for(modality: str, n: int, args) -> list[Problem]:
    """``n`` simulated problems of one modality, each from a different true image."""
    if modality == "gaussian":
        return inpainting_problems(n, size=args.size, sigma=0.1, prior_std=1.0, seed=200)
    if modality == "random-unet":  # timing only
        problems = inpainting_problems(n, size=args.modality_size, sigma=0.1, prior_std=1.0,
                                       seed=200)
        prior = RandomUNetPrior(args.modality_size)
        return [Problem(p.y, p.physics, p.truth, prior) for p in problems]
    return modality_problems(modality, n, args)


def modality_problems(modality: str, n: int, args) -> list[Problem]:
    """``n`` simulated problems from held-out images (distinct crops/flips), as the pipeline builds them.

    CT: 64x64 crops of ``ct_small`` (30 views, 1e5 photons); MRI: flips and
    transposes of ``mr_small`` (4x, 8 coils); sky: crops of ``m13`` (Moffat blur,
    CCD noise). Images are ``--modality-size`` pixels square.
    """
    from reddiff import modalities
    from reddiff.datasets import sample_image
    from reddiff.operators import ct
    from reddiff.pipeline import prior_for

    size = args.modality_size
    chosen = modalities.get(modality)
    image = torch.tensor(sample_image(chosen.demo.sample).array)
    problems = []
    for i in range(n):
        if modality == "mri":
            view = torch.rot90(image, i % 4).flip(-1) if i >= 4 else torch.rot90(image, i)
            view = view[:size, :size] / view.max()
            problem = chosen.canonical_problem(image=view.numpy(), center_fraction=0.16, seed=300 + i)
        else:
            room = image.shape[-1] - size
            r, c = (room * ((i * 5) % 9) // 8, room * ((i * 7) % 9) // 8)
            crop = image[r:r + size, c:c + size]
            crop = ct.hu_to_mu(crop.clamp_min(-1000)) if modality == "ct" else crop
            problem = chosen.canonical_problem(image=crop.numpy(), seed=300 + i)
        problems.append(Problem(problem.y, problem.physics, problem.truth, prior_for(problem), init=problem.init))
    return problems


def calibration(args) -> None:
    rows = []
    for modality in args.modalities:
        started = time.perf_counter()
        problems = problems_for(modality, args.cal_images + args.test_images, args)
        recs = [red_diff(p.y, p.physics, p.prior, n_samples=args.samples, seed=i, init=p.init,
                         **solver_settings(modality, args)) for i, p in enumerate(problems)]
        truths = [p.truth for p in problems]
        cal, test = slice(0, args.cal_images), slice(args.cal_images, None)
        one = fit_calibration(recs[cal], truths[cal], level=LEVEL)
        binned = fit_calibration(recs[cal], truths[cal], level=LEVEL, bins=args.bins)
        raw = [uncertainty_metrics(r, t, level=LEVEL) for r, t in zip(recs[test], truths[test])]
        after = [uncertainty_metrics(r, t, level=LEVEL, calibration=one)
                 for r, t in zip(recs[test], truths[test])]
        after_binned = [uncertainty_metrics(r, t, level=LEVEL, calibration=binned)
                        for r, t in zip(recs[test], truths[test])]
        worst = lambda c: min_tercile_coverage(recs[test], truths[test], c)  # noqa: E731
        mean = lambda ms, key: float(np.mean([m[key] for m in ms]))  # noqa: E731
        shape = "x".join(map(str, problems[0].truth.shape[-2:]))
        rows.append({"modality": modality, "image": shape,
                     "cal/test images": f"{args.cal_images}/{args.test_images}",
                     "coverage raw": mean(raw, "coverage"),
                     "coverage calibrated": mean(after, "coverage"),
                     f"coverage {args.bins} bins": mean(after_binned, "coverage"),
                     "worst std-tercile raw/cal/bins": f"{worst(None):.2f}/{worst(one):.2f}/"
                                                       f"{worst(binned):.2f}",
                     "k": one.scales[0], f"k per bin": "/".join(f"{k:.3g}" for k in binned.scales),
                     "z std raw": mean(raw, "z_std"), "z std calibrated": mean(after, "z_std"),
                     "corr(std, abs err)": mean(raw, "std_error_correlation"),
                     "rmse": mean(raw, "rmse"), "time s": time.perf_counter() - started})
    if not rows:
        return
    print(f"\n### Calibration of the {LEVEL:.0%} interval on held-out simulated images "
          f"({args.samples} samples each; coverage, z and correlation averaged over test images)\n")
    print(table(rows, list(rows[0])))


def min_tercile_coverage(recs, truths, calibration) -> float:
    """Coverage in the worst third of pixels by std (low, middle, high), pooled over images:
    a check of coverage conditional on the std, which a single factor cannot guarantee."""
    hits, stds = [], []
    for rec, truth in zip(recs, truths):
        lower, upper = interval(rec, LEVEL, calibration=calibration)
        x = truth[0].numpy()
        hits.append(((lower.values <= x) & (x <= upper.values)).ravel())
        stds.append(rec.std.values.ravel())
    hits, stds = np.concatenate(hits), np.concatenate(stds)
    order = np.argsort(stds, kind="stable")
    return float(min(hits[part].mean() for part in np.array_split(order, 3)))


def solver_settings(modality: str, args) -> dict:
    """Solver settings per modality (the same for calibration and test images): the
    pipeline's defaults for MRI/CT/sky, with ``--modality-steps`` steps."""
    if modality in ("mri", "ct", "astro"):
        from reddiff.modalities import defaults_for

        return {**defaults_for(modality).as_kwargs(), "steps": args.modality_steps}
    return {"steps": args.steps, "sigma_x0": args.sigma_x0, "timesteps": args.timesteps}


# -- which spread tracks the error: raw, random timesteps, sigma_x0, bootstrap, Tweedie ----

SPREADS = ("raw", "random timesteps", "sigma_x0 0.05", "bootstrap", "tweedie t 20", "tweedie t 40")


def spread_samples(problem, how: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(centre, samples)`` in physical units for one way of making RED-Diff's spread.

    * raw / random timesteps / sigma_x0: ``n`` RED-Diff runs with the modality defaults
      (changed in that one setting); the centre is their mean.
    * bootstrap (parametric): one run gives :math:`\hat x`; ``n`` measurements
      :math:`y_i \sim p(y \mid \hat x)` are drawn with the noise model and each solved
      once; the centre is :math:`\hat x`, the spread that of the re-solutions.
    * tweedie t (the prior's own doubt at step :math:`t`): the centre is the mean
      :math:`\hat x` of ``n`` RED-Diff runs, the spread that of ``n`` denoised re-noisings
      of it (:func:`tweedie_draws`).
    """
    from reddiff import modalities

    modality = modalities.get(problem.modality)
    settings = modality.defaults.as_kwargs(noise=modality.noise_level(problem), shape=problem.baseline.shape)
    prior = modality.prior(problem)
    changed = {"random timesteps": {"timesteps": "random"}, "sigma_x0 0.05": {"sigma_x0": 0.05}}.get(how, {})
    if how.startswith("tweedie"):
        centre = red_diff(problem.y, problem.physics, prior, init=problem.init, n_samples=n, seed=seed,
                          **settings).tensor("mean")
        return centre, tweedie_draws(prior, centre, n, int(how.split()[-1]), seed=seed)
    if how != "bootstrap":
        rec = red_diff(problem.y, problem.physics, prior, init=problem.init, n_samples=n, seed=seed,
                       keep_samples=True, **{**settings, **changed})
        samples = torch.from_numpy(rec.dataset["samples"].values)
        return rec.tensor("mean"), samples
    centre = red_diff(problem.y, problem.physics, prior, init=problem.init, n_samples=1, seed=seed,
                      **settings).tensor("mean")
    runs = []
    for i in range(n):
        y = modality.measure(problem.physics, centre, generator=torch.Generator().manual_seed(seed + 1 + i))
        again = modality.from_measurement(Measurement(y, problem.physics, None, {}))
        runs.append(red_diff(y, problem.physics, prior, init=again.init, n_samples=1, seed=seed + 1 + i,
                             **settings).tensor("mean"))
    return centre, torch.cat(runs)


def tweedie_draws(prior, centre: torch.Tensor, n: int, t: int, seed: int) -> torch.Tensor:
    r"""``n`` Tweedie estimates of the image from re-noisings of ``centre`` at step ``t`` (physical units).

    With :math:`z = T(\hat x)` in the network's units and :math:`\epsilon_i \sim N(0, I)`,
    :math:`z_i = \sqrt{\bar\alpha_t} z + \sqrt{1 - \bar\alpha_t}\,\epsilon_i` and the draw is
    :math:`T^{-1}\big((z_i - \sqrt{1 - \bar\alpha_t}\,\epsilon_\theta(z_i, t)) / \sqrt{\bar\alpha_t}\big)`:
    one network call each, large where the prior cannot tell structure from noise.
    """
    z = prior.transform.to_model(centre)
    alpha = prior.alphas_cumprod[t]
    noise = torch.randn((n, *z.shape[1:]), generator=torch.Generator().manual_seed(seed))
    z_t = alpha.sqrt() * z + (1 - alpha).sqrt() * noise
    with torch.no_grad():
        eps = prior.eps(z_t, torch.full((n,), t, dtype=torch.long))
    return prior.transform.to_physical((z_t - (1 - alpha).sqrt() * eps) / alpha.sqrt())


def spread(args) -> None:
    """Rank correlation of std with |error| and the factor each image needs, per spread, on the
    generated calibration images (``Modality.calibration_images``) measured like the canonical problem."""
    from reddiff import modalities
    from reddiff.calibration import fit_to_grid
    from reddiff.uncertainty import std_error_spearman

    rows = []
    for name in [m for m in args.modalities if m in ("ct", "mri", "astro")]:
        modality = modalities.get(name)
        images = list(modality.calibration_images().items())[:args.spread_images]
        for how in args.spreads:
            started = time.perf_counter()
            rhos, factors, rmses = [], [], []
            for i, (label, image) in enumerate(images):
                image = fit_to_grid(image, (args.modality_size, args.modality_size))
                problem = modality.canonical_problem(image=image, seed=400 + i)
                centre, samples = spread_samples(problem, how, args.samples, seed=10 * i)
                truth = problem.truth
                rec = Reconstruction.from_samples(samples - samples.mean(0, keepdim=True) + centre)
                rhos.append(std_error_spearman(rec.std.values, (centre - truth)[0].numpy()))
                factors.append(fit_calibration([rec], [truth], level=LEVEL).scales[0])
                rmses.append(float((centre - truth).pow(2).mean().sqrt()))
            rows.append({"modality": name, "spread": how, "images": len(images),
                         "Spearman median": float(np.median(rhos)), "Spearman min": float(np.min(rhos)),
                         "k median": float(np.median(factors)),
                         "k max/min": float(np.max(factors) / np.min(factors)),
                         "rmse (physical)": float(np.median(rmses)), "time s": time.perf_counter() - started})
            print(rows[-1], flush=True)
    print(f"\n### Which spread tracks the error ({args.samples} samples, {args.spread_images} generated images "
          f"per modality at {args.modality_size} px)\n")
    print(table(rows, list(rows[0])))


# -- transfer: a factor fitted on the default's references, applied to held-out images ----

def transfer(args) -> None:
    """Per spread (``--spreads``): the factor each image needs, the std's Spearman with |error|, and the
    coverage on each held-out image of the factor pooled over the shipped default's references
    (``benchmarks/fit_calibrations.py``; a single factor, without the noise power law)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is not a package (as in solvers.py)
    import fit_calibrations
    import heldout

    from reddiff import modalities
    from reddiff.uncertainty import std_error_spearman

    rows = []
    for name in [m for m in args.modalities if m in ("ct", "mri", "astro")]:
        modality = modalities.get(name)
        references = fit_calibrations.reference_problems(name)
        images = [(case, heldout.image_for(case)) for case in heldout.cases(name, quick=False)]
        tests = {case.label: modality.canonical_problem(image=image, seed=0, **case.settings)
                 for case, image in images
                 if args.heldout_max_size is None or max(image.shape) <= args.heldout_max_size}
        for how in args.spreads:
            solved = {}
            for group, problems in (("reference", references), ("held out", tests)):
                for label, problem in problems.items():
                    centre, samples = spread_samples(problem, how, args.samples, seed=0)
                    rec = Reconstruction.from_samples(samples - samples.mean(0, keepdim=True) + centre)
                    solved[label] = (group, rec, problem.truth)
                    print(f"  {name} {how}: {label}", flush=True)
            fitted = fit_calibration([r for g, r, _ in solved.values() if g == "reference"],
                                     [t for g, _, t in solved.values() if g == "reference"], level=LEVEL)
            for label, (group, rec, truth) in solved.items():
                rows.append({"modality": name, "spread": how, "image": label, "set": group,
                             "k needed": fit_calibration([rec], [truth], level=LEVEL).scales[0],
                             "k fitted": fitted.scales[0],
                             "coverage": uncertainty_metrics(rec, truth, calibration=fitted)["coverage"],
                             "Spearman": std_error_spearman(rec.std.values, (rec.tensor("mean") - truth)[0].numpy())})
                print(rows[-1], flush=True)
    print(f"\n### Transfer of the fitted factor ({args.samples} samples)\n")
    print(table(rows, list(rows[0])))


# -- throughput: batched vs sequential -------------------------------------------------

def throughput(args) -> None:
    rows = []
    for modality in args.throughput_modalities:
        problem = problems_for(modality, 1, args)[0]
        settings = {**solver_settings(modality, args), "steps": args.throughput_steps}
        red_diff(problem.y, problem.physics, problem.prior, n_samples=1, seed=0, init=problem.init,
                 **{**settings, "steps": 2})  # warm-up
        times = {}
        for label, batch_size in (("batched", args.samples), ("sequential", 1)):
            started = time.perf_counter()
            red_diff(problem.y, problem.physics, problem.prior, n_samples=args.samples, init=problem.init,
                     batch_size=batch_size, seed=0, **settings)
            times[label] = time.perf_counter() - started
        shape = "x".join(map(str, problem.truth.shape[-2:]))
        rows.append({"modality": modality, "image": shape, "steps": settings["steps"],
                     "batched s": times["batched"], "sequential s": times["sequential"],
                     "batched samples/s": args.samples / times["batched"],
                     "sequential samples/s": args.samples / times["sequential"],
                     "speed-up": times["sequential"] / times["batched"]})
    if not rows:
        return
    device = "cpu"
    print(f"\n### Throughput, {args.samples} samples, {device}, {torch.get_num_threads()} "
          "threads\n")
    print(table(rows, list(rows[0])))


# -- entry point -----------------------------------------------------------------------

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["diversity", "kspace", "calibration", "spread", "transfer", "throughput",
                                         "all"])
    parser.add_argument("--heldout-max-size", type=int, default=None,
                        help="transfer: skip held-out images larger than this many pixels a side")
    parser.add_argument("--spread-images", type=int, default=3, help="generated images per modality for spread")
    parser.add_argument("--spreads", nargs="+", choices=SPREADS, default=list(SPREADS), help="spreads to compare")
    parser.add_argument("--size", type=int, default=32, help="image side of the Gaussian problem")
    parser.add_argument("--modality-size", type=int, default=64, help="image side for MRI/CT/sky")
    parser.add_argument("--images", type=int, default=4, help="test images for diversity")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100, help="steps of the Gaussian problems")
    parser.add_argument("--modality-steps", type=int, default=50,
                        help="steps for MRI/CT/sky (network priors are slow on a CPU)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modalities", nargs="+", default=["gaussian", "mri", "ct", "astro"])
    parser.add_argument("--cal-images", type=int, default=4)
    parser.add_argument("--test-images", type=int, default=4)
    parser.add_argument("--bins", type=int, default=3, help="std bins of the binned calibration")
    parser.add_argument("--sigma-x0", type=float, default=0.0)
    parser.add_argument("--timesteps", default="descending")
    parser.add_argument("--throughput-steps", type=int, default=20)
    parser.add_argument("--throughput-modalities", nargs="+",
                        default=["gaussian", "random-unet", "mri", "ct", "astro"])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if args.part in ("diversity", "all"):
        diversity(args)
    if args.part in ("kspace", "all"):
        kspace(args)
    if args.part in ("calibration", "all"):
        calibration(args)
    if args.part in ("spread", "all"):
        spread(args)
    if args.part == "transfer":
        transfer(args)
    if args.part in ("throughput", "all"):
        throughput(args)
    print(f"\n(total {time.perf_counter() - started:.0f} s, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
