"""benchmarks/heldout.py: results kept with --save are scored again with --rescore, without a solve; MRI
cases with another centre and ESPIRiT coil maps."""

import pytest
import torch

import reddiff
from reddiff import modalities
from reddiff.calibration import apply
from reddiff.uncertainty import uncertainty_metrics


@pytest.fixture(scope="module")
def heldout(load_benchmark):
    return load_benchmark("heldout.py", "heldout_benchmark")


def test_rescore_gives_the_coverage_of_the_result_it_saved(heldout, tmp_path):
    case = next(c for c in heldout.cases("mri", False) if c.image == "anatomical")  # 40x32: fast
    chosen = modalities.get(case.modality)
    problem = chosen.canonical_problem(image=heldout.image_for(case), seed=0, **case.settings)
    result = reddiff.reconstruct(problem, n_samples=2, seed=0, steps=3, lam=100.0, progress=False,
                                 calibration="none")
    result.to_netcdf(heldout.saved_path(tmp_path, case, 0))
    expected = apply(result, problem, "default")
    truth = chosen.reference_for(expected, problem)[0]
    metrics = uncertainty_metrics(expected, truth, calibration=expected.calibration)

    row = heldout.rescore_case(case, [0], tmp_path, {})
    assert row["calibrated_coverage"] == pytest.approx(metrics["coverage"], abs=1e-6)
    assert row["calibrated_std_error_rank"] == pytest.approx(metrics["std_error_spearman"], abs=1e-6)
    fitted = modalities.defaults_for("mri").steps  # the shipped calibration's steps
    assert f"steps=3 differs from the fitted steps={fitted}" in row["calibration"]  # the mismatch is reported
    with pytest.raises(SystemExit, match="no calibration applied"):
        heldout.rescore_case(case, [0], tmp_path, {"mri": "none"})


def test_mri_cases_can_be_measured_with_another_centre_and_reconstructed_with_estimated_maps(heldout):
    case = heldout.cases("mri", False)[0]  # mr_small 64, 4x
    variant = heldout.mri_variant(case, 0.16, True)
    assert variant.label == f"{case.label}, 0.16 centre, estimated maps"
    assert variant.settings == {**case.settings, "center_fraction": 0.16}
    image = heldout.image_for(variant)
    exact = heldout.problem_for(variant, image, 0)
    estimated = heldout.problem_for(variant, image, 0, estimated_coil_maps=True)
    assert torch.equal(estimated.y, exact.y) and "coil_map_estimate" not in exact.info
    assert estimated.info["coil_map_estimate"] == "ESPIRiT, refined by JSENSE"  # mr_small reaches the phase-encode edges
    assert heldout.mri_variant(case, None, False) == case
