r"""A diffusers ``UNet2DModel`` as a diffusion prior, with its DDPM schedule.

The network is fully convolutional: trained on patches, it applies to any image
size (inputs are reflect-padded to a multiple of its downsampling factor and
cropped back). The schedule is described by a diffusers ``DDPMScheduler`` config
(``num_train_timesteps``, ``beta_start``, ``beta_end``, ``beta_schedule``), so
any scheduler folder of the ecosystem reads the same way.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F

from ..errors import InputError
from .base import Prior, ValueTransform

#: The DDPM schedule of Ho et al. (2020), diffusers' defaults.
DEFAULT_SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02,
                    "beta_schedule": "linear"}
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
#: Network of the shipped priors: small and fast on a CPU (see the model cards).
DEFAULT_UNET = {"block_out_channels": (16, 32, 64), "layers_per_block": 1, "attention": False,
                "norm_num_groups": 8}


_DIFFUSERS_IMPORT = threading.Lock()


def diffusers_class(name: str):
    """``diffusers.<name>``, imported on first use (diffusers takes seconds to import) under a
    lock: diffusers' lazy imports are not thread-safe (multi-threaded Dask workers)."""
    with _DIFFUSERS_IMPORT:
        import diffusers

        return getattr(diffusers, name)


#: Most diffusion steps a schedule may declare.
MAX_TIMESTEPS = 100_000


def schedule_from_config(config: dict | None = None) -> torch.Tensor:
    r"""``alphas_cumprod`` :math:`\bar\alpha_t` of a diffusers ``DDPMScheduler`` config.

    Parameters
    ----------
    config : dict, optional
        Scheduler config (keys as in ``scheduler_config.json``); missing keys take
        :data:`DEFAULT_SCHEDULE` values, unknown keys are ignored.

    Returns
    -------
    torch.Tensor
        Shape ``(num_train_timesteps,)``, float32.

    Examples
    --------
    >>> schedule_from_config({"num_train_timesteps": 10}).shape
    torch.Size([10])
    """
    DDPMScheduler = diffusers_class("DDPMScheduler")

    settings = {**DEFAULT_SCHEDULE, **{k: v for k, v in (config or {}).items()
                                       if k in ("num_train_timesteps", "beta_start", "beta_end",
                                                "beta_schedule", "trained_betas")}}
    steps = settings["num_train_timesteps"]
    if not (isinstance(steps, int) and 2 <= steps <= MAX_TIMESTEPS):
        raise InputError(f"num_train_timesteps = {steps!r}; expected an integer in [2, {MAX_TIMESTEPS}]",
                         field="num_train_timesteps")
    try:
        scheduler = DDPMScheduler(**settings)
    except (NotImplementedError, ValueError, TypeError) as err:
        raise InputError(f"unsupported scheduler config {settings}: {err}", field="schedule") from err
    return scheduler.alphas_cumprod.to(torch.float32)


def make_unet(channels: int, *, sample_size: int = 32, block_out_channels=(16, 32, 64),
              layers_per_block: int = 1, attention: bool = False,
              norm_num_groups: int = 8):
    """A fresh (random) ``UNet2DModel`` mapping ``channels`` to ``channels``.

    Parameters
    ----------
    channels : int
        Image channels (1 magnitude, 2 complex).
    sample_size : int
        Training patch size (recorded in the config; the network accepts any size).
    block_out_channels : sequence of int
        Channels per resolution level; each level after the first halves the size.
    layers_per_block : int
        ResNet blocks per level.
    attention : bool
        Self-attention in the lowest-resolution level (down and up).
    norm_num_groups : int
        Group-norm groups; must divide every entry of ``block_out_channels``.

    Returns
    -------
    diffusers.UNet2DModel

    Examples
    --------
    >>> unet = make_unet(1)
    >>> unet(torch.zeros(1, 1, 16, 16), 10).sample.shape
    torch.Size([1, 1, 16, 16])
    """
    UNet2DModel = diffusers_class("UNet2DModel")

    levels = len(block_out_channels)
    if channels < 1 or levels < 1 or any(c % norm_num_groups for c in block_out_channels):
        raise InputError(f"need channels >= 1 and block_out_channels divisible by norm_num_groups="
                         f"{norm_num_groups}, got channels={channels}, "
                         f"block_out_channels={tuple(block_out_channels)}", field="model_config")
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(sample_size=sample_size, in_channels=channels, out_channels=channels,
                       block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
                       down_block_types=tuple(down), up_block_types=tuple(up),
                       norm_num_groups=norm_num_groups)


class UNetPrior(Prior):
    r"""A diffusers ``UNet2DModel`` noise predictor as a :class:`Prior`.

    Parameters
    ----------
    unet : diffusers.UNet2DModel
        The network, called as ``unet(x_t, t).sample``.
    schedule : dict, optional
        DDPM scheduler config (see :func:`schedule_from_config`); DDPM linear
        with 1000 steps by default.
    transform : ValueTransform, optional
        Physical to network units; identity by default.
    prediction_type : {"epsilon", "sample", "v_prediction"}
        What the network outputs (diffusers' names); converted to :math:`\hat\epsilon`.
    name : str
        Recorded in results.
    info : dict, optional
        Provenance (training data, steps, ...), kept as ``prior.info``.

    Notes
    -----
    For an ``x0`` prediction :math:`\hat x_0`, :math:`\hat\epsilon = (x_t - \sqrt{\bar\alpha_t}\hat x_0)/\sqrt{1-\bar\alpha_t}`;
    for a v prediction, :math:`\hat\epsilon = \sqrt{\bar\alpha_t}\,\hat v + \sqrt{1-\bar\alpha_t}\,x_t`.
    A network with twice as many output channels as inputs (learned variance) uses the first half.

    Examples
    --------
    >>> prior = UNetPrior(make_unet(1))
    >>> prior.eps(torch.zeros(2, 1, 20, 20), torch.tensor([0, 999])).shape
    torch.Size([2, 1, 20, 20])
    """

    def __init__(self, unet, *, schedule: dict | None = None,
                 transform: ValueTransform | None = None, prediction_type: str = "epsilon",
                 name: str = "unet", info: dict | None = None):
        if prediction_type not in PREDICTION_TYPES:
            raise InputError(f"unknown prediction_type {prediction_type!r}; expected one of "
                             f"{', '.join(PREDICTION_TYPES)}", field="prediction_type")
        super().__init__(schedule_from_config(schedule), int(unet.config.in_channels), transform, name)
        self.unet = unet.eval().requires_grad_(False)
        self.schedule = {**DEFAULT_SCHEDULE, **(schedule or {})}
        self.prediction_type = prediction_type
        self.info = dict(info or {})

    @property
    def size_multiple(self) -> int:
        """Image sizes the network takes without padding are multiples of this."""
        return 2 ** (len(self.unet.config.block_out_channels) - 1)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.check_image(x_t, "x_t")
        h, w = x_t.shape[-2:]
        padded = _pad_to_multiple(x_t, self.size_multiple)
        out = self.unet(padded, t.to(x_t.device)).sample[:, :self.channels, :h, :w]
        if self.prediction_type == "epsilon":
            return out
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        if self.prediction_type == "sample":
            return (x_t - a.sqrt() * out) / (1 - a).sqrt()
        return a.sqrt() * out + (1 - a).sqrt() * x_t


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad the bottom/right of ``x`` so H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)
