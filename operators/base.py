r"""Pieces shared by every modality: the measurement record, input checks, random
generators, a linear-convolution physics and the classical solvers that work for
any linear physics (least squares by conjugate gradient, TV by FISTA).

Every physics object here is a :class:`deepinv.physics.LinearPhysics` (or wraps
one): ``A``, ``A_adjoint``, ``A_dagger`` and ``physics(x)`` behave as in deepinv.
Measurement models that are not linear-Gaussian carry a ``data_term`` attribute,
a callable ``(y, Ax) -> (B,)`` negative log-likelihood from :mod:`reddiff.likelihood`
that :func:`reddiff.red_diff` uses by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import deepinv as dinv
import torch
from torch import Tensor

from reddiff.errors import InputError

__all__ = ["Measurement", "make_generator", "check_image", "check_finite", "convolution",
           "least_squares_cg", "tv_reconstruction"]


@dataclass
class Measurement:
    """A simulated measurement: what the instrument returns plus how it was made.

    Attributes
    ----------
    y : torch.Tensor
        The measurement, shaped as ``physics.A`` returns it (batch axis first).
    physics : deepinv.physics.Physics
        The forward model; ``physics.A(x_true)`` is the noiseless measurement in the
        units of ``y`` (or, for transmission CT, the line integrals whose Beer-Lambert
        transform is the expected count, see ``physics.data_term``).
    x_true : torch.Tensor or None
        The clean image ``(1, C, H, W)`` in physical units, when known.
    info : dict
        Plain tensors and numbers describing the acquisition (mask, coil maps,
        angles, PSF, noise parameters, seed); each modality's ``simulate`` lists its keys.

    Examples
    --------
    >>> import torch, deepinv as dinv
    >>> m = Measurement(torch.zeros(1, 1, 4, 4), dinv.physics.Denoising(), None, {"sigma": 0.1})
    >>> m.info["sigma"]
    0.1
    """

    y: Tensor
    physics: object
    x_true: Tensor | None = None
    info: dict = field(default_factory=dict)


#: Environment variable that sets the memory budget (bytes, or with a K/M/G/T suffix).
MEMORY_ENV = "REDDIFF_MAX_MEMORY"
#: Share of the machine's memory one allocation may take when no budget is set.
DEFAULT_MEMORY_FRACTION = 0.5


def memory_budget() -> int:
    """Bytes one array reddiff allocates may take: ``$REDDIFF_MAX_MEMORY`` (``--max-memory``), else
    half of the machine's memory.

    Examples
    --------
    >>> import os
    >>> os.environ[MEMORY_ENV] = "2G"
    >>> memory_budget()
    2147483648
    >>> del os.environ[MEMORY_ENV]
    """
    import os

    text = os.environ.get(MEMORY_ENV, "").strip()
    if text:
        units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
        try:
            scale = units.get(text[-1].upper(), 1)
            value = float(text[:-1] if text[-1].upper() in units else text) * scale
        except ValueError as err:
            raise InputError(f"{MEMORY_ENV}={text!r}; expected bytes, e.g. 8G", field="max_memory") from err
        if not value > 0:
            raise InputError(f"{MEMORY_ENV}={text!r}; expected a positive size", field="max_memory")
        return int(value)
    try:
        return int(DEFAULT_MEMORY_FRACTION * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 2**34


def check_memory(n_bytes: float, what: str, *, field: str | None = None, path=None) -> None:
    """Refuse, before allocating, something estimated at ``n_bytes`` above :func:`memory_budget`.

    Examples
    --------
    >>> check_memory(1e3, "a small image")
    >>> check_memory(1e18, "a 1e9 x 1e9 image", field="image_shape")
    Traceback (most recent call last):
    ...
    reddiff.errors.InputError: [image_shape] a 1e9 x 1e9 image would need about 909494.7 TiB, above the memory budget of ... (set --max-memory or REDDIFF_MAX_MEMORY to go past it)
    """
    budget = memory_budget()
    if n_bytes > budget:
        raise InputError(f"{what} would need about {_size(n_bytes)}, above the memory budget of "
                         f"{_size(budget)} (set --max-memory or {MEMORY_ENV} to go past it)",
                         field=field, path=path)


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024:
            return f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TiB"


def make_generator(seed: int | None = None, device="cpu") -> torch.Generator:
    """A fresh :class:`torch.Generator`, seeded with ``seed`` or with fresh entropy.

    The global random state is never touched.

    Examples
    --------
    >>> a = torch.rand(2, generator=make_generator(0))
    >>> torch.equal(a, torch.rand(2, generator=make_generator(0)))
    True
    """
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise InputError(f"seed must be a non-negative integer or None, got {seed!r}", field="seed")
        generator.manual_seed(seed)
    return generator


def check_finite(x: Tensor, name: str) -> None:
    """Raise :class:`InputError` if ``x`` holds NaN or infinite values.

    Examples
    --------
    >>> check_finite(torch.tensor([1.0, float("nan")]), "image")
    Traceback (most recent call last):
    ...
    reddiff.errors.InputError: [image] contains NaN or infinite values; expected finite numbers
    """
    values = torch.view_as_real(x) if x.is_complex() else x
    if not bool(torch.isfinite(values).all()):
        raise InputError("contains NaN or infinite values; expected finite numbers", field=name)


def check_image(x, name: str = "image", *, channels=None, size=None) -> Tensor:
    """Validate a ``(B, C, H, W)`` real image tensor and return it as float32.

    Parameters
    ----------
    x : torch.Tensor
        The image.
    name : str
        Argument name used in error messages.
    channels : int or tuple of int, optional
        Allowed channel counts.
    size : tuple of int, optional
        Required ``(H, W)``.

    Examples
    --------
    >>> check_image(torch.zeros(1, 1, 4, 4), channels=1).dtype
    torch.float32
    >>> check_image(torch.zeros(4, 4))
    Traceback (most recent call last):
    ...
    reddiff.errors.InputError: [image] has shape (4, 4); expected (batch, channels, height, width)
    """
    if not isinstance(x, Tensor):
        raise InputError(f"must be a torch.Tensor, got {type(x).__name__}", field=name)
    if x.is_complex():
        raise InputError("is a complex tensor; give complex images as 2 real channels (real, imag)",
                         field=name)
    if x.ndim != 4:
        raise InputError(f"has shape {tuple(x.shape)}; expected (batch, channels, height, width)", field=name)
    allowed = (channels,) if isinstance(channels, int) else channels
    if allowed is not None and x.shape[1] not in allowed:
        raise InputError(f"has {x.shape[1]} channels; expected {' or '.join(map(str, allowed))}", field=name)
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        raise InputError(f"has spatial size {tuple(x.shape[-2:])}; expected {tuple(size)}", field=name)
    check_finite(x, name)
    return x.float() if x.dtype != torch.float64 else x


PADDINGS = ("zeros", "reflect", "replicate", "circular", "valid")


def convolution(kernel: Tensor, *, padding: str = "zeros", use_fft: bool | None = None) -> dinv.physics.Blur:
    r"""Convolution with a kernel as a deepinv :class:`~deepinv.physics.Blur` with an exact adjoint.

    Parameters
    ----------
    kernel : torch.Tensor
        ``(h, w)`` or ``(1, 1, h, w)`` non-negative kernel; normalised to unit sum.
    padding : {"zeros", "reflect", "replicate", "circular", "valid"}
        Boundary model. ``"zeros"`` is a linear convolution of the image padded with
        zeros (no wrap-around); ``"valid"`` returns only the pixels the whole kernel
        sees (smaller output); ``"circular"`` wraps around.
    use_fft : bool, optional
        FFT convolution; default for kernels larger than 15 pixels.

    Returns
    -------
    deepinv.physics.Blur
        ``A`` convolves, ``A_adjoint`` is its exact transpose (including the padding).

    Notes
    -----
    :math:`y = k * P(x)` cropped to the image, where :math:`P` pads by half the kernel
    size; the adjoint is correlation followed by :math:`P^T`.

    Examples
    --------
    >>> blur = convolution(torch.ones(3, 3))
    >>> x = torch.zeros(1, 1, 5, 5); x[..., 0, 0] = 9.0
    >>> blur.A(x)[0, 0, :2, :2]  # no light wraps around to the far edge
    tensor([[1., 1.],
            [1., 1.]])
    """
    if padding not in PADDINGS:
        raise InputError(f"unknown padding {padding!r}; expected one of {', '.join(PADDINGS)}", field="padding")
    kernel = normalise_kernel(kernel)
    if use_fft is None:
        use_fft = max(kernel.shape[-2:]) > 15
    return dinv.physics.Blur(filter=kernel, padding="constant" if padding == "zeros" else padding, use_fft=use_fft)


def normalise_kernel(kernel) -> Tensor:
    """A ``(1, 1, h, w)`` float32 kernel with unit sum, after checking it is finite and non-negative."""
    kernel = torch.as_tensor(kernel, dtype=torch.float32)
    while kernel.ndim > 2 and kernel.shape[0] == 1:
        kernel = kernel[0]
    if kernel.ndim != 2 or min(kernel.shape) < 1:
        raise InputError(f"has shape {tuple(kernel.shape)}; expected a 2-D (h, w) kernel", field="kernel")
    check_finite(kernel, "kernel")
    if bool((kernel < 0).any()) or not float(kernel.sum()) > 0:
        raise InputError("must be non-negative with a positive sum", field="kernel")
    return (kernel / kernel.sum())[None, None].contiguous()


def least_squares_cg(y: Tensor, physics, *, iterations: int = 30, damping: float = 0.0,
                     init: Tensor | None = None, tol: float = 1e-6) -> Tensor:
    r"""Least squares by conjugate gradient on the normal equations (CGLS / SENSE-CG).

    Parameters
    ----------
    y : torch.Tensor
        Measurement, as ``physics.A`` returns it.
    physics : deepinv.physics.LinearPhysics
        Any linear physics with ``A`` and ``A_adjoint``.
    iterations : int
        Conjugate-gradient iterations (early stopping is the regulariser).
    damping : float
        Tikhonov weight :math:`\delta \ge 0`.
    init : torch.Tensor, optional
        Starting image; default zero.
    tol : float
        Relative residual at which CG stops early.

    Returns
    -------
    torch.Tensor
        :math:`\hat x` of the image's shape.

    Notes
    -----
    Solves :math:`(A^T A + \delta I)\,x = A^T y` with deepinv's conjugate gradient,
    which is CGLS for :math:`\delta = 0` (and SENSE for a multi-coil MRI physics).

    Examples
    --------
    >>> import deepinv as dinv
    >>> physics = dinv.physics.Inpainting((1, 4, 4), mask=torch.ones(1, 4, 4))
    >>> x = torch.rand(1, 1, 4, 4)
    >>> torch.allclose(least_squares_cg(physics.A(x), physics), x, atol=1e-5)
    True
    """
    if iterations < 1:
        raise InputError(f"must be at least 1, got {iterations}", field="iterations")
    if not damping >= 0:
        raise InputError(f"must be >= 0, got {damping!r}", field="damping")
    check_finite(y, "y")
    from deepinv.optim.utils import least_squares

    return least_squares(physics.A, physics.A_adjoint, y, init=init, solver="CG", max_iter=iterations, tol=tol,
                         gamma=None if damping == 0 else 1.0 / damping)


def operator_norm_squared(physics, image_shape, *, iterations: int = 30, seed: int = 0) -> float:
    r"""Largest eigenvalue of :math:`A^T A` by power iteration (a Lipschitz constant)."""
    x = torch.randn(image_shape, generator=make_generator(seed))
    value = 0.0
    for _ in range(iterations):
        x = x / x.norm()
        x = physics.A_adjoint(physics.A(x))
        value = float(x.norm())
    return value


def tv_reconstruction(y: Tensor, physics, *, lam: float, iterations: int = 100, init: Tensor | None = None,
                      nonnegative: bool = False, tv_iterations: int = 50) -> Tensor:
    r"""Total-variation regularised least squares by FISTA.

    Parameters
    ----------
    y : torch.Tensor
        Measurement, as ``physics.A`` returns it.
    physics : deepinv.physics.LinearPhysics
        Linear forward model.
    lam : float
        TV weight :math:`\lambda > 0`, in units of ``y``² per image unit.
    iterations : int
        FISTA iterations.
    init : torch.Tensor, optional
        Starting image; default :math:`A^T y` scaled by the step size.
    nonnegative : bool
        Project onto :math:`x \ge 0` after each step (CT, counts).
    tv_iterations : int
        Inner iterations of deepinv's TV proximal operator.

    Returns
    -------
    torch.Tensor
        The reconstruction, shape of :math:`A^T y`.

    Notes
    -----
    Minimises :math:`\tfrac12\lVert Ax - y\rVert_2^2 + \lambda\,\mathrm{TV}(x)` with step
    :math:`1/L`, :math:`L = \lVert A\rVert^2` from power iteration, and the isotropic
    TV prox of :class:`deepinv.models.TVDenoiser` (channels, e.g. real and imaginary
    parts, are regularised separately).

    Examples
    --------
    >>> import deepinv as dinv
    >>> physics = dinv.physics.Inpainting((1, 8, 8), mask=0.5, rng=torch.Generator().manual_seed(0))
    >>> x = torch.ones(1, 1, 8, 8)
    >>> x_hat = tv_reconstruction(physics.A(x), physics, lam=0.01, iterations=200)
    >>> bool((x_hat - x).abs().max() < 0.1)
    True
    """
    if not (lam > 0 and math.isfinite(lam)):
        raise InputError(f"must be positive, got {lam!r}", field="lam")
    if iterations < 1:
        raise InputError(f"must be at least 1, got {iterations}", field="iterations")
    check_finite(y, "y")
    with torch.no_grad():
        back = physics.A_adjoint(y)
        step = 1.0 / operator_norm_squared(physics, back.shape)
        prox = dinv.models.TVDenoiser(n_it_max=tv_iterations)
        x = back * step if init is None else init.clone()
        z, t = x.clone(), 1.0
        for _ in range(iterations):
            gradient = physics.A_adjoint(physics.A(z) - y)
            x_next = prox(z - step * gradient, ths=lam * step)
            if nonnegative:
                x_next = x_next.clamp_min(0)
            t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
            z = x_next + (t - 1) / t_next * (x_next - x)
            x, t = x_next, t_next
    return x
