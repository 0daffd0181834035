"""Diffusion priors: the interface, an analytic Gaussian prior, diffusers UNet priors
(load by name or folder, train on your own images), and adapters to deepinv denoisers."""

from .adapters import DenoiserPrior, PriorDenoiser
from .base import (AffineTransform, AsinhTransform, Prior, ValueTransform,
                   ddpm_linear_schedule, transform_from_config)
from .checkpoint import PRETRAINED, load_prior, save_prior
from .data import PatchSampler, load_images, smooth_random_phase
from .gaussian import GaussianPrior
from .train import TrainingResult, export_checkpoint, train_prior
from .unet import DEFAULT_UNET, UNetPrior, make_unet, schedule_from_config

__all__ = ["Prior", "GaussianPrior", "ValueTransform", "AffineTransform", "AsinhTransform",
           "ddpm_linear_schedule", "transform_from_config",
           "UNetPrior", "make_unet", "schedule_from_config", "DEFAULT_UNET",
           "load_prior", "save_prior", "PRETRAINED",
           "train_prior", "export_checkpoint", "TrainingResult", "load_images", "PatchSampler", "smooth_random_phase",
           "DenoiserPrior", "PriorDenoiser"]
