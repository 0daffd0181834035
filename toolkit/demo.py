"""The demo: a held-out real image, a simulated measurement file, RED-Diff with
uncertainty beside the classical baseline, written to a folder.

Every step is the one a user runs on their own data (``reddiff simulate`` then
``reddiff reconstruct``): the measurement goes through a real file on disk. What
is simulated, and from which held-out sample image
(:func:`reddiff.datasets.list_samples` with ``held_out=True``), is each modality's
:attr:`reddiff.modalities.Modality.demo`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import modalities


def run_demo(out_dir, *, modality: str = "ct", n_samples: int = 4, seed: int = 0, callback=None,
             overwrite: bool = False, **overrides):
    """Simulate, reconstruct and write the demo for one modality.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Created, as one unit, with the measurement files, ``reconstruction.nc``
        (plus DICOM/FITS), ``uncertainty.png`` and ``report.md``.
    modality : str
        A registered modality (:func:`reddiff.modalities.names`).
    n_samples : int
        RED-Diff runs for the uncertainty map.
    seed : int
        Seeds the simulated measurement and the solver.
    callback : callable, optional
        Progress callback for the solver.
    overwrite : bool
        Replace an earlier demo in ``out_dir``.
    **overrides
        Solver settings replacing the modality's defaults (e.g. ``steps``).

    Returns
    -------
    (Reconstruction, dict)
        The result and the files written (kind -> path).
    """
    from .pipeline import load_problem, reconstruct, save_outputs

    from .files import check_output_folder, locked_output

    chosen = modalities.get(modality)
    out_dir = check_output_folder(out_dir, overwrite=overwrite)
    with locked_output(out_dir), tempfile.TemporaryDirectory(dir=out_dir.parent,
                                                            prefix=f".{out_dir.name}.inputs-") as inputs:
        path, options = chosen.demo_measurement(Path(inputs), seed=seed)
        problem = load_problem(path, **options)
        result = reconstruct(problem, n_samples=n_samples, seed=seed, callback=callback, **overrides)
        measured = {"measurement": path, **{p.stem: p for p in Path(inputs).iterdir() if p != path}}
        written = save_outputs(result, problem, out_dir, formats=chosen.demo.formats, overwrite=overwrite,
                               extra_files=measured)
    return result, written
