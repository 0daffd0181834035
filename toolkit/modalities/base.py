r"""What every modality is: a :class:`Problem` to solve and a :class:`Modality` that builds it.

A modality owns all of its own knowledge: which measurement files it reads, the
physics and data term it builds from them or from a simulation, its noise measure
(for scaling ``lam``), its classical baseline and starting image, its display units,
its solver defaults and prior, its output formats, its simulate writer, its canonical
problem (demo, tuning, benchmarks) and its options on the command line. The pipeline,
the CLI, the demo and the benchmarks only ever talk to this interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..defaults import SolverDefaults
from ..errors import InputError


@dataclass(eq=False)
class Problem:
    """One reconstruction problem: the measurement, its physics and what surrounds it.

    Attributes
    ----------
    modality : str
        Registry name of the modality that built it (see :func:`reddiff.modalities.get`).
    y : torch.Tensor
        The measurement ``(1, ...)`` as ``physics.A`` returns it.
    physics : deepinv.physics.Physics
        Forward model in physical units, with its ``data_term``.
    baseline : torch.Tensor
        ``(1, C, H, W)`` classical reconstruction, physical units.
    baseline_name : str
    init : torch.Tensor
        Starting image for RED-Diff, physical units.
    measurement_image : torch.Tensor
        The naive image of the measurement (zero-filled, FBP, the raw frame), for figures.
    truth : torch.Tensor, optional
        Reference image ``(1, C, H, W)`` (simulation truth or the file's reference).
    source : object, optional
        What the measurement was read from (:class:`reddiff.datasets.MRIData`,
        ``Sinogram``, ``SkyImage``) or a DICOM/FITS reference, for geometry and outputs.
    measurement_name : str
        What ``measurement_image`` is.
    image_scale : float
        Physical value mapped to 1 by the prior (MRI: the zero-filled maximum).
    description : str
        One line saying what the problem is.
    info : dict
        Provenance (input path, simulation settings).
    """

    modality: str
    y: torch.Tensor
    physics: object
    baseline: torch.Tensor
    baseline_name: str
    init: torch.Tensor
    measurement_image: torch.Tensor
    truth: torch.Tensor | None = None
    source: object = None
    measurement_name: str = "Measurement"
    image_scale: float = 1.0
    description: str = ""
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Option:
    """A modality-specific command-line option (``reddiff simulate`` / ``reconstruct``).

    Attributes
    ----------
    name : str
        Python keyword passed to the modality (``views``, ``psf``).
    default : object
        Default value; its type is the option's type (``None`` needs ``type``).
    help : str
    flag : str, optional
        The command-line flag (default ``--name`` with ``-`` for ``_``).
    type : type, optional
        Needed when ``default`` is None.
    """

    name: str
    default: Any
    help: str
    flag: str | None = None
    type: type | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def value_type(self) -> type:
        return self.type or type(self.default)


@dataclass(frozen=True)
class Classical:
    """A classical reconstruction method with one tuning parameter, for truth-tuned comparisons.

    Attributes
    ----------
    name : str
        The method (``"SIRT+TV"``, ``"Richardson-Lucy"``).
    parameter : str
        What is tuned (``"lam"``, ``"iterations"``).
    values : tuple
        A grid of the parameter, ascending; a comparison extends it geometrically past
        an edge that wins.
    run : callable
        ``run(value) -> torch.Tensor``, the reconstruction ``(1, C, H, W)`` in physical units.
    integer : bool
        Whether the parameter is a count (extensions are rounded).
    """

    name: str
    parameter: str
    values: tuple
    run: Any
    integer: bool = False


@dataclass(frozen=True)
class Demo:
    """What ``reddiff demo`` runs for a modality: a held-out sample and the measurement simulated."""

    sample: str
    description: str
    formats: tuple[str, ...] = ("netcdf", "png")


class Modality:
    """Base class of a modality; subclasses fill the attributes and the methods marked so.

    Attributes
    ----------
    name : str
        The one name of the modality (CLI, prior, defaults).
    aliases : tuple of str
        Old names, accepted with a :class:`DeprecationWarning`.
    title : str
        What users call it, for help texts.
    file_kinds : tuple of str
        Measurement kinds it reads (values of :func:`reddiff.datasets.file_kind`).
    defaults : SolverDefaults
        RED-Diff settings measured for it (``defaults.prior`` names its prior).
    output_formats : tuple of str
        Formats :func:`reddiff.pipeline.save_outputs` may write for it (a DICOM or FITS
        output also needs such a source).
    load_options : tuple of Option
        Extra keyword options of :meth:`load` (``reddiff reconstruct`` flags).
    simulate_options : tuple of Option
        Keyword options of :meth:`simulate_file` (``reddiff simulate`` flags).
    measurement_suffixes : tuple of str
        File name suffixes :meth:`simulate_file` writes (empty: any).
    calibration_proxy : str
        The error proxy its calibrations add to the spread (a key of
        :data:`reddiff.uncertainty.PROXIES`; ``""``: the raw spread), chosen on its
        calibration references (``docs/uncertainty.md``).
    demo : Demo
    """

    name: str = ""
    aliases: tuple[str, ...] = ()
    title: str = ""
    file_kinds: tuple[str, ...] = ()
    defaults: SolverDefaults
    output_formats: tuple[str, ...] = ("netcdf", "png")
    load_options: tuple[Option, ...] = ()
    simulate_options: tuple[Option, ...] = ()
    measurement_suffixes: tuple[str, ...] = ()
    calibration_proxy: str = ""
    demo: Demo

    def __repr__(self) -> str:
        return f"<Modality {self.name!r}: {self.title}>"

    # -- to implement ------------------------------------------------------------------

    def load(self, path, *, seed: int = 0, slice_index: int = 0, **options) -> Problem:
        """Read one slice of a measurement file of one of :attr:`file_kinds` into a
        :class:`Problem` (``seed`` seeds anything random in reading it, e.g. a retrospective
        mask; ``options`` are :attr:`load_options`)."""
        raise NotImplementedError

    def from_measurement(self, measurement, *, source=None) -> Problem:
        """A :class:`Problem` from a simulated :class:`reddiff.operators.Measurement`."""
        raise NotImplementedError

    def noise_level(self, problem: Problem) -> float:
        """The measurement's noise in the measure ``defaults.noise_reference`` is given in."""
        raise NotImplementedError

    def simulate_file(self, image, out: Path, **options) -> list[Path]:
        """Write a measurement file simulated from an image file; returns the files written."""
        raise NotImplementedError

    def canonical_problem(self, *, image: np.ndarray | None = None, seed: int = 0, **noise) -> Problem:
        """The modality's reference problem, simulated in memory from its demo sample
        (or ``image``, physical units) with ``seed``; ``noise`` overrides its noise settings."""
        raise NotImplementedError

    def demo_measurement(self, out_dir: Path, *, seed: int = 0) -> tuple[Path, dict]:
        """Write the demo's measurement file; returns it and the :func:`load_problem` options."""
        raise NotImplementedError

    def classical_methods(self, problem: Problem) -> list[Classical]:
        """The classical methods RED-Diff is compared with (``benchmarks/heldout.py``), each over
        its tuning parameter; the best value is chosen with the truth (an oracle)."""
        return []

    # -- defaults that modalities may override -----------------------------------------

    def slice_count(self, path, **options) -> int:
        """How many 2-D slices the measurement file holds (one by default); ``options`` are the
        :attr:`load_options` given (those that choose what is read, such as an HDU), others ignored."""
        return 1

    def reads(self, path) -> bool:
        """Whether ``path`` is a measurement of this modality (default: its
        :func:`reddiff.datasets.file_kind` is one of :attr:`file_kinds`). A plug-in with
        its own file format overrides this."""
        from reddiff.datasets import file_kind

        return file_kind(path) in self.file_kinds

    def reference_truth(self, array: np.ndarray, unit: str) -> torch.Tensor:
        """A reference image ``(H, W)`` as read from a file, as ``(1, C, H, W)`` physical units."""
        return torch.from_numpy(np.asarray(array, dtype=np.float32))[None, None]

    def truth_from_reference(self, problem: Problem, array: np.ndarray, unit: str) -> torch.Tensor:
        """A reference image read from a file (``(H, W)``, in ``unit``) as ``problem``'s truth:
        :meth:`reference_truth`, unscaled (the modality's units are absolute). Modalities whose
        references come in relative units scale them to the measurement here, before any metric."""
        return self.reference_truth(array, unit)

    def prior(self, problem: Problem, prior=None):
        """The prior to solve ``problem`` with: a :class:`reddiff.priors.Prior`, a name or folder,
        or by default :attr:`defaults`.prior."""
        from ..priors import Prior, load_prior

        return prior if isinstance(prior, Prior) else load_prior(prior or self.defaults.prior)

    def display_image(self, image: torch.Tensor) -> torch.Tensor:
        """An image in physical units, in the units results are shown and saved in."""
        return image

    def to_display_units(self, result):
        """A :class:`reddiff.Reconstruction` in physical units, in display units."""
        return result

    def reference_for(self, result, problem: Problem) -> torch.Tensor | None:
        """The truth in the result's units, ready for error maps and coverage."""
        return None if problem.truth is None else self.display_image(problem.truth)

    # -- measuring an image like a given measurement (calibration) ----------------------

    def measure_like(self, problem: Problem, image: torch.Tensor, *, seed: int = 0) -> Problem:
        r"""A new problem: ``image`` measured with ``problem``'s physics and noise model.

        :math:`y' \sim p(y \mid s\,x)` with the data term's noise (``data_term.sample``),
        where :math:`s` is :meth:`match_scale` (1 unless the modality's units are
        relative). The truth of the new problem is :math:`s\,x`.

        Parameters
        ----------
        problem : Problem
            The measurement to imitate.
        image : torch.Tensor
            ``(1, C, H, W)`` physical units (as :meth:`reference_truth` gives), on ``problem``'s grid.
        seed : int
            Seeds the noise.
        """
        from reddiff.operators.base import Measurement

        x = image * self.match_scale(problem, image)
        generator = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            y = self.measure(problem.physics, x, generator=generator)
        info = {"measured_like": problem.info.get("path", problem.description), "seed": int(seed)}
        return self.from_measurement(Measurement(y=y, physics=problem.physics, x_true=x, info=info))

    def measure(self, physics, image: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """A noisy measurement of ``image``: ``physics.data_term.sample(physics.A(image))``."""
        term = getattr(physics, "data_term", None)
        if not hasattr(term, "sample"):
            raise InputError(f"the data term {term!r} cannot simulate measurements (no sample method)",
                             field="data_term")
        return term.sample(physics.A(image), generator=generator)

    def match_scale(self, problem: Problem, image: torch.Tensor) -> float:
        """The factor that brings a reference ``image`` to the scale of ``problem``'s truth
        (1: the modality's units are absolute)."""
        return 1.0

    def calibration_images(self) -> dict[str, np.ndarray]:
        """Generated images (physical units, name -> ``(H, W)``; never a held-out sample) that
        the modality's default uncertainty calibration is fitted on; empty: none shipped."""
        return {}

    def tuning_images(self) -> dict[str, np.ndarray]:
        """Real images the defaults are tuned on beside the generated ones, and the default
        calibration is fitted on instead of them (physical units): parts of a training source the
        prior never trained on, never a held-out sample; default none."""
        return {}

    def as_reference(self, image: np.ndarray, *, seed: int) -> tuple[np.ndarray, str]:
        """A generated calibration image as a real reference scan of it would look, and a note
        saying what was added (default: unchanged, ``""``). What a real reference carries and a
        generated image lacks (its own noise, unresolved structure) is error RED-Diff cannot
        recover; a calibration fitted without it is too narrow on real images."""
        return image, ""
