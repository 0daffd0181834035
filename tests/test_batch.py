"""`reddiff batch`: many files as Dask tasks, a manifest, failures recorded, re-runs skip, outputs whole."""

import json

import numpy as np
import pytest
from distributed import Client, LocalCluster
from typer.testing import CliRunner

from reddiff.batch import BatchSettings, expand_inputs, input_seed, output_names, run_batch
from reddiff.cli import app
from reddiff.datasets import sample_image, simulate_sinogram


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("in")
    hu = sample_image("ct_small").array[::4, ::4]
    for k in range(2):
        simulate_sinogram(hu, folder / f"ct{k}.h5", views=8, I0=1e5, pixel_spacing_mm=2.6, seed=k)
    (folder / "broken.h5").write_bytes(b"not an hdf5 file")
    return folder


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


SETTINGS = BatchSettings(solver={"steps": 2}, n_samples=2, formats=("netcdf",))


def test_a_batch_records_every_input_and_goes_on_past_a_bad_one(inputs, tmp_path, client):
    manifest = run_batch([inputs], tmp_path / "batch", settings=SETTINGS, client=client, progress=False)
    entries = {k.rsplit("/", 1)[-1]: v for k, v in manifest["entries"].items()}
    assert {k: v["status"] for k, v in entries.items()} == {"broken.h5": "failed", "ct0.h5": "done",
                                                            "ct1.h5": "done"}
    assert "broken.h5" in entries["broken.h5"]["error"]
    assert set(entries["ct0.h5"]["files"]) == {"reconstruction.nc", "run.json"}
    assert entries["ct0.h5"]["seed"] == input_seed(0, "ct0.h5")
    on_disk = json.loads((tmp_path / "batch" / "manifest.json").read_text())
    assert on_disk["config_hash"] == SETTINGS.config_hash() and len(on_disk["entries"]) == 3
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == ["ct0_h5", "ct1_h5", "manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch"]  # no staging or lock files left


def test_a_rerun_skips_finished_inputs_and_redoes_them_when_settings_change(inputs, tmp_path, client):
    first = run_batch([inputs], tmp_path / "b", settings=SETTINGS, client=client, progress=False)
    assert sorted(e["status"] for e in first["entries"].values()) == ["done", "done", "failed"], first
    before = (tmp_path / "b" / "ct0_h5" / "reconstruction.nc").stat().st_mtime_ns
    again = run_batch([inputs], tmp_path / "b", settings=SETTINGS, client=client, progress=False)
    statuses = sorted(e["status"] for e in again["entries"].values())
    assert statuses == ["failed", "skipped", "skipped"]
    assert (tmp_path / "b" / "ct0_h5" / "reconstruction.nc").stat().st_mtime_ns == before
    changed = BatchSettings(solver={"steps": 3}, n_samples=2, formats=("netcdf",))
    third = run_batch([inputs / "ct0.h5"], tmp_path / "b", settings=changed, client=client, progress=False)
    assert third["entries"][str(inputs / "ct0.h5")]["status"] == "done"


def test_a_multi_slice_input_is_reconstructed_whole_as_one_task(tmp_path, client):
    import xarray as xr

    folder = tmp_path / "in"
    folder.mkdir()
    hu = sample_image("ct_small").array[::4, ::4]
    simulate_sinogram(np.stack([hu, hu[::-1], hu[:, ::-1]]), folder / "stack.h5", views=8, I0=1e5,
                      pixel_spacing_mm=2.6, seed=0, unit="HU")
    manifest = run_batch([folder], tmp_path / "batch", settings=SETTINGS, client=client, progress=False)
    (entry,) = manifest["entries"].values()
    assert entry["status"] == "done", entry
    with xr.open_dataset(tmp_path / "batch" / "stack_h5" / "reconstruction.nc", engine="h5netcdf") as ds:
        assert ds.sizes["slice"] == 3
    run = json.loads((tmp_path / "batch" / "stack_h5" / "run.json").read_text())
    assert run["slices"] == [0, 1, 2]


def test_inputs_from_globs_lists_and_names_without_collisions(inputs, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# scans\n{inputs / 'ct0.h5'}\n")
    assert expand_inputs([f"@{listing}", str(inputs / "ct*.h5")]) == [inputs / "ct0.h5", inputs / "ct1.h5"]
    names = output_names([tmp_path / "a" / "x.h5", tmp_path / "b" / "x.h5"])
    assert sorted(names.values()) == ["x_h5", "x_h5-2"]


@pytest.mark.slow
def test_the_batch_command_on_a_local_cluster(inputs, tmp_path):
    """Two worker processes, a corrupt file between two good ones: both good ones finish."""
    result = CliRunner().invoke(app, ["batch", str(inputs / "ct0.h5"), str(inputs / "broken.h5"),
                                      str(inputs / "ct1.h5"), "--out", str(tmp_path / "o"), "--workers", "2",
                                      "--steps", "2", "--samples", "1", "--format", "netcdf", "--quiet"])
    assert result.exit_code == 1, result.output
    assert "2 done, 1 failed" in result.output and "failed: " in result.output and "broken.h5" in result.output
    for name in ("ct0_h5", "ct1_h5"):
        assert (tmp_path / "o" / name / "reconstruction.nc").is_file()
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert sorted(e["status"] for e in manifest["entries"].values()) == ["done", "done", "failed"]


@pytest.mark.slow
def test_a_killed_batch_keeps_every_finished_result_and_a_rerun_completes_the_rest(tmp_path):
    """A batch killed part-way (SIGKILL of the whole process group, after the first input is
    recorded) leaves the finished results whole; a re-run skips them and does the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import xarray as xr

    folder = tmp_path / "in"
    folder.mkdir()
    hu = sample_image("ct_small").array[::4, ::4]
    for k in range(4):
        simulate_sinogram(hu, folder / f"ct{k}.h5", views=8, I0=1e5, pixel_spacing_mm=2.6, seed=k)
    out = tmp_path / "batch"
    command = [sys.executable, "-m", "reddiff", "batch", str(folder), "--out", str(out), "--steps", "20",
               "--samples", "2", "--format", "netcdf", "--quiet", "--calibration", "none"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    manifest_path = out / "manifest.json"
    deadline = time.monotonic() + 240
    done = []
    while time.monotonic() < deadline and process.poll() is None:
        if manifest_path.exists():
            entries = json.loads(manifest_path.read_text())["entries"]
            done = [k for k, v in entries.items() if v["status"] == "done"]
            if done:
                break
        time.sleep(0.2)
    assert done, "no input finished before the deadline"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    entries = json.loads(manifest_path.read_text())["entries"]
    finished = {k for k, v in entries.items() if v["status"] == "done"}
    for name in finished:
        with xr.open_dataset(out / entries[name]["output"].rsplit("/", 1)[-1] / "reconstruction.nc",
                             engine="h5netcdf") as ds:
            assert ds["reconstruction_mean"].shape[-2:] == (32, 32)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    entries = json.loads(manifest_path.read_text())["entries"]
    statuses = {k.rsplit("/", 1)[-1]: v["status"] for k, v in entries.items()}
    assert set(statuses) == {f"ct{k}.h5" for k in range(4)}
    assert all(statuses[k.rsplit("/", 1)[-1]] == "skipped" for k in finished)
    assert sum(s == "done" for s in statuses.values()) == 4 - len(finished)
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers
