"""Model cards: ``MODEL_CARD.md`` and ``samples.png`` next to a prior's weights.

The card says what the prior was trained on and how (from its training record),
how to retrain it (the exact command), how well it denoises held-in images
against a tuned Gaussian filter, and shows unconditional DDIM samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .evaluate import denoising_table
from .sampling import sample_ddim
from .unet import UNetPrior

CARD_FILE = "MODEL_CARD.md"
SAMPLES_FILE = "samples.png"


def write_model_card(prior: UNetPrior, folder, *, evaluation: dict | None = None,
                     n_samples: int = 8, sample_size: int = 64, sample_steps: int = 50,
                     seed: int = 0, extra: str = "") -> Path:
    """Write ``MODEL_CARD.md`` and ``samples.png`` for ``prior`` into ``folder``.

    Parameters
    ----------
    prior : UNetPrior
        With its training record in ``prior.info`` (as :func:`train_prior` leaves it).
    folder : str or os.PathLike
        The prior folder.
    evaluation : dict, optional
        Name -> 2-D physical image for the denoising table (:func:`denoising_table`).
    n_samples, sample_size, sample_steps : int
        DDIM samples shown: how many, their side, and network calls.
    seed : int
        Seeds the samples and the evaluation noise.
    extra : str
        Markdown appended at the end (e.g. measurements made elsewhere).

    Returns
    -------
    pathlib.Path
        The card file.

    Examples
    --------
    >>> import tempfile
    >>> from reddiff.priors import make_unet
    >>> prior = UNetPrior(make_unet(1, block_out_channels=(8, 8), norm_num_groups=4), name="tiny")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     card = write_model_card(prior, tmp, n_samples=2, sample_size=8, sample_steps=2)
    ...     card.read_text().splitlines()[0]
    '# reddiff prior `tiny`'
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        samples = sample_ddim(prior, (n_samples, prior.channels, sample_size, sample_size),
                              steps=sample_steps, clip=prior.info.get("network_range"), generator=generator)
    _save_samples(samples, folder / SAMPLES_FILE, title=f"{prior.name}: {n_samples} DDIM samples "
                  f"({sample_steps} steps, {sample_size}x{sample_size}, network units)")
    rows = denoising_table(prior, evaluation, seed=seed) if evaluation else []
    text = _card_text(prior, rows, n_samples, sample_size, sample_steps) + (extra and "\n" + extra + "\n")
    (folder / CARD_FILE).write_text(text)
    return folder / CARD_FILE


def _card_text(prior: UNetPrior, rows, n_samples, sample_size, sample_steps) -> str:
    info = prior.info
    config = prior.unet.config
    n_params = sum(p.numel() for p in prior.unet.parameters())
    kind = "complex images as 2 channels (real, imaginary)" if prior.channels == 2 else "real images, 1 channel"
    lines = [
        f"# reddiff prior `{prior.name}`", "",
        "A DDPM noise predictor (diffusers `UNet2DModel`) used as the image prior of RED-Diff.",
        "Load it with `reddiff.priors.load_prior(...)`; the weights also load with "
        "`diffusers.UNet2DModel.from_pretrained(folder)`.", "",
        "## Data", "",
        f"- Training data: {info.get('data', 'not recorded')}",
        f"- Channels: {prior.channels} ({kind})",
        f"- Value transform (physical -> network units): `{prior.transform!r}`",
        f"- Patches: {info.get('patch_size', '?')}x{info.get('patch_size', '?')}, random flips and "
        "90-degree rotations; the network is fully convolutional and applies to any image size", "",
        "## Model and training", "",
        f"- Network: UNet2DModel, block_out_channels {tuple(config.block_out_channels)}, "
        f"layers_per_block {config.layers_per_block}, blocks {tuple(config.down_block_types)}, "
        f"{n_params:,} parameters ({n_params * 4 / 1e6:.1f} MB float32)",
        f"- Schedule: DDPM {prior.schedule['beta_schedule']}, {prior.num_timesteps} steps, "
        f"beta {prior.schedule['beta_start']:g} to {prior.schedule['beta_end']:g}; epsilon prediction",
        *_fine_tuning_lines(info),
        f"- Steps: {info.get('steps', '?')}, batch {info.get('batch_size', '?')}, Adam lr "
        f"{info.get('lr', '?')}, EMA decay {info.get('ema_decay', '?')}, seed {info.get('seed', '?')}",
        f"- Final loss (mean of the last {info.get('final_loss_steps', '?')} steps): "
        f"{_fmt(info.get('final_loss'))}",
        f"- Training wall time: {_fmt(info.get('wall_time_s'))} s on {info.get('hardware', '?')}, "
        f"{info.get('world_size', 1)} process(es); torch {info.get('torch_version', '?')}, "
        f"diffusers {info.get('diffusers_version', '?')}", "",
        "## Retrain", "", "```", info.get("command", "not recorded"), "```", "",
    ]
    if rows:
        lines += ["## Denoising against a tuned Gaussian filter", "",
                  "White Gaussian noise of std sigma in network units; the prior denoises in one step "
                  "(Tweedie, `Prior.denoise`); the filter width is the best of "
                  "0.5-3 px for each image (oracle). PSNR in dB, peak = clean image range.", "",
                  "| image | sigma | noisy | Gaussian filter (width) | prior | gain |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['image']} | {r['sigma']:g} | {r['psnr_noisy']:.2f} | {r['psnr_filter']:.2f} "
                  f"({r['filter_width']:g}) | {r['psnr_prior']:.2f} | {r['gain_db']:+.2f} |" for r in rows]
        lines.append("")
    lines += ["## Samples", "",
              f"![samples]({SAMPLES_FILE})", "",
              f"{n_samples} unconditional DDIM samples ({sample_steps} steps, {sample_size}x{sample_size}, "
              "network units, magnitude for complex priors), each x0 estimate clipped to the training data's "
              f"range {_range(prior.info.get('network_range'))} (diffusers' `clip_sample`).", ""]
    return "\n".join(lines)


def _range(bounds) -> str:
    return "(not recorded)" if bounds is None else f"[{bounds[0]:.3g}, {bounds[1]:.3g}]"


def _fmt(value) -> str:
    return "?" if value is None else f"{value:.4g}"


def _save_samples(samples: torch.Tensor, path: Path, *, title: str) -> None:
    from matplotlib.figure import Figure

    images = samples.norm(dim=1) if samples.shape[1] == 2 else samples[:, 0]
    images = images.cpu().numpy()
    low, high = (0.0, 1.0) if samples.shape[1] == 2 else (-1.0, 1.0)
    n = len(images)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    figure = Figure(figsize=(2 * cols, 2 * rows + 0.4))
    for i, image in enumerate(images):
        axes = figure.add_subplot(rows, cols, i + 1)
        axes.imshow(image, cmap="gray", vmin=low, vmax=high)
        axes.set_axis_off()
    figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def _fine_tuning_lines(info: dict) -> list[str]:
    """A fine-tuned prior's ancestry (``train_prior(init_from=...)``): the prior it started from and how
    that one was trained, back to the first; the steps and time below are then the fine-tuning's own."""
    lines, source, parent = [], info.get("init_from"), info.get("init_from_training") or {}
    while source:
        lines.append(f"- Fine-tuned from `{parent.get('name', source['prior'])}` ({source['prior']}, weights "
                     f"SHA-256 {source['weights_sha256'][:16]}...), trained {parent.get('steps', '?')} steps in "
                     f"{_fmt(parent.get('wall_time_s'))} s on {parent.get('hardware', '?')}: "
                     f"{parent.get('data', 'data not recorded')}")
        source, parent = parent.get("init_from"), parent.get("init_from_training") or {}
    if lines:
        lines.append("- The steps, loss and time below are the fine-tuning's own")
    return lines

