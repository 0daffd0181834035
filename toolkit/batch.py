"""Many measurement files in one run, as a Dask computation, with nothing lost.

:func:`run_batch` reconstructs every input into its own result folder under one
output folder: one Dask task per input, on a local cluster (one single-threaded
worker process per CPU core asked for) or on any running Dask cluster given by its
scheduler address (its workers should run one task at a time: ``--nthreads 1``;
torch parallelises inside a task) (``dask-jobqueue`` starts one on SLURM/PBS, ``dask-kubernetes`` on
Kubernetes; see the README). Each task writes its result as one unit
(:func:`reddiff.files.staged_output`), so an interrupted batch loses nothing that
finished; ``manifest.json`` records every input as it finishes (status, error,
files, seconds, seed, the configuration's hash) and is rewritten atomically. A
re-run skips inputs whose result exists with the same configuration, and a bad
file is recorded as failed while the others go on.

Seeds: input ``name`` runs with ``SeedSequence([seed, crc32(name)])``, so any result
can be reproduced alone with ``reddiff reconstruct --seed`` (the seed is in the
manifest and in the result's attributes).
"""

from __future__ import annotations

import glob
import hashlib
import json
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError, ReddiffError
from .files import atomic_write

MANIFEST = "manifest.json"
RUN_RECORD = "run.json"


@dataclass(frozen=True)
class BatchSettings:
    """What every input of a batch is reconstructed with (see :func:`reddiff.reconstruct`).

    Attributes
    ----------
    solver : dict
        Solver overrides (``steps``, ``lr``, ``lam``, ...); empty keeps each modality's defaults.
    prior : str, optional
        Prior name or folder; default each modality's.
    n_samples : int
    seed : int
        The batch seed; each input derives its own (:func:`input_seed`).
    formats : tuple of str
    device : str, optional
    threads : int
        Torch threads per task (1: one task per core).
    calibration : str
        ``"default"``, ``"none"`` or a calibration JSON (:func:`reddiff.calibration.resolve`).
    """

    solver: dict = field(default_factory=dict)
    prior: str | None = None
    n_samples: int = 8
    seed: int = 0
    formats: tuple = ("netcdf", "png")
    device: str | None = None
    threads: int = 1
    calibration: str = "default"

    def config_hash(self) -> str:
        """SHA-256 of the settings that shape a result (not ``threads`` or ``device``)."""
        from . import __version__

        shaping = {k: v for k, v in asdict(self).items() if k not in ("threads", "device")}
        text = json.dumps({"settings": shaping, "reddiff": __version__}, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()


def input_seed(seed: int, name: str) -> int:
    """The seed of the input called ``name`` in a batch seeded with ``seed``.

    Examples
    --------
    >>> input_seed(0, "a.h5") == input_seed(0, "a.h5") != input_seed(0, "b.h5")
    True
    """
    state = np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(34))  # a small non-negative int, easy to type back in


def expand_inputs(inputs) -> list[Path]:
    """Files from paths, folders (their files, not hidden ones), glob patterns and list files
    (``@list.txt``: one path per line, relative to the list's folder).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ("b.h5", "a.h5", ".hidden"):
    ...     _ = (folder / name).write_text("x")
    >>> [p.name for p in expand_inputs([folder])]
    ['a.h5', 'b.h5']
    """
    found: list[Path] = []
    for item in map(str, inputs):
        if item.startswith("@"):
            listing = Path(item[1:])
            try:
                lines = listing.read_text().splitlines()
            except OSError as err:
                raise InputError(f"cannot read the list of inputs ({err.strerror})", path=listing) from err
            found += [(listing.parent / line.strip()) for line in lines if line.strip() and not line.startswith("#")]
        elif Path(item).is_dir():
            found += sorted(p for p in Path(item).iterdir() if p.is_file() and not p.name.startswith("."))
        elif any(c in item for c in "*?["):
            found += sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
        else:
            found.append(Path(item))
    unique = list(dict.fromkeys(p.absolute() for p in found))
    if not unique:
        raise InputError(f"no input files in {', '.join(map(str, inputs))}", field="inputs")
    return unique


def output_names(paths) -> dict[Path, str]:
    """A distinct result folder name per input: the file name with dots as underscores
    (``ct.h5`` -> ``ct_h5``), numbered where two inputs share a name."""
    names, taken = {}, set()
    for path in paths:
        base = path.name.replace(".", "_")
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}-{k}"
        taken.add(name)
        names[path] = name
    return names


def reconstruct_file(path, out_dir, settings: BatchSettings, config_hash: str) -> dict:
    """One batch task: reconstruct ``path`` into the folder ``out_dir`` (as one unit) and
    return its manifest entry. Errors a file can cause are recorded, not raised."""
    import torch

    from .pipeline import (load_problem, reconstruct, reconstruct_volume, save_outputs, save_volume_outputs,
                           slice_indices)

    torch.set_num_threads(settings.threads)
    seed = input_seed(settings.seed, Path(path).name)
    entry = {"input": str(path), "output": str(out_dir), "seed": seed, "config_hash": config_hash}
    started = time.perf_counter()
    solve = {"prior": settings.prior, "n_samples": settings.n_samples, "device": settings.device,
             "calibration": settings.calibration, **settings.solver}
    try:
        if len(slice_indices(path)) > 1:  # a volume: every slice, slice k with seed + k
            volume = reconstruct_volume(path, seed=seed, formats=settings.formats, **solve)
            problem, psnr = volume.problem, volume.middle.dataset.attrs.get("psnr_db")
            record = {**entry, "modality": problem.modality, "slices": volume.slices, "psnr_db_middle_slice": psnr}
            written = save_volume_outputs(volume, out_dir, formats=settings.formats, overwrite=True,
                                          records={RUN_RECORD: record})
        else:
            problem = load_problem(path, seed=seed)
            result = reconstruct(problem, seed=seed, progress=False, **solve)
            record = {**entry, "modality": problem.modality, "psnr_db": result.dataset.attrs.get("psnr_db")}
            written = save_outputs(result, problem, out_dir, formats=settings.formats, overwrite=True,
                                   records={RUN_RECORD: record})
        entry.update(status="done", files=sorted(p.name for p in written.values()), modality=problem.modality)
    except (ReddiffError, OSError, ValueError, RuntimeError) as err:
        entry.update(status="failed", error=f"{type(err).__name__}: {err}")
    entry["seconds"] = round(time.perf_counter() - started, 2)
    return entry


def _finished(out_dir: Path, config_hash: str) -> bool:
    try:
        return json.loads((out_dir / RUN_RECORD).read_text()).get("config_hash") == config_hash
    except (OSError, ValueError):
        return False


def read_manifest(out_dir) -> dict:
    """The manifest of a batch folder (empty entries if none yet)."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return {"entries": {}}
    try:
        manifest = json.loads(path.read_text())
    except ValueError as err:
        raise InputError(f"cannot read the manifest: {err}", path=path) from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("entries"), dict):
        raise InputError("not a reddiff batch manifest", path=path)
    return manifest


def run_batch(inputs, out_dir, *, settings: BatchSettings | None = None, workers: int = 1,
              scheduler: str | None = None, client=None, progress: bool = True) -> dict:
    """Reconstruct many measurement files as Dask tasks; returns the manifest.

    Parameters
    ----------
    inputs : sequence of str or os.PathLike
        Files, folders, glob patterns or ``@list.txt`` files (:func:`expand_inputs`).
    out_dir : str or os.PathLike
        The batch folder: one result folder per input, and ``manifest.json``.
    settings : BatchSettings, optional
    workers : int
        Worker processes of the local cluster (each single-threaded).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``) to use instead.
    client : distributed.Client, optional
        An existing client (overrides ``workers`` and ``scheduler``).
    progress : bool
        Show a progress bar over the inputs.

    Returns
    -------
    dict
        The manifest: ``config``, ``config_hash`` and ``entries`` (input -> its record:
        ``status`` done, failed or skipped, ``error``, ``files``, ``seconds``, ``seed``).
    """
    from distributed import Client, LocalCluster, as_completed
    from tqdm.auto import tqdm

    settings = settings or BatchSettings()
    paths = expand_inputs(inputs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config_hash = settings.config_hash()
    manifest = read_manifest(out_dir)
    manifest.update(config=asdict(settings), config_hash=config_hash)
    names = output_names(paths)
    todo = []
    for path in paths:
        target = out_dir / names[path]
        if _finished(target, config_hash):
            manifest["entries"][str(path)] = {**manifest["entries"].get(str(path), {}), "status": "skipped",
                                              "output": str(target), "config_hash": config_hash}
        else:
            todo.append(path)
    _write_manifest(out_dir, manifest)
    if not todo:
        return manifest
    own = client is None
    if own:
        client = Client(scheduler) if scheduler else Client(LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None))
    try:
        futures = [client.submit(reconstruct_file, path, out_dir / names[path], settings, config_hash, pure=False)
                   for path in todo]  # not pure: a key shared with an earlier batch would return its result
        with tqdm(total=len(futures), desc="batch", unit="input", disable=not progress) as bar:
            for future in as_completed(futures):
                entry = future.result()
                manifest["entries"][entry["input"]] = entry
                _write_manifest(out_dir, manifest)
                bar.set_postfix(failed=sum(e.get("status") == "failed" for e in manifest["entries"].values()))
                bar.update()
    finally:
        if own:
            client.close()
    return manifest


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2, default=list) + "\n"
    atomic_write(out_dir / MANIFEST, lambda tmp: Path(tmp).write_text(text))
