"""benchmarks/solvers.py: the --quick path, deepinv's view of a problem, and PiGDM on a Gaussian prior."""

import csv
import importlib.util
import math
import sys
from pathlib import Path

import deepinv as dinv
import pytest
import torch

from reddiff import GaussianPrior, modalities
from reddiff.benchmark import CountingPrior
from reddiff.likelihood import GaussianLikelihood
from reddiff.modalities import Problem

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def solvers():
    """benchmarks/solvers.py as a module (benchmarks/ is not a package); its "generic"
    modality is unregistered afterwards, so other tests see only the built-in ones."""
    spec = importlib.util.spec_from_file_location("solvers_benchmark", ROOT / "benchmarks" / "solvers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    modalities.unregister("generic")
    del sys.modules[spec.name]


def test_quick_run_writes_every_solver(solvers, tmp_path):
    result = solvers.main(["--quick", "--tasks", "inpainting", "--size", "16", "--red-diff-steps", "4", "8",
                           "--budgets", "4", "--default-budget", "8", "--out", str(tmp_path)])
    with (tmp_path / "benchmarks.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == solvers.COLUMNS
    assert {r["solver"] for r in rows} == set(solvers.SOLVER_NAMES)  # every solver applies to inpainting
    for row in rows:
        assert math.isfinite(float(row["psnr"])), row
        assert float(row["seconds"]) > 0
    at_budget = [r for r in result["rows"] if r["budget"] == 8]
    assert all(r["nfe"] == 8 for r in at_budget)  # equal budgets, counted
    assert {r["solver"] for r in at_budget if r["nfe_backprop"]} == {"DPS", "PiGDM"}
    assert all(r["runs"] == 2 and 0 <= r["coverage90"] <= 1 for r in at_budget)
    page = (tmp_path / "benchmarks.md").read_text()
    assert "## Targets" in page and "images/solvers_quality_time.png" in page and "Tasks not run" in page
    assert (tmp_path / "images" / "solvers_quality_time.png").stat().st_size > 0


def test_solvers_that_do_not_apply_say_why(solvers):
    sky = solvers.make_setup(solvers.get_task("sky"), solvers.validation_image(solvers.get_task("sky"), 32, 32),
                             seed=0, device="cpu")
    assert not sky.view.linear and "nonlinear" in solvers.why_not(solvers.SOLVERS[3], sky)  # PiGDM
    assert solvers.why_not(solvers.SOLVERS[2], sky) is None  # DPS only needs a differentiable A
    sr = solvers.make_setup(solvers.get_task("sr4"), solvers.validation_image(solvers.get_task("sr4"), 32, 32),
                            seed=0, device="cpu")
    assert "SVD" in solvers.why_not(solvers.SOLVERS[5], sr)  # DDRM


@pytest.mark.parametrize("task", ["inpainting", "deblur", "ct30"])
def test_deepinv_view_is_the_problem_in_denoiser_units(solvers, task):
    """y - A T^-1(-1) = A' v for x = T^-1(2v - 1): the view measures what the physics measures."""
    setup = solvers.make_setup(solvers.get_task(task), solvers.validation_image(solvers.get_task(task), 32, 32),
                               seed=0, device="cpu")
    v = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    x = setup.prior.transform.to_physical(2 * v - 1)
    physics = setup.problem.physics
    offset = physics.A(setup.prior.transform.to_physical(-torch.ones_like(v)))
    assert torch.allclose(setup.view.physics.A(v), physics.A(x) - offset, atol=1e-6, rtol=1e-4)
    assert setup.view.decomposable == (task != "ct30")


def test_curve_at_interpolates_the_frontier(solvers):
    points = [(1.0, 20.0), (10.0, 30.0), (4.0, 18.0)]  # the 4 s point is below the frontier
    assert solvers.curve_at(points, 0.5) is None
    assert solvers.curve_at(points, 1.0) == 20.0
    assert solvers.curve_at(points, math.sqrt(10.0)) == pytest.approx(25.0)
    assert solvers.curve_at(points, 100.0) == 30.0


def test_pigdm_samples_the_closed_form_posterior_of_a_gaussian_prior(solvers):
    r"""Prior u ~ N(0, 2^2) per pixel (so v = (u + 1)/2 has unit variance and PiGDM's
    r_t^2 = sigma_t^2 / (1 + sigma_t^2) is exact), y = u + n with sigma 1: the posterior is
    N(0.8 y, 0.8). One 64x64 run gives 4096 independent pixels."""
    g = torch.Generator().manual_seed(0)
    u = 2 * torch.randn(1, 1, 64, 64, generator=g)
    y = u + torch.randn(u.shape, generator=g)
    physics = dinv.physics.Denoising(dinv.physics.GaussianNoise(1.0))
    physics.data_term = GaussianLikelihood(1.0)
    problem = Problem("generic", y, physics, y, "y", init=y, measurement_image=y, truth=u)
    prior = CountingPrior(GaussianPrior(mean=0.0, std=2.0))
    task = solvers.Task("gaussian", "Gaussian toy", "generic")
    setup = solvers.Setup(task, problem, prior, solvers.deepinv_view(problem, prior, "cpu"), {}, torch.device("cpu"))
    sample = solvers.run_pigdm(setup, 1.0, 200, seed=0)
    residual = (sample - 0.8 * y).flatten()
    assert abs(float(residual.mean())) < 0.05
    assert float(residual.std()) == pytest.approx(0.8 ** 0.5, rel=0.1)
    assert prior.counts == {"forward": 200, "backprop": 200}
