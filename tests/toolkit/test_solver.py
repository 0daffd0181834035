"""RED-Diff solver: closed-form fixed points, seeds, reduction, guards, complex data."""

import deepinv as dinv
import pytest
import torch

from reddiff import DivergenceError, GaussianPrior, InputError, red_diff, sample_seeds
from reddiff.likelihood import GaussianLikelihood
from reddiff.priors import AffineTransform
from reddiff.solver import timestep_grid

SHAPE = (1, 1, 4, 4)


def matrix_physics(matrix: torch.Tensor, shape=SHAPE) -> dinv.physics.LinearPhysics:
    """y = M vec(x), with its exact adjoint."""
    return dinv.physics.LinearPhysics(
        A=lambda x: x.reshape(x.shape[0], -1) @ matrix.T,
        A_adjoint=lambda y: (y @ matrix).reshape(y.shape[0], *shape[1:]))


@pytest.fixture
def problem():
    g = torch.Generator().manual_seed(0)
    matrix = torch.randn(12, 16, generator=g) / 4
    physics = matrix_physics(matrix)
    sigma = 0.3
    x = torch.randn(SHAPE, generator=g)
    y = physics.A(x) + sigma * torch.randn(1, 12, generator=g)
    return matrix, physics, y, sigma


def tikhonov(matrix, y, sigma, weight, mean):
    """argmin ||y - Mx||^2 / 2 sigma^2 + weight/2 ||x - mean||^2."""
    n = matrix.shape[1]
    lhs = matrix.T @ matrix / sigma**2 + weight * torch.eye(n)
    rhs = matrix.T @ y[0] / sigma**2 + weight * mean
    return torch.linalg.solve(lhs, rhs)


def gaussian_reg_weight(alpha_bar, std):
    r"""E[w(t)(eps_hat - eps)] = c(t)(mu - m) for the linear weighting: c = (1-a)/(a s^2 + 1 - a)."""
    return (1 - alpha_bar) / (alpha_bar * std**2 + 1 - alpha_bar)


def relative_error(a, b):
    return float((a.flatten() - b.flatten()).norm() / b.norm())


def test_fixed_timestep_converges_to_tikhonov(problem):
    matrix, physics, y, sigma = problem
    prior = GaussianPrior(mean=0.2, std=1.0)
    t0 = int((prior.alphas_cumprod - 0.5).abs().argmin())
    lam, steps = 2.0, 2000
    weight = lam * gaussian_reg_weight(prior.alphas_cumprod[t0], 1.0)
    expected = tikhonov(matrix, y, sigma, weight, 0.2)
    result = red_diff(y, physics, prior, data_term=sigma, steps=steps, lr=0.01, lam=lam,
                      timesteps=[t0] * steps, n_samples=8, seed=1, init="zeros")
    error = relative_error(result.tensor(), expected)
    assert error < 0.03
    # the check discriminates: half the regularisation is a measurably different answer
    assert relative_error(tikhonov(matrix, y, sigma, weight / 2, 0.2), expected) > 3 * error


def test_random_timesteps_converge_to_schedule_averaged_tikhonov(problem):
    matrix, physics, y, sigma = problem
    prior = GaussianPrior(mean=0.2, std=1.0)
    lam, steps = 2.0, 2000
    alpha_bar = prior.alphas_cumprod[timestep_grid(prior, steps)]
    weight = lam * gaussian_reg_weight(alpha_bar, 1.0).mean()
    expected = tikhonov(matrix, y, sigma, weight, 0.2)
    result = red_diff(y, physics, prior, data_term=sigma, steps=steps, lr=0.01, lam=lam,
                      timesteps="random", n_samples=8, seed=1, init="zeros")
    error = relative_error(result.tensor(), expected)
    assert error < 0.03
    assert relative_error(tikhonov(matrix, y, sigma, 2 * weight, 0.2), expected) > 3 * error


def test_batched_equals_sequential_and_chunked(problem):
    _, physics, y, sigma = problem
    prior = GaussianPrior(std=0.5)
    kwargs = dict(data_term=sigma, steps=30, lr=0.05, timesteps="random", sigma_x0=0.05,
                  keep_samples=True)
    batched = red_diff(y, physics, prior, n_samples=3, seed=7, **kwargs)
    chunked = red_diff(y, physics, prior, n_samples=3, seed=7, batch_size=2, **kwargs)
    seeds = sample_seeds(7, 3)
    assert batched.seeds == seeds
    one_by_one = torch.cat([
        torch.from_numpy(red_diff(y, physics, prior, n_samples=1, seed=[s], **kwargs)
                         .dataset["samples"].values) for s in seeds])
    samples = torch.from_numpy(batched.dataset["samples"].values)
    torch.testing.assert_close(samples, one_by_one, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.from_numpy(chunked.dataset["samples"].values), samples,
                               rtol=1e-5, atol=1e-6)
    assert float(samples.std(0).mean()) > 1e-3  # the samples really differ


def test_same_seed_reproduces_and_other_seed_differs(problem):
    _, physics, y, sigma = problem
    prior = GaussianPrior()
    run = lambda seed: red_diff(y, physics, prior, data_term=sigma, steps=20, seed=seed).tensor()
    torch.testing.assert_close(run(3), run(3))
    assert not torch.allclose(run(3), run(4))


def test_physical_scale_invariance(problem):
    """Scaling y, sigma and the prior's unit by c scales the answer by c (lr is in network units)."""
    _, physics, y, sigma = problem
    c = 250.0
    kwargs = dict(steps=50, lr=0.05, lam=0.5, seed=0, init="zeros")
    base = red_diff(y, physics, GaussianPrior(), data_term=sigma, **kwargs).tensor()
    scaled_prior = GaussianPrior(transform=AffineTransform(offset=0.0, scale=c))
    scaled = red_diff(c * y, physics, scaled_prior, data_term=c * sigma, **kwargs).tensor()
    torch.testing.assert_close(scaled / c, base, rtol=1e-4, atol=1e-5)


def test_data_term_is_a_sum_over_measurements(problem):
    """Repeating every measurement with sigma*sqrt(2) is the same likelihood under sum reduction."""
    matrix, physics, y, sigma = problem
    doubled = matrix_physics(torch.cat([matrix, matrix]))
    kwargs = dict(steps=50, lr=0.05, lam=1.0, seed=0, init="zeros")
    once = red_diff(y, physics, GaussianPrior(), data_term=sigma, **kwargs).tensor()
    twice = red_diff(torch.cat([y, y], dim=1), doubled, GaussianPrior(),
                     data_term=sigma * 2**0.5, **kwargs).tensor()
    torch.testing.assert_close(twice, once, rtol=1e-4, atol=1e-5)
    # whereas keeping sigma (twice the evidence) moves the answer
    stronger = red_diff(torch.cat([y, y], dim=1), doubled, GaussianPrior(), data_term=sigma,
                        **kwargs).tensor()
    assert (stronger - once).abs().max() > 1e-2


def test_divergence_error_names_lr_and_lam(problem):
    _, physics, y, sigma = problem
    with pytest.raises(DivergenceError, match=r"lr \(now 1e\+30\).*lam"):
        red_diff(y, physics, GaussianPrior(), data_term=sigma, steps=10, lr=1e30, seed=0)


class CountingPrior(GaussianPrior):
    """Counts network calls and fails if autograd is live inside eps."""

    calls = 0

    def eps(self, x_t, t):
        assert not torch.is_grad_enabled() and not x_t.requires_grad
        type(self).calls += 1
        return super().eps(x_t, t)


def test_one_network_call_per_step_without_autograd(problem):
    _, physics, y, sigma = problem
    CountingPrior.calls = 0
    events = []
    red_diff(y, physics, CountingPrior(), data_term=sigma, steps=12, n_samples=4, batch_size=2,
             seed=0, callback=events.append)
    assert CountingPrior.calls == 12 * 2
    assert [e["step"] for e in events] == list(range(12)) * 2
    assert {"loss", "data_loss", "reg_loss", "image", "t"} <= set(events[0])


def complex_fft_physics(mask):
    """Same MRI model as deepinv's MRI but on complex tensors: y = mask * FFT(x_re + i x_im)."""
    def forward(x):
        z = torch.complex(x[:, 0], x[:, 1])
        return mask * torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(z, dim=(-2, -1)),
                                                        norm="ortho"), dim=(-2, -1))

    def adjoint(k):
        z = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(mask * k, dim=(-2, -1)),
                                               norm="ortho"), dim=(-2, -1))
        return torch.stack([z.real, z.imag], dim=1)

    return dinv.physics.LinearPhysics(A=forward, A_adjoint=adjoint)


def test_complex_images_as_two_channels_match_complex_tensors():
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(1, 8, 8, generator=g) < 0.5).float()
    x = torch.randn(1, 2, 8, 8, generator=g)
    channels = dinv.physics.MRI(mask=mask, img_size=(2, 8, 8))
    as_complex = complex_fft_physics(mask)
    y_channels = channels.A(x)
    y_complex = as_complex.A(x)
    torch.testing.assert_close(torch.complex(y_channels[:, 0], y_channels[:, 1]), y_complex,
                               rtol=1e-5, atol=1e-5)
    prior = GaussianPrior(channels=2)
    kwargs = dict(data_term=GaussianLikelihood(0.1), steps=40, lr=0.05, seed=0, init="adjoint")
    a = red_diff(y_channels, channels, prior, **kwargs)
    b = red_diff(y_complex, as_complex, prior, **kwargs)
    torch.testing.assert_close(a.tensor(), b.tensor(), rtol=1e-4, atol=1e-4)
    assert list(a.mean.channel.values) == ["real", "imag"]


@pytest.mark.parametrize("bad, match", [
    (dict(y=torch.zeros(2, 12)), "one measurement"),
    (dict(y=torch.full((1, 12), float("nan"))), "NaN"),
    (dict(init="ones"), "unknown init"),
    (dict(timesteps="ascending"), "unknown timesteps"),
    (dict(timesteps=[5, 4]), "timesteps must be 3 integers"),
    (dict(timesteps=[5, 4, 3], t_max=5), "explicit sequence"),
    (dict(t_max=0), "t_max must be an integer"),
    (dict(t_max=1000), "t_max must be an integer"),
    (dict(t_max=2.5), "t_max must be an integer"),
    (dict(seed=[1, 2]), "2 seeds for n_samples=1"),
    (dict(weighting="cubic"), "linear"),
    (dict(lr=-1.0), "lr must be a positive number"),
    (dict(lam=float("nan")), "lam must be"),
    (dict(steps=2.5), "steps must be an integer"),
    (dict(steps=True), "steps must be an integer"),
    (dict(n_samples=0), "n_samples must be an integer"),
    (dict(seed=-1), "non-negative"),
    (dict(seed="abc"), "seed must be"),
    (dict(sigma_x0=-1.0), "sigma_x0"),
    (dict(quantiles=(1.5,)), "strictly between 0 and 1"),
    (dict(prior=None), "prior is required"),
    (dict(prior="no-such-prior"), "not a prior name or folder"),
])
def test_bad_arguments_raise_input_errors(problem, bad, match):
    _, physics, y, sigma = problem
    kwargs = dict(y=y, data_term=sigma, steps=3, prior=GaussianPrior())
    kwargs.update(bad)
    with pytest.raises(InputError, match=match):
        red_diff(kwargs.pop("y"), physics, kwargs.pop("prior"), **kwargs)


@pytest.mark.parametrize("t_max", [None, 300])
def test_t_max_is_the_first_timestep_and_is_recorded(problem, t_max):
    _, physics, y, sigma = problem
    visited = []
    result = red_diff(y, physics, GaussianPrior(), data_term=sigma, steps=4, t_max=t_max, seed=0,
                      callback=lambda info: visited.append(int(info["t"][0])))
    top = 999 if t_max is None else t_max
    assert visited == [top, round(top * 2 / 3), round(top / 3), 0]
    assert result.config["t_max"] == top


def test_random_timesteps_stay_below_t_max(problem):
    _, physics, y, sigma = problem
    visited = []
    red_diff(y, physics, GaussianPrior(), data_term=sigma, steps=20, t_max=50, timesteps="random", seed=0,
             n_samples=2, callback=lambda info: visited.extend(info["t"].tolist()))
    assert max(visited) <= 50 and len(set(visited)) > 1


def test_a_named_prior_works_as_documented(problem):
    _, physics, y, sigma = problem
    result = red_diff(y, physics, "ct", data_term=sigma, steps=2, seed=0)
    assert result.config["prior"] == "ct"


def test_missing_noise_level_asks_for_data_term(problem):
    _, physics, y, _ = problem
    with pytest.raises(InputError, match="data_term"):
        red_diff(y, physics, GaussianPrior(), steps=2)


def test_noise_level_taken_from_deepinv_noise_model():
    physics = dinv.physics.Inpainting((1, 8, 8), mask=0.5, rng=torch.Generator().manual_seed(0),
                                      noise_model=dinv.physics.GaussianNoise(0.2))
    y = physics(torch.zeros(1, 1, 8, 8))
    result = red_diff(y, physics, GaussianPrior(), steps=2, seed=0)
    assert "sigma=0.2" in result.config["data_term"]


def test_progress_bar_counts_every_step_of_every_chunk(problem):
    import io

    from reddiff.progress import ProgressBar

    _, physics, y, sigma = problem
    with ProgressBar(file=io.StringIO()) as bar:
        red_diff(y, physics, GaussianPrior(), data_term=sigma, steps=5, n_samples=3,
                 batch_size=2, seed=0, callback=bar)
        assert (bar.bar.n, bar.bar.total) == (10, 10)


def test_out_of_gpu_memory_halves_the_batch_and_gives_the_same_samples(monkeypatch):
    """A chunk that raises CUDA's out-of-memory error is retried at half the size; samples
    depend only on their seeds, so the result equals the one-at-a-time run."""
    import deepinv as dinv

    from reddiff import GaussianPrior, red_diff, solver

    physics = dinv.physics.Inpainting((1, 8, 8), mask=0.5, rng=torch.Generator().manual_seed(0),
                                      noise_model=dinv.physics.GaussianNoise(0.1))
    y = physics(torch.zeros(1, 1, 8, 8))
    original, sizes = solver._optimise, []

    def tight(y, physics, prior, nll, mu0, seeds, *args, **kwargs):
        sizes.append(len(seeds))
        if len(seeds) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(y, physics, prior, nll, mu0, seeds, *args, **kwargs)

    monkeypatch.setattr(solver, "_optimise", tight)
    with pytest.warns(RuntimeWarning, match="retrying with 2 samples"):
        halved = red_diff(y, physics, GaussianPrior(), steps=5, n_samples=5, seed=3, batch_size=8)
    monkeypatch.setattr(solver, "_optimise", original)
    one_by_one = red_diff(y, physics, GaussianPrior(), steps=5, n_samples=5, seed=3, batch_size=1)
    assert sizes == [5, 2, 2, 1]
    assert halved.config["batch_size"] == 2
    assert torch.allclose(halved.tensor("mean"), one_by_one.tensor("mean"), atol=1e-6)


def test_out_of_gpu_memory_one_sample_at_a_time_is_a_clear_error(monkeypatch):
    import deepinv as dinv

    from reddiff import GaussianPrior, red_diff, solver
    from reddiff.errors import ReddiffError

    def never(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(solver, "_optimise", never)
    physics = dinv.physics.Denoising(dinv.physics.GaussianNoise(0.1))
    with pytest.raises(ReddiffError, match="one sample at a time"):
        red_diff(torch.zeros(1, 1, 4, 4), physics, GaussianPrior(), steps=2, n_samples=1)


def test_callback_images_are_copies_a_callback_can_keep(problem):
    """With an identity value transform the image handed to a callback must not be the live iterate,
    or every stored step would show the final image."""
    _, physics, y, sigma = problem
    images = []
    result = red_diff(y, physics, GaussianPrior(), data_term=sigma, steps=5, lr=0.1, seed=0, init="zeros",
                      callback=lambda info: images.append(info["image"]))
    assert torch.equal(images[-1], result.tensor())
    assert not any(torch.equal(images[k], images[k + 1]) for k in range(len(images) - 1))
