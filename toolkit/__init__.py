"""reddiff: RED-Diff reconstruction of MRI, CT and telescope images, with uncertainty maps.

The solver (:func:`red_diff`) treats a diffusion model as a regulariser inside a
stochastic optimisation (Mardani et al., arXiv 2305.04391). Physics lives in
:mod:`reddiff.operators`, file formats in :mod:`reddiff.datasets`.
"""

from .errors import DivergenceError, InputError, ReddiffError
from .likelihood import GaussianLikelihood, PoissonLikelihood
from .priors import GaussianPrior, Prior
from .result import Reconstruction
from .solver import red_diff, sample_seeds
from .weighting import WEIGHTINGS, get_weighting

__version__ = "0.1.0"

__all__ = ["red_diff", "sample_seeds", "Reconstruction", "Prior", "GaussianPrior",
           "GaussianLikelihood", "PoissonLikelihood", "WEIGHTINGS", "get_weighting",
           "ReddiffError", "InputError", "DivergenceError", "__version__"]
