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
from pathlib import Path

import torch

from ..errors import InputError
from .base import transform_from_config
from .unet import UNetPrior

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
    if record and record.get("format_version", 0) > FORMAT_VERSION:
        raise InputError(f"prior format version {record['format_version']} is newer than this "
                         f"reddiff reads ({FORMAT_VERSION}); upgrade reddiff", path=folder / PRIOR_FILE,
                         field="format_version")
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    scheduler = _read_json(scheduler_file) if scheduler_file.is_file() else {}
    unet = _load_unet(unet_dir)
    prior = UNetPrior(unet, schedule=record.get("schedule", scheduler),
                      transform=transform_from_config(record.get("transform")),
                      prediction_type=record.get("prediction_type",
                                                 scheduler.get("prediction_type", "epsilon")),
                      name=record.get("name", folder.name), info=record.get("training"))
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


def _load_unet(unet_dir: Path):
    from diffusers import UNet2DModel

    config_file = unet_dir / "config.json"
    if not config_file.is_file():
        raise InputError("no config.json: expected a diffusers UNet2DModel folder "
                         "(config.json + diffusion_pytorch_model.safetensors)", path=unet_dir)
    class_name = _read_json(config_file).get("_class_name", "UNet2DModel")
    if class_name != "UNet2DModel":
        raise InputError(f"model is a {class_name}; reddiff priors need an unconditional UNet2DModel",
                         path=config_file, field="_class_name")
    if not list(unet_dir.glob("*.safetensors")):
        raise InputError("no .safetensors weights (pickled .bin/.pt weights are never loaded; "
                         "convert them with safetensors first)", path=unet_dir)
    try:
        unet = UNet2DModel.from_pretrained(unet_dir, use_safetensors=True, local_files_only=True,
                                           low_cpu_mem_usage=False, torch_dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as err:
        raise InputError(f"cannot load the UNet2DModel: {err}", path=unet_dir) from err
    return unet.eval().requires_grad_(False)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read JSON: {err}", path=path) from err
