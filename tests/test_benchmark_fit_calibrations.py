"""benchmarks/fit_calibrations.py: the --quick smoke path and the full-range variant's name and settings."""

import pytest

from reddiff.uncertainty import Calibration


@pytest.fixture(scope="module")
def fit_calibrations(load_benchmark):
    return load_benchmark("fit_calibrations.py", "fit_calibrations_benchmark")


def test_full_range_fits_over_the_whole_grid_into_the_variant_file(fit_calibrations, tmp_path):
    fit_calibrations.main(["--modality", "ct", "--quick", "--samples", "2", "--full-range", "--out", str(tmp_path)])
    assert [path.name for path in tmp_path.iterdir()] == ["ct@full-range.json"]
    context = Calibration.load(tmp_path / "ct@full-range.json").context
    assert context["t_max"] == 999 and context["steps"] == 10 and len(context["fitted_on"]) == 2
