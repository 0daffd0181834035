"""The one list of linear operators that every shared check in test_linear.py runs over.

Each entry builds ``(physics, image_shape, is_complex)`` at a tiny size; complex
operators take and return (real, imaginary) as 2 channels (deepinv's convention).
Add every new linear operator here.
"""

import pytest
import torch

from reddiff.operators import ct, generic, mri, telescope


def _mri_single():
    return mri.mri_physics(mri.cartesian_mask((16, 16), kind="random", acceleration=2, center_fraction=0.25,
                                              seed=0)), (2, 2, 16, 16), True


def _mri_multi():
    mask = mri.cartesian_mask((16, 12), kind="equispaced", acceleration=2, center_fraction=0.25, seed=0)
    return mri.mri_physics(mask, coil_maps=mri.birdcage_maps(4, (16, 12))), (2, 2, 16, 12), True


def _mri_variable_density():
    mask = mri.variable_density_mask((16, 16), acceleration=3, center_fraction=0.2, seed=1)
    return mri.mri_physics(mask, coil_maps=mri.birdcage_maps(2, (16, 16))), (1, 2, 16, 16), True


def _mri_oversampled_readout():
    """fastMRI's readout oversampling: the image is the central half of the k-space grid's rows."""
    mask = mri.cartesian_mask((16, 10), kind="random", acceleration=2, center_fraction=0.25, seed=2)
    return mri.mri_physics(mask, coil_maps=mri.birdcage_maps(3, (16, 10)), image_shape=(8, 10)), (2, 2, 8, 10), True


OPERATORS = {
    "mri-single-coil": _mri_single,
    "mri-multi-coil": _mri_multi,
    "mri-variable-density": _mri_variable_density,
    "mri-oversampled-readout": _mri_oversampled_readout,
    "mri-single-coil-cropped": lambda: (mri.mri_physics(torch.ones(12, 12), image_shape=(6, 9)), (1, 2, 6, 9), True),
    "ct-parallel": lambda: (ct.ct_physics(16, views=12, pixel_spacing_mm=0.7), (2, 1, 16, 16), False),
    "ct-fan": lambda: (ct.ct_physics(16, geometry="fan", views=12), (1, 1, 16, 16), False),
    "ct-limited-angle-rectangular": lambda: (ct.ct_physics((12, 20), views=7, limited_angle=2.0),
                                             (1, 1, 12, 20), False),
    "telescope-blur-zeros": lambda: (telescope.blur_physics(telescope.moffat_psf(2.0, size=7)),
                                     (1, 1, 24, 20), False),
    "telescope-blur-valid-even-psf": lambda: (telescope.blur_physics(torch.rand(4, 6), padding="valid"),
                                              (1, 1, 16, 16), False),
    "telescope-blur-fft-airy": lambda: (telescope.blur_physics(telescope.airy_psf(size=21)), (1, 1, 24, 24), False),
    "telescope-tiled": lambda: (telescope.tiled_blur_physics(
        torch.stack([torch.stack([telescope.gaussian_psf(f, size=7) for f in (1.0, 2.5)])] * 2), (16, 16)),
        (1, 1, 16, 16), False),
    "inpaint-random": lambda: (generic.task_physics("inpaint-random", (12, 12), channels=3, seed=0),
                               (2, 3, 12, 12), False),
    "inpaint-box": lambda: (generic.task_physics("inpaint-box", (12, 12)), (1, 1, 12, 12), False),
    "sr-average": lambda: (generic.task_physics("sr-average", (16, 16), factor=4), (2, 3, 16, 16), False),
    "sr-bicubic": lambda: (generic.task_physics("sr-bicubic", (16, 16), factor=2), (1, 1, 16, 16), False),
    "deblur-gaussian": lambda: (generic.task_physics("deblur-gaussian", (16, 16), blur_sigma=1.5),
                                (1, 1, 16, 16), False),
    "deblur-uniform-zeros": lambda: (generic.task_physics("deblur-uniform", (16, 16), blur_size=5, padding="zeros"),
                                     (1, 1, 16, 16), False),
}


@pytest.fixture(params=sorted(OPERATORS))
def operator(request):
    """``(physics, image_shape, is_complex)`` for every linear operator in :data:`OPERATORS`."""
    return OPERATORS[request.param]()


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)
