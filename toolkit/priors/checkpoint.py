"""Prior folders: diffusers layout on disk, loaded by name or path, safetensors only.

A reddiff prior folder holds

* ``config.json`` + ``diffusion_pytorch_model.safetensors`` — the ``UNet2DModel``
  exactly as ``save_pretrained(..., safe_serialization=True)`` writes it, so
  diffusers loads it as is;
* ``reddiff_prior.json`` — format version, channels, the DDPM schedule (diffusers
  ``DDPMScheduler`` keys), the value transform and the training record;
* ``MODEL_CARD.md`` and ``samples.png`` (see :mod:`reddiff.priors.card`).

Other people's diffusers checkpoints load too: a ``UNet2DModel`` folder, or a
pipeline folder with ``unet/`` and ``scheduler/`` subfolders. Without a
``reddiff_prior.json`` the schedule comes from ``scheduler/scheduler_config.json``
when present, else DDPM linear with 1000 steps, and the value transform is the
identity (pass the image in the network's own range, usually [-1, 1]).
Weights are read from ``.safetensors`` only; pickled ``.bin``/``.pt`` files are
never loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import InputError
from ..files import default_file_mode
from .base import transform_from_config
from .unet import UNetPrior, diffusers_class

FORMAT_VERSION = 1
PRIOR_FILE = "reddiff_prior.json"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
#: Names of the shipped default priors (folders under ``pretrained/``).
PRETRAINED = ("ct", "mri", "astro")


def save_prior(prior: UNetPrior, folder, *, training: dict | None = None) -> Path:
    """Write ``prior`` as a diffusers-layout folder with its ``reddiff_prior.json``.

    Parameters
    ----------
    prior : UNetPrior
    folder : str or os.PathLike
        Created if missing; existing files of the same names are replaced.
    training : dict, optional
        Training record stored under ``"training"`` (defaults to ``prior.info``).

    Returns
    -------
    pathlib.Path
        The folder.

    Examples
    --------
    >>> import tempfile
    >>> from reddiff.priors import UNetPrior, make_unet
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = save_prior(UNetPrior(make_unet(1), name="tiny"), tmp)
    ...     sorted(p.name for p in folder.iterdir())
    ['config.json', 'diffusion_pytorch_model.safetensors', 'reddiff_prior.json']
    """
    if not isinstance(prior, UNetPrior):
        raise InputError(f"only UNetPrior folders can be saved, got {type(prior).__name__}",
                         field="prior")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prior.unet.save_pretrained(folder, safe_serialization=True)
    for weights in folder.glob("*.safetensors"):  # written through a private temporary file: mode 600
        os.chmod(weights, default_file_mode())
    record = {"format": "reddiff-prior", "format_version": FORMAT_VERSION, "name": prior.name,
              "channels": prior.channels, "prediction_type": prior.prediction_type,
              "schedule": prior.schedule, "transform": prior.transform.to_config(),
              "training": training if training is not None else prior.info}
    (folder / PRIOR_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return folder


def load_prior(name_or_path, *, device=None) -> UNetPrior:
    """Load a shipped prior by name (``"ct"``, ``"mri"``, ``"astro"``) or a prior folder.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        A name in :data:`PRETRAINED`, a reddiff prior folder, a diffusers
        ``UNet2DModel`` folder or a diffusers pipeline folder (``unet/`` +
        ``scheduler/``).
    device : str or torch.device, optional
        Where to put the network (default CPU).

    Returns
    -------
    UNetPrior
        In eval mode, gradients off.

    Raises
    ------
    InputError
        Unknown name, missing folder or config, no ``.safetensors`` weights, or a
        model that is not an unconditional ``UNet2DModel``.

    Examples
    --------
    >>> import tempfile
    >>> from reddiff.priors import UNetPrior, make_unet
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     prior = load_prior(save_prior(UNetPrior(make_unet(2), name="tiny"), tmp))
    >>> prior.name, prior.channels, prior.num_timesteps
    ('tiny', 2, 1000)
    """
    folder = _resolve(name_or_path)
    unet_dir = folder / "unet" if (folder / "unet" / "config.json").is_file() else folder
    record = _read_json(folder / PRIOR_FILE) if (folder / PRIOR_FILE).is_file() else {}
    version = record.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(f"format_version = {version!r}; expected a positive integer", path=folder / PRIOR_FILE,
                         field="format_version")
    if version > FORMAT_VERSION:
        raise InputError(f"prior format version {record['format_version']} is newer than this "
                         f"reddiff reads ({FORMAT_VERSION}); upgrade reddiff", path=folder / PRIOR_FILE,
                         field="format_version")
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    scheduler = _read_json(scheduler_file) if scheduler_file.is_file() else {}
    unet = _load_unet(unet_dir)
    for section in ("schedule", "transform", "training"):
        if record.get(section) is not None and not isinstance(record[section], dict):
            raise InputError(f"{section} must be a JSON object", path=folder / PRIOR_FILE, field=section)
    try:
        prior = UNetPrior(unet, schedule=record.get("schedule", scheduler),
                          transform=transform_from_config(record.get("transform")),
                          prediction_type=record.get("prediction_type",
                                                     scheduler.get("prediction_type", "epsilon")),
                          name=record.get("name", folder.name), info=record.get("training"))
    except InputError as err:  # the schedule or transform of the record
        raise err.about(folder / PRIOR_FILE) from err
    return prior.to(device or "cpu")


def _resolve(name_or_path) -> Path:
    if isinstance(name_or_path, str) and name_or_path in PRETRAINED:
        folder = PRETRAINED_DIR / name_or_path
        if not (folder / WEIGHTS_FILE).is_file():
            raise InputError(f"the shipped prior {name_or_path!r} has no weights in this install; "
                             f"rebuild it with the command in {folder / 'MODEL_CARD.md'}", path=folder)
        return folder
    folder = Path(name_or_path)
    if not folder.is_dir():
        raise InputError(f"not a prior name or folder: {str(name_or_path)!r}; expected one of "
                         f"{', '.join(PRETRAINED)} or a diffusers UNet2DModel folder",
                         field="prior")
    return folder


#: Largest network a prior folder may declare (parameters; about 2 GB of float32 weights).
MAX_PARAMETERS = 500_000_000
#: Sanity bounds of the UNet2DModel config keys that size the network.
CONFIG_BOUNDS = {"in_channels": (1, 16), "out_channels": (1, 16), "layers_per_block": (1, 8),
                 "sample_size": (1, 4096), "norm_num_groups": (1, 512), "attention_head_dim": (1, 4096)}


def _load_unet(unet_dir: Path):
    """The UNet2DModel of a folder, from its config and safetensors weights only.

    Nothing is unpickled: the weights are read with :func:`safetensors.torch.load_file`
    (one ``diffusion_pytorch_model.safetensors``, or the ``.safetensors`` shards its
    index names), the network is built from the checked config and the weights must
    match it exactly.
    """
    UNet2DModel = diffusers_class("UNet2DModel")

    config_file = unet_dir / "config.json"
    if not config_file.is_file():
        raise InputError("no config.json: expected a diffusers UNet2DModel folder "
                         "(config.json + diffusion_pytorch_model.safetensors)", path=unet_dir)
    config = _read_json(config_file)
    class_name = config.get("_class_name", "UNet2DModel")
    if class_name != "UNet2DModel":
        raise InputError(f"model is a {class_name}; reddiff priors need an unconditional UNet2DModel",
                         path=config_file, field="_class_name")
    _check_unet_config(config, config_file)
    tensors = _safetensors_weights(unet_dir)
    try:
        with torch.device("meta"):  # check the config builds before allocating anything
            UNet2DModel.from_config(config)
        unet = UNet2DModel.from_config(config)
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as err:
        raise InputError(f"config.json does not describe a UNet2DModel: {err}", path=config_file) from err
    expected = unet.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if tuple(expected[k].shape) != tuple(tensors[k].shape))
    if missing or unexpected or wrong:
        what = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
                f"{len(wrong)} of another shape (e.g. {wrong[0]}: {tuple(tensors[wrong[0]].shape)} in the file, "
                f"{tuple(expected[wrong[0]].shape)} in the config)" if wrong else ""]
        raise InputError("weights do not match config.json: " + ", ".join(w for w in what if w), path=unet_dir)
    unet.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
    return unet.eval().requires_grad_(False)


def _check_unet_config(config: dict, path: Path) -> None:
    """Refuse configs that would build an absurd network, before building it."""
    for key, (low, high) in CONFIG_BOUNDS.items():
        value = config.get(key)
        if value is not None and not (isinstance(value, int) and low <= value <= high):
            raise InputError(f"{key} = {value!r}; expected an integer in [{low}, {high}]", path=path, field=key)
    widths = config.get("block_out_channels", (224, 448, 672, 896))
    if not (isinstance(widths, (list, tuple)) and 1 <= len(widths) <= 8
            and all(isinstance(w, int) and 1 <= w <= 8192 for w in widths)):
        raise InputError(f"block_out_channels = {widths!r}; expected 1-8 integers in [1, 8192]", path=path,
                         field="block_out_channels")
    layers = config.get("layers_per_block", 2)
    # two 3x3 convolutions per ResNet block, on the way down and (one more block) up
    estimate = sum(2 * 9 * w * w * (2 * layers + 1) for w in widths)
    if estimate > MAX_PARAMETERS:
        raise InputError(f"the network would have about {estimate:.2g} parameters (limit {MAX_PARAMETERS:.0e})",
                         path=path, field="block_out_channels")


def _safetensors_weights(unet_dir: Path) -> dict:
    """All weights of a folder, from safetensors files only (a shard index may name only those)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    index_file = unet_dir / (WEIGHTS_FILE + ".index.json")
    if index_file.is_file():
        index = _read_json(index_file).get("weight_map")
        if not isinstance(index, dict):
            raise InputError("shard index has no weight_map object", path=index_file, field="weight_map")
        names = sorted(set(index.values()))
        for name in names:
            if not (isinstance(name, str) and name.endswith(".safetensors") and Path(name).name == name):
                raise InputError(f"shard index names {name!r}; only .safetensors files in this folder are "
                                 "read (pickled weights are never loaded)", path=index_file)
        files = [unet_dir / name for name in names]
    elif (unet_dir / WEIGHTS_FILE).is_file():
        files = [unet_dir / WEIGHTS_FILE]
    else:
        raise InputError(f"no {WEIGHTS_FILE} (pickled .bin/.pt weights are never loaded; convert them "
                         "with safetensors first)", path=unet_dir)
    tensors = {}
    for file in files:
        try:
            tensors.update(load_file(file, device="cpu"))
        except (OSError, SafetensorError, ValueError) as err:
            raise InputError(f"cannot read safetensors weights: {err}", path=file) from err
    return tensors


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read JSON: {err}", path=path) from err
    if not isinstance(value, dict):
        raise InputError(f"expected a JSON object, got a {type(value).__name__}", path=path)
    return value
