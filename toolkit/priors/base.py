r"""The prior interface: a noise predictor with its schedule and value scaling.

A diffusion prior in reddiff is an :class:`torch.nn.Module` with

* ``alphas_cumprod`` — the DDPM schedule :math:`\bar\alpha_t`, a buffer of shape ``(T,)``;
* ``eps(x_t, t)`` — the predicted noise :math:`\hat\epsilon(x_t, t)` for
  :math:`x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon`, with ``x_t`` of
  shape ``(B, C, H, W)`` in *network units* and ``t`` an integer tensor of shape ``(B,)``;
* ``transform`` — a :class:`ValueTransform` mapping physical units (HU, counts, ...)
  to network units and back, so solvers work in physical units.

Priors never backpropagate through their network: solvers call ``eps`` under
:func:`torch.no_grad`.
"""

from __future__ import annotations

import hashlib
import math

import torch

from ..errors import InputError


def ddpm_linear_schedule(
    num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> torch.Tensor:
    r"""The DDPM linear-beta schedule, :math:`\bar\alpha_t = \prod_{s \le t} (1 - \beta_s)`.

    Parameters
    ----------
    num_timesteps : int
        Number of diffusion steps :math:`T`.
    beta_start, beta_end : float
        First and last :math:`\beta_t`, linearly spaced in between (Ho et al., 2020).

    Returns
    -------
    torch.Tensor
        ``alphas_cumprod`` of shape ``(T,)``, float32, decreasing from almost 1.

    Examples
    --------
    >>> abar = ddpm_linear_schedule()
    >>> abar.shape, round(abar[0].item(), 4)
    (torch.Size([1000]), 0.9999)
    """
    betas = torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float32)


class ValueTransform:
    """Maps physical values to the network's range (``to_model``) and back (``to_physical``).

    Subclasses are differentiable torch functions and serialise to a JSON-able
    dict with :meth:`to_config`; :func:`transform_from_config` rebuilds them.
    """

    kind = "identity"

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def to_physical(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def to_config(self) -> dict:
        return {"kind": self.kind}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_config().items() if k != "kind")
        return f"{type(self).__name__}({args})"


class AffineTransform(ValueTransform):
    r"""Affine scaling :math:`z = (x - \text{offset}) / \text{scale}`.

    Parameters
    ----------
    offset : float
        Physical value mapped to 0 (e.g. the middle of an HU window).
    scale : float
        Physical range mapped to 1 (e.g. half the window width). Must be non-zero.
    unit : str, optional
        The physical unit, recorded for provenance.
    """

    kind = "affine"

    def __init__(self, offset: float = 0.0, scale: float = 1.0, unit: str = ""):
        if scale == 0 or not math.isfinite(scale):
            raise InputError(f"scale must be finite and non-zero, got {scale!r}", field="scale")
        self.offset, self.scale, self.unit = float(offset), float(scale), unit

    def to_model(self, x):
        return (x - self.offset) / self.scale

    def to_physical(self, z):
        return z * self.scale + self.offset

    def to_config(self) -> dict:
        return {"kind": self.kind, "offset": self.offset, "scale": self.scale, "unit": self.unit}


class AsinhTransform(ValueTransform):
    r"""Asinh stretch for counts, :math:`z = a\,\operatorname{asinh}((x - b)/s) + c`.

    Compresses the dynamic range of sky images (faint sky and bright stars both
    visible), linear near the background and logarithmic for bright sources.

    Parameters
    ----------
    softening : float
        :math:`s`, counts below which the stretch is linear.
    background : float
        :math:`b`, the sky level mapped to :math:`c`.
    gain : float
        :math:`a`, output scale.
    shift : float
        :math:`c`, output offset (so the network sees roughly [-1, 1]).
    """

    kind = "asinh"

    def __init__(self, softening: float = 1.0, background: float = 0.0, gain: float = 1.0,
                 shift: float = 0.0, unit: str = "count"):
        if not softening > 0:
            raise InputError(f"softening must be positive, got {softening!r}", field="softening")
        self.softening, self.background = float(softening), float(background)
        self.gain, self.shift, self.unit = float(gain), float(shift), unit

    def to_model(self, x):
        return self.gain * torch.asinh((x - self.background) / self.softening) + self.shift

    def to_physical(self, z):
        return torch.sinh((z - self.shift) / self.gain) * self.softening + self.background

    def to_config(self) -> dict:
        return {"kind": self.kind, "softening": self.softening, "background": self.background,
                "gain": self.gain, "shift": self.shift, "unit": self.unit}


TRANSFORMS = {cls.kind: cls for cls in (ValueTransform, AffineTransform, AsinhTransform)}


def transform_from_config(config: dict | None) -> ValueTransform:
    """Rebuild a :class:`ValueTransform` from :meth:`ValueTransform.to_config` output.

    Examples
    --------
    >>> transform_from_config({"kind": "affine", "offset": 0.0192, "scale": 0.0192})
    AffineTransform(offset=0.0192, scale=0.0192, unit='')
    """
    if not config:
        return ValueTransform()
    config = dict(config)
    kind = config.pop("kind", "identity")
    if kind not in TRANSFORMS:
        raise InputError(f"unknown value transform {kind!r}; expected one of {sorted(TRANSFORMS)}",
                         field="transform")
    try:
        return TRANSFORMS[kind](**config)
    except TypeError as err:  # a key the transform does not have
        raise InputError(f"value transform {kind!r}: {err}", field="transform") from err


class Prior(torch.nn.Module):
    """Base class of diffusion priors: ``eps(x_t, t)`` plus ``alphas_cumprod``.

    Parameters
    ----------
    alphas_cumprod : torch.Tensor
        The schedule :math:`\\bar\\alpha_t`, shape ``(T,)``, decreasing in ``(0, 1)``.
    channels : int
        Image channels the network expects (1 for magnitude, 2 for complex).
    transform : ValueTransform, optional
        Physical units to network units; identity by default.
    name : str, optional
        A short name recorded in results.
    """

    def __init__(self, alphas_cumprod: torch.Tensor, channels: int,
                 transform: ValueTransform | None = None, name: str = ""):
        super().__init__()
        alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float32)
        if alphas_cumprod.ndim != 1 or not bool(((alphas_cumprod > 0) & (alphas_cumprod < 1)).all()):
            raise InputError("alphas_cumprod must be a 1-D tensor with values in (0, 1)",
                             field="alphas_cumprod")
        self.register_buffer("alphas_cumprod", alphas_cumprod, persistent=False)
        self.channels = int(channels)
        self.transform = transform or ValueTransform()
        self.name = name or type(self).__name__

    @property
    def num_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def weights_sha256(self) -> str:
        """SHA-256 over the prior's parameters and persistent buffers (names, dtypes, shapes
        and values, in name order): which network a result or a calibration came from, not
        only its name (a retrained ``astro`` prior has the same name and other weights).

        Examples
        --------
        >>> from reddiff import GaussianPrior
        >>> a, b, c = (GaussianPrior(mean=m, std=1.0) for m in (0.0, 0.0, 0.5))
        >>> a.weights_sha256() == b.weights_sha256(), a.weights_sha256() == c.weights_sha256()
        (True, False)
        """
        digest = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            values = tensor.detach().to("cpu").contiguous()
            digest.update(f"{name}:{values.dtype}:{tuple(values.shape)};".encode())
            digest.update(values.flatten().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Predicted noise for ``x_t`` (network units, ``(B, C, H, W)``) at integer steps ``t`` ``(B,)``."""
        raise NotImplementedError

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.eps(x_t, t)

    def timestep_for_sigma(self, sigma) -> torch.Tensor:
        r"""The step whose noise level :math:`\sqrt{(1 - \bar\alpha_t)/\bar\alpha_t}` is nearest ``sigma``.

        ``sigma`` is a float or a tensor of shape ``(B,)`` (network units); returns a
        long tensor of the same shape. Nearness is measured in :math:`\log\sigma`.
        """
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=self.alphas_cumprod.device)
        if not bool((sigma > 0).all()):
            raise InputError("sigma must be positive", field="sigma")
        levels = ((1 - self.alphas_cumprod) / self.alphas_cumprod).sqrt().log()
        return (levels - sigma.log().unsqueeze(-1)).abs().argmin(-1)

    def denoise(self, y: torch.Tensor, sigma) -> torch.Tensor:
        r"""Tweedie's estimate of :math:`x_0` from ``y = x_0 + sigma * n`` (network units).

        Parameters
        ----------
        y : torch.Tensor
            Noisy images ``(B, C, H, W)`` in network units.
        sigma : float or torch.Tensor
            Noise standard deviation in network units, a float or shape ``(B,)``.

        Returns
        -------
        torch.Tensor
            The denoised images, network units, shape of ``y``. Differentiable in
            ``y`` (deepinv's DPS backpropagates through it); wrap calls in
            :func:`torch.no_grad` when no gradient is needed.

        Notes
        -----
        With :math:`t` the step whose :math:`\sigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}`
        is nearest :math:`\sigma`, :math:`x_t = \sqrt{\bar\alpha_t}\, y` is a diffusion
        state at step :math:`t` and

        .. math:: \hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon(x_t, t)}{\sqrt{\bar\alpha_t}}
                  = y - \sigma_t\, \hat\epsilon(x_t, t).

        Examples
        --------
        >>> import torch
        >>> from reddiff.priors import GaussianPrior
        >>> prior = GaussianPrior(mean=0.0, std=1.0)
        >>> y = torch.ones(1, 1, 2, 2)
        >>> round(prior.denoise(y, 1.0).mean().item(), 2)  # posterior mean y / (1 + sigma^2)
        0.5
        """
        self.check_image(y, "y")
        t = self.timestep_for_sigma(sigma).expand(y.shape[0])
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        return y - ((1 - a) / a).sqrt() * self.eps(a.sqrt() * y, t)

    def check_image(self, x: torch.Tensor, what: str = "image") -> None:
        """Raise :class:`InputError` unless ``x`` is ``(B, channels, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise InputError(
                f"{what} has shape {tuple(x.shape)}; prior {self.name!r} expects "
                f"(batch, {self.channels}, height, width)", field=what)
