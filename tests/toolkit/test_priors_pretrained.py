"""The shipped priors ct, mri and astro: load by name, documented, and better than a Gaussian filter."""

import json

import numpy as np
import pytest
import torch

from reddiff.priors import PRETRAINED, load_prior
from reddiff.priors.checkpoint import PRETRAINED_DIR
from reddiff.priors.evaluate import denoising_table
from reddiff.priors.recipes import HELD_OUT, get_recipe

SIGMAS = (0.05, 0.1, 0.2)  # network units: 50, 100, 200 HU for ct; fractions of max |x| for mri
EXPECTED = {"ct": (1, "affine"), "mri": (2, "identity"), "astro": (1, "asinh")}


@pytest.fixture(scope="module", params=PRETRAINED)
def shipped(request):
    return request.param, load_prior(request.param)


def test_loads_by_name_with_its_channels_and_units(shipped):
    name, prior = shipped
    channels, kind = EXPECTED[name]
    assert (prior.name, prior.channels, prior.transform.kind) == (name, channels, kind)
    command = prior.info["command"]
    assert command.startswith("reddiff train-prior ") and f"--recipe {name} " in command


def test_is_under_50_megabytes_of_safetensors_with_a_model_card_and_samples(shipped):
    name, _ = shipped
    folder = PRETRAINED_DIR / name
    assert (folder / "diffusion_pytorch_model.safetensors").stat().st_size < 50e6
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))
    card = (folder / "MODEL_CARD.md").read_text()
    for section in ("## Data", "## Model and training", "## Retrain", "## Denoising", "![samples](samples.png)"):
        assert section in card
    assert (folder / "samples.png").stat().st_size > 5000
    assert json.loads((folder / "reddiff_prior.json").read_text())["training"]["final_loss"] > 0


@pytest.fixture(scope="module")
def denoising(shipped):
    name, prior = shipped
    return name, denoising_table(prior, get_recipe(name).evaluation(), sigmas=SIGMAS)


def test_denoises_held_in_images_better_than_a_tuned_gaussian_filter(denoising):
    # measured mean gains (dB) at sigma 0.05/0.1/0.2: ct +10.6/+9.0/+8.6, mri +3.7/+3.1/+2.4,
    # astro +3.1/+2.9/+2.9; held out (ct_small, mr_small, m13): +0.75..+1.5, +2.9..+3.5, +2.4..+2.6
    name, rows = denoising
    level_means = []
    for sigma in SIGMAS:
        gains = [r["gain_db"] for r in rows if r["sigma"] == sigma and not r["image"].startswith(HELD_OUT)]
        assert len(gains) >= 2 and min(gains) > 0, (name, sigma, gains)
        level_means.append(np.mean(gains))
    assert min(level_means) >= 0.25 and np.mean(level_means) >= 0.5, (name, level_means)


def test_denoises_a_held_out_real_image_better_than_a_tuned_gaussian_filter(denoising):
    name, rows = denoising
    gains = [r["gain_db"] for r in rows if r["image"].startswith(HELD_OUT)]
    assert len(gains) == len(SIGMAS) and min(gains) > 0, (name, gains)


def test_the_transform_maps_the_physical_range_to_about_minus_one_one(shipped):
    name, prior = shipped
    images = get_recipe(name).evaluation().values()
    for image in images:
        planes = np.stack([image.real, image.imag]) if prior.channels == 2 else image[None]
        z = prior.transform.to_model(torch.from_numpy(planes.astype(np.float32)))
        assert -1.05 <= float(z.min()) and float(np.percentile(z, 99)) <= 1.5
