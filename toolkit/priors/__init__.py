"""Diffusion priors: the interface, an analytic Gaussian prior, and adapters."""

from .base import (AffineTransform, AsinhTransform, Prior, ValueTransform,
                   ddpm_linear_schedule, transform_from_config)
from .gaussian import GaussianPrior

__all__ = ["Prior", "GaussianPrior", "ValueTransform", "AffineTransform", "AsinhTransform",
           "ddpm_linear_schedule", "transform_from_config"]
