"""The demo: a held-out real image, a simulated measurement file, RED-Diff with
uncertainty beside the classical baseline, written to a folder.

Every step is the one a user runs on their own data (``reddiff simulate`` then
``reddiff reconstruct``): the measurement goes through a real file on disk.
The images are held out from the priors' training sets
(:func:`reddiff.datasets.list_samples` with ``held_out=True``).
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError

#: Modality -> (sample image, what is simulated), as the demo runs it.
DEMOS = {
    "ct": ("ct_small", "sparse-view CT: 30 parallel-beam views, 1e5 photons per bin"),
    "mri": ("mr_small", "4x accelerated 8-coil Cartesian MRI, random lines, 16% centre (coil maps by ESPIRiT)"),
    "astro": ("m13", "Moffat-blurred CCD frame (FWHM 3 px), sky 10 e-, read noise 3 e-, 128x128 cutout"),
}


def simulate_demo_measurement(modality: str, out_dir, *, seed: int = 0) -> tuple[Path, dict]:
    """Write the demo's measurement file into ``out_dir`` (``seed`` seeds its noise and mask).

    Returns
    -------
    (Path, dict)
        The measurement file and the keyword arguments :func:`reddiff.pipeline.load_problem`
        needs for it (``reference=`` the clean image where the file holds none).
    """
    from reddiff.datasets import sample_image, sample_path, simulate_fastmri, simulate_sinogram

    if modality not in DEMOS:
        raise InputError(f"unknown demo {modality!r}; expected one of {', '.join(DEMOS)}", field="modality")
    out_dir = Path(out_dir)
    sample = DEMOS[modality][0]
    if modality == "ct":
        path = simulate_sinogram(sample_image(sample), out_dir / "measurement_sinogram.h5", views=30, I0=1e5,
                                 seed=seed)
        return path, {"reference": sample_path(sample)}
    if modality == "mri":
        return simulate_fastmri(sample_image(sample), out_dir / "measurement_kspace.h5", acceleration=4.0,
                                center_fraction=0.16, coils=8, seed=seed), {}
    cutout = _sky_cutout(sample_path(sample), out_dir / "reference_sky.fits", size=128)
    from reddiff.datasets import read_fits, simulate_sky

    path = simulate_sky(read_fits(cutout), out_dir / "measurement_sky.fits", out_dir / "measurement_psf.fits",
                        seed=seed)
    return path, {"reference": cutout}


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


def run_demo(out_dir, *, modality: str = "ct", n_samples: int = 4, seed: int = 0, callback=None,
             **overrides):
    """Simulate, reconstruct and write the demo for one modality.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Created if missing; receives the measurement file, ``reconstruction.nc``
        (plus DICOM/FITS), ``uncertainty.png`` and ``report.md``.
    modality : {"ct", "mri", "astro"}
    n_samples : int
        RED-Diff runs for the uncertainty map.
    seed : int
        Seeds the simulated measurement and the solver.
    callback : callable, optional
        Progress callback for the solver.
    **overrides
        Solver settings replacing :data:`reddiff.defaults.DEFAULTS` (e.g. ``steps``).

    Returns
    -------
    (Reconstruction, dict)
        The result and the files written (kind -> path).
    """
    from .pipeline import load_problem, reconstruct, save_outputs

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path, options = simulate_demo_measurement(modality, out_dir, seed=seed)
    problem = load_problem(path, **options)
    result = reconstruct(problem, n_samples=n_samples, seed=seed, callback=callback, **overrides)
    formats = {"ct": ("netcdf", "dicom", "png"), "mri": ("netcdf", "png"), "astro": ("netcdf", "fits", "png")}
    written = save_outputs(result, problem, out_dir, formats=formats[modality])
    return result, {"measurement": path, **written}
