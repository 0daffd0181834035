"""Physics of reddiff's imaging problems, built on :mod:`deepinv.physics`.

One module per modality, each with a ``simulate(...) -> Measurement`` that turns a
clean image into a measurement with a documented noise model and a seed, a physics
factory, and classical baselines:

- :mod:`reddiff.operators.mri` -- Cartesian k-space (fastMRI conventions), masks,
  coil maps (birdcage, ESPIRiT); zero-filled, SENSE-CG, TV.
- :mod:`reddiff.operators.ct` -- parallel/fan-beam projectors in mm with exact
  adjoints, transmission (Beer-Lambert) noise; FBP, SIRT, CGLS.
- :mod:`reddiff.operators.telescope` -- PSFs (Airy, Moffat, Gaussian, Zernike, FITS),
  blur without wrap-around, CCD noise; Wiener, Richardson-Lucy.
- :mod:`reddiff.operators.generic` -- the paper's inpainting, super-resolution and
  deblurring tasks.

Shared pieces (the :class:`Measurement` record, convolution, CG least squares,
TV-FISTA) live in :mod:`reddiff.operators.base`.
"""

from . import ct, generic, mri, telescope
from .base import Measurement

__all__ = ["Measurement", "mri", "ct", "telescope", "generic"]
