"""Network priors: forward time on a CPU, and does attention help a patch-trained prior?

1. Time one forward of the default prior network (and its attention variant) at
   128x128, batch 1 and 4 (what RED-Diff pays per step).
2. Train the default network with and without self-attention at the lowest
   resolution on the ``ct`` recipe's 32x32 patches (same seed, same steps), then
   compare one-step denoising (PSNR gain over a tuned Gaussian filter) on held-in
   phantoms cropped to the training size (32x32) and at 128x128: a network that
   only works at its training size would lose its gain at 128x128.

Run: ``python benchmarks/bench_priors.py --steps 400 --threads 1`` (about 6 min on one core).
Measured (AMD EPYC, 1 thread): forward at 128x128 0.087 s (batch 1) / 0.34 s (batch 4)
without attention, 0.14 / 0.58 s with it; after 400 steps attention was 0.2-0.5 dB worse
at both 32x32 and 128x128, so the shipped priors have none.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from reddiff.priors import UNetPrior, make_unet, train_prior
from reddiff.priors.evaluate import denoising_table
from reddiff.priors.recipes import get_recipe
from reddiff.priors.unet import DEFAULT_UNET


def forward_seconds(prior: UNetPrior, batch: int, size: int, repeats: int = 5) -> float:
    x = torch.randn(batch, prior.channels, size, size)
    t = torch.full((batch,), 500)
    with torch.no_grad():
        prior.eps(x, t)
        started = time.perf_counter()
        for _ in range(repeats):
            prior.eps(x, t)
    return (time.perf_counter() - started) / repeats


def timing_table() -> None:
    print("| network | parameters | batch 1 @128 (s) | batch 4 @128 (s) |")
    print("|---|---|---|---|")
    for attention in (False, True):
        config = {**DEFAULT_UNET, "attention": attention}
        prior = UNetPrior(make_unet(1, **config))
        params = sum(p.numel() for p in prior.parameters())
        print(f"| {config['block_out_channels']} attention={attention} | {params:,} | "
              f"{forward_seconds(prior, 1, 128):.3f} | {forward_seconds(prior, 4, 128):.3f} |")


def attention_table(steps: int) -> None:
    recipe = get_recipe("ct")
    images = recipe.images()
    evaluation = recipe.evaluation()
    sizes = {"32x32 crop": {k: v[48:80, 48:80] for k, v in evaluation.items()}, "128x128": evaluation}
    print(f"\nct recipe, {steps} steps, batch 32, 32x32 patches; PSNR gain (dB) over the best Gaussian filter,"
          " mean over the recipe's evaluation images (2 phantoms, ct_small)")
    print("| attention | train s | " + " | ".join(f"{size} sigma={s}" for size in sizes for s in (0.05, 0.1, 0.2))
          + " |")
    print("|---|---|" + "---|" * 6)
    for attention in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            result = train_prior(images, tmp, channels=1, transform=recipe.transform, steps=steps,
                                 model_config={"attention": attention}, checkpoint_every=steps)
            seconds = time.perf_counter() - started
        gains = []
        for crops in sizes.values():
            rows = denoising_table(result.prior.eval(), crops)
            for sigma in (0.05, 0.1, 0.2):
                gains.append(np.mean([r["gain_db"] for r in rows if r["sigma"] == sigma]))
        print(f"| {attention} | {seconds:.0f} | " + " | ".join(f"{g:+.2f}" for g in gains) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    timing_table()
    if not args.skip_training:
        attention_table(args.steps)


if __name__ == "__main__":
    main()
