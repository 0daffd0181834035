r"""How well a prior denoises its own kind of image, against a tuned Gaussian filter.

The measure behind the model cards' tables and the shipped priors' tests: add
white Gaussian noise of standard deviation :math:`\sigma` in *network units* to a
clean image, then compare the PSNR of

* the prior's one-step Tweedie denoiser (:meth:`reddiff.Prior.denoise`), and
* a Gaussian filter with the best width of a small grid for that very image
  (an oracle choice, so the baseline is as strong as it can be).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from ..errors import InputError
from .base import Prior

FILTER_WIDTHS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def psnr(estimate: torch.Tensor, clean: torch.Tensor) -> float:
    r"""PSNR in dB with the clean image's range as peak, :math:`10\log_{10}(\mathrm{peak}^2/\mathrm{MSE})`.

    Examples
    --------
    >>> clean = torch.tensor([0.0, 1.0])
    >>> round(psnr(clean + 0.1, clean), 1)
    20.0
    """
    peak = float(clean.max() - clean.min())
    mse = float((estimate - clean).pow(2).mean())
    return float(10 * np.log10(peak**2 / mse))


def as_model_image(image, prior: Prior) -> torch.Tensor:
    """A 2-D physical image (real, or complex for a 2-channel prior) as ``(1, C, H, W)`` network units."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise InputError(f"expected a 2-D image, got shape {image.shape}", field="images")
    planes = [image.real, image.imag] if prior.channels == 2 else [image]
    if prior.channels == 1 and np.iscomplexobj(image):
        raise InputError("complex image for a 1-channel prior", field="images")
    x = torch.from_numpy(np.stack(planes).astype(np.float32))[None]
    return prior.transform.to_model(x)


def denoising_table(prior: Prior, images: dict, *, sigmas=(0.05, 0.1, 0.2), seed: int = 0,
                    filter_widths=FILTER_WIDTHS) -> list[dict]:
    r"""PSNR of noisy, Gaussian-filtered and prior-denoised images at several noise levels.

    Parameters
    ----------
    prior : reddiff.Prior
    images : dict
        Name -> 2-D image in physical units (complex for a 2-channel prior).
    sigmas : sequence of float
        Noise standard deviations in network units.
    seed : int
        Seeds the noise (one generator per image and level).
    filter_widths : sequence of float
        Gaussian filter widths (pixels) tried; the best is kept.

    Returns
    -------
    list of dict
        One row per image and level: ``image``, ``sigma``, ``psnr_noisy``,
        ``psnr_filter``, ``filter_width``, ``psnr_prior``, ``gain_db``
        (``psnr_prior - psnr_filter``).

    Examples
    --------
    >>> from reddiff.priors import GaussianPrior
    >>> rows = denoising_table(GaussianPrior(std=0.5), {"noise": np.random.default_rng(0).normal(0, 0.5, (16, 16))},
    ...                        sigmas=(0.5,))
    >>> bool(rows[0]["psnr_prior"] > rows[0]["psnr_noisy"])
    True
    """
    rows = []
    for index, (name, image) in enumerate(images.items()):
        clean = as_model_image(image, prior).to(prior.alphas_cumprod.device)
        for level, sigma in enumerate(sigmas):
            generator = torch.Generator().manual_seed(seed * 1_000_003 + index * 101 + level)
            noisy = clean + sigma * torch.randn(clean.shape, generator=generator).to(clean.device)
            with torch.no_grad():
                denoised = prior.denoise(noisy, float(sigma))
            filtered = {w: _gaussian_filter(noisy, w) for w in filter_widths}
            width = max(filtered, key=lambda w: psnr(filtered[w], clean))
            row = {"image": name, "sigma": float(sigma), "psnr_noisy": psnr(noisy, clean),
                   "psnr_filter": psnr(filtered[width], clean), "filter_width": width,
                   "psnr_prior": psnr(denoised, clean)}
            row["gain_db"] = row["psnr_prior"] - row["psnr_filter"]
            rows.append(row)
    return rows


def _gaussian_filter(x: torch.Tensor, width: float) -> torch.Tensor:
    array = x.detach().cpu().numpy()
    smoothed = gaussian_filter(array, sigma=(0, 0, width, width), mode="reflect")
    return torch.from_numpy(smoothed).to(x.device)
