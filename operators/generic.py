r"""The image-restoration tasks of the RED-Diff paper: inpainting, super-resolution
and deblurring, with Gaussian noise.

Each task is a physics factory plus a name in :data:`TASKS` for :func:`simulate`:

=================== =========================================================
``inpaint-random``  keep each pixel with probability ``1 - missing``
``inpaint-box``     hide a centred square covering ``missing`` of the area
``sr-average``      average non-overlapping ``factor x factor`` blocks
``sr-bicubic``      bicubic anti-aliasing filter, then keep every ``factor``-th pixel
``deblur-gaussian`` Gaussian kernel of standard deviation ``blur_sigma`` pixels
``deblur-uniform``  ``blur_size x blur_size`` box kernel
=================== =========================================================

Images are ``(B, C, H, W)`` in any units; the noise standard deviation ``sigma``
is in those units.
"""

from __future__ import annotations

import math

import deepinv as dinv
import torch
import torch.nn.functional as F
from torch import Tensor

from reddiff.errors import InputError
from reddiff.likelihood import GaussianLikelihood

from .base import Measurement, check_image, convolution, make_generator

__all__ = ["TASKS", "random_mask", "box_mask", "inpainting_physics", "BlockAverage", "super_resolution_physics",
           "gaussian_kernel", "uniform_kernel", "deblur_physics", "task_physics", "simulate"]

TASKS = ("inpaint-random", "inpaint-box", "sr-average", "sr-bicubic", "deblur-gaussian", "deblur-uniform")


def _shape(shape) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 1:
        raise InputError(f"must be (height, width), got {shape}", field="shape")
    return shape


def _fraction(value, name: str) -> float:
    if not (0 <= value < 1):
        raise InputError(f"must be in [0, 1), got {value!r}", field=name)
    return float(value)


def random_mask(shape, *, missing: float = 0.5, seed: int | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """``(H, W)`` mask keeping each pixel independently with probability ``1 - missing``.

    Examples
    --------
    >>> mask = random_mask((64, 64), missing=0.75, seed=0)
    >>> abs(mask.mean().item() - 0.25) < 0.03
    True
    """
    height, width = _shape(shape)
    missing = _fraction(missing, "missing")
    generator = generator or make_generator(seed)
    return (torch.rand(height, width, generator=generator) >= missing).float()


def box_mask(shape, *, missing: float = 0.25, box: tuple[int, int, int, int] | None = None) -> Tensor:
    """``(H, W)`` mask hiding a box: ``box = (top, left, height, width)``, or a centred square of area ``missing``.

    Examples
    --------
    >>> box_mask((8, 8), missing=0.25)[2:6, 2:6].sum().item()  # the centred 4 x 4 square is hidden
    0.0
    >>> box_mask((4, 4), box=(0, 0, 2, 4)).sum().item()
    8.0
    """
    height, width = _shape(shape)
    if box is None:
        side_y = round(height * math.sqrt(_fraction(missing, "missing")))
        side_x = round(width * math.sqrt(missing))
        box = ((height - side_y) // 2, (width - side_x) // 2, side_y, side_x)
    top, left, box_h, box_w = (int(v) for v in box)
    if top < 0 or left < 0 or box_h < 0 or box_w < 0 or top + box_h > height or left + box_w > width:
        raise InputError(f"{box} does not fit in an image of {height}x{width}; expected (top, left, height, width)",
                         field="box")
    mask = torch.ones(height, width)
    mask[top:top + box_h, left:left + box_w] = 0
    return mask


def inpainting_physics(mask: Tensor, *, channels: int = 1) -> dinv.physics.Inpainting:
    r"""Inpainting :math:`y = m \odot x` (deepinv's :class:`~deepinv.physics.Inpainting`), one mask for all channels.

    Examples
    --------
    >>> physics = inpainting_physics(box_mask((8, 8)), channels=3)
    >>> physics.A(torch.ones(1, 3, 8, 8)).sum().item()
    144.0
    """
    mask = torch.as_tensor(mask, dtype=torch.float32)
    if mask.ndim != 2 or not bool(((mask == 0) | (mask == 1)).all()):
        raise InputError(f"expected an (H, W) mask of zeros and ones, got shape {tuple(mask.shape)}", field="mask")
    return dinv.physics.Inpainting(img_size=(channels, *mask.shape), mask=mask[None])


class BlockAverage(dinv.physics.LinearPhysics):
    r"""Super-resolution by block averaging: each low-resolution pixel is the mean of a ``factor x factor`` block.

    Parameters
    ----------
    factor : int
        Downsampling factor; image sides must be multiples of it.

    Notes
    -----
    :math:`A = \frac{1}{f^2} S`, :math:`S` the block sum; :math:`A^T y` repeats each
    value over its block divided by :math:`f^2`, and :math:`AA^T = I/f^2`, so the
    pseudo-inverse is nearest-neighbour upsampling, :math:`A^\dagger = f^2 A^T`.

    Examples
    --------
    >>> physics = BlockAverage(2)
    >>> physics.A(torch.arange(16.0).reshape(1, 1, 4, 4))
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    """

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(factor, int) or factor < 1:
            raise InputError(f"must be a positive integer, got {factor!r}", field="factor")
        self.factor = factor

    def A(self, x: Tensor, **kwargs) -> Tensor:
        if x.ndim != 4 or x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise InputError(f"has shape {tuple(x.shape)}; expected (B, C, H, W) with H and W multiples of "
                             f"{self.factor}", field="x")
        return F.avg_pool2d(x, self.factor)

    def A_adjoint(self, y: Tensor, **kwargs) -> Tensor:
        return y.repeat_interleave(self.factor, -2).repeat_interleave(self.factor, -1) / self.factor**2

    def A_dagger(self, y: Tensor, **kwargs) -> Tensor:
        return self.A_adjoint(y) * self.factor**2

    def __repr__(self) -> str:
        return f"BlockAverage(factor={self.factor})"


def super_resolution_physics(*, factor: int = 4, kind: str = "average", image_shape=None, channels: int = 1):
    r"""Downsampling by ``factor``: ``kind="average"`` (:class:`BlockAverage`) or ``"bicubic"``.

    ``"bicubic"`` is deepinv's :class:`~deepinv.physics.Downsampling` with its bicubic
    anti-aliasing filter and reflect padding; it needs ``image_shape`` ``(H, W)``.

    Examples
    --------
    >>> physics = super_resolution_physics(factor=2, kind="bicubic", image_shape=(8, 8))
    >>> physics.A(torch.ones(1, 1, 8, 8)).shape
    torch.Size([1, 1, 4, 4])
    """
    if not isinstance(factor, int) or factor < 1:
        raise InputError(f"must be a positive integer, got {factor!r}", field="factor")
    if kind == "average":
        return BlockAverage(factor)
    if kind == "bicubic":
        if image_shape is None:
            raise InputError("bicubic downsampling needs image_shape=(H, W)", field="image_shape")
        height, width = _shape(image_shape)
        if height % factor or width % factor:
            raise InputError(f"image of {height}x{width} is not a multiple of factor {factor}; expected sides "
                             "divisible by the factor", field="image_shape")
        return dinv.physics.Downsampling(img_size=(channels, height, width), filter="bicubic", factor=factor,
                                         padding="reflect")
    raise InputError(f"unknown kind {kind!r}; expected average or bicubic", field="kind")


def gaussian_kernel(sigma: float = 3.0, *, size: int | None = None) -> Tensor:
    """``(size, size)`` Gaussian kernel (unit sum), default size ``2 ceil(3 sigma) + 1``.

    Examples
    --------
    >>> gaussian_kernel(1.0).shape
    torch.Size([7, 7])
    """
    if not (sigma > 0 and math.isfinite(sigma)):
        raise InputError(f"must be positive, got {sigma!r}", field="blur_sigma")
    size = 2 * math.ceil(3 * sigma) + 1 if size is None else int(size)
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (r / sigma) ** 2)
    kernel = g[:, None] * g[None, :]
    return (kernel / kernel.sum()).float()


def uniform_kernel(size: int = 9) -> Tensor:
    """``(size, size)`` box kernel (unit sum).

    Examples
    --------
    >>> uniform_kernel(3).sum().item()
    1.0
    """
    if not isinstance(size, int) or size < 1:
        raise InputError(f"must be a positive integer, got {size!r}", field="blur_size")
    return torch.full((size, size), 1.0 / size**2)


def deblur_physics(*, kind: str = "gaussian", blur_sigma: float = 3.0, blur_size: int = 9,
                   padding: str = "reflect"):
    r"""Deblurring: convolution with a Gaussian (``blur_sigma``) or uniform (``blur_size``) kernel.

    ``padding`` as :func:`reddiff.operators.base.convolution` (default reflect, natural
    images continue past their edge).

    Examples
    --------
    >>> deblur_physics(kind="uniform", blur_size=5).filter.shape
    torch.Size([1, 1, 5, 5])
    """
    kernels = {"gaussian": lambda: gaussian_kernel(blur_sigma), "uniform": lambda: uniform_kernel(blur_size)}
    if kind not in kernels:
        raise InputError(f"unknown kind {kind!r}; expected gaussian or uniform", field="kind")
    return convolution(kernels[kind](), padding=padding)


def task_physics(task: str, image_shape, *, channels: int = 1, missing: float | None = None, box=None,
                 factor: int = 4, blur_sigma: float = 3.0, blur_size: int = 9, padding: str = "reflect",
                 seed: int | None = None, generator: torch.Generator | None = None):
    """The physics of a task named in :data:`TASKS` (random masks drawn from ``seed``/``generator``).

    ``missing`` defaults to 0.5 (random) or 0.25 (box).

    Examples
    --------
    >>> task_physics("sr-average", (8, 8), factor=2)
    BlockAverage(factor=2)
    >>> task_physics("colorize", (8, 8))
    Traceback (most recent call last):
    ...
    reddiff.errors.InputError: [task] unknown task 'colorize'; expected one of inpaint-random, inpaint-box, ...
    """
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}", field="task")
    shape = _shape(image_shape)
    if task == "inpaint-random":
        mask = random_mask(shape, missing=0.5 if missing is None else missing, seed=seed, generator=generator)
        return inpainting_physics(mask, channels=channels)
    if task == "inpaint-box":
        return inpainting_physics(box_mask(shape, missing=0.25 if missing is None else missing, box=box),
                                  channels=channels)
    if task.startswith("sr-"):
        return super_resolution_physics(factor=factor, kind=task[3:],
                                        image_shape=shape, channels=channels)
    return deblur_physics(kind=task[7:], blur_sigma=blur_sigma, blur_size=blur_size, padding=padding)


def simulate(image: Tensor, *, task: str = "inpaint-random", sigma: float = 0.05, seed: int | None = None,
             **options) -> Measurement:
    r"""Simulate one of the paper's restoration tasks with additive Gaussian noise.

    Parameters
    ----------
    image : torch.Tensor
        ``(1, C, H, W)`` clean image.
    task : str
        A name in :data:`TASKS`.
    sigma : float
        Noise standard deviation, in image units (``0``: noiseless).
    seed : int, optional
        Seeds the random mask (``inpaint-random``) then the noise.
    **options
        Task parameters for :func:`task_physics`: ``missing``, ``box``, ``factor``,
        ``blur_sigma``, ``blur_size``, ``padding``.

    Returns
    -------
    Measurement
        ``physics`` with ``data_term`` Gaussian(``sigma``) when ``sigma > 0``;
        ``info``: ``task``, ``sigma``, ``seed``, and ``mask`` ``(H, W)`` (inpainting),
        ``factor`` (super-resolution) or ``kernel`` ``(h, w)`` (deblurring).

    Notes
    -----
    :math:`y = A x + \sigma n` (for inpainting, :math:`y = m \odot (x + \sigma n)`:
    hidden pixels read zero).

    Examples
    --------
    >>> m = simulate(torch.rand(1, 3, 16, 16), task="sr-bicubic", factor=2, seed=0)
    >>> m.y.shape, m.info["factor"]
    (torch.Size([1, 3, 8, 8]), 2)
    """
    x = check_image(image, "image")
    if x.shape[0] != 1:
        raise InputError(f"has batch size {x.shape[0]}; expected one image (1, C, H, W): simulate "
                         "images one at a time", field="image")
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise InputError(f"must be finite and >= 0, got {sigma!r}", field="sigma")
    generator = make_generator(seed)
    physics = task_physics(task, x.shape[-2:], channels=x.shape[1], generator=generator, **options)
    with torch.no_grad():
        clean = physics.A(x)
    y = clean + sigma * torch.randn(clean.shape, generator=generator)
    info = {"task": task, "sigma": float(sigma), "seed": seed}
    if task.startswith("inpaint"):
        y = y * physics.mask
        info["mask"] = physics.mask[0, 0]
    elif task.startswith("sr"):
        info["factor"] = options.get("factor", 4)
    else:
        info["kernel"] = physics.filter[0, 0]
    if sigma > 0:
        physics.noise_model = dinv.physics.GaussianNoise(sigma=float(sigma))
        physics.data_term = GaussianLikelihood(float(sigma))
    return Measurement(y=y, physics=physics, x_true=x, info=info)
