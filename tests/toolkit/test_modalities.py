"""The modality registry: names, files, aliases, plug-ins; and the worked example of
docs/adding-a-modality.md, registered from here and run end to end through the CLI."""

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from reddiff import InputError, modalities
from reddiff.cli import app
from reddiff.datasets import list_samples, sample_image, sample_path, simulate_fastmri, simulate_sinogram, simulate_sky

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding-a-modality.md"


def _doc_modality():
    """The DenoiseModality class defined by the doc's Python block, executed as written."""
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    namespace = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace["DenoiseModality"]


@pytest.fixture
def denoise():
    modality = modalities.register(_doc_modality())
    yield modality
    modalities.unregister(modality.name)


def test_builtin_modalities_and_their_one_name_each():
    assert modalities.names()[:3] == ("ct", "mri", "astro")
    for name in modalities.names():
        modality = modalities.get(name)
        assert modality.name == name and modality.defaults.prior == name
        assert set(modality.demo.formats) <= set(modality.output_formats)
    assert dict(modalities.DEFAULTS) == {n: modalities.get(n).defaults for n in modalities.names()}


@pytest.mark.parametrize("old", ["telescope", "sky"])
def test_old_names_work_with_a_deprecation_warning(old):
    with pytest.warns(DeprecationWarning, match="use 'astro'"):
        assert modalities.get(old) is modalities.get("astro")


def test_unknown_modality_names_the_known_ones():
    with pytest.raises(InputError, match="unknown modality 'pet'; expected one of ct, mri, astro"):
        modalities.get("pet")


def test_files_find_their_modality_by_content(tmp_path):
    ct_file = simulate_sinogram(sample_image("ct_small").array[::8, ::8], tmp_path / "anything.bin", views=6,
                                pixel_spacing_mm=5.3)
    mri_file = simulate_fastmri(sample_image("mr_small").array[::2, ::2], tmp_path / "k.h5", coils=2)
    sky = sample_image("m13").array[:24, :24]
    sky_file = simulate_sky(sky, tmp_path / "sky.fits", tmp_path / "psf.fits")
    assert [modalities.for_file(p).name for p in (ct_file, mri_file, sky_file)] == ["ct", "mri", "astro"]
    with pytest.raises(InputError, match="not a measurement"):
        modalities.for_file(sample_path("shepp_logan"))


def test_registering_twice_is_refused_unless_replacing(denoise):
    with pytest.raises(InputError, match="registered already"):
        modalities.register(type(denoise)())
    assert modalities.register(type(denoise)(), replace=True).name == "denoise"
    with pytest.raises(InputError, match="expected a reddiff.modalities.Modality"):
        modalities.register(object())


def test_entry_point_plugins_are_loaded_and_a_broken_one_only_warns(monkeypatch):
    cls = _doc_modality()

    class Point:
        def __init__(self, name, target):
            self.name, self.value, self._target = name, f"pkg:{name}", target

        def load(self):
            if isinstance(self._target, Exception):
                raise self._target
            return self._target

    points = [Point("denoise", cls), Point("broken", ImportError("no module named pkg"))]
    monkeypatch.setattr(modalities, "entry_points", lambda group: points if group == "reddiff.modalities" else [])
    monkeypatch.setattr(modalities, "_entry_points_loaded", False)
    try:
        with pytest.warns(RuntimeWarning, match="'broken'.*failed to load"):
            assert "denoise" in modalities.names()
        assert isinstance(modalities.get("denoise"), cls)
    finally:
        modalities.unregister("denoise")


def test_the_documented_modality_runs_end_to_end_through_the_cli(denoise, tmp_path):
    runner = CliRunner()
    clean = tmp_path / "clean.npy"
    np.save(clean, sample_image("shepp_logan").array[::8, ::8])
    noisy = tmp_path / "noisy.npz"
    result = runner.invoke(app, ["simulate", str(clean), "--modality", "denoise", "--out", str(noisy)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["simulate", str(clean), "--modality", "denoise", "--views", "3",
                                 "--out", str(tmp_path / "x.npz")])
    assert result.exit_code == 1 and "--views (ct): not an option of simulate for denoise" in result.output
    out = tmp_path / "out"
    result = runner.invoke(app, ["reconstruct", str(noisy), "--samples", "2", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with xr.open_dataset(out / "reconstruction.nc", engine="h5netcdf") as ds:
        assert ds.attrs["modality"] == "denoise" and ds.attrs["baseline"] == "Gaussian filter (1 px)"
        assert ds["reconstruction_mean"].shape[-2:] == (50, 50) and np.isfinite(ds["reconstruction_mean"].values).all()
    assert (out / "report.md").is_file() and (out / "uncertainty.png").is_file()


def test_the_documented_modality_has_a_canonical_problem_and_a_demo(denoise, tmp_path):
    from reddiff import reconstruct
    from reddiff.demo import run_demo

    problem = denoise.canonical_problem(seed=1)
    result = reconstruct(problem, n_samples=1, steps=5)
    assert result.dataset.attrs["psnr_db"] > 0
    result, written = run_demo(tmp_path, modality="denoise", n_samples=1, steps=5)
    assert written["measurement"].name == "noisy.npz" and written["netcdf"].is_file()


def test_ct_reference_texture_spans_what_the_training_head_cts_carry():
    """SCAN_TEXTURE_HU is measured, not chosen: its ends give a field the fine-scale amplitude of
    the two training head CTs at 128 px, and the texture lands inside the body only."""
    from scipy.ndimage import gaussian_filter, zoom

    from reddiff.modalities.ct import SCAN_TEXTURE_HU, TEXTURE_CORRELATION_PX, fine_scale_amplitude
    from reddiff.operators.ct import MU_WATER

    field = gaussian_filter(np.random.default_rng(0).standard_normal((256, 256)), TEXTURE_CORRELATION_PX)
    per_hu = fine_scale_amplitude(25.0 + field / field.std())  # amplitude of a 1 HU-std texture
    scans = [sample_image(name).array.astype(np.float64) for name in ("head_ct_693", "head_ct_j2k")]
    measured = sorted(fine_scale_amplitude(zoom(hu, 128 / hu.shape[0], order=1)) / per_hu for hu in scans)
    assert measured == pytest.approx(SCAN_TEXTURE_HU, rel=0.05)

    ct = modalities.get("ct")
    image = np.zeros((32, 32), np.float32)
    image[8:24, 8:24] = MU_WATER
    textured, note = ct.as_reference(image, seed=3)
    assert np.array_equal(textured[image == 0], image[image == 0]) and textured[image > 0].std() > 0
    assert note.startswith("scan texture ") and note.endswith(" HU")
    unchanged, note = modalities.get("mri").as_reference(image, seed=3)
    assert unchanged is image and note == ""


def test_sky_tuning_images_are_hubble_columns_the_prior_never_trained_on():
    from reddiff.priors.recipes import HUBBLE_TRAINED_COLUMNS, get_recipe

    fields = modalities.get("astro").tuning_images()
    hubble_training = get_recipe("astro").images()[0]  # the full-resolution Hubble part of the training set
    assert hubble_training.shape[1] == HUBBLE_TRAINED_COLUMNS
    assert len(fields) == 3 and all(f.shape == (128, 128) and f.min() >= 0 for f in fields.values())
    assert all(f"columns {HUBBLE_TRAINED_COLUMNS}-" in label for label in fields)
    assert not any(sample in label for label in fields for sample in list_samples(held_out=True))
    assert modalities.get("ct").tuning_images() == {} == modalities.get("mri").tuning_images()
