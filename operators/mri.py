r"""Cartesian MRI: undersampling masks, coil sensitivities, the k-space physics,
simulation and classical reconstructions.

Conventions (fastMRI's, which deepinv's :class:`~deepinv.physics.MRI` and
:class:`~deepinv.physics.MultiCoilMRI` follow): the Fourier transform is centred
(``ifftshift -> fftn -> fftshift``) and orthonormal, so k-space noise of standard
deviation :math:`\sigma` per real/imaginary part equals image noise of the same
:math:`\sigma`. Images are ``(B, 2, H, W)`` (real, imaginary), single-coil k-space
``(B, 2, H, W)``, multi-coil k-space ``(B, 2, coils, H, W)``. Rows are the readout
direction, columns (the last axis) the phase encodes, so a Cartesian mask selects
whole columns. Intensities are arbitrary units with the image maximum near 1.
"""

from __future__ import annotations

import math

import deepinv as dinv
import numpy as np
import torch
from deepinv.utils.mixins import MRIMixin
from numpy.polynomial.legendre import legvander
from torch import Tensor

from reddiff.errors import InputError
from reddiff.likelihood import GaussianLikelihood

from .base import (Measurement, check_finite, check_image, check_memory, least_squares_cg, make_generator,
                   tv_reconstruction)

__all__ = ["MASKS", "cartesian_mask", "variable_density_mask", "poisson_disc_mask", "make_mask", "as_mask", "birdcage_maps",
           "estimate_sensitivity_maps", "refine_sensitivity_maps", "remove_readout_oversampling", "mri_physics", "CentredGrid", "simulate",
           "zero_filled", "sense_cg", "tv_reconstruction"]

CARTESIAN_KINDS = ("random", "equispaced", "gaussian")
MASKS = (*CARTESIAN_KINDS, "variable-density", "poisson-disc")


def _check_sampling(acceleration: float, center_fraction: float) -> None:
    if not (acceleration >= 1 and math.isfinite(acceleration)):
        raise InputError(f"must be a finite number >= 1, got {acceleration!r}", field="acceleration")
    if not (0 <= center_fraction <= 1):
        raise InputError(f"must be in [0, 1], got {center_fraction!r}", field="center_fraction")
    if center_fraction * acceleration > 1 + 1e-9:
        raise InputError(f"the fully sampled centre ({center_fraction}) exceeds the sampled fraction "
                         f"1/acceleration = {1 / acceleration:.3g}; expected center_fraction <= 1/acceleration",
                         field="center_fraction")


def _check_shape(shape) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 2:
        raise InputError(f"must be (height, width) with both >= 2, got {shape}", field="shape")
    return shape


def cartesian_mask(shape, *, kind: str = "random", acceleration: float = 4.0, center_fraction: float = 0.08,
                   seed: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    r"""A 1-D Cartesian undersampling mask (whole phase-encode columns), fastMRI style.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` of k-space; columns (``W``) are phase encodes.
    kind : {"random", "equispaced", "gaussian"}
        ``"random"``: each outer column kept with the probability that gives
        ``W / acceleration`` columns on average (fastMRI ``RandomMaskFunc``);
        ``"equispaced"``: outer columns on a regular grid with a random offset,
        spacing adjusted for the centre (fastMRI ``EquispacedMaskFractionFunc``);
        ``"gaussian"``: outer columns drawn with a Gaussian variable density
        (standard deviation ``W / 6``) scaled to the same expected count.
    acceleration : float
        Undersampling factor :math:`R \ge 1`; ``1`` samples everything.
    center_fraction : float
        Fraction of columns, centred on :math:`k = 0`, always sampled.
    seed : int, optional
        Seed of the draw (ignored if ``generator`` is given).
    generator : torch.Generator, optional
        Random stream to draw from.

    Returns
    -------
    torch.Tensor
        ``(H, W)`` float32 mask of zeros and ones, constant down each column.

    Notes
    -----
    With :math:`n_c = \mathrm{round}(W f_c)` centre columns, the outer columns are
    kept with probability :math:`p = (W/R - n_c) / (W - n_c)` (times the density,
    for ``"gaussian"``), so the expected sampled fraction is :math:`1/R`.

    Examples
    --------
    >>> mask = cartesian_mask((8, 16), kind="equispaced", acceleration=4, center_fraction=0.125, seed=0)
    >>> mask.shape, mask[0].tolist() == mask[-1].tolist()
    (torch.Size([8, 16]), True)
    >>> mask[0, 7:9].tolist()  # the centre is always sampled
    [1.0, 1.0]
    """
    height, width = _check_shape(shape)
    _check_sampling(acceleration, center_fraction)
    if kind not in CARTESIAN_KINDS:
        raise InputError(f"unknown kind {kind!r}; expected one of {', '.join(CARTESIAN_KINDS)}", field="kind")
    generator = generator or make_generator(seed)
    n_low = round(width * center_fraction)
    pad = (width - n_low + 1) // 2
    columns = torch.zeros(width, dtype=torch.bool)
    if acceleration == 1 or n_low >= width:
        columns[:] = True
    elif kind == "equispaced":
        spacing = acceleration * (n_low - width) / (n_low * acceleration - width)
        offset = int(torch.randint(0, max(round(spacing), 1), (1,), generator=generator))
        picks = torch.arange(offset, width - 1, spacing, dtype=torch.float64).round().long()
        columns[picks] = True
    else:
        density = torch.ones(width, dtype=torch.float64)
        if kind == "gaussian":
            k = torch.arange(width, dtype=torch.float64) - width / 2
            density = torch.exp(-0.5 * (k / (width / 6)) ** 2)
        outer = torch.ones(width, dtype=torch.bool)
        outer[pad:pad + n_low] = False
        probability = _scale_density(density, outer, width / acceleration - n_low)
        columns = torch.rand(width, generator=generator, dtype=torch.float64) < probability
    columns[pad:pad + n_low] = True
    return columns.float().expand(height, width).contiguous()


def _scale_density(density: Tensor, where: Tensor, expected: float) -> Tensor:
    """Probabilities ``min(c * density, 1)`` on ``where`` (zero elsewhere) summing to ``expected``."""
    density = density * where
    lo, hi = 0.0, 1.0
    while float((hi * density).clamp(max=1).sum()) < expected and hi < 1e12:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if float((mid * density).clamp(max=1).sum()) < expected:
            lo = mid
        else:
            hi = mid
    return (hi * density).clamp(max=1)


def variable_density_mask(shape, *, acceleration: float = 4.0, center_fraction: float = 0.08,
                          decay: float = 4.0, seed: int | None = None,
                          generator: torch.Generator | None = None) -> Tensor:
    r"""A 2-D variable-density random mask (for 3-D Cartesian or non-Cartesian-like sampling).

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` of k-space.
    acceleration : float
        Undersampling factor :math:`R \ge 1`: about :math:`HW/R` samples.
    center_fraction : float
        Side of the fully sampled central square, as a fraction of each side.
    decay : float
        Polynomial order :math:`p` of the density :math:`(1 - r)^p`.
    seed : int, optional
        Seed of the draw (ignored if ``generator`` is given).
    generator : torch.Generator, optional
        Random stream to draw from.

    Returns
    -------
    torch.Tensor
        ``(H, W)`` float32 mask of zeros and ones.

    Notes
    -----
    Each k-space point outside the central square is kept independently with
    probability :math:`\min(1, c\,(1 - r)^p)`, :math:`r` the distance to the centre
    normalised to 1 at the corner, and :math:`c` set so that the expected number of
    samples is :math:`HW/R`.

    Examples
    --------
    >>> mask = variable_density_mask((64, 64), acceleration=4, seed=0)
    >>> abs(mask.mean().item() - 0.25) < 0.02  # 1/acceleration on average
    True
    """
    height, width = _check_shape(shape)
    _check_sampling(acceleration, center_fraction)
    if not decay >= 0:
        raise InputError(f"must be >= 0, got {decay!r}", field="decay")
    generator = generator or make_generator(seed)
    ky = (torch.arange(height, dtype=torch.float64) - height // 2) / (height / 2)
    kx = (torch.arange(width, dtype=torch.float64) - width // 2) / (width / 2)
    radius = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2) / math.sqrt(2)
    centre = (ky.abs()[:, None] < center_fraction) & (kx.abs()[None, :] < center_fraction)
    if acceleration == 1:
        return torch.ones(height, width)
    probability = _scale_density((1 - radius).clamp(min=0) ** decay, ~centre,
                                 height * width / acceleration - float(centre.sum()))
    mask = (torch.rand(height, width, generator=generator, dtype=torch.float64) < probability) | centre
    return mask.float()


def poisson_disc_mask(shape, *, acceleration: float = 4.0, center_fraction: float = 0.08, radius_ratio: float = 3.0,
                      seed: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    r"""A 2-D variable-density Poisson-disc mask: samples no closer than a radius that grows away from the centre.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` of k-space.
    acceleration : float
        Undersampling factor :math:`R \ge 1`; the radius is tuned so that about
        :math:`HW/R` points are sampled.
    center_fraction : float
        Side of the fully sampled central square, as a fraction of each side.
    radius_ratio : float
        Exclusion radius at the k-space corner over the radius at the centre (``>= 1``).
    seed : int, optional
        Seed of the draw (ignored if ``generator`` is given).
    generator : torch.Generator, optional
        Random stream to draw from.

    Returns
    -------
    torch.Tensor
        ``(H, W)`` float32 mask of zeros and ones.

    Notes
    -----
    Dart throwing on the grid: points are visited in a random order and a point is
    kept unless it lies within :math:`r(k) = s\,(1 + (\rho - 1)\,|k|/|k|_{max})` of
    an earlier kept point (:math:`\rho` = ``radius_ratio``); the scale :math:`s` is
    found by bisection. The blue-noise spacing avoids the clusters and holes of
    independent (Bernoulli) sampling.

    Examples
    --------
    >>> mask = poisson_disc_mask((32, 32), acceleration=4, center_fraction=0.125, seed=0)
    >>> abs(mask.mean().item() - 0.25) < 0.03
    True
    """
    height, width = _check_shape(shape)
    _check_sampling(acceleration, center_fraction)
    if not (radius_ratio >= 1 and math.isfinite(radius_ratio)):
        raise InputError(f"must be >= 1, got {radius_ratio!r}", field="radius_ratio")
    if acceleration == 1:
        return torch.ones(height, width)
    generator = generator or make_generator(seed)
    ky = (torch.arange(height, dtype=torch.float64) - height // 2) / (height / 2)
    kx = (torch.arange(width, dtype=torch.float64) - width // 2) / (width / 2)
    centre = (ky.abs()[:, None] < center_fraction) & (kx.abs()[None, :] < center_fraction)
    profile = 1 + (radius_ratio - 1) * torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2) / math.sqrt(2)
    order = torch.randperm(height * width, generator=generator).tolist()
    target = height * width / acceleration
    lo, hi = 0.0, float(max(height, width))
    best = None
    for _ in range(20):
        scale = (lo + hi) / 2
        mask = _dart_throw(centre, (scale * profile).tolist(), order)
        if best is None or abs(float(mask.sum()) - target) < abs(float(best.sum()) - target):
            best = mask
        if abs(float(mask.sum()) - target) <= 0.01 * target:
            break
        lo, hi = (lo, scale) if float(mask.sum()) < target else (scale, hi)
    return best.float()


def _dart_throw(centre: Tensor, radius: list, order: list) -> Tensor:
    """Keep the ``centre`` points, then grid points in ``order`` unless within their own ``radius`` of a kept one."""
    height, width = centre.shape
    blocked = [[False] * width for _ in range(height)]
    kept = [[False] * width for _ in range(height)]
    centre_points = [i * width + j for i, j in centre.nonzero().tolist()]
    for rank, index in enumerate(centre_points + order):
        i, j = divmod(index, width)
        if kept[i][j] or (blocked[i][j] and rank >= len(centre_points)):
            continue
        kept[i][j] = True
        r = radius[i][j]
        for di in range(-int(r), int(r) + 1):
            if 0 <= i + di < height:
                span = int(math.sqrt(max(r * r - di * di, 0.0)))
                line = blocked[i + di]
                line[max(j - span, 0):j + span + 1] = [True] * (min(j + span + 1, width) - max(j - span, 0))
    return torch.tensor(kept)


def make_mask(kind: str, shape, *, acceleration: float = 4.0, center_fraction: float = 0.08,
              seed: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    """A mask by name: one of :data:`MASKS` (see :func:`cartesian_mask`, :func:`variable_density_mask`).

    Examples
    --------
    >>> make_mask("random", (8, 8), acceleration=2, center_fraction=0.25, seed=1).shape
    torch.Size([8, 8])
    >>> make_mask("spiral", (8, 8))
    Traceback (most recent call last):
    ...
    reddiff.errors.InputError: [mask] unknown mask 'spiral'; expected one of random, equispaced, ...
    """
    if kind == "variable-density":
        return variable_density_mask(shape, acceleration=acceleration, center_fraction=center_fraction,
                                     seed=seed, generator=generator)
    if kind == "poisson-disc":
        return poisson_disc_mask(shape, acceleration=acceleration, center_fraction=center_fraction,
                                 seed=seed, generator=generator)
    if kind in CARTESIAN_KINDS:
        return cartesian_mask(shape, kind=kind, acceleration=acceleration, center_fraction=center_fraction,
                              seed=seed, generator=generator)
    raise InputError(f"unknown mask {kind!r}; expected one of {', '.join(MASKS)}", field="mask")


def as_mask(mask, shape) -> Tensor:
    """A mask given as data (e.g. read from a fastMRI file), checked and returned as ``(H, W)`` float32.

    Parameters
    ----------
    mask : array-like
        ``(W,)`` column flags (fastMRI files), ``(H, W)``, or deepinv's
        ``(1, C, H, W)`` with identical channels; values 0/1 or booleans.
    shape : (int, int)
        ``(H, W)`` of the k-space it applies to.

    Examples
    --------
    >>> as_mask(torch.tensor([0, 1, 1, 0]), (2, 4))
    tensor([[0., 1., 1., 0.],
            [0., 1., 1., 0.]])
    >>> as_mask(torch.ones(3), (2, 4))
    Traceback (most recent call last):
    ...
    reddiff.errors.InputError: [mask] has shape (3,); expected (4,) column flags or (2, 4) for k-space of shape (2, 4)
    """
    height, width = _check_shape(shape)
    mask = torch.as_tensor(mask).detach().cpu()
    if mask.is_complex():
        raise InputError("is complex; expected zeros and ones", field="mask")
    while mask.ndim > 2 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim == 3 and bool((mask == mask[:1]).all()):
        mask = mask[0]
    if mask.ndim == 1 and mask.shape[0] == width:
        mask = mask.expand(height, width)
    if tuple(mask.shape) != (height, width):
        raise InputError(f"has shape {tuple(torch.as_tensor(mask).shape)}; expected ({width},) column flags or "
                         f"({height}, {width}) for k-space of shape ({height}, {width})", field="mask")
    mask = mask.float()
    check_finite(mask, "mask")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise InputError("has values other than 0 and 1; expected a binary sampling mask", field="mask")
    if not bool(mask.any()):
        raise InputError("samples nothing; expected at least one sampled k-space point", field="mask")
    return mask.contiguous()


def birdcage_maps(coils: int, shape, *, radius: float = 1.5, field_of_view=None) -> Tensor:
    r"""Simulated birdcage coil sensitivities (as sigpy's ``birdcage_maps``), for tests and simulation.

    Parameters
    ----------
    coils : int
        Number of coils :math:`N \ge 1`, evenly spaced on a circle.
    shape : (int, int)
        ``(H, W)`` of the image.
    radius : float
        Coil circle radius relative to the half field of view (``> 1`` puts coils outside).
    field_of_view : (int, int), optional
        ``(h, w)``: the centred part of the grid the coil circle is sized to, the image's
        field of view when the grid is larger (a readout-oversampled k-space grid), so the
        coils sit where they would for the image alone. Default: the whole grid.

    Returns
    -------
    torch.Tensor
        ``(N, H, W)`` complex64 maps normalised so that :math:`\sum_c |S_c|^2 = 1` at every pixel.

    Notes
    -----
    Coil :math:`c` sits at :math:`\rho\,(\cos\phi_c, \sin\phi_c)`, :math:`\phi_c = 2\pi c/N`;
    its raw sensitivity at distance :math:`d` and angle :math:`\theta` is
    :math:`e^{i(\theta - \phi_c)} / d`, then all are divided by their root sum of squares.

    Examples
    --------
    >>> maps = birdcage_maps(4, (8, 8))
    >>> maps.shape, bool(torch.allclose((maps.abs() ** 2).sum(0), torch.ones(8, 8)))
    (torch.Size([4, 8, 8]), True)
    >>> bool(torch.allclose(birdcage_maps(4, (16, 8), field_of_view=(8, 8))[:, 4:12], maps))
    True
    """
    height, width = _check_shape(shape)
    rows, columns = (height, width) if field_of_view is None else _image_shape(field_of_view, (height, width))
    if not isinstance(coils, int) or coils < 1:
        raise InputError(f"must be a positive integer, got {coils!r}", field="coils")
    # maps, coil images and k-space: a few complex64 copies per coil
    check_memory(4 * 8 * coils * height * width, f"{coils} coils of {height}x{width}", field="coils")
    c = torch.arange(coils, dtype=torch.float64)[:, None, None]
    y = torch.arange(height, dtype=torch.float64)[None, :, None]
    x = torch.arange(width, dtype=torch.float64)[None, None, :]
    x_co = (x - width / 2) / (columns / 2) - radius * torch.cos(2 * math.pi * c / coils)
    y_co = (y - height / 2) / (rows / 2) - radius * torch.sin(2 * math.pi * c / coils)
    phase = torch.atan2(x_co, -y_co) - 2 * math.pi * c / coils
    maps = torch.polar(1.0 / torch.sqrt(x_co**2 + y_co**2), phase)
    maps = maps / torch.sqrt((maps.abs() ** 2).sum(0, keepdim=True))
    return maps.to(torch.complex64)


def _kspace_complex(kspace: Tensor) -> Tensor:
    """``(N, H, W)`` complex from deepinv's ``(1, 2, N, H, W)`` (or ``(1, 2, H, W)`` single-coil)."""
    if not isinstance(kspace, Tensor):
        raise InputError(f"must be a torch.Tensor, got {type(kspace).__name__}", field="kspace")
    if kspace.ndim == 4:
        kspace = kspace[:, :, None]
    if kspace.ndim != 5 or kspace.shape[:2] != (1, 2):
        raise InputError(f"has shape {tuple(kspace.shape)}; expected multi-coil k-space (1, 2, coils, H, W)",
                         field="kspace")
    check_finite(kspace, "kspace")
    return torch.complex(kspace[0, 0].double(), kspace[0, 1].double())


def _calibration_width(sampled: Tensor) -> int:
    """Width of the contiguous run of fully sampled columns around the k-space centre."""
    width = sampled.shape[0]
    left = right = width // 2
    if not bool(sampled[left]):
        return 0
    while left > 0 and bool(sampled[left - 1]):
        left -= 1
    while right < width - 1 and bool(sampled[right + 1]):
        right += 1
    return right - left + 1


def _readout_field_of_view(data: Tensor, rows: int) -> Tensor:
    r"""Complex k-space ``(..., H, W)`` with the readout's field of view changed to ``rows`` pixels:
    :math:`F_{rows}\, R\, F_H^{-1}` along the rows, :math:`R` the centred crop (``rows < H``) or zero
    padding (``rows > H``) of the hybrid space, the offset :math:`\lfloor (\max - \min) / 2 \rfloor`
    as :class:`CentredGrid`'s."""
    height = data.shape[-2]
    hybrid = MRIMixin.ifft(data, dim=(-2,))
    if rows < height:
        top = (height - rows) // 2
        hybrid = hybrid[..., top:top + rows, :]
    elif rows > height:
        top = (rows - height) // 2
        padded = hybrid.new_zeros((*hybrid.shape[:-2], rows, hybrid.shape[-1]))
        padded[..., top:top + height, :] = hybrid
        hybrid = padded
    return MRIMixin.fft(hybrid, dim=(-2,))


def remove_readout_oversampling(kspace: Tensor, rows: int) -> Tensor:
    r"""k-space of the centred ``rows`` image rows only, from a readout-oversampled acquisition.

    Scanners acquire the readout (the rows, fully sampled in every sampled column) over a larger
    field of view and remove the oversampling before reconstruction: along the rows,
    :math:`y' = F_h\, C\, F_H^{-1} y`, :math:`C` the centred crop to ``h = rows`` (fastMRI's
    ``center_crop`` offset). Exact for what lies in those rows; the noise stays white with the
    same :math:`\sigma` (orthonormal transforms and a crop).

    Parameters
    ----------
    kspace : torch.Tensor
        ``(B, 2, [coils,] H, W)`` in deepinv's layout.
    rows : int
        ``h``, at most ``H``.

    Returns
    -------
    torch.Tensor
        ``(B, 2, [coils,] h, W)``.

    Examples
    --------
    >>> x = torch.zeros(1, 2, 16, 8); x[:, 0, 4:12] = torch.rand(8, 8)
    >>> y = mri_physics(torch.ones(16, 8)).A(x)
    >>> bool(torch.allclose(remove_readout_oversampling(y, 8), mri_physics(torch.ones(8, 8)).A(x[..., 4:12, :]),
    ...                     atol=1e-5))
    True
    """
    if not isinstance(kspace, Tensor) or kspace.ndim not in (4, 5) or kspace.shape[1] != 2:
        raise InputError(f"expected k-space (B, 2, [coils,] H, W), got {getattr(kspace, 'shape', kspace)!r}",
                         field="kspace")
    if not (isinstance(rows, int) and 0 < rows <= kspace.shape[-2]):
        raise InputError(f"rows must be an integer in 1..{kspace.shape[-2]}, got {rows!r}", field="image_shape")
    cropped = _readout_field_of_view(torch.complex(kspace[:, 0], kspace[:, 1]), rows)
    return torch.stack([cropped.real, cropped.imag], dim=1).to(kspace.dtype)


def estimate_sensitivity_maps(kspace: Tensor, *, calibration_size: int | tuple[int, int] | None = None,
                              kernel_size: int | tuple[int, int] | None = None, threshold: float = 0.02,
                              crop: float = 0.95, readout_padding: int = 2) -> Tensor:
    r"""Coil sensitivities from the calibration region by ESPIRiT (Uecker et al., MRM 2014).

    A torch port of sigpy's ``EspiritCalib``: no extra dependency, deterministic.

    Parameters
    ----------
    kspace : torch.Tensor
        Multi-coil k-space ``(1, 2, N, H, W)`` in deepinv's layout (centred), fully sampled
        along the readout (rows) in every sampled column.
    calibration_size : int or (int, int), optional
        Rows and columns of the central calibration block; default the contiguous fully sampled
        columns around the centre (at most 24) by up to 24 rows. ``(H, columns)`` uses every
        readout row.
    kernel_size : int or (int, int), optional
        ESPIRiT kernel, square or :math:`k_y \times k_x`; default square, a third of the
        calibration columns wide, within 3 to 6 (it must fit the calibration block several times
        over, or the maps degrade).
    threshold : float
        Keep the calibration-matrix singular vectors above ``threshold`` times the largest.
    crop : float
        Zero the maps where the top eigenvalue is below ``crop`` (outside the object).
    readout_padding : int
        Estimate on a readout field of view this many times the grid's (the fully sampled
        rows zero-padded in hybrid space), then crop the maps back. ESPIRiT's maps are smooth
        and periodic on the grid; an object that reaches the readout edges (no readout
        oversampling) makes the coil images jump there, which such maps cannot follow. With 2,
        the k-space misfit of the maps fell from 1.36 / 1.40 to 0.12 / 0.06 noise variances per
        sample on held-out ``mr_small`` at 64 / 128 px (4x, 16 % centre; 2.3 to 0.46 on a
        generated head cut by the field of view, ``benchmarks/espirit_maps.py``). 1: as the grid is.

    Returns
    -------
    torch.Tensor
        ``(N, H, W)`` complex64 maps, phase referenced to coil 0, :math:`\sum_c |S_c|^2 = 1`
        where kept.

    Notes
    -----
    The Hankel matrix :math:`A` of all :math:`k_y \times k_x` calibration patches gives the
    signal subspace :math:`V_\parallel` (eigenvectors of :math:`A^H A` above
    :math:`\text{threshold}^2` of its largest eigenvalue, i.e. singular vectors of :math:`A`). Taken to
    the image domain, each kernel :math:`v_j` gives at each pixel a matrix
    :math:`G(r) = \tfrac{1}{k_y k_x}\sum_j \hat v_j(r) \hat v_j(r)^H`
    whose eigenvector of eigenvalue 1 is the vector of coil sensitivities. :math:`G` is formed as
    the inverse Fourier transform of the kernels' cross-correlations
    :math:`C_{cc'}(d) = \sum_j \sum_u v_{jc}(u + d)\, \overline{v_{jc'}(u)}`, so memory grows
    with coils squared, not with the number of kernels.

    Where the object fills the field of view, every readout row and a kernel a quarter of them
    tall (``calibration_size=(H, columns)``, ``kernel_size=(H // 4, k)``) explain the k-space
    several times better than the default (``benchmarks/espirit_maps.py``), but are not the
    default: ``lam="auto"`` is not yet re-decided for their smaller misfit (``docs/tuning.md``,
    "Taller ESPIRiT kernels").

    Examples
    --------
    >>> maps = birdcage_maps(4, (32, 32))
    >>> x = torch.zeros(1, 2, 32, 32); x[:, 0, 8:24, 8:24] = 1
    >>> y = mri_physics(torch.ones(32, 32), coil_maps=maps).A(x)
    >>> est = estimate_sensitivity_maps(y, calibration_size=12)
    >>> inner = (est.conj() * maps).sum(0).abs()[10:22, 10:22]  # |<est, true>| = 1: same up to phase
    >>> bool((inner > 0.95).all())
    True
    """
    data = _kspace_complex(kspace)
    if not isinstance(readout_padding, int) or isinstance(readout_padding, bool) or readout_padding < 1:
        raise InputError(f"must be a positive integer, got {readout_padding!r}", field="readout_padding")
    rows = data.shape[-2]
    data = _readout_field_of_view(data, readout_padding * rows)
    coils, height, width = data.shape
    if calibration_size is None:
        calibration_size = (min(24, height), min(24, _calibration_width((data.abs().sum((0, 1)) > 0).cpu())))
    elif isinstance(calibration_size, int):
        calibration_size = (calibration_size, calibration_size)
    cy, cx = (min(int(c), s) for c, s in zip(calibration_size, (height, width)))
    ky, kx = _kernel_shape(kernel_size, cy, cx)
    if cy < ky + 1 or cx < kx + 1:
        raise InputError(f"the calibration region ({cy} x {cx}) must exceed the kernel ({ky} x {kx}); sample more "
                         "central k-space lines (center_fraction) or lower kernel_size", field="calibration_size")
    if 2 * ky - 1 > height or 2 * kx - 1 > width:
        raise InputError(f"kernel ({ky} x {kx}) is over half the k-space grid ({height} x {width})",
                         field="kernel_size")
    top, left = height // 2 - cy // 2, width // 2 - cx // 2
    calib = data[:, top:top + cy, left:left + cx]
    patches = calib.unfold(1, ky, 1).unfold(2, kx, 1)  # (N, py, px, ky, kx)
    matrix = patches.permute(1, 2, 0, 3, 4).reshape(-1, coils * ky * kx)
    power, vectors = torch.linalg.eigh(matrix.mH @ matrix)  # singular values squared, right singular vectors
    kernels = vectors[:, power > threshold**2 * power.max()].mH.reshape(-1, coils, ky, kx)
    gram = _kernel_gram(kernels, (height, width))  # (H W, N, N)
    values, eigvecs = torch.linalg.eigh(gram)
    maps = eigvecs[..., -1].T.reshape(coils, height, width)
    maps = maps * torch.exp(-1j * torch.angle(maps[:1]))
    maps = maps * (values[:, -1] > crop).reshape(1, height, width)
    top = (height - rows) // 2
    return maps[:, top:top + rows].to(torch.complex64)


def refine_sensitivity_maps(kspace: Tensor, mask, maps: Tensor, *, degree: int = 6, iterations: int = 8,
                            sense_iterations: int = 10) -> Tensor:
    r"""Coil maps refitted jointly with the image on smooth, non-periodic polynomials (JSENSE,
    Ying & Sheng, MRM 2007), starting from ``maps`` (e.g. ESPIRiT's).

    ESPIRiT's maps are smooth and *periodic* on the grid. Where the object reaches the phase-encode
    edges of the field of view, the true maps differ at the two edges (they are different places),
    so periodic maps go wrong within a few columns of them; the data barely show it, but the
    undersampled axis turns it into large image errors. Polynomials need no periodicity.

    Each of ``iterations`` alternations takes the image :math:`x` by SENSE-CG
    (``sense_iterations``, early stopped) with the current maps, then refits every coil's map
    :math:`S_c = \sum_b a_{cb}\, \phi_b`, :math:`\phi_b(u, v) = P_i(u) P_j(v)` (Legendre, :math:`i + j
    \le` ``degree``, :math:`u, v \in [-1, 1]` across the grid) by least squares on the sampled k-space,

    .. math:: \min_{a_c} \lVert M F \textstyle\sum_b a_{cb}\, \phi_b x - y_c \rVert^2,

    and normalises :math:`S_c \leftarrow S_c / \sqrt{\sum_{c'} |S_{c'}|^2}`.

    Parameters
    ----------
    kspace : torch.Tensor
        Multi-coil k-space ``(1, 2, N, H, W)`` (deepinv's layout, centred).
    mask : array-like
        The sampling mask, anything :func:`as_mask` accepts.
    maps : torch.Tensor
        ``(N, H, W)`` complex starting maps.
    degree : int
        Highest total degree of the polynomials: :math:`(d + 1)(d + 2) / 2` coefficients per coil.
        6 led 4, 5 and 8 on generated MNI152 heads cut by the field of view at 64 px (4x, 8 birdcage
        coils; ``docs/tuning.md``, "JSENSE").
    iterations : int
        Alternations (8 led 4 there).
    sense_iterations : int
        CG iterations of each image estimate.

    Returns
    -------
    torch.Tensor
        ``(N, H, W)`` complex64, :math:`\sum_c |S_c|^2 = 1` everywhere (no support mask).

    Examples
    --------
    >>> truth = birdcage_maps(4, (32, 32))
    >>> x = torch.zeros(1, 2, 32, 32); x[:, 0, 4:28, :] = 1  # reaches the phase-encode edges
    >>> mask = cartesian_mask((32, 32), acceleration=2, center_fraction=0.3, seed=0)
    >>> y = mri_physics(mask, coil_maps=truth).A(x)
    >>> fitted = refine_sensitivity_maps(y, mask, estimate_sensitivity_maps(y))
    >>> bool((truth.conj() * fitted).sum(0).abs()[4:28].min() > 0.99)  # |<fitted, true>| = 1: same up to phase
    True
    """
    data = _kspace_complex(kspace).to(torch.complex128)
    coils, height, width = data.shape
    if not isinstance(maps, Tensor) or not maps.is_complex() or tuple(maps.shape) != (coils, height, width):
        raise InputError(f"expected complex maps of shape {(coils, height, width)}, got "
                         f"{tuple(getattr(maps, 'shape', ()))}", field="coil_maps")
    for name, value in (("degree", degree), ("iterations", iterations), ("sense_iterations", sense_iterations)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"must be a positive integer, got {value!r}", field=name)
    sampled = as_mask(mask, (height, width)).bool()
    basis = _legendre_basis(height, width, degree)  # (B, H, W)
    measured = data[:, sampled].T  # (samples, N)
    for _ in range(iterations):
        physics = mri_physics(sampled.float(), coil_maps=maps.to(torch.complex64))
        image = sense_cg(kspace, physics, iterations=sense_iterations)
        image = torch.complex(image[0, 0], image[0, 1]).to(torch.complex128)
        design = MRIMixin.fft(basis * image, dim=(-2, -1))[:, sampled].T  # (samples, B)
        coefficients = torch.linalg.lstsq(design, measured).solution  # (B, N)
        fitted = torch.einsum("bn,bhw->nhw", coefficients, basis)
        maps = (fitted / fitted.abs().pow(2).sum(0).sqrt().clamp(min=1e-12)).to(torch.complex64)
    return maps


def _legendre_basis(height: int, width: int, degree: int) -> Tensor:
    r""":math:`P_i(u) P_j(v)`, :math:`i + j \le` ``degree``, on ``height x width`` points spanning
    :math:`[-1, 1]^2`: ``((d + 1)(d + 2) / 2, H, W)`` complex128."""
    rows, columns = (torch.from_numpy(legvander(np.linspace(-1, 1, n), degree).T) for n in (height, width))
    return torch.stack([torch.outer(rows[i], columns[j]) for i in range(degree + 1) for j in range(degree + 1 - i)]
                       ).to(torch.complex128)


def _kernel_shape(kernel_size, rows: int, columns: int) -> tuple[int, int]:
    """``(k_y, k_x)`` from ``kernel_size`` (an int is square), or the default: square, a third of the
    calibration columns, within 3 to 6."""
    if kernel_size is None:
        side = max(3, min(6, columns // 3))
        return side, side
    if isinstance(kernel_size, int):
        return kernel_size, kernel_size
    return tuple(int(k) for k in kernel_size)


def _kernel_gram(kernels: Tensor, shape: tuple[int, int]) -> Tensor:
    r"""Per-pixel :math:`G(r) = \tfrac{1}{k_y k_x}\sum_j \hat v_j(r)\hat v_j(r)^H` of the
    kernels ``(J, N, k_y, k_x)`` on a centred grid, as ``(H W, N, N)`` complex64."""
    _, coils, ky, kx = kernels.shape
    height, width = shape
    small = (2 * ky - 1, 2 * kx - 1)  # every lag d without wrap-around
    spectra = torch.fft.fft2(kernels, s=small)
    lags = torch.fft.fftshift(torch.fft.ifft2(torch.einsum("jcyx,jdyx->cdyx", spectra, spectra.conj())), dim=(-2, -1))
    padded = torch.zeros(coils, coils, height, width, dtype=torch.complex64)
    top, left = height // 2 - (ky - 1), width // 2 - (kx - 1)
    padded[..., top:top + small[0], left:left + small[1]] = lags.to(torch.complex64)
    gram = MRIMixin.ifft(padded) * (math.sqrt(height * width) / (ky * kx))
    return gram.permute(2, 3, 0, 1).reshape(height * width, coils, coils)


def mri_physics(mask, *, coil_maps: Tensor | None = None, sigma: float | None = None, image_shape=None):
    r"""The k-space physics for a mask and (optionally) coil maps.

    Parameters
    ----------
    mask : torch.Tensor
        Sampling mask, anything :func:`as_mask` accepts; its ``(H, W)`` is the image size
        when ``coil_maps`` is not given.
    coil_maps : torch.Tensor, optional
        ``(N, H, W)`` complex sensitivities: a :class:`deepinv.physics.MultiCoilMRI`
        (``N`` may be 1). Without them, single-coil :class:`deepinv.physics.MRI`.
    sigma : float, optional
        Noise standard deviation per real/imaginary part of each sampled k-space value;
        sets ``physics.noise_model`` (Gaussian, on sampled points only) and
        ``physics.data_term`` (:class:`reddiff.likelihood.GaussianLikelihood`).
    image_shape : (int, int), optional
        The image grid ``(h, w)`` when it is a centred part of the k-space grid ``(H, W)``
        (fastMRI's recon matrix of a readout-oversampled file, ``H = 2 h``): a
        :class:`CentredGrid` around the k-space physics. Default: the k-space grid.

    Returns
    -------
    deepinv.physics.MRI, deepinv.physics.MultiCoilMRI or CentredGrid

    Notes
    -----
    :math:`y = M F x` (single coil) or :math:`y_c = M F (S_c x)`, :math:`F` the centred
    orthonormal 2-D DFT, :math:`M` the mask; with ``image_shape``,
    :math:`y_c = M F (S_c P x)`, :math:`P` the centred zero padding to the k-space grid.
    All are exactly linear with exact adjoints.

    Examples
    --------
    >>> physics = mri_physics(torch.ones(8, 8), coil_maps=birdcage_maps(3, (8, 8)), sigma=0.01)
    >>> physics.A(torch.zeros(1, 2, 8, 8)).shape
    torch.Size([1, 2, 3, 8, 8])
    """
    if coil_maps is not None:
        if not isinstance(coil_maps, Tensor) or not coil_maps.is_complex() or coil_maps.ndim not in (2, 3):
            raise InputError("expected a complex tensor of shape (coils, H, W)", field="coil_maps")
        check_finite(coil_maps, "coil_maps")
        coil_maps = coil_maps if coil_maps.ndim == 3 else coil_maps[None]
        shape = tuple(coil_maps.shape[-2:])
        mask = as_mask(mask, shape)
        physics = dinv.physics.MultiCoilMRI(mask=mask, coil_maps=coil_maps.to(torch.complex64), img_size=shape)
    else:
        mask = torch.as_tensor(mask)
        if mask.ndim < 2:
            raise InputError(f"has shape {tuple(mask.shape)}; without coil_maps the mask must be (H, W)",
                             field="mask")
        mask = as_mask(mask, tuple(mask.shape[-2:]))
        physics = dinv.physics.MRI(mask=mask, img_size=tuple(mask.shape))
    grid = tuple(int(n) for n in mask.shape[-2:])
    if image_shape is not None and _image_shape(image_shape, grid) != grid:
        physics = CentredGrid(physics, _image_shape(image_shape, grid), grid)
    if sigma is not None:
        if not (sigma > 0 and math.isfinite(sigma)):
            raise InputError(f"must be positive and finite, got {sigma!r}", field="sigma")
        physics.noise_model = dinv.physics.GaussianNoise(sigma=float(sigma))
        physics.data_term = GaussianLikelihood(float(sigma))
    return physics


def _image_shape(image_shape, grid: tuple[int, int]) -> tuple[int, int]:
    try:
        shape = tuple(int(n) for n in image_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 2 or not all(0 < n <= g for n, g in zip(shape, grid)):
        raise InputError(f"expected (h, w) within the k-space grid {grid}, got {image_shape!r}",
                         field="image_shape")
    return shape


class CentredGrid(dinv.physics.LinearPhysics):
    r"""k-space physics of an image on a centred part of the k-space grid.

    ``A = physics.A * P``: :math:`P` zero-pads an ``(h, w)`` image about the centre of the
    ``(H, W)`` k-space grid (rows ``(H - h) // 2`` onwards, as fastMRI's ``center_crop``),
    and the adjoint crops it back: :math:`A^H = P^T A_{grid}^H`, so the zero-filled image
    is fastMRI's centre crop of the coil-combined image.

    Parameters
    ----------
    physics : deepinv.physics.LinearPhysics
        The k-space physics on the full grid (:class:`deepinv.physics.MRI` or
        :class:`deepinv.physics.MultiCoilMRI`); its ``mask`` is this physics' mask.
    image_shape : (int, int)
        ``(h, w)``, at most the grid's size along each axis.
    grid_shape : (int, int)
        ``(H, W)``, the k-space grid.

    Notes
    -----
    For readout oversampling (``h < H``, whole columns sampled) this is exact, not an
    approximation: the readout is fully sampled, so image rows decouple and rows outside
    the crop carry no information about the rows inside. Cropping the phase-encode axis
    (``w < W``) assumes no signal outside the crop, as fastMRI's evaluation does.

    Examples
    --------
    >>> inner = mri_physics(torch.ones(16, 8), coil_maps=birdcage_maps(2, (16, 8)))
    >>> physics = CentredGrid(inner, (8, 8), (16, 8))
    >>> physics.A(torch.ones(1, 2, 8, 8)).shape, physics.A_adjoint(physics.A(torch.ones(1, 2, 8, 8))).shape
    (torch.Size([1, 2, 2, 16, 8]), torch.Size([1, 2, 8, 8]))
    """

    def __init__(self, physics, image_shape, grid_shape):
        super().__init__(img_size=tuple(image_shape))
        self.grid = physics
        self.image_shape = _image_shape(image_shape, tuple(grid_shape))
        self.grid_shape = tuple(int(n) for n in grid_shape)
        self.offset = tuple((g - n) // 2 for g, n in zip(self.grid_shape, self.image_shape))

    @property
    def mask(self) -> Tensor:
        """The k-space grid's sampling mask."""
        return self.grid.mask

    def pad(self, x: Tensor) -> Tensor:
        """``(..., h, w)`` -> ``(..., H, W)``, zero outside the centred crop."""
        (top, left), (h, w) = self.offset, self.image_shape
        if tuple(x.shape[-2:]) != self.image_shape:
            raise InputError(f"has shape {tuple(x.shape)}; expected (..., {h}, {w})", field="image")
        out = x.new_zeros((*x.shape[:-2], *self.grid_shape))
        out[..., top:top + h, left:left + w] = x
        return out

    def crop(self, x: Tensor) -> Tensor:
        """``(..., H, W)`` -> the centred ``(..., h, w)`` (fastMRI's ``center_crop``)."""
        (top, left), (h, w) = self.offset, self.image_shape
        return x[..., top:top + h, left:left + w]

    def A(self, x: Tensor, **kwargs) -> Tensor:
        return self.grid.A(self.pad(x), **kwargs)

    def A_adjoint(self, y: Tensor, **kwargs) -> Tensor:
        return self.crop(self.grid.A_adjoint(y, **kwargs))

    @property
    def readout_oversampled(self) -> bool:
        """Whether the grid has more rows (the readout) than the image."""
        return self.image_shape[0] < self.grid_shape[0]

    def without_readout_oversampling(self, y: Tensor):
        r"""The measurement and physics on the image's rows, as scanners remove readout oversampling.

        Along the fully sampled readout the k-space is transformed back, its centred ``h``
        rows kept and transformed again,

        .. math:: y' = F_h\, C\, F_H^{-1} y \quad\text{(along the rows, each sampled column)},

        and the coil maps and mask are cropped alike: :math:`y'_c = M' F (C S_c\, x) + n'`, with
        the noise still white of the same :math:`\sigma` (orthonormal transforms, a crop). The
        rows dropped hold only noise and whatever lies outside the image's field of view, which
        the model cannot explain anyway: their misfit would otherwise count in the data term's
        deviance (and so in ``lam="auto"``), and they double the transform's cost.

        Parameters
        ----------
        y : torch.Tensor
            k-space on this physics' grid, ``(B, 2, [coils,] H, W)``.

        Returns
        -------
        y : torch.Tensor
            ``(B, 2, [coils,] h, W)``.
        physics
            The k-space physics on ``(h, W)`` (a :class:`CentredGrid` when ``w < W``), with
            this one's noise model and data term.

        Examples
        --------
        >>> maps = birdcage_maps(2, (16, 8), field_of_view=(8, 8))
        >>> physics = mri_physics(torch.ones(16, 8), coil_maps=maps, sigma=0.1, image_shape=(8, 8))
        >>> x = torch.rand(1, 2, 8, 8)
        >>> y, cropped = physics.without_readout_oversampling(physics.A(x))
        >>> y.shape, bool(torch.allclose(y, cropped.A(x), atol=1e-5)), cropped.data_term.sigma
        (torch.Size([1, 2, 2, 8, 8]), True, 0.1)
        """
        (top, _), (rows, _) = self.offset, self.image_shape
        if tuple(y.shape[-2:]) != self.grid_shape:
            raise InputError(f"has shape {tuple(y.shape)}; expected (..., {self.grid_shape[0]}, "
                             f"{self.grid_shape[1]})", field="kspace")
        maps = getattr(self.grid, "coil_maps", None)
        sigma = getattr(getattr(self, "data_term", None), "sigma", None)
        physics = mri_physics(self.mask[..., top:top + rows, :],
                              coil_maps=None if maps is None else maps.reshape(-1, *self.grid_shape)[:, top:top + rows],
                              sigma=sigma, image_shape=self.image_shape)
        return remove_readout_oversampling(y, rows), physics

    def extra_repr(self) -> str:
        return (f"{type(self.grid).__name__} * CentrePad({self.image_shape[0]}x{self.image_shape[1]} -> "
                f"{self.grid_shape[0]}x{self.grid_shape[1]})")


def _complex_image(image: Tensor) -> Tensor:
    image = check_image(image, "image", channels=(1, 2))
    if image.shape[0] != 1:
        raise InputError(f"has batch size {image.shape[0]}; expected one image (1, C, H, W): simulate "
                         "images one at a time", field="image")
    if image.shape[1] == 1:
        image = torch.cat([image, torch.zeros_like(image)], dim=1)
    return image


def simulate(image: Tensor, *, acceleration: float = 4.0, center_fraction: float = 0.08, mask="random",
             coils: int = 1, sigma: float = 0.01, seed: int | None = None,
             readout_oversampling: int = 1) -> Measurement:
    r"""Simulate undersampled, noisy (multi-coil) k-space from a clean image.

    Parameters
    ----------
    image : torch.Tensor
        ``(1, 2, H, W)`` complex image (real, imaginary) or ``(1, 1, H, W)`` magnitude
        (taken with zero phase), scaled so the maximum magnitude is about 1.
    acceleration : float
        Undersampling factor for a named mask (``1``: fully sampled).
    center_fraction : float
        Fully sampled central fraction for a named mask.
    mask : str or array-like or None
        A name in :data:`MASKS` (drawn with the seed), ``None`` for ``"random"``, or a
        mask as data (:func:`as_mask`), used as is.
    coils : int
        ``1``: single-coil :class:`deepinv.physics.MRI`; more: multi-coil with
        :func:`birdcage_maps`.
    sigma : float
        Noise standard deviation per real/imaginary part of each sampled k-space
        value (equal to the image-domain noise, FFT being orthonormal).
    seed : int, optional
        Seeds the mask draw then the noise.
    readout_oversampling : int
        ``r``: the k-space grid has ``r H`` rows (the readout), the image zero-padded about
        its centre, as scanners acquire (fastMRI's brain and knee files: ``r = 2``). The
        physics is then a :class:`CentredGrid`; the coil maps keep the image's geometry
        (:func:`birdcage_maps` with ``field_of_view``). With the simulation's own maps this
        changes nothing the image can show; estimated maps (ESPIRiT) fit such data far better,
        since the object no longer reaches the readout edges of the field of view.

    Returns
    -------
    Measurement
        ``y``: k-space ``(1, 2, rH, W)`` or ``(1, 2, coils, rH, W)``, zero where not sampled;
        ``physics``: :func:`mri_physics` with ``data_term`` Gaussian(``sigma``);
        ``x_true``: ``(1, 2, H, W)``; ``info``: ``mask`` ``(rH, W)``, ``coil_maps``
        ``(coils, rH, W)`` complex (multi-coil only), ``acceleration`` (nominal),
        ``sampled_fraction``, ``center_fraction``, ``sigma``, ``seed``, ``readout_oversampling``.

    Notes
    -----
    :math:`y_c = M\,(F(S_c P x) + n_c)`, :math:`n_c \sim \mathcal N(0, \sigma^2)` independently
    for real and imaginary parts, :math:`P` the zero padding to the k-space grid (the identity
    without oversampling).

    Examples
    --------
    >>> x = torch.rand(1, 1, 16, 16)
    >>> m = simulate(x, acceleration=2, center_fraction=0.25, coils=4, seed=0)
    >>> m.y.shape, m.x_true.shape, m.info["mask"].shape
    (torch.Size([1, 2, 4, 16, 16]), torch.Size([1, 2, 16, 16]), torch.Size([16, 16]))
    """
    x = _complex_image(image)
    image_shape = tuple(x.shape[-2:])
    if not isinstance(coils, int) or isinstance(coils, bool) or coils < 1:
        raise InputError(f"must be a positive integer, got {coils!r}", field="coils")
    if not isinstance(readout_oversampling, int) or isinstance(readout_oversampling, bool) \
            or readout_oversampling < 1:
        raise InputError(f"must be a positive integer, got {readout_oversampling!r}", field="readout_oversampling")
    shape = (readout_oversampling * image_shape[0], image_shape[1])
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise InputError(f"must be finite and >= 0, got {sigma!r}", field="sigma")
    generator = make_generator(seed)
    if mask is None or isinstance(mask, str):
        mask = make_mask(mask or "random", shape, acceleration=acceleration, center_fraction=center_fraction,
                         generator=generator)
    else:
        mask = as_mask(mask, shape)
    maps = birdcage_maps(coils, shape, field_of_view=image_shape) if coils > 1 else None
    physics = mri_physics(mask, coil_maps=maps, sigma=sigma if sigma > 0 else None, image_shape=image_shape)
    clean = physics.A(x)
    noise = sigma * torch.randn(clean.shape, generator=generator)
    y = clean + noise * mask
    info = {"mask": mask, "acceleration": float(acceleration), "sampled_fraction": float(mask.mean()),
            "center_fraction": float(center_fraction), "sigma": float(sigma), "seed": seed,
            "readout_oversampling": readout_oversampling}
    if maps is not None:
        info["coil_maps"] = maps
    return Measurement(y=y, physics=physics, x_true=x, info=info)


def zero_filled(y: Tensor, physics) -> Tensor:
    r"""The zero-filled reconstruction :math:`A^H y` (coil-combined with the maps for multi-coil).

    This is the naive inverse: unsampled k-space is taken as zero. With maps
    normalised to :math:`\sum_c |S_c|^2 = 1` it is the optimal coil combination of
    the zero-filled coil images.

    Examples
    --------
    >>> m = simulate(torch.rand(1, 1, 8, 8), acceleration=1, sigma=0.0, seed=0)
    >>> bool(torch.allclose(zero_filled(m.y, m.physics), m.x_true, atol=1e-5))
    True
    """
    check_finite(y, "y")
    return physics.A_adjoint(y)


def sense_cg(y: Tensor, physics, *, iterations: int = 30, damping: float = 0.0) -> Tensor:
    r"""SENSE reconstruction by conjugate gradient (Pruessmann et al., MRM 2001).

    Solves :math:`\min_x \sum_c \lVert M F S_c x - y_c\rVert^2 + \delta \lVert x\rVert^2`
    with :func:`reddiff.operators.base.least_squares_cg`; ``iterations`` (early
    stopping) and ``damping`` :math:`\delta` control noise amplification.

    Examples
    --------
    >>> m = simulate(torch.rand(1, 1, 16, 16), acceleration=2, center_fraction=0.25, mask="equispaced",
    ...              coils=4, sigma=0.0, seed=0)
    >>> error = lambda x: float((x - m.x_true).norm() / m.x_true.norm())
    >>> error(sense_cg(m.y, m.physics, iterations=50)) < 0.5 * error(zero_filled(m.y, m.physics))
    True
    """
    return least_squares_cg(y, physics, iterations=iterations, damping=damping)
