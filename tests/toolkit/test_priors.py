"""Diffusion priors: UNet prior, prior folders, adapters to deepinv, data, sampling, evaluation."""

import json

import deepinv as dinv
import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel
from PIL import Image

from reddiff import InputError
from reddiff.priors import (AsinhTransform, DenoiserPrior, GaussianPrior, PatchSampler, PriorDenoiser,
                            UNetPrior, ValueTransform, ddpm_linear_schedule, load_images, load_prior,
                            make_unet, save_prior, schedule_from_config, smooth_random_phase)
from reddiff.priors.evaluate import denoising_table, psnr
from reddiff.priors.sampling import sample_ddim

TINY = {"block_out_channels": (8, 16), "norm_num_groups": 4}


def tiny_prior(channels=1, **kwargs):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return UNetPrior(make_unet(channels, sample_size=16, **TINY), **kwargs)


def gaussian_mmse_denoiser(std_v, mean_v=0.5):
    """Exact MMSE denoiser of N(mean_v, std_v^2) pixels in deepinv's [0, 1] units."""
    def denoise(v, sigma):
        sigma = torch.as_tensor(sigma).view(-1, 1, 1, 1)
        return mean_v + std_v**2 / (std_v**2 + sigma**2) * (v - mean_v)
    return denoise


# --- schedule and network -------------------------------------------------------------------------

def test_default_schedule_is_the_ddpm_linear_one():
    assert torch.allclose(schedule_from_config(), ddpm_linear_schedule(), rtol=1e-4)


def test_schedule_follows_diffusers_cosine_config():
    config = {"num_train_timesteps": 50, "beta_schedule": "squaredcos_cap_v2"}
    expected = DDPMScheduler(**config).alphas_cumprod
    assert torch.allclose(schedule_from_config(config), expected)


def test_unknown_beta_schedule_is_an_input_error():
    with pytest.raises(InputError, match="schedule"):
        schedule_from_config({"beta_schedule": "wiggly"})


def test_unet_prior_applies_to_sizes_that_are_not_multiples_of_its_downsampling():
    prior = tiny_prior()
    x = torch.randn(2, 1, 21, 19)
    eps = prior.eps(x, torch.tensor([3, 700]))
    assert eps.shape == x.shape and bool(torch.isfinite(eps).all())


def test_unet_prior_rejects_wrong_channel_count():
    with pytest.raises(InputError, match="expects"):
        tiny_prior(channels=2).eps(torch.zeros(1, 1, 8, 8), torch.tensor([0]))


@pytest.mark.parametrize("prediction_type", ["sample", "v_prediction"])
def test_other_prediction_types_convert_to_epsilon(prediction_type):
    prior = tiny_prior(prediction_type=prediction_type)
    x_t, t = torch.randn(1, 1, 16, 16), torch.tensor([400])
    out = prior.unet(x_t, t).sample
    a = prior.alphas_cumprod[t]
    eps = prior.eps(x_t, t)
    if prediction_type == "sample":  # the x0 implied by eps is the network output
        assert torch.allclose((x_t - (1 - a).sqrt() * eps) / a.sqrt(), out, atol=1e-4)
    else:  # v = sqrt(a) eps - sqrt(1 - a) x0
        x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
        assert torch.allclose(a.sqrt() * eps - (1 - a).sqrt() * x0, out, atol=1e-4)


def test_make_unet_checks_group_norm_divisibility():
    with pytest.raises(InputError, match="norm_num_groups"):
        make_unet(1, block_out_channels=(12, 16), norm_num_groups=8)


# --- prior folders --------------------------------------------------------------------------------

def test_prior_folder_round_trips(tmp_path):
    transform = AsinhTransform(softening=5.0, background=1.0, gain=0.5, shift=-1.0)
    prior = tiny_prior(transform=transform, name="mine", info={"steps": 3})
    save_prior(prior, tmp_path)
    loaded = load_prior(tmp_path)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([10, 900])
    assert torch.allclose(loaded.eps(x, t), prior.eps(x, t), atol=1e-6)
    assert loaded.transform.to_config() == transform.to_config()
    assert (loaded.name, loaded.info) == ("mine", {"steps": 3})
    record = json.loads((tmp_path / "reddiff_prior.json").read_text())
    assert record["format_version"] == 1 and record["schedule"]["num_train_timesteps"] == 1000


def test_prior_folder_is_a_plain_diffusers_checkpoint(tmp_path):
    prior = tiny_prior()
    save_prior(prior, tmp_path)
    unet = UNet2DModel.from_pretrained(tmp_path, use_safetensors=True)
    x, t = torch.randn(1, 1, 16, 16), torch.tensor([5])
    assert torch.allclose(unet(x, t).sample, prior.eps(x, t), atol=1e-6)


def test_a_users_diffusers_pipeline_folder_loads_with_its_scheduler(tmp_path):
    prior = tiny_prior()
    prior.unet.save_pretrained(tmp_path / "unet", safe_serialization=True)
    DDPMScheduler(num_train_timesteps=200, beta_schedule="squaredcos_cap_v2").save_pretrained(tmp_path / "scheduler")
    loaded = load_prior(tmp_path)
    assert loaded.num_timesteps == 200
    assert type(loaded.transform) is ValueTransform  # identity: the network's own units
    x, t = torch.randn(1, 1, 16, 16), torch.tensor([7])
    assert torch.allclose(loaded.eps(x, t), prior.eps(x, t), atol=1e-6)


def test_a_bare_unet_folder_gets_the_default_ddpm_schedule(tmp_path):
    tiny_prior().unet.save_pretrained(tmp_path, safe_serialization=True)
    assert torch.allclose(load_prior(tmp_path).alphas_cumprod, ddpm_linear_schedule(), rtol=1e-4)


def test_pickled_weights_are_refused_and_never_unpickled(tmp_path, monkeypatch):
    tiny_prior().unet.save_pretrained(tmp_path, safe_serialization=False)
    assert not list(tmp_path.glob("*.safetensors"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    with pytest.raises(InputError, match="safetensors"):
        load_prior(tmp_path)


def test_conditional_unets_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    with pytest.raises(InputError, match="UNet2DConditionModel"):
        load_prior(tmp_path)


def test_unknown_prior_name_lists_the_shipped_ones():
    with pytest.raises(InputError, match="ct, mri, astro"):
        load_prior("brain-of-a-cat")


# --- adapters -------------------------------------------------------------------------------------

def test_denoiser_prior_of_the_exact_gaussian_denoiser_is_the_gaussian_prior():
    std_u = 0.3  # network units; deepinv units v = (u + 1) / 2 halve it
    prior = DenoiserPrior(gaussian_mmse_denoiser(std_u / 2), channels=1)
    reference = GaussianPrior(std=std_u)
    x_t, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 300, 999])
    assert torch.allclose(prior.eps(x_t, t), reference.eps(x_t, t), atol=1e-4)


def test_denoiser_prior_runs_a_deepinv_model():
    prior = DenoiserPrior(dinv.models.MedianFilter(), channels=1)
    x_t = torch.randn(1, 1, 8, 8)
    assert prior.eps(x_t, torch.tensor([500])).abs().sum() > 0


def test_prior_denoiser_is_the_mmse_denoiser_in_deepinv_units():
    std_u = 0.4
    denoiser = PriorDenoiser(GaussianPrior(std=std_u))
    v = torch.rand(2, 1, 8, 8)
    sigma = float(((1 - denoiser.prior.alphas_cumprod[250]) / denoiser.prior.alphas_cumprod[250]).sqrt()) / 2
    expected = gaussian_mmse_denoiser(std_u / 2)(v, sigma)
    assert torch.allclose(denoiser(v, sigma), expected, atol=1e-5)


def test_prior_to_denoiser_to_prior_round_trips_on_the_schedule():
    prior = tiny_prior()
    again = DenoiserPrior(PriorDenoiser(prior), channels=1)
    x_t, t = torch.randn(2, 1, 16, 16), torch.tensor([50, 600])
    assert torch.allclose(again.eps(x_t, t), prior.eps(x_t, t), atol=1e-4)


def test_prior_denoiser_unit_maps_invert_each_other():
    denoiser = PriorDenoiser(GaussianPrior(transform=AsinhTransform(softening=10.0)))
    x = torch.linspace(0, 1000, 16).view(1, 1, 4, 4)
    assert torch.allclose(denoiser.from_deepinv(denoiser.to_deepinv(x)), x, rtol=1e-4)


def _inpainting_problem():
    x = 0.5 + 0.1 * torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    physics = dinv.physics.Inpainting((1, 16, 16), mask=0.5, rng=torch.Generator().manual_seed(1),
                                      noise_model=dinv.physics.GaussianNoise(0.01))
    return x, physics, physics(x)


def test_deepinv_dps_runs_on_a_unet_prior():
    x, physics, y = _inpainting_problem()
    dps = dinv.sampling.DPS(PriorDenoiser(tiny_prior()), num_steps=5, rng=torch.Generator().manual_seed(0))
    out = dps(y, physics, seed=0)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())


def test_deepinv_dps_with_our_prior_fits_the_observed_pixels():
    x, physics, y = _inpainting_problem()
    observed = physics.mask.bool().expand_as(x)

    def observed_error(weight):
        dps = dinv.sampling.DPS(PriorDenoiser(GaussianPrior(std=0.2)), num_steps=20, weight=weight,
                                rng=torch.Generator().manual_seed(0))
        return float((dps(y, physics, seed=0) - x)[observed].abs().mean())

    assert observed_error(100.0) < 0.5 * observed_error(0.0)  # measured 0.021 vs 0.085


def test_deepinv_diffpir_runs_on_our_prior_and_fits_the_data():
    x, physics, y = _inpainting_problem()
    observed = physics.mask.bool().expand_as(x)
    diffpir = dinv.sampling.DiffPIR(PriorDenoiser(GaussianPrior(std=0.2)), max_iter=5, sigma=0.01,
                                    data_fidelity=dinv.optim.data_fidelity.L2())
    with torch.random.fork_rng():  # DiffPIR draws from the global RNG
        torch.manual_seed(0)
        out = diffpir(y, physics)
    assert float((out - x)[observed].abs().mean()) < 0.02  # measured 0.008; the noise is 0.01


# --- Tweedie denoising, sampling, evaluation ------------------------------------------------------

def test_denoise_is_the_gaussian_posterior_mean_on_the_schedule():
    prior = GaussianPrior(mean=0.2, std=0.5)
    a = prior.alphas_cumprod[400]
    sigma = float(((1 - a) / a).sqrt())
    y = torch.randn(1, 1, 4, 4)
    expected = 0.2 + 0.25 / (0.25 + sigma**2) * (y - 0.2)
    assert torch.allclose(prior.denoise(y, sigma), expected, atol=1e-5)
    assert int(prior.timestep_for_sigma(sigma)) == 400


def test_ddim_samples_of_a_gaussian_prior_converge_to_its_statistics():
    def sample(steps):
        return sample_ddim(GaussianPrior(mean=0.3, std=0.5), (32, 1, 8, 8), steps=steps,
                           generator=torch.Generator().manual_seed(0))
    few, many = sample(20), sample(100)
    assert abs(float(many.mean()) - 0.3) < 0.03 and abs(float(many.std()) - 0.5) < 0.03
    assert abs(float(many.std()) - 0.5) < abs(float(few.std()) - 0.5)  # first-order solver converges


def test_clipped_ddim_samples_stay_in_the_range():
    x = sample_ddim(tiny_prior(), (2, 1, 16, 16), steps=5, clip=(-1.0, 1.0),
                    generator=torch.Generator().manual_seed(0))
    free = sample_ddim(tiny_prior(), (2, 1, 16, 16), steps=5, generator=torch.Generator().manual_seed(0))
    assert float(x.abs().max()) <= 1.0 < float(free.abs().max())


def test_denoising_table_prefers_the_right_prior():
    rng = np.random.default_rng(0)
    image = rng.normal(0, 0.5, (32, 32))
    right = denoising_table(GaussianPrior(std=0.5), {"white": image}, sigmas=(0.5,))[0]
    wrong = denoising_table(GaussianPrior(std=5.0), {"white": image}, sigmas=(0.5,))[0]
    assert right["psnr_prior"] > wrong["psnr_prior"] + 1.0
    assert right["gain_db"] == pytest.approx(right["psnr_prior"] - right["psnr_filter"])


def test_psnr_decreases_with_error():
    clean = torch.linspace(0, 1, 10)
    assert psnr(clean + 0.01, clean) > psnr(clean + 0.1, clean)


# --- training data --------------------------------------------------------------------------------

def test_load_images_reads_folders_and_skips_unknown_files(tmp_path):
    Image.fromarray(np.full((20, 24), 7, np.uint8)).save(tmp_path / "a.png")
    np.save(tmp_path / "b.npy", np.ones((3, 16, 16), np.float32))
    (tmp_path / "README.txt").write_text("not an image")
    images = load_images([tmp_path])
    assert [im.shape for im in images] == [(20, 24), (16, 16), (16, 16), (16, 16)]
    assert float(images[0][0, 0]) == 7.0


def test_load_images_rejects_non_finite_arrays():
    with pytest.raises(InputError, match="NaN"):
        load_images([np.full((8, 8), np.nan)])


def test_patches_apply_the_transform_and_all_eight_symmetries():
    image = np.arange(16 * 16, dtype=np.float32).reshape(16, 16)
    sampler = PatchSampler([image], patch_size=16, channels=1, transform=AsinhTransform(softening=10.0))
    batch = sampler.sample(200, np.random.default_rng(0))
    physical = AsinhTransform(softening=10.0).to_physical(batch)[:, 0]
    corners = {tuple(np.round(p[[0, 0, -1, -1], [0, -1, 0, -1]].numpy()).astype(int)) for p in physical}
    assert len(corners) == 8  # every flip/rotation of the square, each one a permutation of the image
    assert torch.allclose(physical.flatten(1).sort(-1).values,
                          torch.from_numpy(image.ravel()).expand(200, -1), rtol=1e-3, atol=1e-2)


def test_complex_patches_of_real_images_keep_the_magnitude():
    sampler = PatchSampler([np.full((12, 12), 0.7)], patch_size=8, channels=2, transform=ValueTransform())
    batch = sampler.sample(4, np.random.default_rng(1))
    assert torch.allclose(batch.norm(dim=1), torch.full((4, 8, 8), 0.7), atol=1e-5)
    assert float(batch[:, 1].abs().max()) > 0.1  # a phase was applied


def test_smooth_random_phase_is_smooth():
    phase = smooth_random_phase(32, np.random.default_rng(0), max_gradient=0.05)
    assert np.abs(np.diff(phase, axis=0)).max() < 0.15 and np.abs(np.diff(phase, axis=1)).max() < 0.15


@pytest.mark.parametrize("kwargs, match", [
    ({"images": [np.zeros((8, 8))], "patch_size": 16, "channels": 1}, "smaller"),
    ({"images": [np.zeros((16, 16), complex)], "patch_size": 8, "channels": 1}, "channels=2"),
    ({"images": [np.zeros((16, 16))], "patch_size": 8, "channels": 3}, "channels"),
])
def test_patch_sampler_input_errors(kwargs, match):
    images = kwargs.pop("images")
    with pytest.raises(InputError, match=match):
        PatchSampler(images, transform=ValueTransform(), **kwargs)


def test_saved_prior_weights_follow_the_umask(tmp_path):
    """diffusers writes weights through a private temporary file (mode 600); a saved prior is readable."""
    import os

    from reddiff.priors import UNetPrior, make_unet, save_prior

    old = os.umask(0o022)
    try:
        folder = save_prior(UNetPrior(make_unet(1), name="tiny"), tmp_path / "p")
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in folder.iterdir()} == {"0o644"}
