r"""MRI: fastMRI k-space files in, complex images out (2 real channels).

Images are in the file's k-space units: the prior, trained on images of maximum
magnitude 1, is rescaled to the zero-filled image's maximum (``Problem.image_scale``).
Multi-coil files get ESPIRiT coil maps; the baseline is SENSE by conjugate gradients
(early stopping is its regulariser) and RED-Diff starts from the zero-filled image.

The image grid is fastMRI's: the centre crop of the k-space grid to the reference's shape
(else the header's recon matrix), so a readout-oversampled file (``H = 2 h``, as real
fastMRI brain and knee files) is reconstructed on ``reconstruction_rss``'s ``(h, w)``
grid and compared with it (:class:`reddiff.operators.mri.CentredGrid`).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from ..defaults import SolverDefaults
from ..errors import InputError
from .base import Classical, Demo, Modality, Option, Problem

#: CG iterations of the SENSE baseline (early stopping is its regulariser).
SENSE_ITERATIONS = 10
#: An object whose signal reaches the phase-encode edges of the field of view (the mean magnitude of the
#: outermost columns of the SENSE image over its 99th percentile above this) cannot be explained there by
#: ESPIRiT's maps, smooth and periodic on the grid: the coil images jump across that periodic edge, and the
#: undersampled axis cannot be padded as the readout is; such maps are refined by JSENSE
#: (:func:`estimated_coil_physics`). Measured on generated MNI152 heads at 64 px (4x, 16 % centre): 0.014
#: inside the field of view, 0.038-0.039 touching only the readout edges, 0.36-0.42 cut by all four; the
#: threshold is the geometric middle of 0.039 and 0.36.
EDGE_SIGNAL = 0.12
#: JSENSE's image step (an early-stopped SENSE image) must not be dominated by aliasing: below this sampled
#: fraction of k-space ESPIRiT's maps are kept. Measured on the two generated heads cut by the field of view
#: (64 px, SENSE-CG 10 iterations): at 4x with a 16 % centre the refinement took the SENSE image from 15.03 /
#: 16.94 to 20.29 / 21.45 dB (the exact maps 20.86 / 21.67); at 8x with a 10 % centre from 8.51 / 10.01 down to
#: 3.29 / 2.33 (the exact maps 18.75 / 18.97). 0.18 is the geometric middle of 1/8 and 1/4.
JSENSE_MIN_SAMPLED = 0.18


class MRIModality(Modality):
    """Cartesian single- or multi-coil MRI from fastMRI HDF5 files."""

    name = "mri"
    title = "MRI"
    file_kinds = ("fastmri",)
    output_formats = ("netcdf", "png", "dicom", "nifti")
    #: lr and steps tuned on MNI152 slices and synthetic contrasts the prior left out, 4x random lines,
    #: 8 coils, k-space sigma 0.01 of the image maximum (``benchmarks/tune_defaults.py``; 800 steps: +0.18 dB
    #: mean over 400 there, ``docs/tuning.md``). A third of the lr above 90 px a side: on two generated
    #: images it led the shipped lr by 0.76 / 0.77 dB at 256 px (``--size 256``) and 0.18 / 0.82 dB at
    #: 128 px, while on the 64 px grid it tied (22.33 against 22.35 at 400 steps); 90 is the geometric
    #: middle of 64 and 128. A ninth above 181 px (the middle of 128 and 256): at 256 px it led a third on
    #: three generated images (mean 33.97 against 33.63 dB), at 128 px it trailed on two (29.74 against
    #: 30.28; ``docs/tuning.md``, "A ninth of the lr").
    defaults = SolverDefaults(prior="mri", steps=800, lr=0.05, lam=100.0, noise_reference=0.01,
                              weighting="sqrt", timesteps="descending", sigma_x0=0.0, lam_target=0.78,
                              size_tiers=((90, {"lr": 0.05 / 3}), (181, {"lr": 0.05 / 9})))
    load_options = (
        Option("acceleration", None, "MRI: undersample a fully sampled fastMRI file by this factor.",
               type=float),
    )
    measurement_suffixes = (".h5",)
    calibration_proxy = "gradient"  # raised Spearman and steadied the factor on every reference (docs/uncertainty.md)
    simulate_options = (
        Option("acceleration", 4.0, "MRI: undersampling factor."),
        Option("center_fraction", 0.08, "MRI: fully sampled central fraction."),
        Option("coils", 8, "MRI: receive coils."),
        Option("sigma", 0.01, "MRI: k-space noise, relative to the image maximum 1."),
        Option("readout_oversampling", 2, "MRI: k-space rows per image row (the readout), as scanners "
               "acquire; 1 puts k-space on the image's grid."),
    )
    demo = Demo("mr_small", "4x accelerated 8-coil Cartesian MRI, random lines, 16% centre (coil maps by ESPIRiT)")

    def slice_count(self, path, **options) -> int:
        """The number of slices in the file's ``kspace`` dataset."""
        import h5py

        from reddiff.datasets._io import input_file, reading

        path = input_file(path)
        with reading(path, "fastMRI file"), h5py.File(path, "r") as f:
            if "kspace" not in f or getattr(f["kspace"], "ndim", 0) not in (3, 4):
                raise InputError("no (slices, [coils,] H, W) 'kspace' dataset", path=path, field="kspace")
            return int(f["kspace"].shape[0])

    def load(self, path, *, seed: int = 0, slice_index: int = 0, acceleration: float | None = None) -> Problem:
        from reddiff.datasets import read_fastmri
        from reddiff.operators import mri

        if not (isinstance(slice_index, int) and slice_index >= 0):
            raise InputError(f"slice must be a non-negative integer, got {slice_index!r}", path=path, field="slice")
        if acceleration is not None and not acceleration > 1:
            raise InputError(f"acceleration must be above 1, got {acceleration!r}", path=path, field="acceleration")
        data = read_fastmri(path, slices=[slice_index], acceleration=acceleration, seed=seed)
        if not data.kspace.any():  # before the mask, noise and coil maps, which would fail obscurely
            raise InputError(f"k-space is all zero (slice {slice_index}): an empty or unwritten measurement",
                             path=data.path, field="kspace")
        kspace = torch.from_numpy(data.kspace[0])  # (coils, H, W) complex
        shape = tuple(kspace.shape[-2:])
        image_shape = data.image_shape  # fastMRI's centre crop: (h, w) of an oversampled readout
        columns = np.ones(shape[1], bool) if data.mask is None else data.mask
        mask = torch.from_numpy(np.broadcast_to(columns[None, :], shape).astype(np.float32).copy())
        y = torch.view_as_real(kspace).permute(3, 0, 1, 2)[None].contiguous()  # (1, 2, coils, H, W)
        sigma = float(data.attrs.get("sigma") or estimate_kspace_noise(kspace, mask))
        if image_shape[0] < shape[0]:  # as scanners remove readout oversampling: only the image rows are solved for
            y = mri.remove_readout_oversampling(y, image_shape[0])
            mask = mask[:image_shape[0]]  # whole columns: every row alike
        info = {"path": str(data.path)}
        if data.multicoil and kspace.shape[0] > 1:
            physics, info["coil_map_estimate"] = estimated_coil_physics(y, mask, sigma=sigma, image_shape=image_shape)
        else:
            y = y[:, :, 0]
            physics = mri.mri_physics(mask, sigma=sigma, image_shape=image_shape)
        truth = None
        if data.target is not None:
            truth = self.reference_truth(_centre_crop(data.target[0], image_shape), "a.u.")
        return self._problem(y, physics, truth=truth, source=data, info=info)

    def from_measurement(self, measurement, *, source=None) -> Problem:
        return self._problem(measurement.y, measurement.physics, truth=measurement.x_true, source=source,
                             info=dict(measurement.info))

    def _problem(self, y, physics, *, truth=None, source=None, info=None) -> Problem:
        from reddiff.operators import mri

        if isinstance(physics, mri.CentredGrid) and physics.readout_oversampled:  # as scanners remove it
            y, physics = physics.without_readout_oversampling(y)
        zero_filled = mri.zero_filled(y, physics)
        baseline = mri.sense_cg(y, physics, iterations=SENSE_ITERATIONS)
        scale = float(_magnitude(zero_filled).max())
        if not scale > 0:
            raise InputError("the k-space is all zeros", field="kspace")
        coils = "multi-coil" if y.ndim == 5 else "single-coil"
        fraction = float(getattr(physics, "mask", torch.ones(1)).float().mean())
        grid = ""
        if isinstance(physics, mri.CentredGrid):
            (rows, cols), (h, w) = physics.grid_shape, physics.image_shape
            grid = f", {rows}x{cols} k-space grid, image its centre {h}x{w}"
        maps = f", coil maps by {info['coil_map_estimate']}" if info and "coil_map_estimate" in info else ""
        return Problem(self.name, y, physics, baseline, f"SENSE-CG ({SENSE_ITERATIONS} it.)", init=zero_filled,
                       measurement_image=zero_filled, measurement_name="Zero-filled", truth=truth, source=source,
                       image_scale=scale,
                       description=f"MRI, {coils}, {fraction:.0%} of k-space sampled{grid}{maps}, {physics.data_term!r}",
                       info=info or {})

    def with_estimated_coil_maps(self, problem: Problem) -> Problem:
        """``problem`` with its coil maps replaced by an estimate from its own k-space
        (:func:`estimated_coil_physics`), as a scanner's file gets them in :meth:`load`.

        A simulation knows the coil maps it measured with; reconstructing with them hides the
        model error of estimated maps (large where the object fills the field of view).
        Benchmarks use this to reconstruct as the command line does.
        """
        from reddiff.operators.mri import CentredGrid

        physics = problem.physics
        on_grid, image_shape = (physics.grid, physics.image_shape) if isinstance(physics, CentredGrid) \
            else (physics, None)
        if getattr(on_grid, "coil_maps", None) is None:
            raise InputError("has no coil maps to estimate (single-coil k-space)", field="kspace")
        estimated, estimate = estimated_coil_physics(problem.y, physics.mask, sigma=float(physics.data_term.sigma),
                                                     image_shape=image_shape)
        return self._problem(problem.y, estimated, truth=problem.truth, source=problem.source,
                             info={**problem.info, "coil_map_estimate": estimate})

    def noise_level(self, problem: Problem) -> float:
        r""":math:`\sigma` of the k-space noise over the image scale (the prior's units)."""
        return float(problem.physics.data_term.sigma) / problem.image_scale

    def classical_methods(self, problem: Problem) -> list[Classical]:
        """SENSE-CG over its iteration count, and TV-regularised SENSE (FISTA, 100 iterations,
        real and imaginary parts regularised separately) over its weight, relative to the image scale."""
        from reddiff.operators import mri
        from reddiff.operators.base import tv_reconstruction

        scale = problem.image_scale
        return [Classical("SENSE-CG", "iterations", (5, 10, 20, 40),
                          lambda n: mri.sense_cg(problem.y, problem.physics, iterations=int(n)), integer=True),
                Classical("TV", "lam", (0.001, 0.003, 0.01, 0.03),
                          lambda lam: tv_reconstruction(problem.y, problem.physics, lam=lam * scale, iterations=100))]

    def reference_truth(self, array, unit: str) -> torch.Tensor:
        """A magnitude reference as a complex image with zero phase, ``(1, 2, H, W)``."""
        truth = super().reference_truth(array, unit)
        return torch.cat([truth, torch.zeros_like(truth)], dim=1)

    def truth_from_reference(self, problem: Problem, array, unit: str) -> torch.Tensor:
        r"""A magnitude reference (a DICOM's raw scanner values, any scale) as ``problem``'s truth,
        scaled by :meth:`match_scale` so its zero-filled image has the measurement's maximum:
        PSNR, error maps and coverage then compare images on one scale."""
        truth = self.reference_truth(array, unit)
        return truth * self.match_scale(problem, truth)

    def prior(self, problem: Problem, prior=None):
        """The prior rescaled so ``problem.image_scale`` maps to the magnitude 1 it was trained on
        (priors with an identity value transform only)."""
        from ..priors.base import AffineTransform

        chosen = super().prior(problem, prior)
        if problem.image_scale == 1.0 or chosen.transform.to_config().get("kind") != "identity":
            return chosen
        chosen = copy.copy(chosen)
        chosen.transform = AffineTransform(0.0, problem.image_scale, unit="a.u.")
        return chosen

    def reference_for(self, result, problem: Problem) -> torch.Tensor | None:
        r"""A magnitude-only reference (fastMRI's ``reconstruction_rss``) gets the mean's phase,
        :math:`x = |x_{ref}|\, \hat x / |\hat x|`, so errors and coverage measure magnitude and
        noise, not an unknowable phase."""
        if problem.truth is None:
            return None
        truth = problem.truth
        if bool(truth[:, 1].any()):
            return truth
        mean = result.tensor("mean")
        phase = torch.atan2(mean[:, 1], mean[:, 0])
        return torch.stack([truth[:, 0] * torch.cos(phase), truth[:, 0] * torch.sin(phase)], dim=1)

    def simulate_file(self, image, out: Path, *, acceleration: float = 4.0, center_fraction: float = 0.08,
                      coils: int = 8, sigma: float = 0.01, seed: int = 0, readout_oversampling: int = 2) -> list[Path]:
        """A fastMRI file from an MR image of any unit (``.npy`` and PNG included): each slice
        is scaled to maximum 1, the unit reddiff's MRI noise ``sigma`` is given in; the readout
        oversampled as :func:`reddiff.datasets.simulate_fastmri` does."""
        from reddiff.datasets import read_image, simulate_fastmri

        return [simulate_fastmri(read_image(image), out, acceleration=acceleration,
                                 center_fraction=center_fraction, coils=coils, sigma=sigma, seed=seed,
                                 readout_oversampling=readout_oversampling)]

    def canonical_problem(self, *, image=None, seed: int = 0, sigma: float = 0.01, acceleration: float = 4.0,
                          center_fraction: float = 0.08, readout_oversampling: int = 1) -> Problem:
        """``mr_small`` scaled to maximum 1 (or ``image``), 4x random lines with 8% of the centre,
        8 birdcage coils, k-space sigma 0.01 (``readout_oversampling``: as
        :func:`reddiff.operators.mri.simulate`)."""
        from reddiff.datasets import sample_image
        from reddiff.operators import mri

        if image is None:
            image = sample_image(self.demo.sample).array
            image = image / image.max()
        x = torch.as_tensor(np.asarray(image), dtype=torch.float32)[None, None]
        return self.from_measurement(mri.simulate(x, acceleration=acceleration, center_fraction=center_fraction,
                                                  mask="random", coils=8, sigma=sigma, seed=seed,
                                                  readout_oversampling=readout_oversampling))

    def measure(self, physics, image: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """k-space of ``image`` with complex Gaussian noise on the sampled points only, as scanners give."""
        clean = physics.A(image)
        noisy = physics.data_term.sample(clean, generator=generator)
        mask = physics.mask if clean.ndim == physics.mask.ndim else physics.mask.unsqueeze(2)
        return clean + (noisy - clean) * mask

    def match_scale(self, problem: Problem, image: torch.Tensor) -> float:
        r"""Reference magnitudes are relative: scaled so the zero-filled image of the new measurement
        has the maximum of ``problem``'s (:math:`s = \max|x_{zf}| / \max|x'_{zf}|`), so both have the
        same noise relative to the image."""
        from reddiff.operators import mri

        with torch.no_grad():
            peak = float(_magnitude(mri.zero_filled(problem.physics.A(image), problem.physics)).max())
        if not peak > 0:
            raise InputError("is zero wherever k-space is sampled", field="reference")
        return problem.image_scale / peak

    def calibration_images(self) -> dict[str, np.ndarray]:
        """The MNI152 T1 axial slices the mri prior was not trained on (60, 100) and two synthetic
        contrasts of each (new seeds), magnitudes scaled to maximum 1."""
        from reddiff.datasets import synthetic_mr_contrast
        from reddiff.priors.recipes import MRI_EVALUATION_SLICES, mni_volumes

        t1, maps = mni_volumes()
        images = {}
        for index in MRI_EVALUATION_SLICES:
            images[f"MNI152 T1 axial {index}"] = t1[index] / t1[index].max()
            for k in range(2):
                contrast = synthetic_mr_contrast({key: v[index] for key, v in maps.items()}, seed=(7, index, k))
                images[f"synthetic contrast {k} (MNI152 axial {index})"] = contrast
        return images

    def demo_measurement(self, out_dir: Path, *, seed: int = 0) -> tuple[Path, dict]:
        from reddiff.datasets import sample_image, simulate_fastmri

        path = simulate_fastmri(sample_image(self.demo.sample), Path(out_dir) / "measurement_kspace.h5",
                                acceleration=4.0, center_fraction=0.16, coils=8, seed=seed)
        return path, {}


def _centre_crop(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The centred ``shape`` of ``image`` (fastMRI's ``center_crop``: rows ``(H - h) // 2`` on).

    Examples
    --------
    >>> _centre_crop(np.arange(16).reshape(4, 4), (2, 3))
    array([[ 4,  5,  6],
           [ 8,  9, 10]])
    """
    top, left = ((n - m) // 2 for n, m in zip(image.shape[-2:], shape))
    return image[..., top:top + shape[0], left:left + shape[1]]


def phase_encode_edge_signal(image: torch.Tensor) -> float:
    """How far the object reaches the phase-encode edges of the field of view: the mean magnitude of the
    first and last column of ``image`` ``(1, 2, H, W)`` over its 99th percentile.

    >>> x = torch.zeros(1, 2, 8, 8); x[:, 0, 2:6, 2:6] = 1
    >>> phase_encode_edge_signal(x), phase_encode_edge_signal(x + 1) > 0.5
    (0.0, True)
    """
    magnitude = _magnitude(image)[0, 0]
    reference = float(torch.quantile(magnitude.flatten().float(), 0.99))
    return float(magnitude[..., [0, -1]].mean()) / reference if reference > 0 else 0.0


def estimated_coil_physics(y: torch.Tensor, mask: torch.Tensor, *, sigma: float, image_shape=None) -> tuple:
    r"""Multi-coil physics for ``y`` with coil maps estimated from its own k-space, and how they were.

    ESPIRiT (:func:`reddiff.operators.mri.estimate_sensitivity_maps`, its defaults: up to 24 rows by
    the fully sampled central columns, a square kernel a third of them wide, within 3 to 6, on twice
    the readout field of view, so an object that reaches the readout edges still fits the maps).
    Where the object also reaches the phase-encode edges (:func:`phase_encode_edge_signal` of the
    SENSE image over :data:`EDGE_SIGNAL`), ESPIRiT's periodic maps cannot follow it there and the
    maps are refitted on non-periodic polynomials, jointly with the image
    (:func:`reddiff.operators.mri.refine_sensitivity_maps`, JSENSE), where at least
    :data:`JSENSE_MIN_SAMPLED` of k-space is sampled.

    Parameters
    ----------
    y : torch.Tensor
        Multi-coil k-space ``(1, 2, coils, H, W)``.
    mask : torch.Tensor
        The sampling mask (any shape ending in ``(H, W)``).
    sigma : float
        k-space noise standard deviation (the data term's).
    image_shape : (int, int), optional
        As :func:`reddiff.operators.mri.mri_physics`.

    Returns
    -------
    physics : deepinv.physics.MultiCoilMRI or reddiff.operators.mri.CentredGrid
        :math:`y_c = M F (\hat S_c x)` with the estimated maps :math:`\hat S_c` and a Gaussian data term.
    estimate : str
        ``"ESPIRiT"`` or ``"ESPIRiT, refined by JSENSE"`` (``Problem.info["coil_map_estimate"]``).
    """
    from reddiff.operators import mri

    maps, estimate = mri.estimate_sensitivity_maps(y), "ESPIRiT"
    on_grid = mri.mri_physics(mask, coil_maps=maps)
    if float(on_grid.mask.mean()) >= JSENSE_MIN_SAMPLED and phase_encode_edge_signal(
            mri.sense_cg(y, on_grid, iterations=SENSE_ITERATIONS)) > EDGE_SIGNAL:
        maps, estimate = mri.refine_sensitivity_maps(y, mask, maps), "ESPIRiT, refined by JSENSE"
    return mri.mri_physics(mask, coil_maps=maps, sigma=sigma, image_shape=image_shape), estimate


def estimate_kspace_noise(kspace: torch.Tensor, mask: torch.Tensor, *, edge: float = 0.1) -> float:
    r"""Noise standard deviation of k-space from its outermost sampled rows.

    The readout edges of k-space hold little signal; the noise per real/imaginary
    part is estimated robustly there as :math:`\hat\sigma = 1.4826\,\mathrm{MAD}`.
    Residual signal makes this an over-estimate, never an under-estimate.

    Parameters
    ----------
    kspace : torch.Tensor
        ``(coils, H, W)`` complex.
    mask : torch.Tensor
        ``(H, W)`` sampling mask.
    edge : float
        Fraction of rows at each readout end used.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> k = torch.complex(torch.randn(2, 64, 64, generator=g), torch.randn(2, 64, 64, generator=g))
    >>> round(estimate_kspace_noise(0.1 * k, torch.ones(64, 64)), 2)
    0.1
    """
    rows = max(1, int(edge * kspace.shape[-2]))
    picked = torch.cat([kspace[..., :rows, :], kspace[..., -rows:, :]], dim=-2)
    sampled = torch.cat([mask[:rows], mask[-rows:]], dim=0).bool().expand_as(picked)
    values = torch.view_as_real(picked[sampled]).flatten()
    if values.numel() < 8:
        raise InputError("too few sampled k-space values to estimate the noise", field="kspace")
    sigma = 1.4826 * float((values - values.median()).abs().median())
    if not sigma > 0:
        raise InputError("k-space edges are exactly zero: cannot estimate the noise level", field="kspace")
    return sigma


def _magnitude(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).sum(1, keepdim=True).sqrt() if x.shape[1] == 2 else x.abs()


MODALITY = MRIModality()
