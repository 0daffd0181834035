"""Real images that ship inside installed wheels, for training, tests and demos.

Nothing is downloaded: every sample is a file inside pydicom, scikit-image,
astropy, nibabel or nilearn. Each is either TRAINING data for the shipped priors
or HELD OUT (tests, demos, calibration), and the two sets never mix:

========================  ========  =====  ========  ==========================================
name                      modality  unit   role      source
========================  ========  =====  ========  ==========================================
head_ct_j2k               ct        HU     training  pydicom ``J2K_pixelrep_mismatch.dcm``
head_ct_693               ct        HU     training  pydicom ``693_J2KI.dcm``
mni152_t1                 mri       a.u.   training  nilearn MNI152 2009a T1 template (volume)
mni152_gm                 mri       prob.  training  nilearn MNI152 2009a grey-matter probability map
mni152_wm                 mri       prob.  training  nilearn MNI152 2009a white-matter probability map
hubble_deep_field         astro     a.u.   training  scikit-image ``hubble_deep_field.jpg``
ct_small                  ct        HU     held out  pydicom ``CT_small.dcm``
shepp_logan               ct        a.u.   held out  scikit-image Shepp-Logan phantom
mr_small                  mri       a.u.   held out  pydicom ``MR_small.dcm``
anatomical                mri       a.u.   held out  nibabel ``anatomical.nii`` (volume, 2 mm)
m13                       astro     a.u.   held out  astropy ``m13.fits`` (globular cluster M13)
star_field                astro     adu    held out  astropy ``sip-wcs.fits`` (CCD star field)
radio_1904_66             astro     JY/BEAM held out astropy ``1904-66_AZP.fits`` (NaN border)
========================  ========  =====  ========  ==========================================

The CT prior also trains on synthetic ellipse phantoms and the MRI prior on synthetic
contrasts made from the tissue maps (generated, so not listed).
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reddiff.errors import InputError

from .images import read_image

#: The modalities of the samples (the names of :mod:`reddiff.modalities`).
MODALITIES = ("ct", "mri", "astro")
_OLD_NAMES = {"CT": "ct", "MR": "mri", "sky": "astro"}


@dataclass(frozen=True)
class SampleSpec:
    """Where a sample lives and what it is (no pixels read)."""

    name: str
    package: str
    relative_path: str
    modality: str
    held_out: bool
    description: str


@dataclass
class SampleImage:
    """A sample's pixels and what they are.

    Attributes
    ----------
    name : str
    array : numpy.ndarray
        float32 ``(H, W)``, or ``(N, H, W)`` for a volume.
    unit : str
    modality : str
        ``"ct"``, ``"mri"`` or ``"astro"``.
    spacing : tuple of float or None
        mm per axis of ``array`` (medical images).
    held_out : bool
        True for test/demo images, False for the priors' training data.
    path : pathlib.Path
    description : str
    """

    name: str
    array: np.ndarray
    unit: str
    modality: str
    spacing: tuple[float, ...] | None
    held_out: bool
    path: Path
    description: str


_SPECS = (
    SampleSpec("head_ct_j2k", "pydicom", "data/test_files/J2K_pixelrep_mismatch.dcm", "ct", False,
               "head CT slice, 512x512, 0.43 mm, JPEG 2000 lossless"),
    SampleSpec("head_ct_693", "pydicom", "data/test_files/693_J2KI.dcm", "ct", False,
               "head CT slice, 512x512, 0.48 mm, JPEG 2000"),
    SampleSpec("mni152_t1", "nilearn", "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz", "mri",
               False, "MNI152 2009a symmetric T1 template, 189 axial slices of 233x197, 1 mm"),
    SampleSpec("mni152_gm", "nilearn", "datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz", "mri",
               False, "MNI152 2009a grey-matter probability (x255), same grid as mni152_t1"),
    SampleSpec("mni152_wm", "nilearn", "datasets/data/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz", "mri",
               False, "MNI152 2009a white-matter probability (x255), same grid as mni152_t1"),
    SampleSpec("hubble_deep_field", "skimage", "data/hubble_deep_field.jpg", "astro", False,
               "Hubble deep field (colour JPEG as luma), 872x1000"),
    SampleSpec("ct_small", "pydicom", "data/test_files/CT_small.dcm", "ct", True,
               "CT slice, 128x128, 0.66 mm"),
    SampleSpec("shepp_logan", "skimage", "data/phantom.png", "ct", True,
               "Shepp-Logan phantom, 400x400, intensities 0-255"),
    SampleSpec("mr_small", "pydicom", "data/test_files/MR_small.dcm", "mri", True,
               "MR slice, 64x64, 0.31 mm"),
    SampleSpec("anatomical", "nibabel", "tests/data/anatomical.nii", "mri", True,
               "T1 head volume, 25 axial slices of 41x33, 2 mm"),
    SampleSpec("m13", "astropy", "io/fits/hdu/compressed/tests/data/m13.fits", "astro", True,
               "globular cluster M13 (SkyView survey), 300x300, 1 arcsec pixels, TAN WCS"),
    SampleSpec("star_field", "astropy", "nddata/tests/data/sip-wcs.fits", "astro", True,
               "CCD star field, 50x100, ADU, TAN-SIP WCS"),
    SampleSpec("radio_1904_66", "astropy", "modeling/tests/data/1904-66_AZP.fits", "astro", True,
               "radio image, 192x192, Jy/beam, ZPN/AZP WCS, NaN outside the field"),
)
SAMPLES = {spec.name: spec for spec in _SPECS}


def list_samples(*, modality: str | None = None, held_out: bool | None = None) -> list[str]:
    """Names of the samples, optionally only one modality or one role.

    Parameters
    ----------
    modality : {"ct", "mri", "astro"}, optional
        The old names "CT", "MR" and "sky" still work, with a DeprecationWarning.
    held_out : bool, optional
        True: test/demo images only; False: training images only.

    Examples
    --------
    >>> list_samples(modality="ct", held_out=False)
    ['head_ct_j2k', 'head_ct_693']
    """
    if modality in _OLD_NAMES:
        warnings.warn(f"sample modality {modality!r} is deprecated; use {_OLD_NAMES[modality]!r}",
                      DeprecationWarning, stacklevel=2)
        modality = _OLD_NAMES[modality]
    if modality is not None and modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; expected one of {MODALITIES}", field="modality")
    return [s.name for s in _SPECS
            if (modality is None or s.modality == modality) and (held_out is None or s.held_out == held_out)]


def sample_path(name: str) -> Path:
    """The file of sample ``name`` inside its installed package.

    Examples
    --------
    >>> sample_path("mr_small").name
    'MR_small.dcm'
    """
    spec = _spec(name)
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise InputError(f"sample {name!r} needs the package {spec.package!r}, which is not installed",
                         field="name")
    path = Path(next(iter(found.submodule_search_locations))) / spec.relative_path
    if not path.is_file():
        raise InputError(f"sample {name!r} is missing from the installed {spec.package}", path=path)
    return path


def sample_image(name: str) -> SampleImage:
    """Read sample ``name`` (see :func:`list_samples`).

    Examples
    --------
    >>> ct = sample_image("ct_small")
    >>> ct.array.shape, ct.unit, ct.held_out
    ((128, 128), 'HU', True)
    """
    spec = _spec(name)
    image = read_image(sample_path(name))
    return SampleImage(name=name, array=image.array, unit=image.unit, modality=spec.modality,
                       spacing=image.spacing, held_out=spec.held_out, path=image.path,
                       description=spec.description)


def _spec(name: str) -> SampleSpec:
    if name not in SAMPLES:
        raise InputError(f"unknown sample {name!r}; expected one of {sorted(SAMPLES)}", field="name")
    return SAMPLES[name]
