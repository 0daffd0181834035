"""The solver on a CUDA GPU (marked ``cuda``: skipped without one; ``benchmarks/gpu_check.sh`` runs them).

What exists for memory on a GPU is :func:`reddiff.solver.auto_batch_size`: the samples are
chunked to what one probe forward says fits in 80 % of the free memory. There is no
out-of-memory fallback (a chunk that does not fit raises ``torch.cuda.OutOfMemoryError``);
these tests check the chunking that exists.
"""

import deepinv as dinv
import pytest
import torch

from reddiff import load_prior, red_diff
from reddiff.likelihood import GaussianLikelihood
from reddiff.solver import auto_batch_size, initial_image

pytestmark = pytest.mark.cuda


def _problem(size=64, device="cuda"):
    prior = load_prior("ct").to(device).eval()
    physics = dinv.physics.Inpainting((1, size, size), mask=0.5, device=device,
                                      rng=torch.Generator(device).manual_seed(0))
    physics.data_term = GaussianLikelihood(1e-3)
    truth = prior.transform.to_physical(0.5 * torch.ones(1, 1, size, size, device=device))
    return prior, physics, physics.A(truth)


def test_red_diff_runs_on_cuda():
    prior, physics, y = _problem()
    result = red_diff(y, physics, prior, steps=20, n_samples=4, seed=0)
    assert result.dataset.attrs["device"].startswith("cuda")
    assert bool(torch.isfinite(result.tensor("mean")).all())
    assert result.config["batch_size"] == 4  # all four fit: one chunk


def test_batched_and_one_at_a_time_samples_agree_on_cuda(capsys):
    prior, physics, y = _problem()
    batched = red_diff(y, physics, prior, steps=20, n_samples=4, batch_size=4, seed=0, keep_samples=True)
    single = red_diff(y, physics, prior, steps=20, n_samples=4, batch_size=1, seed=0, keep_samples=True)
    a, b = batched.dataset["samples"].values, single.dataset["samples"].values
    difference = float(abs(a - b).max())
    with capsys.disabled():
        print(f"\nbatched vs one at a time on {torch.cuda.get_device_name()}: max |difference| {difference:.3g} "
              f"({'bitwise equal' if difference == 0 else 'not bitwise'}; sample range {float(a.max() - a.min()):.3g})")
    assert difference <= 1e-4 * float(abs(a).max())


def test_automatic_chunking_fits_the_free_memory():
    prior, physics, y = _problem()
    mu0 = initial_image(y, physics, prior, "pinv")
    assert 1 <= auto_batch_size(prior, mu0, 10_000) <= 10_000
    assert auto_batch_size(prior, mu0, 64, memory_fraction=1e-12) == 1  # nothing fits: one at a time
    chunks = []
    red_diff(y, physics, prior, steps=2, n_samples=3, batch_size=1, seed=0,
             callback=lambda info: chunks.append(info["n_chunks"]))
    assert set(chunks) == {3}
