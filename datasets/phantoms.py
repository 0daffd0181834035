"""Synthetic CT phantoms: random head-like ellipse images in Hounsfield units.

Training data for the CT prior alongside the two real head slices (see
:mod:`reddiff.datasets.samples`).
"""

from __future__ import annotations

import numpy as np

from reddiff.errors import InputError

AIR_HU = -1000.0
BONE_HU = (700.0, 1500.0)
SOFT_TISSUE_HU = (-100.0, 100.0)


def ellipse_phantom(shape=(64, 64), *, n_ellipses: int = 8, seed=None) -> np.ndarray:
    r"""A random head-like phantom: skull ring, brain, and soft-tissue ellipses, in HU.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` in pixels, each at least 8.
    n_ellipses : int
        Number of random inner ellipses (lesions, ventricles, ...), at least 0.
    seed : int or numpy.random.Generator, optional
        Source of randomness (``None``: fresh entropy).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32 in HU: air -1000 outside the head.

    Notes
    -----
    Ellipse :math:`k` with centre :math:`c_k`, semi-axes :math:`(a_k, b_k)` and angle
    :math:`\theta_k` covers the points (in coordinates scaled to :math:`[-1, 1]`) with

    .. math:: \left(\frac{R_{\theta_k}(p - c_k)_1}{a_k}\right)^2
              + \left(\frac{R_{\theta_k}(p - c_k)_2}{b_k}\right)^2 \le 1,

    and later ellipses paint over earlier ones: head (bone, 700-1500 HU), brain
    (20-45 HU), then ``n_ellipses`` of -100 to 100 HU inside the brain.

    Examples
    --------
    >>> image = ellipse_phantom((32, 32), seed=0)
    >>> image.shape, float(image[0, 0])
    ((32, 32), -1000.0)
    """
    h, w = _shape(shape)
    if int(n_ellipses) != n_ellipses or n_ellipses < 0:
        raise InputError(f"n_ellipses must be a non-negative integer, got {n_ellipses!r}", field="n_ellipses")
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    image = np.full((h, w), AIR_HU)
    a, b, angle = rng.uniform(0.7, 0.9), rng.uniform(0.8, 0.95), rng.uniform(-0.3, 0.3)
    skull = rng.uniform(0.06, 0.1)
    image[_inside(y, x, (0, 0), (b, a), angle)] = rng.uniform(*BONE_HU)
    image[_inside(y, x, (0, 0), (b - skull, a - skull), angle)] = rng.uniform(20, 45)
    for _ in range(int(n_ellipses)):
        centre = rng.uniform(-0.5, 0.5, size=2) * (b - skull, a - skull)
        axes = rng.uniform(0.04, 0.3, size=2)
        image[_inside(y, x, centre, axes, rng.uniform(0, np.pi))] = rng.uniform(*SOFT_TISSUE_HU)
    return image.astype(np.float32)


def _inside(y, x, centre, axes, angle) -> np.ndarray:
    dy, dx = y - centre[0], x - centre[1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    return (v / axes[0]) ** 2 + (u / axes[1]) ** 2 <= 1


def _shape(shape) -> tuple[int, int]:
    try:
        h, w = (int(n) for n in shape)
    except (TypeError, ValueError) as err:
        raise InputError(f"shape must be two integers (H, W), got {shape!r}", field="shape") from err
    if min(h, w) < 8:
        raise InputError(f"shape must be at least 8x8, got {shape!r}", field="shape")
    return h, w
