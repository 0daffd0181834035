"""Jupyter: progress bars without tqdm's IProgress warning, reconstruct's default bar, the rich repr."""

import sys
import types
import warnings

import pytest
import torch

from reddiff import Reconstruction
from reddiff.progress import ProgressBar, bar_class

STEP = {"step": 0, "steps": 3, "chunk": 0, "n_chunks": 1, "loss": 1.0, "data_loss": 0.5, "reg_loss": 0.5}


@pytest.fixture
def in_a_kernel(monkeypatch):
    """As if running in a Jupyter kernel (the module tqdm.auto looks for)."""
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))
    for key in ("QT_API", "SPYDER_ARGS"):
        monkeypatch.delenv(key, raising=False)


def test_outside_jupyter_the_bar_is_text():
    assert bar_class().__module__ == "tqdm.std"


def test_in_a_kernel_with_ipywidgets_the_bar_is_a_widget(in_a_kernel):
    pytest.importorskip("ipywidgets")
    assert bar_class().__module__ == "tqdm.notebook"


def test_in_a_kernel_without_ipywidgets_the_text_bar_comes_without_a_warning(in_a_kernel, monkeypatch):
    import tqdm.notebook

    monkeypatch.setattr(tqdm.notebook, "IProgress", None)  # what tqdm.notebook holds when ipywidgets is missing
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # TqdmWarning: IProgress not found would fail here
        assert bar_class().__module__ == "tqdm.std"
        bar = ProgressBar(file=sys.stderr)
        bar(STEP)
        bar.close()


@pytest.mark.slow
def test_reconstruct_shows_progress_by_default_and_not_when_asked(capsys):
    from reddiff import problem_from_measurement, reconstruct
    from reddiff.operators import ct

    mu = torch.linspace(0.0, 0.03, 256).view(1, 1, 16, 16)
    problem = problem_from_measurement(ct.simulate(mu, views=6, I0=1e5, pixel_spacing_mm=5.0, seed=0), "ct")
    reconstruct(problem, steps=2, n_samples=1, calibration=None)
    shown = capsys.readouterr().err
    assert "RED-Diff ct" in shown and "8/8" in shown  # lam="auto": 3 one-sample pilots, then the sample
    reconstruct(problem, steps=2, n_samples=1, calibration=None, progress=False)
    assert "RED-Diff" not in capsys.readouterr().err
    seen = []
    reconstruct(problem, steps=2, n_samples=1, calibration=None, callback=seen.append)  # a given callback wins
    assert len(seen) == 8 and "RED-Diff" not in capsys.readouterr().err


def test_the_html_repr_shows_thumbnails_units_and_settings():
    attrs = {"config": {"steps": 100, "lr": 0.1, "lam": 0.25, "prior": "ct"}, "modality": "ct", "psnr_db": 33.871}
    rec = Reconstruction.from_samples(torch.rand(3, 1, 300, 40), units="HU", attrs=attrs)
    html = rec._repr_html_()
    assert html.count("<img src='data:image/png;base64,") == 2  # mean and std
    for said in ("HU", ">steps<", ">100<", ">lam<", ">0.25<", ">prior<", ">ct<", ">n_samples<", ">3<", "33.87",
                 "xarray.Dataset"):
        assert said in html, said
    complex_volume = Reconstruction.stack([Reconstruction.from_samples(torch.rand(2, 2, 8, 8), units="a.u.")] * 3)
    html = complex_volume._repr_html_()
    assert "a.u." in html and "3&times;8&times;8" in html and "(real, imag)" in html
