"""reddiff: RED-Diff reconstruction of MRI, CT and telescope images, with uncertainty maps.

The solver (:func:`red_diff`) treats a diffusion model as a regulariser inside a
stochastic optimisation (Mardani et al., arXiv 2305.04391). Physics lives in
:mod:`reddiff.operators`, file formats in :mod:`reddiff.datasets`; the pipeline
(:func:`load_problem`, :func:`reconstruct`, :func:`save_outputs`) runs the whole
job on a measurement file with the measured per-modality :data:`DEFAULTS`; each
modality (CT, MRI, telescope, or a plug-in) is one :class:`Modality` in
:mod:`reddiff.modalities`.
"""

from .defaults import SolverDefaults
from .errors import DivergenceError, InputError, ReddiffError
from . import modalities
from .likelihood import GaussianLikelihood, PoissonLikelihood, ShiftedPoissonLikelihood, TransmissionLikelihood
from .modalities import DEFAULTS, Modality, Problem
from .pipeline import load_problem, problem_from_measurement, reconstruct, save_outputs
from .priors import GaussianPrior, Prior, load_prior
from .result import Reconstruction, with_coords, with_wcs
from .solver import red_diff, sample_seeds
from .uncertainty import Calibration, fit_calibration, interval
from .weighting import WEIGHTINGS, get_weighting

__version__ = "0.1.0"

__all__ = ["red_diff", "sample_seeds", "Reconstruction", "with_coords", "with_wcs",
           "Prior", "GaussianPrior", "load_prior",
           "GaussianLikelihood", "PoissonLikelihood", "TransmissionLikelihood", "ShiftedPoissonLikelihood",
           "WEIGHTINGS", "get_weighting", "Calibration", "fit_calibration", "interval",
           "Problem", "load_problem", "problem_from_measurement", "reconstruct", "save_outputs",
           "DEFAULTS", "SolverDefaults", "Modality", "modalities",
           "ReddiffError", "InputError", "DivergenceError", "__version__"]
