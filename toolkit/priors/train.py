r"""Train a diffusion prior on your own images: DDPM noise prediction on random patches.

One function, :func:`train_prior`, runs on a CPU, one GPU, or several GPUs/nodes
under PyTorch's own launcher (``torchrun ... -m reddiff train-prior``), where
each process trains on its share of every batch with DistributedDataParallel.

Randomness is a pure function of ``(seed, step)``: every process draws the whole
batch of a step (patches, timesteps, noise) and trains on its own slice, and
DistributedDataParallel averages the gradients, so a run gives the same losses
and weights (up to float rounding) on any number of processes, a resumed run
repeats the uninterrupted one exactly, and no global RNG is touched.

Files in ``out_dir``: the prior folder (see :mod:`reddiff.priors.checkpoint`) with
the EMA weights, and ``checkpoint/`` (``training_state.safetensors`` +
``training_state.json``: raw and EMA weights, Adam state, step, loss history),
which ``resume=True`` continues from. Only rank 0 writes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from ..errors import InputError
from ..files import default_file_mode
from .base import ValueTransform, transform_from_config
from .checkpoint import save_prior
from .data import PatchSampler, load_images
from .unet import DEFAULT_SCHEDULE, DEFAULT_UNET, UNetPrior, make_unet, schedule_from_config

CHECKPOINT_DIR = "checkpoint"
STATE_JSON = "training_state.json"
#: Largest weights file a checkpoint writes (bytes): shards stay small enough for any git host.
SHARD_BYTES = 16 * 2**20
#: Label of the data stream in the seed sequence ``(seed, DATA_STREAM, step)``.
DATA_STREAM = 0
#: Settings a resumed run must share with its checkpoint.
RESUME_KEYS = ("channels", "patch_size", "batch_size", "lr", "ema_decay", "seed", "model_config",
               "transform", "data_sha256", "init_from")


@dataclass
class TrainingResult:
    """What :func:`train_prior` returns.

    Attributes
    ----------
    prior : UNetPrior
        The trained prior with EMA weights (on the training device).
    folder : pathlib.Path
        The prior folder written.
    losses : list of float
        Training loss per step from step 0 (across resumes), averaged over processes.
    wall_time_s : float
        Training time, summed over resumed runs.
    world_size : int
        Number of processes.
    """

    prior: UNetPrior
    folder: Path
    losses: list[float]
    wall_time_s: float
    world_size: int


def train_prior(sources, out_dir, *, channels: int = 1, transform: ValueTransform | None = None,
                patch_size: int = 32, batch_size: int = 32, steps: int = 1000, lr: float = 5e-4,
                ema_decay: float = 0.999, seed: int = 0, resume: bool = True, device=None,
                checkpoint_every: int = 200, model_config: dict | None = None, name: str = "",
                record: dict | None = None, init_from=None,
                callback: Callable[[dict], None] | None = None) -> TrainingResult:
    r"""Train a ``UNet2DModel`` noise predictor on patches of images (DDPM, :math:`\epsilon` loss).

    Parameters
    ----------
    sources : sequence of path or numpy.ndarray
        Image files, folders or arrays in physical units (see :func:`load_images`).
    out_dir : str or os.PathLike
        Prior folder to write (created), with ``checkpoint/`` inside.
    channels : {1, 2}
        1 for real images, 2 for complex (real, imag) images.
    transform : ValueTransform, optional
        Physical to network units (about [-1, 1]); stored with the prior. Identity by default
        (with ``init_from``: that prior's).
    patch_size : int
        Training patch side (the network then applies to any size).
    batch_size : int
        Patches per step, over all processes (divisible by their number).
    steps : int
        Total optimiser steps (a resumed run continues up to this number).
    lr : float
        Adam learning rate (gradients clipped to norm 1).
    ema_decay : float
        Maximum decay of the exponential moving average of the weights saved as the prior.
    seed : int
        Seeds the network initialisation and every batch.
    resume : bool
        Continue from ``out_dir/checkpoint`` if it exists (its settings must match);
        False starts over.
    device : str or torch.device, optional
        Default: ``cuda:LOCAL_RANK`` under torchrun with CUDA, ``cuda`` if available, else CPU.
    checkpoint_every : int
        Steps between checkpoints (one is always written at the end).
    model_config : dict, optional
        Options of :func:`make_unet`; :data:`DEFAULT_UNET` by default (with ``init_from``:
        that prior's).
    name : str
        Name of the prior (default: the folder name).
    record : dict, optional
        Extra provenance stored in the training record (data description, command).
    init_from : str or os.PathLike, optional
        A trained prior (shipped name or folder) whose EMA weights start the run instead of
        random ones: fine-tuning it on ``sources``. Its channels, transform and architecture
        must be this run's; the training record names it.
    callback : callable, optional
        Called on rank 0 after each step with ``{"step", "steps", "loss", "ema_decay"}``.

    Returns
    -------
    TrainingResult

    Notes
    -----
    Each step draws patches :math:`x_0`, steps :math:`t \sim U\{0..T-1\}` and noise
    :math:`\epsilon \sim \mathcal N(0, I)`, and minimises

    .. math:: \mathcal L = \operatorname{mean}\,\lVert \epsilon_\theta(\sqrt{\bar\alpha_t}x_0
              + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t) - \epsilon \rVert^2 .

    The saved weights are an EMA :math:`\bar\theta \leftarrow d\,\bar\theta + (1 - d)\theta`
    with warm-up :math:`d = \min(d_{max}, (1 + k)/(10 + k))` at step :math:`k`.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> images = [np.random.default_rng(0).standard_normal((24, 24))]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     result = train_prior(images, tmp, patch_size=8, batch_size=2, steps=2,
    ...                          model_config={"block_out_channels": (8, 8), "norm_num_groups": 4})
    >>> len(result.losses), result.prior.channels
    (2, 1)
    """
    start, source = _starting_prior(init_from, channels, transform)
    if start is not None:
        transform, model_config = transform or start.transform, model_config or start.info.get("model_config")
    transform = transform or ValueTransform()
    model_config = {**DEFAULT_UNET, **(model_config or {})}
    model_config["block_out_channels"] = list(model_config["block_out_channels"])
    _check_settings(steps, batch_size, lr, ema_decay, patch_size, checkpoint_every)
    out_dir = Path(out_dir)
    rank, world, own_group = _init_distributed()
    try:
        device = _device(device)
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL collectives run on the current device
        if batch_size % world:
            raise InputError(f"batch_size={batch_size} must be divisible by the {world} processes",
                             field="batch_size")
        sampler = PatchSampler(load_images(sources), patch_size=patch_size, channels=channels,
                               transform=transform)
        settings = {"channels": channels, "patch_size": patch_size, "batch_size": batch_size,
                    "lr": lr, "ema_decay": ema_decay, "seed": seed, "model_config": model_config,
                    "transform": transform.to_config(), "data_sha256": _fingerprint(sampler.images),
                    "init_from": source}
        model = _init_model(channels, patch_size, model_config, seed)
        if start is not None:
            _load_weights(model, start, model_config)
        model = model.to(device)
        ema = copy.deepcopy(model).requires_grad_(False)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        state = {"step": 0, "losses": [], "wall_time_s": 0.0}
        if resume and (out_dir / CHECKPOINT_DIR / STATE_JSON).is_file():
            state = _load_state(out_dir / CHECKPOINT_DIR, settings, model, ema, optimizer, device)
        net = model.train()
        if world > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        alphas = schedule_from_config(DEFAULT_SCHEDULE).to(device)
        started = time.perf_counter()
        for step in range(state["step"], steps):
            loss = _train_step(net, optimizer, sampler, alphas, batch_size, rank, world,
                               _step_rngs(seed, step), device)
            decay = _ema_update(ema, model, ema_decay, step)
            state["losses"].append(_mean_over_processes(loss, world))
            state["step"] = step + 1
            if callback is not None and rank == 0:
                callback({"step": step, "steps": steps, "loss": state["losses"][-1], "ema_decay": decay})
            if rank == 0 and (state["step"] % checkpoint_every == 0 or state["step"] == steps):
                elapsed = state["wall_time_s"] + time.perf_counter() - started
                _save_state(out_dir / CHECKPOINT_DIR, settings, model, ema, optimizer,
                            {**state, "wall_time_s": elapsed})
        state["wall_time_s"] += time.perf_counter() - started
        prior = UNetPrior(ema.eval(), schedule=DEFAULT_SCHEDULE, transform=transform,
                          name=name or out_dir.resolve().name)
        extra = {"network_range": sampler.value_range()}
        if start is not None:
            extra["init_from_training"] = parent_record(start)
        prior.info = _training_record(settings, state, steps, world, device, {**(record or {}), **extra})
        if rank == 0:
            save_prior(prior, out_dir)
        if world > 1:
            dist.barrier()
        return TrainingResult(prior, out_dir, state["losses"], state["wall_time_s"], world)
    finally:
        if own_group:
            dist.destroy_process_group()


def export_checkpoint(out_dir, folder=None, *, name: str = "") -> Path:
    """Write the EMA weights of a training checkpoint as a prior folder, mid-training.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The training folder (``train_prior``'s ``out_dir``, holding ``checkpoint/``).
    folder : str or os.PathLike, optional
        Prior folder to write (default ``out_dir`` itself, as the finished run would).
    name : str
        Prior name (default the folder's name).

    Returns
    -------
    pathlib.Path
        The prior folder; its training record says at which step it was taken.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from reddiff.priors import load_prior
    >>> images = [np.random.default_rng(0).standard_normal((24, 24))]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = train_prior(images, tmp, patch_size=8, batch_size=2, steps=2,
    ...                     model_config={"block_out_channels": (8, 8), "norm_num_groups": 4})
    ...     load_prior(export_checkpoint(tmp, f"{tmp}/copy")).info["exported_at_step"]
    2
    """
    meta, tensors = _read_state(Path(out_dir) / CHECKPOINT_DIR, "cpu")
    settings = meta["settings"]
    ema = _init_model(settings["channels"], settings["patch_size"], settings["model_config"], settings["seed"])
    ema.load_state_dict(_strip(tensors, "ema."))
    folder = Path(folder or out_dir)
    prior = UNetPrior(ema.eval(), schedule=DEFAULT_SCHEDULE, transform=transform_from_config(settings["transform"]),
                      name=name or folder.resolve().name)
    prior.info = {**_training_record(settings, meta, meta["step"], 1, "cpu", {}), "exported_at_step": meta["step"]}
    return save_prior(prior, folder)


def _check_settings(steps, batch_size, lr, ema_decay, patch_size, checkpoint_every) -> None:
    checks = (("steps", steps, steps >= 1, "at least 1"),
              ("batch_size", batch_size, batch_size >= 1, "at least 1"),
              ("lr", lr, lr > 0, "positive"),
              ("ema_decay", ema_decay, 0 <= ema_decay < 1, "in [0, 1)"),
              ("patch_size", patch_size, patch_size >= 4, "at least 4"),
              ("checkpoint_every", checkpoint_every, checkpoint_every >= 1, "at least 1"))
    for field, value, ok, expected in checks:
        if not ok:
            raise InputError(f"{field} must be {expected}, got {value!r}", field=field)


def _init_distributed() -> tuple[int, int, bool]:
    """``(rank, world_size, initialised_here)``; starts a process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, False
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), True


def _device(device) -> torch.device:
    """The given device, else CUDA if available; ``cuda`` without an index means ``cuda:LOCAL_RANK``."""
    device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def _init_model(channels: int, patch_size: int, model_config: dict, seed: int):
    """A fresh UNet whose initial weights depend on ``seed`` only (global RNG restored)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make_unet(channels, sample_size=patch_size, **model_config)


def _starting_prior(init_from, channels: int, transform) -> tuple[UNetPrior | None, dict | None]:
    """The prior a fine-tuning run starts from (None: random weights), checked against the run's
    channels and, when given, its transform, and the record naming it and its weights' hash."""
    if init_from is None:
        return None, None
    from .checkpoint import load_prior

    start = load_prior(init_from, device="cpu")
    if start.channels != channels:
        raise InputError(f"has {start.channels} channel(s), this run {channels}; pass channels="
                         f"{start.channels} (--channels {start.channels})", path=init_from, field="init_from")
    if transform is not None and transform.to_config() != start.transform.to_config():
        raise InputError(f"has the value transform {start.transform.to_config()}, this run "
                         f"{transform.to_config()}; fine-tuning keeps the prior's units", path=init_from,
                         field="init_from")
    digest = hashlib.sha256()
    for key, tensor in sorted(start.unet.state_dict().items()):
        digest.update(key.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return start, {"prior": str(init_from), "weights_sha256": digest.hexdigest()}


def parent_record(start: UNetPrior) -> dict:
    """What a fine-tuned prior inherits from the one it started from: its training data, steps and time
    (and, if it was itself fine-tuned, its parent's), for the model card."""
    keys = ("data", "steps", "wall_time_s", "hardware", "init_from", "init_from_training")
    return {key: start.info[key] for key in keys if key in start.info} | {"name": start.name}


def _load_weights(model, start: UNetPrior, model_config: dict) -> None:
    """``start``'s weights into the fresh ``model`` (same architecture, else a clear error)."""
    try:
        model.load_state_dict(start.unet.state_dict())
    except RuntimeError as err:
        raise InputError(f"its architecture {start.info.get('model_config')} differs from this run's "
                         f"{model_config} ({str(err).splitlines()[0]}); drop the architecture options to "
                         "use the prior's", field="init_from") from err


def _step_rngs(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """The random streams of one training step, from ``(seed, step)`` only."""
    sequence = np.random.SeedSequence([seed, DATA_STREAM, step])
    numpy_rng = np.random.default_rng(sequence)
    torch_rng = torch.Generator().manual_seed(int(sequence.generate_state(1, dtype=np.uint64)[0] >> 1))
    return numpy_rng, torch_rng


def _train_step(net, optimizer, sampler: PatchSampler, alphas: torch.Tensor, batch_size: int,
                rank: int, world: int, rngs, device) -> float:
    """One optimiser step on this process's slice of the step's batch; returns its loss."""
    numpy_rng, torch_rng = rngs
    x0 = sampler.sample(batch_size, numpy_rng)
    t = torch.randint(0, alphas.shape[0], (batch_size,), generator=torch_rng)
    noise = torch.randn(x0.shape, generator=torch_rng)
    share = slice(rank * batch_size // world, (rank + 1) * batch_size // world)
    x0, t, noise = x0[share].to(device), t[share].to(device), noise[share].to(device)
    a = alphas[t].view(-1, 1, 1, 1)
    predicted = net(a.sqrt() * x0 + (1 - a).sqrt() * noise, t).sample
    loss = torch.nn.functional.mse_loss(predicted, noise)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def _ema_update(ema, model, max_decay: float, step: int) -> float:
    decay = min(max_decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)
    return decay


def _mean_over_processes(value: float, world: int) -> float:
    if world == 1:
        return value
    total = torch.tensor([value], dtype=torch.float64,
                         device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(total)
    return float(total) / world


def _save_state(folder: Path, settings: dict, model, ema, optimizer, state: dict) -> None:
    """Write the resumable state: weights in shards of at most :data:`SHARD_BYTES`, named by
    step, then the JSON that lists them (renamed into place last, so it always names a
    complete set), then the shards of earlier steps are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    optim = optimizer.state_dict()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    tensors.update({f"optimizer.{i}.{k}": torch.as_tensor(v) for i, s in optim["state"].items()
                    for k, v in s.items()})
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    files = []
    for number, shard in enumerate(_shards(tensors, SHARD_BYTES)):
        name = f"training_state-{state['step']:07d}-{number:03d}.safetensors"
        save_file(shard, folder / (name + ".tmp"))
        os.chmod(folder / (name + ".tmp"), default_file_mode())  # safetensors writes 0600
        os.replace(folder / (name + ".tmp"), folder / name)
        files.append(name)
    meta = {"settings": settings, "param_groups": optim["param_groups"], "files": files, **state}
    (folder / (STATE_JSON + ".tmp")).write_text(json.dumps(meta))
    os.replace(folder / (STATE_JSON + ".tmp"), folder / STATE_JSON)
    for old in folder.glob("training_state*.safetensors"):
        if old.name not in files:
            old.unlink()


def _shards(tensors: dict, limit: int) -> list[dict]:
    """Consecutive groups of tensors of at most ``limit`` bytes each (a larger tensor alone)."""
    shards, current, size = [], {}, 0
    for key, value in tensors.items():
        nbytes = value.numel() * value.element_size()
        if current and size + nbytes > limit:
            shards.append(current)
            current, size = {}, 0
        current[key], size = value, size + nbytes
    return shards + [current] if current else shards


def _read_state(folder: Path, device) -> tuple[dict, dict]:
    """The checkpoint's JSON and all its tensors."""
    try:
        meta = json.loads((folder / STATE_JSON).read_text())
        tensors = {}
        for name in meta["files"]:
            tensors.update(load_file(folder / name, device=str(device)))
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"cannot read the training checkpoint: {err}; pass resume=False "
                         "(--no-resume) to start over", path=folder) from err
    return meta, tensors


def _identity(key: str, value):
    """What must match for a resume: a starting prior by its weights' hash, not by the path it was read from."""
    return value.get("weights_sha256") if key == "init_from" and isinstance(value, dict) else value


def _load_state(folder: Path, settings: dict, model, ema, optimizer, device) -> dict:
    meta, tensors = _read_state(folder, device)
    changed = [k for k in RESUME_KEYS if _identity(k, _jsonable(settings[k])) != _identity(k, meta["settings"].get(k))]
    if changed:
        raise InputError(f"checkpoint was trained with other settings ({', '.join(changed)}); "
                         "use the same ones, another --out, or resume=False (--no-resume)",
                         path=folder, field=changed[0])
    model.load_state_dict(_strip(tensors, "model."))
    ema.load_state_dict(_strip(tensors, "ema."))
    optim_state = {}
    for key, value in _strip(tensors, "optimizer.").items():
        index, name = key.split(".", 1)
        optim_state.setdefault(int(index), {})[name] = value.cpu() if name == "step" else value
    optimizer.load_state_dict({"state": optim_state, "param_groups": meta["param_groups"]})
    return {"step": meta["step"], "losses": meta["losses"], "wall_time_s": meta["wall_time_s"]}


def _fingerprint(images) -> str:
    """SHA-256 of the training images (dtype, shape and pixels), so a resume notices new data."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(f"{image.dtype}{image.shape}".encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def _strip(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _jsonable(value):
    return json.loads(json.dumps(value))


def _training_record(settings: dict, state: dict, steps: int, world: int, device, record) -> dict:
    tail = state["losses"][-max(1, min(100, len(state["losses"]) // 10)):]
    return {**(record or {}), **{k: v for k, v in settings.items() if k != "transform"},
            "steps": steps, "final_loss": float(np.mean(tail)) if tail else None,
            "final_loss_steps": len(tail), "wall_time_s": round(state["wall_time_s"], 1),
            "hardware": hardware(device), "world_size": world,
            "torch_version": torch.__version__, "diffusers_version": _diffusers_version()}


def hardware(device) -> str:
    """A one-line description of the training hardware (CPU model and threads, or GPU name)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model}, {torch.get_num_threads()} thread(s)"


def _diffusers_version() -> str:
    import diffusers
    return diffusers.__version__
