r"""Telescope imaging: a blurred CCD frame (FITS) and its PSF in, a deblurred sky out (electrons).

Frames are in electrons: as read for ``BUNIT = 'electron'``, else ADU times the ``GAIN``
card or ``--gain`` (a file in ADU without either is refused). ``RDNOISE`` (or
``--read-noise``) and reddiff's ``SKYLEVEL`` card are in electrons; without them the sky
and read noise are estimated from the frame (sigma-clipped statistics). The PSF is the
file the ``PSFFILE`` card names, or ``--psf`` (a FITS file, or a model ``moffat:FWHM`` /
``gaussian:FWHM`` in pixels). The frame is the first image HDU, or ``--extension``
(an index, 0 the primary HDU, or an ``EXTNAME``); an option rather than the
``file.fits[2]`` syntax, because every command finds a file's kind from the file
itself, so the path must name an existing file. Every option is checked before the
solve, and a bad value is an error naming the option. The data term is shifted Poisson
(photon noise on the sky plus Gaussian read noise); the baseline is Richardson-Lucy, and
RED-Diff starts from an under-converged Richardson-Lucy image.

A frame that is a cube (planes x H x W, e.g. a spectral cube) is reconstructed plane by
plane (``slice_index`` is the plane; only that plane is read), each with its own sky and
noise estimate; the PSF is one 2-D PSF for every plane, or a PSF cube with one plane per
frame plane. Results go back into a FITS cube with the cube's 3-D WCS.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch

from ..defaults import SolverDefaults
from ..errors import InputError
from ..likelihood import ShiftedPoissonLikelihood
from .base import Classical, Demo, Modality, Option, Problem

#: Richardson-Lucy iterations of the baseline, and of RED-Diff's starting image
#: (an under-converged RL start measured 0.8-1.6 dB better than the converged one).
RL_ITERATIONS = 30
RL_INIT_ITERATIONS = 10
#: Percentile of the starting image taken as a frame's floor (its sky level and any pedestal left in it).
FLOOR_PERCENTILE = 5.0


class AstroModality(Modality):
    """Deconvolution of telescope frames (FITS with a PSF file)."""

    name = "astro"
    aliases = ("telescope", "sky")
    title = "telescope imaging"
    file_kinds = ("fits",)
    output_formats = ("netcdf", "png", "fits")
    #: Tuned on the Hubble deep field's three untrained fields (Moffat PSF FWHM 3 px, sky 3/10/30 e-,
    #: read noise 3 e-), score their mean PSNR: t_max 40 (the top of the timestep grid; the paper's
    #: full range T-1 gave 41.18 dB at 50 steps, t_max 600/150/40/10 gave 41.79/41.93/42.39/42.17),
    #: then lr x steps at t_max 40 (``python benchmarks/tune_defaults.py --modality astro --t-max 40``):
    #: lr 0.001 with 100 steps 42.87 dB (200 steps 42.92, a tie within 0.1 dB, so the cheaper;
    #: lr 0.000333 at most 42.62, lr 0.003 at most 42.80; ``docs/tuning.md``). Noise reference
    #: :math:`\sqrt{b + r^2}` electrons. lam_target: the median deviance ratio of the PSNR-best fixed
    #: weight on those three fields at the earlier setting (T-1, 50 steps)
    #: (``benchmarks/auto_lam.py --modality astro --sweep --multiples 0.5 1 1.5 2 3``: 0.91, 1.02, 0.95).
    defaults = SolverDefaults(prior="astro", steps=100, lr=0.001, lam=100.0, noise_reference=19 ** 0.5,
                              weighting="sqrt", timesteps="descending", sigma_x0=0.0, lam_target=0.95, t_max=40)
    load_options = (
        Option("psf", None, "Astro: the PSF, a FITS file or a model moffat:FWHM or gaussian:FWHM (FWHM in pixels) "
               "(default the PSFFILE card's file).", type=str),
        Option("gain", None, "Astro: electrons per ADU of a frame in ADU (replaces the header's GAIN).", type=float),
        Option("read_noise", None, "Astro: read noise in electrons (replaces the header's RDNOISE; default the card, "
               "else estimated from the frame).", type=float),
        Option("extension", None, "Astro: the FITS HDU holding the frame, an index (0: primary) or EXTNAME "
               "(default the first image HDU).", type=str),
    )
    measurement_suffixes = (".fits", ".fit", ".fts")
    calibration_proxy = "gradient"  # raised Spearman and steadied the factor on every reference (docs/uncertainty.md)
    simulate_options = (
        Option("fwhm", 3.0, "Astro: Moffat PSF FWHM in pixels."),
        Option("background", 10.0, "Astro: sky electrons per pixel."),
        Option("read_noise", 3.0, "Astro: read noise, electrons."),
    )
    demo = Demo("m13", "Moffat-blurred CCD frame (FWHM 3 px), sky 10 e-, read noise 3 e-, 128x128 cutout",
                formats=("netcdf", "fits", "png"))

    def slice_count(self, path, *, extension: int | str | None = None, **options) -> int:
        """The planes of the frame's HDU (1 for a 2-D image)."""
        return _read_frame(path, extension, count=True)

    def load(self, path, *, seed: int = 0, slice_index: int = 0, psf=None, gain: float | None = None,
             read_noise: float | None = None, extension: int | str | None = None) -> Problem:
        from astropy.stats import sigma_clipped_stats

        from reddiff.operators import telescope

        gain = _option_number(gain, "--gain", above=0.0)
        read_noise = _option_number(read_noise, "--read-noise", at_least=0.0)
        sky = _read_frame(path, extension, plane=slice_index).with_detector(gain=gain, read_noise=read_noise)
        if gain is not None and sky.in_electrons:
            raise InputError(f"--gain {gain:g} given, but the frame is in electrons already (BUNIT = "
                             f"{sky.unit!r})", path=sky.path, field="--gain")
        if sky.gain is None and not sky.in_electrons:
            raise InputError(f"the frame is in {sky.unit!r} and the header has no gain card; give electrons per "
                             "ADU with --gain", path=sky.path, field="--gain")
        kernel = telescope.as_psf(_psf(psf, sky))
        electrons = np.where(sky.valid, sky.electrons(), np.nan)  # ADU x GAIN, or as is if in electrons
        _, sky_median, sky_std = sigma_clipped_stats(electrons[np.isfinite(electrons)], sigma=3.0)
        background = float(sky.header.get("SKYLEVEL", sky_median))  # reddiff's card, in electrons
        read_noise = sky.read_noise if sky.read_noise is not None else \
            math.sqrt(max(float(sky_std) ** 2 - max(background, 0.0), 1.0))
        y = torch.from_numpy(np.nan_to_num(electrons, nan=background).astype(np.float32))[None, None]
        physics = telescope.blur_physics(kernel)
        physics.data_term = ShiftedPoissonLikelihood(max(background, 0.0), read_noise)
        return self._problem(y, physics, source=sky, info={"path": str(sky.path), "hdu": sky.hdu, "plane": sky.plane,
                                                           "gain": sky.gain, "read_noise": read_noise,
                                                           "psf": _psf_name(psf, sky)})

    def from_measurement(self, measurement, *, source=None) -> Problem:
        return self._problem(measurement.y, measurement.physics, truth=measurement.x_true, source=source,
                             info=dict(measurement.info))

    def _problem(self, y, physics, *, truth=None, source=None, info=None) -> Problem:
        from reddiff.operators import telescope

        term = getattr(physics, "data_term", None)
        if not isinstance(term, ShiftedPoissonLikelihood):
            raise InputError("a telescope problem needs physics.data_term = ShiftedPoissonLikelihood",
                             field="data_term")
        start = telescope.richardson_lucy(y, physics, background=term.background, read_noise=term.read_noise,
                                          iterations=RL_INIT_ITERATIONS)
        baseline = telescope.richardson_lucy(y, physics, background=term.background, read_noise=term.read_noise,
                                             iterations=RL_ITERATIONS - RL_INIT_ITERATIONS, init=start)
        return Problem(self.name, y, physics, baseline, f"Richardson-Lucy ({RL_ITERATIONS} it.)", init=start,
                       measurement_image=y - term.background, measurement_name="Frame - sky", truth=truth,
                       source=source,
                       description=f"telescope, PSF {tuple(physics.filter.shape[-2:])}, {term!r}", info=info or {})

    def prior(self, problem: Problem, prior=None):
        r"""The prior, its asinh stretch moved down to a frame whose floor is above every sky it was
        trained on (a CCD pedestal or a bright sky left in the image).

        With :math:`f` the :data:`FLOOR_PERCENTILE` th percentile of the starting image and
        :math:`s_{max}` the brightest trained sky (:data:`reddiff.priors.recipes.VARIED_SKY_LEVELS`),
        the transform's background :math:`b` becomes :math:`b + \max(0, f - s_{max})`: the frame's
        floor sits at the top of the trained skies instead of far beyond them, where the stretch is
        logarithmic and the prior has never seen an image. Frames with a trained sky are untouched.
        """
        from ..priors.base import AsinhTransform
        from ..priors.recipes import VARIED_SKY_LEVELS

        chosen = super().prior(problem, prior)
        if not isinstance(chosen.transform, AsinhTransform):
            return chosen
        values = problem.init.flatten().float()  # kthvalue: torch.quantile refuses frames over 2**24 pixels
        floor = float(values.kthvalue(max(1, round(FLOOR_PERCENTILE / 100 * values.numel()))).values)
        shift = floor - VARIED_SKY_LEVELS[1]
        if shift <= 0:
            return chosen
        chosen, transform = copy.copy(chosen), copy.copy(chosen.transform)
        transform.background += shift
        chosen.transform = transform
        return chosen

    def noise_level(self, problem: Problem) -> float:
        r""":math:`\sqrt{b + r^2}` electrons (sky photon noise and read noise), at least 1."""
        term = problem.physics.data_term
        return max(math.sqrt(term.background + term.read_noise ** 2), 1.0)

    def classical_methods(self, problem: Problem) -> list[Classical]:
        """Richardson-Lucy over its iteration count (early stopping is its regulariser), and
        Wiener filtering over its balance."""
        from reddiff.operators import telescope

        term = problem.physics.data_term
        noise = {"background": term.background, "read_noise": term.read_noise}
        return [Classical("Richardson-Lucy", "iterations", (5, 10, 20, 30, 50, 100),
                          lambda n: telescope.richardson_lucy(problem.y, problem.physics, iterations=int(n), **noise),
                          integer=True),
                Classical("Wiener", "balance", (1e-3, 1e-2, 1e-1),
                          lambda b: telescope.wiener(problem.y, problem.physics, balance=b, **noise))]

    def to_display_units(self, result):
        return result.in_units(scale=1.0, units="electron")

    def simulate_file(self, image, out: Path, *, fwhm: float = 3.0, background: float = 10.0,
                      read_noise: float = 3.0, seed: int = 0) -> list[Path]:
        """A blurred, noisy frame and its PSF file from a sky image whose values are taken as
        electrons, whatever its unit (a unitless ``.npy`` or PNG too; scale it first for
        another photon level). Negative values are refused."""
        from reddiff.datasets import detect_format, read_fits, read_image, simulate_sky
        from reddiff.operators import telescope

        source = read_fits(image) if detect_format(image) == "fits" else read_image(image)
        psf_path = Path(out).with_name(Path(out).name.split(".")[0] + "_psf.fits")
        return [simulate_sky(source, out, psf_path, psf=telescope.moffat_psf(fwhm), background=background,
                             read_noise=read_noise, seed=seed), psf_path]

    def canonical_problem(self, *, image=None, seed: int = 0, background: float = 10.0,
                          read_noise: float = 3.0) -> Problem:
        """The centre 128x128 of ``m13`` as counts (or ``image``), Moffat PSF (FWHM 3 px),
        sky 10 electrons, read noise 3."""
        from reddiff.datasets import sample_image
        from reddiff.operators import telescope

        if image is None:
            array = sample_image(self.demo.sample).array
            r, c = (array.shape[0] - 128) // 2, (array.shape[1] - 128) // 2
            image = array[r:r + 128, c:c + 128]
        x = torch.as_tensor(np.asarray(image), dtype=torch.float32)[None, None]
        return self.from_measurement(telescope.simulate(x, psf=telescope.moffat_psf(), background=background,
                                                        read_noise=read_noise, seed=seed))

    def match_scale(self, problem: Problem, image: torch.Tensor) -> float:
        """Reference frames come in any units and depth: scaled so their 99.9th percentile matches that
        of ``problem``'s Richardson-Lucy image (same brightness, so the same photon noise)."""
        target = float(torch.quantile(problem.baseline.flatten().float(), 0.999))
        peak = float(torch.quantile(image.flatten().float(), 0.999))
        if not (peak > 0 and target > 0):
            raise InputError("has no bright pixels to match the measurement's brightness", field="reference")
        return target / peak

    def calibration_images(self) -> dict[str, np.ndarray]:
        """Six simulated 128x128 fields (Sersic galaxies, Moffat stars, flat sky) of seeds 1000-1005
        and three varied ones (diffuse emission, dark to bright sky, sparse to crowded stars) of
        seeds 1000-1002, which the astro prior was not trained on, in counts."""
        from reddiff.priors.recipes import simulated_sky, varied_sky

        images = {f"simulated field (seed {s})": simulated_sky(128, seed=s) for s in range(1000, 1006)}
        return images | {f"varied field (seed {s})": varied_sky(128, seed=s) for s in range(1000, 1003)}

    def tuning_images(self) -> dict[str, np.ndarray]:
        """Three 128x128 fields of hubble_deep_field's columns 872-999, which the astro prior did not
        train on (:func:`reddiff.priors.recipes.hubble_untrained_fields`), in counts."""
        from reddiff.priors.recipes import hubble_untrained_fields

        return hubble_untrained_fields()

    def demo_measurement(self, out_dir: Path, *, seed: int = 0) -> tuple[Path, dict]:
        from reddiff.datasets import read_fits, sample_path, simulate_sky

        out_dir = Path(out_dir)
        cutout = _sky_cutout(sample_path(self.demo.sample), out_dir / "reference_sky.fits", size=128)
        path = simulate_sky(read_fits(cutout), out_dir / "measurement_sky.fits", out_dir / "measurement_psf.fits",
                            seed=seed)
        return path, {"reference": cutout}


#: PSF models ``--psf NAME:FWHM`` may name (FWHM in pixels), from :mod:`reddiff.operators.telescope`.
PSF_MODELS = ("moffat", "gaussian")


def _read_frame(path, extension, *, plane: int = 0, count: bool = False):
    """Plane ``plane`` of the frame in HDU ``extension`` (an index, an index as text, or an
    ``EXTNAME``), or of the first image HDU (``count``: how many planes it has); a missing or
    image-less HDU is an error naming ``--extension``."""
    from reddiff.datasets.fits import count_planes, read_fits

    hdu = None
    if extension is not None:
        text = str(extension).strip()
        if not text or isinstance(extension, bool):
            raise InputError(f"expected an HDU index (0, 1, ...) or EXTNAME, got {extension!r}", path=path,
                             field="--extension")
        hdu = int(text) if text.isdigit() else text
    try:
        return count_planes(path, hdu=hdu) if count else read_fits(path, hdu=hdu, plane=plane)
    except InputError as err:
        if err.field != "hdu":
            raise
        raise InputError(err.message, path=err.path, field="--extension") from None


def _option_number(value, flag: str, *, above: float | None = None, at_least: float | None = None):
    """``value`` as a float checked against its bound, or None; an error names ``flag``."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or (above is not None and number <= above) or \
            (at_least is not None and number < at_least):
        wanted = f"above {above:g}" if above is not None else f"at least {at_least:g}"
        raise InputError(f"expected a finite number {wanted}, got {value!r}", field=flag)
    return number


def _psf(spec, sky):
    """The PSF ``spec`` names for the frame ``sky``: data as given; a model ``moffat:FWHM`` or
    ``gaussian:FWHM``; a FITS file; by default the file of the frame's ``PSFFILE`` card."""
    if spec is None:
        name = sky.header.get("PSFFILE")
        if not name:
            raise InputError("has no PSFFILE card; give the PSF with --psf FILE, --psf moffat:FWHM or "
                             "--psf gaussian:FWHM", path=sky.path, field="PSFFILE")
        return _psf_file(Path(sky.path).parent / str(name), sky, "PSFFILE")
    if not isinstance(spec, (str, Path)):
        return spec
    model, sep, width = str(spec).partition(":")
    if sep and model.strip().lower() in PSF_MODELS:
        return _psf_model(model.strip().lower(), width, sky, spec)
    if not Path(spec).is_file():
        raise InputError(f"{str(spec)!r} is neither a FITS file nor a model "
                         f"({' or '.join(m + ':FWHM' for m in PSF_MODELS)}, FWHM in pixels)", field="--psf")
    try:
        return _psf_file(spec, sky, "--psf")
    except InputError as err:
        raise InputError(err.message, path=err.path, field="--psf") from None


def _psf_file(path, sky, field: str):
    """The PSF in a FITS file for the frame ``sky``: a 2-D PSF for any plane, or the plane of a PSF
    cube that has one plane per plane of the frame's cube (other plane counts are refused)."""
    from reddiff.datasets.fits import count_planes, read_psf

    planes = count_planes(path)
    if planes > 1 and planes != sky.n_planes:
        frame = f"a cube of {sky.n_planes} planes" if sky.n_planes > 1 else "one 2-D image"
        raise InputError(f"the PSF is a cube of {planes} planes and the frame {frame}: give one 2-D PSF for every "
                         "plane, or a PSF cube with one plane per frame plane", path=path, field=field)
    return read_psf(path, plane=sky.plane if planes > 1 else None)


def _psf_model(model: str, width: str, sky, spec):
    """A Moffat or Gaussian PSF of FWHM ``width`` pixels, which must be narrower than the frame."""
    from reddiff.operators import telescope

    fwhm = _option_number(width.strip() or None, "--psf", above=0.0)
    if fwhm is None:
        raise InputError(f"{spec!r} gives no FWHM; expected {model}:FWHM in pixels, e.g. {model}:3", field="--psf")
    if fwhm >= min(sky.array.shape[-2:]):
        raise InputError(f"FWHM {fwhm:g} pixels is as wide as the frame {sky.array.shape[-2:]}; expected the FWHM "
                         "in pixels", path=sky.path, field="--psf")
    try:
        return telescope.moffat_psf(fwhm) if model == "moffat" else telescope.gaussian_psf(fwhm)
    except InputError as err:
        raise InputError(err.message, field="--psf") from None


def _psf_name(spec, sky) -> str:
    """What the PSF was, for the record: the model or file given, or the PSFFILE card's file."""
    if spec is None:
        return str(Path(sky.path).parent / str(sky.header.get("PSFFILE")))
    return str(spec) if isinstance(spec, (str, Path)) else "array"


def _sky_cutout(path, out, *, size: int) -> Path:
    """A ``size`` x ``size`` centre cutout of a FITS image, its WCS shifted to match."""
    from astropy.io import fits
    from astropy.nddata import Cutout2D

    from reddiff.datasets import read_fits
    from reddiff.datasets._io import write_file

    sky = read_fits(path)
    centre = (sky.array.shape[1] / 2, sky.array.shape[0] / 2)
    cut = Cutout2D(sky.array, centre, size, wcs=sky.wcs)
    header = cut.wcs.to_header()
    header["BUNIT"] = ("electron", "demo: the survey's values taken as electrons")
    return write_file(out, lambda tmp: fits.PrimaryHDU(cut.data.astype("float32"), header=header).writeto(tmp))


MODALITY = AstroModality()
