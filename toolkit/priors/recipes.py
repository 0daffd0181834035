r"""Training recipes of the shipped priors ``ct``, ``mri`` and ``astro``.

A recipe builds the training images (physical units) from the offline training
samples of :mod:`reddiff.datasets.samples` only (held-out samples never enter),
fixes the channels and value transform, and names held-in evaluation images that
were not trained on. ``reddiff train-prior --recipe NAME --out DIR`` rebuilds a
default exactly (the command is in each model card).

=======  ========  ==============================================================
recipe   channels  data (physical units) and value transform
=======  ========  ==============================================================
ct       1         two head CT slices (pydicom) at full and half resolution + 192
                   ellipse phantoms 128x128 and 16 at 256x256 + pseudo-CT heads from the
                   MNI152 tissue maps (:func:`reddiff.datasets.pseudo_ct_head`, 33 axial
                   slices x 2) + 96 body phantoms (thorax, abdomen) and 64 ellipse
                   phantoms of any contrast, 128x128; HU clipped to [-1000, 3000] then
                   :math:`\mu = \mu_w (1 + HU/1000)` in 1/mm
                   (:func:`reddiff.operators.ct.hu_to_mu`); network units
                   :math:`(\mu - \mu_w)/\mu_w = HU/1000`
mri      2         MNI152 T1 slices in all three orientations (axial 15-150 every 2nd,
                   away from the evaluation slices 60 and 100; coronal and sagittal every
                   3rd) and 2 synthetic head contrasts per slice from the tissue maps
                   (:func:`reddiff.datasets.synthetic_mr_contrast`: random tissue intensities,
                   skull and scalp shells, bias field, blur), at 1 and 2 mm, scaled
                   to max 1, with a smooth random phase per patch; identity transform
astro    1         hubble_deep_field luma at 10 counts per grey level (sky about
                   140 counts), smoothed 1 px and binned 2x2 + smoothed 0.5 px
                   (the JPEG's noise is not sky), + 32 simulated 128x128 fields
                   (Sersic galaxies, Moffat stars, sky 100-150 counts) + 128 varied
                   fields (diffuse emission, sky 0-300 counts, 3-400 stars);
                   :math:`z = 0.43\,\operatorname{asinh}(x / 50) - 1`
=======  ========  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from reddiff.operators.ct import MU_WATER, hu_to_mu

from ..errors import InputError
from .base import AffineTransform, AsinhTransform, ValueTransform

HU_CLIP = (-1000.0, 3000.0)
#: Prefix of the evaluation images from the held-out samples (other kinds of data than trained on).
HELD_OUT = "held out: "
#: MNI152 axial slices kept out of the mri prior's training, for its evaluation.
MRI_EVALUATION_SLICES = (60, 100)
COUNTS_PER_GREY_LEVEL = 10.0
#: Sky levels (counts) of the astro recipe's varied fields, the widest range its training saw.
VARIED_SKY_LEVELS = (0.0, 300.0)


@dataclass(frozen=True)
class Recipe:
    """How a shipped prior is trained.

    Attributes
    ----------
    name : str
    description : str
        The training data in words (goes into the model card).
    channels : int
    transform : ValueTransform
    images : callable
        ``images()`` -> list of 2-D training arrays in physical units.
    evaluation : callable
        ``evaluation()`` -> dict name -> 2-D array (physical units) for the denoising
        table: held-in images of the same kind that were not trained on, and one
        held-out sample (name prefixed with :data:`HELD_OUT`).
    settings : dict
        Default training settings (patch_size, batch_size, steps, lr, ...).
    """

    name: str
    description: str
    channels: int
    transform: ValueTransform
    images: Callable[[], list]
    evaluation: Callable[[], dict]
    settings: dict = field(default_factory=dict)


def _half(image: np.ndarray) -> np.ndarray:
    """2x2 block mean (half resolution)."""
    h, w = (s // 2 * 2 for s in image.shape)
    return image[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


#: Ellipse phantoms of the ct recipe: (size, seeds); seeds 1000-1001 are its evaluation images.
CT_PHANTOMS = ((128, range(192)), (256, range(2000, 2016)))
#: Body phantoms (thorax, abdomen) and generic ellipse phantoms of any contrast (128x128 seeds);
#: seed 3999 is an evaluation image.
CT_BODY_PHANTOMS, CT_WIDE_PHANTOMS = range(3000, 3096), range(4000, 4064)
#: MNI152 axial slices made into pseudo-CT heads, and variants per slice.
CT_PSEUDO_SLICES, CT_PSEUDO_VARIANTS = range(20, 151, 4), 2


def _ct_images() -> list:
    from reddiff.datasets import body_phantom, ellipse_phantom, pseudo_ct_head, sample_image
    from reddiff.datasets.phantoms import WIDE_HU

    slices = [hu_to_mu(np.clip(sample_image(n).array, *HU_CLIP)) for n in ("head_ct_j2k", "head_ct_693")]
    phantoms = [hu_to_mu(ellipse_phantom((size, size), seed=seed)) for size, seeds in CT_PHANTOMS for seed in seeds]
    _, maps = mni_volumes()
    heads = [hu_to_mu(pseudo_ct_head({k: v[i] for k, v in maps.items()}, seed=(i, k)))
             for i in CT_PSEUDO_SLICES for k in range(CT_PSEUDO_VARIANTS)]
    bodies = [hu_to_mu(body_phantom((128, 128), seed=seed)) for seed in CT_BODY_PHANTOMS]
    wide = [hu_to_mu(ellipse_phantom((128, 128), brain_hu=WIDE_HU, inner_hu=WIDE_HU, seed=seed))
            for seed in CT_WIDE_PHANTOMS]
    return slices + [_half(s) for s in slices] + phantoms + heads + bodies + wide


def _ct_evaluation() -> dict:
    from reddiff.datasets import body_phantom, ellipse_phantom, sample_image

    images = {f"phantom (seed {s})": hu_to_mu(ellipse_phantom((128, 128), seed=s)) for s in (1000, 1001)}
    images["body phantom (seed 3999)"] = hu_to_mu(body_phantom((128, 128), seed=3999))
    images[HELD_OUT + "ct_small"] = hu_to_mu(np.clip(sample_image("ct_small").array, *HU_CLIP))
    return images


def mni_volumes() -> tuple:
    """The MNI152 T1 (scaled to [0, 1]) and its tissue maps, ``(N, H, W)`` axial-first."""
    from reddiff.datasets import sample_image, tissue_maps

    t1, gm, wm = (sample_image(n).array / 255.0 for n in ("mni152_t1", "mni152_gm", "mni152_wm"))
    return t1.astype(np.float32), tissue_maps(gm, wm)


#: Slices per orientation (axis of the ``(axial, coronal, sagittal)`` volume, indices).
MRI_SLICES = ((0, [i for i in range(15, 151, 2) if abs(i - 60) > 2 and abs(i - 100) > 2]),
              (1, range(30, 200, 3)),
              (2, range(25, 175, 3)))
#: Synthetic contrasts drawn per slice besides the T1 itself.
MRI_CONTRASTS_PER_SLICE = 2


def _mri_images() -> list:
    """T1 slices in three orientations plus synthetic contrasts, at 1 and 2 mm, max 1."""
    from reddiff.datasets import synthetic_mr_contrast

    t1, maps = mni_volumes()
    images = []
    for axis, indices in MRI_SLICES:
        for index in indices:
            t1_slice = np.take(t1, index, axis=axis)
            slice_maps = {k: np.take(v, index, axis=axis) for k, v in maps.items()}
            images.append(t1_slice / max(float(t1_slice.max()), 1e-6))
            images += [synthetic_mr_contrast(slice_maps, seed=(axis, index, k))
                       for k in range(MRI_CONTRASTS_PER_SLICE)]
    images = [im for im in images if im.max() > 0]
    return images + [_half(im) for im in images]


def _mri_evaluation() -> dict:
    """MNI slices left out of training, centre 128x128, with a fixed smooth phase; held out: mr_small."""
    from reddiff.datasets import sample_image

    from .data import smooth_random_phase

    volume = sample_image("mni152_t1").array
    out = {}
    for index in MRI_EVALUATION_SLICES:
        magnitude = volume[index] / volume[index].max()
        magnitude = magnitude[52:180, 34:162]
        phase = smooth_random_phase(128, np.random.default_rng(index), max_gradient=0.02)
        out[f"MNI slice {index} (complex)"] = magnitude * np.exp(1j * phase)
    small = sample_image("mr_small").array
    phase = smooth_random_phase(64, np.random.default_rng(0), max_gradient=0.02)
    out[HELD_OUT + "mr_small (complex)"] = small / small.max() * np.exp(1j * phase)
    return out


def simulated_sky(size: int = 128, *, seed=None) -> np.ndarray:
    r"""A noise-free sky field in counts: Sersic galaxies and Moffat stars on a flat sky.

    Parameters
    ----------
    size : int
        Side in pixels.
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` float32 counts.

    Notes
    -----
    Sky :math:`U[100, 150]`; 3-10 galaxies :math:`I(r) = I_e \exp\{-b_n[(r/r_e)^{1/n} - 1]\}`
    (astropy ``Sersic2D``, :math:`n \in [0.5, 4]`, :math:`r_e \in [2, 12]` px) and 5-30 stars
    (``Moffat2D``, :math:`\gamma \in [1, 2.5]` px, :math:`\alpha = 3`), peaks log-uniform
    in 50-3000 counts.

    Examples
    --------
    >>> image = simulated_sky(32, seed=0)
    >>> image.shape, bool(image.min() >= 100)
    ((32, 32), True)
    """
    rng = np.random.default_rng(seed)
    image = np.full((size, size), rng.uniform(100, 150))
    _add_galaxies(image, rng, rng.integers(3, 11))
    _add_stars(image, rng, rng.integers(5, 31), peaks=(50, 3000), gamma=(1, 2.5))
    return image.astype(np.float32)


def _add_galaxies(image: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Adds ``count`` Sersic galaxies (:func:`simulated_sky`'s ranges, each capped at 3000 counts)."""
    from astropy.modeling.models import Sersic2D

    size = image.shape[0]
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    for _ in range(count):
        galaxy = Sersic2D(amplitude=np.exp(rng.uniform(np.log(20), np.log(500))),
                          r_eff=rng.uniform(2, 12), n=rng.uniform(0.5, 4),
                          x_0=rng.uniform(0, size), y_0=rng.uniform(0, size),
                          ellip=rng.uniform(0, 0.7), theta=rng.uniform(0, np.pi))
        image += np.minimum(galaxy(x, y), 3000)


def _add_stars(image: np.ndarray, rng: np.random.Generator, count: int, *, peaks: tuple, gamma: tuple,
               alpha: tuple | None = None) -> None:
    """Adds ``count`` Moffat stars, peaks log-uniform in ``peaks``, :math:`\gamma` and
    :math:`\alpha` uniform in their ranges (:math:`\alpha = 3` when ``alpha`` is None)."""
    from astropy.modeling.models import Moffat2D

    size = image.shape[0]
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    for _ in range(count):
        star = Moffat2D(amplitude=np.exp(rng.uniform(*np.log(peaks))),
                        x_0=rng.uniform(0, size), y_0=rng.uniform(0, size), gamma=rng.uniform(*gamma),
                        alpha=3.0 if alpha is None else rng.uniform(*alpha))
        image += star(x, y)


def varied_sky(size: int = 128, *, seed=None) -> np.ndarray:
    r"""A noise-free sky field in counts with the variety real fields have beyond :func:`simulated_sky`.

    Diffuse emission (nebulae, cirrus, radio lobes), sky levels from dark to bright and
    star densities from sparse to crowded, so that a prior does not learn one background.

    Parameters
    ----------
    size : int
        Side in pixels.
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` float32 counts, non-negative.

    Notes
    -----
    Sky :math:`U[0, 300]`; diffuse emission (in 2 of 3 fields)
    :math:`A\,\exp(g) / \max\exp(g)` with :math:`g` a Gaussian random field of power
    spectrum :math:`P(k) \propto k^{-\beta}`, :math:`\beta \in [2.5, 4]`, contrast
    :math:`\sigma_g \in [0.5, 2]` and :math:`A` log-uniform in 10-2000 counts; 0-6 Sersic
    galaxies as in :func:`simulated_sky`; :math:`N_\star` log-uniform in 3-400 Moffat stars
    (:math:`\gamma \in [0.8, 3]` px, :math:`\alpha \in [2.5, 4.5]`), peaks log-uniform in
    20-20000 counts.

    Examples
    --------
    >>> image = varied_sky(32, seed=0)
    >>> image.shape, bool(image.min() >= 0)
    ((32, 32), True)
    """
    rng = np.random.default_rng(seed)
    image = np.full((size, size), rng.uniform(*VARIED_SKY_LEVELS))
    if rng.random() < 2 / 3:
        image += _diffuse_emission(size, rng)
    _add_galaxies(image, rng, rng.integers(0, 7))
    _add_stars(image, rng, int(np.exp(rng.uniform(np.log(3), np.log(400)))), peaks=(20, 20000), gamma=(0.8, 3.0),
               alpha=(2.5, 4.5))
    return image.astype(np.float32)


def _diffuse_emission(size: int, rng: np.random.Generator) -> np.ndarray:
    """Log-normal diffuse emission: ``A exp(g) / max exp(g)``, ``g`` a power-law Gaussian random field."""
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    k[0, 0] = np.inf
    spectrum = k ** (-rng.uniform(2.5, 4.0) / 2)
    field = np.fft.ifft2(spectrum * np.fft.fft2(rng.standard_normal((size, size)))).real
    field *= rng.uniform(0.5, 2.0) / field.std()
    emission = np.exp(field - field.max())
    return np.exp(rng.uniform(np.log(10), np.log(2000))) * emission


def _hubble_counts() -> np.ndarray:
    from reddiff.datasets import sample_image

    return sample_image("hubble_deep_field").array * COUNTS_PER_GREY_LEVEL


def _hubble_clean(hubble: np.ndarray) -> list:
    """The JPEG's noise (std about 0.1 in network units) suppressed: Gaussian-smoothed at full
    resolution (1 px) and 2x2-binned then smoothed (0.5 px)."""
    from scipy.ndimage import gaussian_filter

    return [gaussian_filter(hubble, 1.0), gaussian_filter(_half(hubble), 0.5)]


#: Generated fields of the astro recipe: simulated_sky seeds and varied_sky seeds (1000+ are evaluation).
ASTRO_SIMULATED, ASTRO_VARIED = range(32), range(100, 228)
#: hubble_deep_field columns the astro prior trains on; the rest (872-999) are kept for evaluation and tuning.
HUBBLE_TRAINED_COLUMNS = 872


def _astro_images() -> list:
    return (_hubble_clean(_hubble_counts()[:, :HUBBLE_TRAINED_COLUMNS])
            + [simulated_sky(128, seed=s) for s in ASTRO_SIMULATED] + [varied_sky(128, seed=s) for s in ASTRO_VARIED])


def hubble_untrained_fields(rows=(0, 372, 744), size: int = 128) -> dict:
    """``size`` x ``size`` fields of hubble_deep_field's columns the astro prior never trained on
    (:data:`HUBBLE_TRAINED_COLUMNS` onwards), starting at ``rows``, in counts and smoothed as in
    training (the JPEG's noise is not sky): a real sky that is neither training data nor a held-out sample.

    Examples
    --------
    >>> fields = hubble_untrained_fields(rows=(0,))
    >>> list(fields), fields["hubble_deep_field rows 0-127, columns 872-999"].shape
    (['hubble_deep_field rows 0-127, columns 872-999'], (128, 128))
    """
    hubble = _hubble_counts()[:, HUBBLE_TRAINED_COLUMNS:HUBBLE_TRAINED_COLUMNS + size]
    return {f"hubble_deep_field rows {r}-{r + size - 1}, columns {HUBBLE_TRAINED_COLUMNS}-"
            f"{HUBBLE_TRAINED_COLUMNS + size - 1}": _hubble_clean(hubble[r:r + size])[0] for r in rows}


def _astro_evaluation() -> dict:
    """Right-most 128 columns of hubble_deep_field (not trained on, smoothed as in training), a new
    simulated field; held out: M13."""
    from reddiff.datasets import sample_image

    (hubble,) = hubble_untrained_fields(rows=(300,)).values()
    return {"hubble_deep_field columns 872-999 (smoothed 1 px)": hubble,
            "simulated field (seed 1000)": simulated_sky(128, seed=1000),
            HELD_OUT + "m13 centre, file values as counts": sample_image("m13").array[86:214, 86:214]}


RECIPES = {
    "ct": Recipe("ct", "pydicom head CT slices J2K_pixelrep_mismatch.dcm and 693_J2KI.dcm "
                 "(512x512, HU clipped to [-1000, 3000], full and half resolution), 192 random "
                 "ellipse head phantoms 128x128 with partial-volume edges (reddiff.datasets.ellipse_phantom "
                 "seeds 0-191, each pixel the mean of 4x4 point samples) and 16 "
                 "at 256x256 (seeds 2000-2015), and pseudo-CT heads from the MNI152 tissue maps "
                 "(reddiff.datasets.pseudo_ct_head, axial slices 20-150 every 4th, 2 variants each), "
                 "96 body phantoms 128x128 (reddiff.datasets.body_phantom seeds 3000-3095: thorax or "
                 "abdomen, fat, muscle, organs, lungs or bowel gas, ribs, spine, aorta) and 64 ellipse "
                 "phantoms of any contrast (ellipse_phantom with brain_hu and inner_hu -950 to 1200 HU, "
                 "seeds 4000-4063), converted to linear attenuation (1/mm)",
                 1, AffineTransform(offset=MU_WATER, scale=MU_WATER, unit="1/mm"),
                 _ct_images, _ct_evaluation),
    "mri": Recipe("mri", "nilearn MNI152 2009a T1 template in three orientations (axial slices 15-150 "
                  "every 2nd away from 60 and 100, coronal 30-199 and sagittal 25-174 every 3rd) and "
                  f"{MRI_CONTRASTS_PER_SLICE} synthetic contrasts per slice from the MNI152 grey/white-matter "
                  "maps (random tissue intensities, skull and scalp shells, bias field, blur), at 1 mm and 2 mm (2x2 means), "
                  "each scaled to max magnitude 1, as complex images with a smooth random phase drawn per patch",
                  2, ValueTransform(), _mri_images, _mri_evaluation),
    "astro": Recipe("astro", "scikit-image hubble_deep_field (luma, columns 0-871) at "
                    f"{COUNTS_PER_GREY_LEVEL:g} counts per grey level, its JPEG noise suppressed "
                    "(Gaussian 1 px at full resolution; 2x2 binned then Gaussian 0.5 px), and 32 "
                    "simulated 128x128 fields (reddiff.priors.recipes.simulated_sky seeds 0-31: "
                    "Sersic galaxies, Moffat stars, flat sky of 100-150 counts) and 128 varied ones "
                    "(reddiff.priors.recipes.varied_sky seeds 100-227: log-normal diffuse emission, "
                    "sky of 0-300 counts, 3-400 stars)",
                    1, AsinhTransform(softening=50.0, background=0.0, gain=0.43, shift=-1.0),
                    _astro_images, _astro_evaluation),
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name`` (one of :data:`RECIPES`).

    Examples
    --------
    >>> get_recipe("mri").channels
    2
    """
    if name not in RECIPES:
        raise InputError(f"unknown recipe {name!r}; expected one of {', '.join(RECIPES)}",
                         field="recipe")
    return RECIPES[name]
