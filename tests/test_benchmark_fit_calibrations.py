"""benchmarks/fit_calibrations.py: the --quick smoke path and the full-range variant's name and settings."""

import importlib.util
import sys
from pathlib import Path

import pytest

from reddiff.uncertainty import Calibration

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fit_calibrations():
    spec = importlib.util.spec_from_file_location("fit_calibrations_benchmark",
                                                  ROOT / "benchmarks" / "fit_calibrations.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_full_range_fits_over_the_whole_grid_into_the_variant_file(fit_calibrations, tmp_path):
    fit_calibrations.main(["--modality", "ct", "--quick", "--samples", "2", "--full-range", "--out", str(tmp_path)])
    assert [path.name for path in tmp_path.iterdir()] == ["ct@full-range.json"]
    context = Calibration.load(tmp_path / "ct@full-range.json").context
    assert context["t_max"] == 999 and context["steps"] == 10 and len(context["fitted_on"]) == 2
