r"""X-ray CT: sinogram files in, attenuation images out (reported in HU).

Images are reconstructed as linear attenuation :math:`\mu` (1/mm, the prior's unit)
and shown and saved in Hounsfield units, :math:`HU = 1000\,(\mu - \mu_w)/\mu_w`.
The baseline is filtered back-projection with a Hann window; RED-Diff starts from it
(clamped at 0).

Volumes: a sinogram file may hold a stack of slices (``reddiff simulate SERIES_FOLDER``
measures every slice of a DICOM series into one file, with the series' geometry);
each slice is one problem (``slice_index``), and a file made from DICOM keeps the
positions and headers its results are written back with (a DICOM series per product).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..defaults import SolverDefaults
from ..errors import InputError
from ..likelihood import GaussianLikelihood, TransmissionLikelihood
from .base import Classical, Demo, Modality, Option, Problem


#: Std range (HU) of the fine-scale texture (noise and unresolved anatomy) a real reference slice
#: carries and a generated one lacks, for :meth:`CTModality.as_reference`: a Gaussian field
#: smoothed over :data:`TEXTURE_CORRELATION_PX` whose :func:`fine_scale_amplitude` spans that of
#: the two training head CTs at 128 px (1.9 HU ``693_J2KI.dcm``, 18.1 HU ``J2K_pixelrep_mismatch.dcm``).
SCAN_TEXTURE_HU = (3.7, 35.7)
TEXTURE_CORRELATION_PX = 0.7


def fine_scale_amplitude(hu: np.ndarray) -> float:
    r"""The median fine-scale amplitude of a slice in soft tissue (HU).

    :math:`\operatorname{median} |x - G_{1.5} * x|` over the pixels with
    :math:`-100 < x < 150` HU, :math:`G_{1.5}` a Gaussian of 1.5 px.

    Examples
    --------
    >>> flat = np.full((64, 64), 40.0)
    >>> fine_scale_amplitude(flat)
    0.0
    """
    from scipy.ndimage import gaussian_filter

    hu = np.asarray(hu, dtype=np.float64)
    soft = (hu > -100) & (hu < 150)
    return float(np.median(np.abs(hu - gaussian_filter(hu, 1.5))[soft]))


class CTModality(Modality):
    """Parallel- or fan-beam CT from reddiff sinogram files (counts or line integrals).

    Examples
    --------
    >>> import torch
    >>> from reddiff.operators import ct
    >>> m = ct.simulate(torch.full((1, 1, 16, 16), ct.MU_WATER), views=8, I0=1e4, seed=0)
    >>> problem = MODALITY.from_measurement(m)
    >>> problem.baseline_name, round(MODALITY.noise_level(problem), 4)
    ('FBP (Hann)', 0.01)
    """

    name = "ct"
    title = "X-ray CT"
    file_kinds = ("sinogram",)
    output_formats = ("netcdf", "png", "dicom", "nifti")
    #: lr and steps tuned on generated phantoms and pseudo-CT heads, 30 parallel views, 1e5 photons per
    #: bin (``benchmarks/tune_defaults.py``). t_max 40 up to 181 px a side, the full range above: with the
    #: fine-tuned prior on partial-volume phantoms, t_max 20 / 40 / 100 scored 36.94 / 36.98 / 37.29 dB at
    #: 128 px (100 not shipped: it cost the held-out Shepp-Logan phantom 2.82 dB, ``docs/heldout.md``) and
    #: t_max 40 / 999 scored 38.77 / 39.34 dB at 256 px (``--size 256``). Every grid, the earlier ones on
    #: hard-edged phantoms included, is in ``docs/tuning.md``. Noise reference :math:`1/\sqrt{I_0}`.
    defaults = SolverDefaults(prior="ct", steps=400, lr=0.1 / 3, lam=100.0, noise_reference=1e5 ** -0.5,
                              weighting="sqrt", timesteps="descending", sigma_x0=0.0, lam_target=1.1,
                              t_max=40, size_tiers=((181, {"t_max": None}),))
    measurement_suffixes = (".h5", ".nc", ".npz")
    simulate_options = (
        Option("views", 30, "CT: projection angles."),
        Option("geometry", "parallel", "CT: parallel or fan."),
        Option("I0", 1e5, "CT: photons per detector bin (transmission noise).", flag="--I0"),
        Option("unit", None, "CT: the image's unit, HU or 1/mm (default: the file's own, as DICOM and HDF5 "
               "'units' say; needed for NumPy, PNG and TIFF images).", type=str),
    )
    demo = Demo("ct_small", "sparse-view CT: 30 parallel-beam views, 1e5 photons per bin",
                formats=("netcdf", "dicom", "png"))

    def slice_count(self, path, **options) -> int:
        """The slices of the sinogram file (its leading axis for a ``(slices, views, detectors)`` one)."""
        from reddiff.datasets.sinogram import count_slices

        return count_slices(path)

    def load(self, path, *, seed: int = 0, slice_index: int = 0) -> Problem:
        from reddiff.datasets import read_sinogram
        from reddiff.operators import ct

        sino = read_sinogram(path, slice_index=slice_index)
        physics = ct.ct_physics(sino.image_shape, geometry=sino.geometry, angles=sino.angles,
                                pixel_spacing_mm=sino.pixel_spacing_mm, detector_spacing_mm=sino.detector_spacing_mm,
                                n_detectors=sino.sinogram.shape[1],
                                **({"source_distance_mm": sino.source_distance_mm,
                                    "detector_distance_mm": sino.detector_distance_mm} if sino.geometry == "fan" else {}))
        y = torch.from_numpy(np.ascontiguousarray(sino.sinogram.T))[None, None]
        if sino.quantity == "counts":
            physics.data_term = TransmissionLikelihood(sino.I0)
        elif sino.sigma:
            physics.data_term = GaussianLikelihood(sino.sigma)
        else:
            raise InputError("holds line integrals without a noise level; add the sigma attribute "
                             "(standard deviation of the line integrals)", path=sino.path, field="sigma")
        return self._problem(y, physics, source=sino, info={"path": str(sino.path), "slice": slice_index})

    def from_measurement(self, measurement, *, source=None) -> Problem:
        return self._problem(measurement.y, measurement.physics, truth=measurement.x_true, source=source,
                             info=dict(measurement.info))

    def _problem(self, y, physics, *, truth=None, source=None, info=None) -> Problem:
        from reddiff.operators import ct

        term = getattr(physics, "data_term", None)
        if not isinstance(term, (TransmissionLikelihood, GaussianLikelihood)):
            raise InputError("a CT problem needs physics.data_term: TransmissionLikelihood (counts) or "
                             "GaussianLikelihood (line integrals)", field="data_term")
        sinogram = _line_integrals(y, term)
        baseline = ct.fbp(sinogram, physics, filter="hann")
        views = int(physics.angles.numel())
        return Problem(self.name, y, physics, baseline, "FBP (Hann)", init=baseline.clamp_min(0),
                       measurement_image=ct.fbp(sinogram, physics, filter="ramp"), measurement_name="FBP (ramp)",
                       truth=truth, source=source,
                       description=f"CT, {physics.geometry.kind} beam, {views} views, {term!r}", info=info or {})

    def noise_level(self, problem: Problem) -> float:
        r"""Transmission counts: :math:`1/\sqrt{I_0}`, the std of a line integral through air;
        Gaussian line integrals: their :math:`\sigma`."""
        term = problem.physics.data_term
        if isinstance(term, TransmissionLikelihood):
            return float(term.I0.float().mean()) ** -0.5
        if isinstance(term, GaussianLikelihood):
            return float(term.sigma)
        raise InputError(f"no noise level for the data term {term!r}; pass lam explicitly", field="lam")

    def classical_methods(self, problem: Problem) -> list[Classical]:
        """SIRT over its iteration count, and SIRT+TV: non-negative TV-regularised least squares
        on the line integrals (FISTA, 150 iterations) started from SIRT-50, over its weight."""
        from reddiff.operators import ct
        from reddiff.operators.base import tv_reconstruction

        sinogram = _line_integrals(problem.y, problem.physics.data_term)
        start = ct.sirt(sinogram, problem.physics, iterations=50)
        return [Classical("SIRT", "iterations", (25, 50, 100, 200),
                          lambda n: ct.sirt(sinogram, problem.physics, iterations=int(n)), integer=True),
                Classical("SIRT+TV", "lam", (0.01, 0.03, 0.1, 0.3),
                          lambda lam: tv_reconstruction(sinogram, problem.physics, lam=lam, iterations=150,
                                                        init=start, nonnegative=True))]

    def reference_truth(self, array, unit: str) -> torch.Tensor:
        """HU unless the file says 1/mm or its values can only be attenuations (below 1/mm everywhere)."""
        from reddiff.operators.ct import hu_to_mu

        truth = super().reference_truth(array, unit)
        in_mu = unit == "1/mm" or (unit != "HU" and float(truth.max()) < 1.0)
        return truth if in_mu else hu_to_mu(truth)

    def display_image(self, image: torch.Tensor) -> torch.Tensor:
        from reddiff.operators.ct import mu_to_hu

        return mu_to_hu(image)

    def to_display_units(self, result):
        from reddiff.operators.ct import MU_WATER

        return result.in_units(scale=1000.0 / MU_WATER, offset=-1000.0, units="HU")

    def simulate_file(self, image, out: Path, *, views: int = 30, geometry: str = "parallel",
                      I0: float = 1e5, unit: str | None = None, seed: int = 0) -> list[Path]:
        """A sinogram file from a CT image in HU or 1/mm: ``unit``, else the file's own (a file
        without one, such as ``.npy``, is refused rather than guessed). A DICOM file or a folder
        of one series gives one file of all its slices, sorted along the slice normal, with the
        series' geometry (a mixed folder, uneven spacing or a slice of another orientation,
        size or pixel spacing is refused, naming the file); a volume file (NIfTI) its slices."""
        from reddiff.datasets import detect_format, read_dicom, read_image, simulate_sinogram

        source = read_dicom(image) if detect_format(image) == "dicom" else read_image(image)
        return [simulate_sinogram(source, out, views=views, geometry=geometry, I0=I0, unit=unit, seed=seed)]

    def canonical_problem(self, *, image=None, seed: int = 0, views: int = 30, I0: float = 1e5) -> Problem:
        """``ct_small`` (HU clipped at -1000, as 1/mm) or ``image`` (1/mm), 30 parallel views,
        1e5 photons per bin, 0.661 mm pixels."""
        from reddiff.datasets import sample_image
        from reddiff.operators import ct

        if image is None:
            image = ct.hu_to_mu(np.clip(sample_image(self.demo.sample).array, -1000.0, None))
        x = torch.as_tensor(np.asarray(image), dtype=torch.float32)[None, None]
        return self.from_measurement(ct.simulate(x, views=views, I0=I0, pixel_spacing_mm=0.661, seed=seed))

    def calibration_images(self) -> dict[str, np.ndarray]:
        """Four ellipse phantoms (seeds 3000-3003), two body phantoms (seeds 3997-3998) and four
        pseudo-CT heads from MNI152 axial slices (42, 74, 106, 122), none trained on, in 1/mm."""
        from reddiff.datasets import body_phantom, ellipse_phantom, pseudo_ct_head
        from reddiff.operators import ct
        from reddiff.priors.recipes import mni_volumes

        images = {f"ellipse phantom (seed {s})": ct.hu_to_mu(ellipse_phantom((128, 128), seed=s))
                  for s in range(3000, 3004)}
        images.update({f"body phantom (seed {s})": ct.hu_to_mu(body_phantom((128, 128), seed=s))
                       for s in (3997, 3998)})
        _, maps = mni_volumes()
        for index in (42, 74, 106, 122):
            head = pseudo_ct_head({k: v[index] for k, v in maps.items()}, seed=(index, 9))
            images[f"pseudo-CT head (MNI152 axial {index})"] = ct.hu_to_mu(head)
        return images

    def as_reference(self, image: np.ndarray, *, seed: int) -> tuple[np.ndarray, str]:
        r"""A generated slice (1/mm) with the fine-scale texture of a real scan inside the body.

        :math:`\mu' = \mu + \mu_w\, s\, g / 1000` where :math:`\mu > \mu_w / 2`, with :math:`g`
        white noise smoothed by a Gaussian of :data:`TEXTURE_CORRELATION_PX` and scaled to unit
        std, and :math:`s` log-uniform in :data:`SCAN_TEXTURE_HU` (drawn from ``seed``).

        Examples
        --------
        >>> from reddiff.operators.ct import MU_WATER
        >>> textured, note = MODALITY.as_reference(np.full((32, 32), MU_WATER, np.float32), seed=0)
        >>> note, round(fine_scale_amplitude(1000 * (textured / MU_WATER - 1)) / 15.7, 1)
        ('scan texture 15.7 HU', 0.5)
        """
        from scipy.ndimage import gaussian_filter

        from reddiff.operators.ct import MU_WATER

        rng = np.random.default_rng(seed)
        std_hu = float(np.exp(rng.uniform(*np.log(SCAN_TEXTURE_HU))))
        field = gaussian_filter(rng.standard_normal(image.shape), TEXTURE_CORRELATION_PX)
        texture = MU_WATER * std_hu / 1000 * field / field.std()
        textured = np.where(image > MU_WATER / 2, image + texture, image)
        return textured.astype(np.float32), f"scan texture {std_hu:.1f} HU"

    def demo_measurement(self, out_dir: Path, *, seed: int = 0) -> tuple[Path, dict]:
        from reddiff.datasets import sample_image, sample_path, simulate_sinogram

        path = simulate_sinogram(sample_image(self.demo.sample), Path(out_dir) / "measurement_sinogram.h5",
                                 views=30, I0=1e5, seed=seed)
        return path, {"reference": sample_path(self.demo.sample)}


def _line_integrals(y: torch.Tensor, term) -> torch.Tensor:
    """The measurement as line integrals (counts are log-converted with ``I0``)."""
    from reddiff.operators import ct

    return ct.line_integrals(y, term.I0) if isinstance(term, TransmissionLikelihood) else y


MODALITY = CTModality()
