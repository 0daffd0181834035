"""The ``reddiff`` command line: one typer app, one function per command.

Commands call library functions; errors a user can cause (:class:`ReddiffError`)
print one line naming the file and the problem and exit with status 1, with the
traceback only under ``--debug``.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="RED-Diff reconstruction of MRI, CT and telescope images, with uncertainty maps.")


@app.callback()
def main() -> None:
    """RED-Diff reconstruction of MRI, CT and telescope images, with uncertainty maps."""


@app.command("train-prior")
def train_prior_command(
    ctx: typer.Context,
    images: list[str] = typer.Argument(None, help="Image files or folders (PNG/TIFF/NumPy/DICOM/FITS/NIfTI/HDF5), "
                                       "in physical units."),
    out: Path = typer.Option(..., "--out", help="Prior folder to write (resumes from its checkpoint/)."),
    recipe: str = typer.Option(None, help="Rebuild a shipped prior: ct, mri or astro (no IMAGES then)."),
    channels: int = typer.Option(1, help="1 real, 2 complex (real images get a smooth random phase)."),
    transform: str = typer.Option(None, help='Value transform as JSON, e.g. \'{"kind": "affine", "offset": 0, '
                                  '"scale": 1000}\'; identity by default.'),
    patch_size: int = typer.Option(32, help="Training patch side (pixels)."),
    batch_size: int = typer.Option(32, help="Patches per step over all processes."),
    steps: int = typer.Option(1000, help="Total optimiser steps."),
    lr: float = typer.Option(5e-4, help="Adam learning rate."),
    ema_decay: float = typer.Option(0.999, help="EMA decay of the saved weights."),
    seed: int = typer.Option(0, help="Seeds the initial weights and every batch."),
    resume: bool = typer.Option(True, help="Continue from OUT/checkpoint if present."),
    device: str = typer.Option(None, help="cpu, cuda, cuda:1, ... (default: GPU if available)."),
    threads: int = typer.Option(None, help="CPU threads for torch (default: torch's choice)."),
    checkpoint_every: int = typer.Option(200, help="Steps between checkpoints."),
    block_out_channels: str = typer.Option("16,32,64", help="UNet channels per level, comma-separated."),
    layers_per_block: int = typer.Option(1, help="ResNet blocks per UNet level."),
    attention: bool = typer.Option(False, help="Self-attention at the lowest resolution."),
    name: str = typer.Option("", help="Prior name (default: the folder name)."),
    card: bool = typer.Option(True, help="Write MODEL_CARD.md and samples.png."),
) -> None:
    """Train a diffusion prior on your own images (also under torchrun for several GPUs)."""
    import json
    import os
    import shlex

    import torch
    from tqdm.auto import tqdm

    from .errors import ReddiffError
    from .priors import recipes, transform_from_config, train_prior
    from .priors.card import write_model_card

    if threads:
        torch.set_num_threads(threads)
    try:
        if recipe and (images or transform or ctx.get_parameter_source("channels").name != "DEFAULT"):
            raise ReddiffError("--recipe sets its own images, channels and transform; "
                               "drop IMAGES/--channels/--transform")
        if not recipe and not images:
            raise ReddiffError("give IMAGES (files or folders) or --recipe ct|mri|astro")
        chosen = recipes.get_recipe(recipe) if recipe else None
        value_transform = chosen.transform if chosen else transform_from_config(json.loads(transform or "{}"))
        sources = chosen.images() if chosen else images
        command = ["reddiff", "train-prior", *(images or [])]
        for param in ctx.command.params:  # the options given, in their canonical spelling
            if param.name != "images" and ctx.get_parameter_source(param.name).name != "DEFAULT":
                value = ctx.params[param.name]
                flag = param.opts[0] if value or not param.secondary_opts else param.secondary_opts[0]
                command += [flag] if isinstance(value, bool) else [flag, str(value)]
        record = {"data": chosen.description if chosen else ", ".join(images), "command": shlex.join(command)}
        model_config = {"block_out_channels": [int(c) for c in block_out_channels.split(",")],
                        "layers_per_block": layers_per_block, "attention": attention}
        rank = int(os.environ.get("RANK", "0"))
        with tqdm(total=steps, desc="train-prior", unit="step", disable=rank != 0) as bar:
            def show(info: dict) -> None:
                bar.n = info["step"] + 1
                bar.set_postfix(loss=f"{info['loss']:.4f}", refresh=False)
                bar.refresh()

            result = train_prior(sources, out, channels=chosen.channels if chosen else channels,
                                 transform=value_transform, patch_size=patch_size, batch_size=batch_size,
                                 steps=steps, lr=lr, ema_decay=ema_decay, seed=seed, resume=resume,
                                 device=device, checkpoint_every=checkpoint_every,
                                 model_config=model_config, name=name or (recipe or ""), record=record,
                                 callback=show)
        if card and rank == 0:
            write_model_card(result.prior, out, evaluation=chosen.evaluation() if chosen else None)
    except (ReddiffError, json.JSONDecodeError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
