"""Generated training images: CT ellipse phantoms (HU) and synthetic MR contrasts.

Training data for the priors alongside the real training samples (see
:mod:`reddiff.datasets.samples`).
"""

from __future__ import annotations

import numpy as np

from reddiff.errors import InputError

AIR_HU = -1000.0
BONE_HU = (700.0, 1500.0)
SOFT_TISSUE_HU = (-100.0, 100.0)
BRAIN_HU = (20.0, 45.0)
#: Interior range of generic ellipse phantoms: any contrast from lung to dense bone.
WIDE_HU = (-950.0, 1200.0)
LUNG_HU, FAT_HU, MUSCLE_HU, ORGAN_HU = (-900.0, -750.0), (-120.0, -60.0), (30.0, 60.0), (40.0, 75.0)
CONTRAST_HU, GAS_HU, SPINE_HU = (150.0, 350.0), (-1000.0, -850.0), (250.0, 1000.0)


def ellipse_phantom(shape=(64, 64), *, n_ellipses: int = 8, brain_hu=BRAIN_HU, inner_hu=SOFT_TISSUE_HU,
                    supersample: int = 4, seed=None) -> np.ndarray:
    r"""A random head-like phantom: skull ring, brain, and soft-tissue ellipses, in HU.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` in pixels, each at least 8.
    n_ellipses : int
        Number of random inner ellipses (lesions, ventricles, ...), at least 0.
    brain_hu, inner_hu : (float, float)
        HU ranges of the interior and of the inner ellipses (default: a head's brain
        and soft tissue; :data:`WIDE_HU` for generic phantoms of any contrast).
    supersample : int
        Sub-pixels per pixel side: each pixel is the mean of ``supersample**2`` point
        samples over its area, so edge pixels hold the partial-volume mixture a scanner
        records (1: point samples at the pixel centres, hard aliased edges).
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
    (``brain_hu``, default 20-45 HU), then ``n_ellipses`` of ``inner_hu`` (default -100 to
    100 HU) inside the brain. Pixel :math:`(i, j)` is the mean over its area,

    .. math:: f_{ij} = \frac{1}{S^2} \sum_{k,l=0}^{S-1} f\big(p_{ij} + \tfrac{\Delta}{S}(k + \tfrac12 - \tfrac S2,\;
              l + \tfrac12 - \tfrac S2)\big),

    with :math:`S` = ``supersample`` and :math:`\Delta` the pixel pitch: without it a
    prior trained on the phantoms learns edges no real image has.

    Examples
    --------
    >>> image = ellipse_phantom((32, 32), seed=0)
    >>> image.shape, float(image[0, 0])
    ((32, 32), -1000.0)
    """
    h, w = _shape(shape)
    if int(n_ellipses) != n_ellipses or n_ellipses < 0:
        raise InputError(f"n_ellipses must be a non-negative integer, got {n_ellipses!r}", field="n_ellipses")
    if int(supersample) != supersample or supersample < 1:
        raise InputError(f"supersample must be a positive integer, got {supersample!r}", field="supersample")
    rng = np.random.default_rng(seed)
    n = int(supersample)
    y, x = np.meshgrid(_subpixel_centres(h, n), _subpixel_centres(w, n), indexing="ij")
    image = np.full(y.shape, AIR_HU)
    a, b, angle = rng.uniform(0.7, 0.9), rng.uniform(0.8, 0.95), rng.uniform(-0.3, 0.3)
    skull = rng.uniform(0.06, 0.1)
    image[_inside(y, x, (0, 0), (b, a), angle)] = rng.uniform(*BONE_HU)
    image[_inside(y, x, (0, 0), (b - skull, a - skull), angle)] = rng.uniform(*brain_hu)
    for _ in range(int(n_ellipses)):
        centre = rng.uniform(-0.5, 0.5, size=2) * (b - skull, a - skull)
        axes = rng.uniform(0.04, 0.3, size=2)
        image[_inside(y, x, centre, axes, rng.uniform(0, np.pi))] = rng.uniform(*inner_hu)
    return image.reshape(h, n, w, n).mean(axis=(1, 3)).astype(np.float32)


def _subpixel_centres(size: int, n: int) -> np.ndarray:
    """The ``size * n`` sub-pixel centres of ``size`` pixels centred on ``linspace(-1, 1, size)``."""
    pitch = 2.0 / (size - 1)
    offsets = ((np.arange(n) + 0.5) / n - 0.5) * pitch
    return (np.linspace(-1, 1, size)[:, None] + offsets[None, :]).ravel()


def body_phantom(shape=(128, 128), *, seed=None) -> np.ndarray:
    r"""A random thorax or abdomen cross-section in HU: fat, muscle, organs, lungs or gas, bone.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` in pixels, each at least 8.
    seed : int or numpy.random.Generator, optional
        Source of randomness (``None``: fresh entropy).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32 in HU, air (-1000) outside the body.

    Notes
    -----
    Ellipses (as in :func:`ellipse_phantom`, later ones painting over earlier ones) in
    coordinates scaled to :math:`[-1, 1]`: a body wider than tall with a subcutaneous fat
    layer (-120 to -60 HU) over muscle (30-60 HU); ribs at the body's rim; a vertebra
    (250-1000 HU, a denser cortex) behind an aorta (soft tissue, or 150-350 HU with contrast).
    Half the phantoms are thoraxes (two lungs of -900 to -750 HU with vessels, a heart), half
    abdomens (a liver, kidneys, bowel with gas pockets, fat between). The tissues get
    5 HU of smooth texture and the image a 0.5-1 pixel blur (a CT kernel's resolution).

    Examples
    --------
    >>> image = body_phantom((64, 64), seed=0)
    >>> image.shape, float(image[0, 0]), bool(image.max() > 200)
    ((64, 64), -1000.0, True)
    """
    from scipy.ndimage import gaussian_filter

    h, w = _shape(shape)
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    image = np.full((h, w), AIR_HU)

    def paint(centre, axes, value, angle=0.0):
        image[_inside(y, x, centre, axes, angle)] = value

    tall, wide, tilt = rng.uniform(0.55, 0.75), rng.uniform(0.8, 0.95), rng.uniform(-0.1, 0.1)
    fat = rng.uniform(0.03, 0.1)
    paint((0, 0), (tall, wide), rng.uniform(*FAT_HU), tilt)
    paint((0, 0), (tall - fat, wide - fat), rng.uniform(*MUSCLE_HU), tilt)
    inner_tall, inner_wide = tall - fat - 0.05, wide - fat - 0.05
    for angle in rng.uniform(0, 2 * np.pi, size=rng.integers(4, 11)):
        rim = (0.93 * inner_tall * np.sin(angle), 0.93 * inner_wide * np.cos(angle))
        paint(rim, rng.uniform(0.015, 0.035, size=2), rng.uniform(*BONE_HU), angle)
    if rng.random() < 0.5:
        _thorax(paint, rng, inner_tall, inner_wide)
    else:
        _abdomen(paint, rng, inner_tall, inner_wide)
    back = 0.6 * inner_tall
    paint((back, 0), (0.13 * inner_tall + 0.02, 0.12), rng.uniform(*BONE_HU))
    paint((back, 0), (0.13 * inner_tall, 0.1), rng.uniform(*SPINE_HU))
    aorta_hu = rng.uniform(*CONTRAST_HU) if rng.random() < 0.5 else rng.uniform(*MUSCLE_HU)
    paint((back - 0.22 * inner_tall - 0.03, rng.uniform(-0.1, 0.1)), (0.06, 0.06), aorta_hu)
    texture = gaussian_filter(rng.standard_normal((h, w)), 1.5)
    image = np.where(image > AIR_HU, image + texture * 5.0 / max(float(texture.std()), 1e-6), image)
    image = gaussian_filter(image, rng.uniform(0.5, 1.0))
    return np.clip(image, AIR_HU, None).astype(np.float32)


def _thorax(paint, rng, tall, wide) -> None:
    """Two lungs with vessels, and a heart between them (front is -y)."""
    lung_hu = rng.uniform(*LUNG_HU)
    for side in (-1, 1):
        centre = (rng.uniform(-0.15, 0.05) * tall, side * rng.uniform(0.42, 0.5) * wide)
        axes = (rng.uniform(0.6, 0.8) * tall, rng.uniform(0.3, 0.42) * wide)
        paint(centre, axes, lung_hu + rng.uniform(-30, 30), side * rng.uniform(0, 0.3))
        for _ in range(rng.integers(3, 12)):
            spot = (centre[0] + rng.uniform(-0.6, 0.6) * axes[0], centre[1] + rng.uniform(-0.6, 0.6) * axes[1])
            paint(spot, rng.uniform(0.01, 0.03, size=2), rng.uniform(-50, 60))
    heart = (rng.uniform(-0.35, -0.1) * tall, rng.uniform(-0.15, 0.1) * wide)
    paint(heart, (rng.uniform(0.3, 0.45) * tall, rng.uniform(0.2, 0.3) * wide), rng.uniform(*ORGAN_HU),
          rng.uniform(-0.5, 0.5))


def _abdomen(paint, rng, tall, wide) -> None:
    """A liver, kidneys and bowel with gas pockets in fat."""
    for _ in range(rng.integers(3, 8)):
        centre = (rng.uniform(-0.5, 0.2) * tall, rng.uniform(-0.5, 0.5) * wide)
        paint(centre, rng.uniform(0.05, 0.15, size=2), rng.uniform(*FAT_HU), rng.uniform(0, np.pi))
    liver = (rng.uniform(-0.2, 0.1) * tall, -rng.uniform(0.3, 0.45) * wide)
    paint(liver, (rng.uniform(0.45, 0.65) * tall, rng.uniform(0.3, 0.45) * wide), rng.uniform(*ORGAN_HU),
          rng.uniform(-0.4, 0.4))
    kidney_hu = rng.uniform(*CONTRAST_HU) if rng.random() < 0.3 else rng.uniform(*MUSCLE_HU)
    for side in (-1, 1):
        paint((0.35 * tall, side * rng.uniform(0.3, 0.4) * wide), (0.15 * tall, 0.08 * wide),
              kidney_hu, side * rng.uniform(0.2, 0.6))
    for _ in range(rng.integers(2, 9)):
        centre = (rng.uniform(-0.6, 0.2) * tall, rng.uniform(-0.1, 0.6) * wide)
        axes = rng.uniform(0.03, 0.1, size=2)
        paint(centre, axes, rng.uniform(*MUSCLE_HU), 0.0)
        paint(centre, 0.6 * axes, rng.uniform(*GAS_HU), 0.0)


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


def tissue_maps(gm: np.ndarray, wm: np.ndarray) -> dict:
    r"""Grey matter, white matter and CSF probabilities from the MNI152 tissue maps.

    Parameters
    ----------
    gm, wm : numpy.ndarray
        Grey- and white-matter probabilities in [0, 1], same shape (2-D or 3-D).

    Returns
    -------
    dict
        ``{"gm", "wm", "csf", "brain"}`` float32 arrays of the input's shape.

    Notes
    -----
    The template has no CSF map; CSF is what the filled brain mask holds beyond grey and
    white matter, :math:`p_{csf} = \mathrm{clip}(G_1 * B - p_{gm} - p_{wm}, 0, 1)`, with
    :math:`B` the hole-filled, closed mask :math:`p_{gm} + p_{wm} > 0.3` and
    :math:`G_1` a 1-pixel Gaussian.

    Examples
    --------
    >>> gm = np.zeros((16, 16)); gm[4:12, 4:12] = 1; gm[7:9, 7:9] = 0
    >>> maps = tissue_maps(gm, np.zeros_like(gm))
    >>> bool(maps["csf"][8, 8] > 0.5), bool(maps["csf"][0, 0] < 1e-3)
    (True, True)
    """
    from scipy import ndimage

    gm, wm = (np.asarray(a, dtype=np.float32) for a in (gm, wm))
    if gm.shape != wm.shape:
        raise InputError(f"gm and wm must have one shape, got {gm.shape} and {wm.shape}", field="wm")
    brain = ndimage.binary_fill_holes(ndimage.binary_closing(gm + wm > 0.3, iterations=2))
    csf = np.clip(ndimage.gaussian_filter(brain.astype(np.float32), 1.0) - gm - wm, 0, 1)
    return {"gm": gm, "wm": wm, "csf": csf.astype(np.float32), "brain": brain.astype(np.float32)}


def synthetic_mr_contrast(maps: dict, *, seed=None) -> np.ndarray:
    r"""A random MR head contrast of one slice: tissues, skull and scalp, bias field, blur (SynthSeg-like).

    Parameters
    ----------
    maps : dict
        :func:`tissue_maps` of one ``(H, W)`` slice.
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32, scaled to maximum 1 (all zero where the slice holds no brain).

    Notes
    -----
    With :math:`d` the distance (pixels) outside the brain mask, a skull shell
    :math:`0 < d \le s` and a scalp shell :math:`s < d \le s + c`
    (:math:`s \sim U[2, 7]`, :math:`c \sim U[2, 9]`),

    .. math:: x = G_\sigma * \Big[ e^{b(r)} \big( a_{gm} p_{gm} + a_{wm} p_{wm} + a_{csf} p_{csf}
              + a_{skull} 1_{skull} + a_{scalp} 1_{scalp} \big) \Big]

    with brain intensities :math:`a \sim U[0.05, 1]` (so T1-, T2- and PD-like orderings all
    occur), :math:`a_{skull} \sim U[0, 0.15]`, :math:`a_{scalp} \sim U[0.2, 1]`, a smooth bias
    field :math:`b(r) = \sum_k c_k \cos(\omega_k^\top r + \phi_k)` (3 terms,
    :math:`|c_k| \le 0.15`, wavelengths above the field of view) and
    :math:`\sigma \sim U[0.3, 1]` pixels.

    Examples
    --------
    >>> gm = np.zeros((32, 32)); gm[8:24, 8:24] = 1
    >>> image = synthetic_mr_contrast(tissue_maps(gm, np.zeros_like(gm)), seed=0)
    >>> image.shape, float(image.max())
    ((32, 32), 1.0)
    """
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    rng = np.random.default_rng(seed)
    a_gm, a_wm, a_csf = rng.uniform(0.05, 1.0, size=3)
    skull, scalp = rng.uniform(2, 7), rng.uniform(2, 9)
    distance = distance_transform_edt(maps["brain"] < 0.5)
    image = (a_gm * maps["gm"] + a_wm * maps["wm"] + a_csf * maps["csf"]
             + rng.uniform(0, 0.15) * ((distance > 0) & (distance <= skull))
             + rng.uniform(0.2, 1.0) * ((distance > skull) & (distance <= skull + scalp)))
    h, w = image.shape
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    bias = sum(rng.uniform(-0.15, 0.15) * np.cos(2 * np.pi * (rng.uniform(-0.5, 0.5) * y + rng.uniform(-0.5, 0.5) * x)
                                                 + rng.uniform(0, 2 * np.pi)) for _ in range(3))
    image = gaussian_filter(image * np.exp(bias), rng.uniform(0.3, 1.0))
    return (image / max(float(image.max()), 1e-12)).astype(np.float32)


def pseudo_ct_head(maps: dict, *, seed=None) -> np.ndarray:
    r"""A pseudo-CT head slice in HU from the tissue maps of one slice: brain, skull and scalp.

    Parameters
    ----------
    maps : dict
        :func:`tissue_maps` of one ``(H, W)`` slice.
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32 in HU, air (-1000) outside the head (all air where the slice
        holds no brain).

    Notes
    -----
    Grey matter :math:`U[30, 45]` HU, white matter :math:`U[20, 32]`, CSF :math:`U[0, 15]`;
    outside the brain, with :math:`d` the distance in pixels, a skull shell
    :math:`d \le s` (:math:`s \sim U[3, 8]`) of :math:`U[700, 1500]` HU (denser in its
    middle) and a scalp shell of :math:`U[2, 6]` pixels at :math:`U[-80, 40]` HU, then air.
    Tissue values get 3 HU of smooth texture and the image a 0.5-1 pixel blur (a CT
    kernel's resolution).

    Examples
    --------
    >>> gm = np.zeros((48, 48)); gm[12:36, 12:36] = 1
    >>> hu = pseudo_ct_head(tissue_maps(gm, np.zeros_like(gm)), seed=0)
    >>> float(hu.min()) == -1000.0, bool(hu.max() > 600)
    (True, True)
    """
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    rng = np.random.default_rng(seed)
    distance = distance_transform_edt(maps["brain"] < 0.5)
    skull, scalp = rng.uniform(3, 8), rng.uniform(2, 6)
    csf_hu = rng.uniform(0, 15)
    brain = (rng.uniform(30, 45) * maps["gm"] + rng.uniform(20, 32) * maps["wm"] + csf_hu * maps["csf"]
             + csf_hu * np.clip(1 - maps["gm"] - maps["wm"] - maps["csf"], 0, 1))
    texture = gaussian_filter(rng.standard_normal(distance.shape), 1.5)
    texture *= 3.0 / max(float(texture.std()), 1e-6)
    bone = rng.uniform(700, 1500) * (0.7 + 0.3 * np.sin(np.pi * np.clip(distance / skull, 0, 1)))
    image = np.where(distance == 0, brain + texture, AIR_HU)
    image = np.where((distance > 0) & (distance <= skull), bone, image)
    image = np.where((distance > skull) & (distance <= skull + scalp), rng.uniform(-80, 40) + texture, image)
    image = gaussian_filter(image, rng.uniform(0.5, 1.0))
    return np.clip(image, AIR_HU, None).astype(np.float32)
