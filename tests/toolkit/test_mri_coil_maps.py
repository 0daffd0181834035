"""MRI with estimated coil maps: a simulated problem reconstructed with ESPIRiT's maps from its own
k-space, as the command line reconstructs a scanner's file (benchmarks use it to see the model error
that exact simulation maps hide)."""

import numpy as np
import pytest
import torch

from reddiff import load_problem, modalities
from reddiff.datasets import simulate_fastmri
from reddiff.errors import InputError
from reddiff.report import image_quality

SIZE = 32


def _head(size: int = SIZE) -> np.ndarray:
    """An ellipse inside the field of view with a darker core, maximum 1."""
    yy, xx = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    outer = (xx / 0.7) ** 2 + (yy / 0.85) ** 2 < 1
    inner = (xx / 0.3) ** 2 + (yy / 0.4) ** 2 < 1
    return (outer * 1.0 - inner * 0.5).astype(np.float32)


@pytest.fixture(scope="module")
def mri():
    return modalities.get("mri")


def test_estimated_maps_keep_the_measurement_and_truth_and_fit_an_object_inside_the_field_of_view(mri):
    exact = mri.canonical_problem(image=_head(), seed=0, center_fraction=0.25)
    estimated = mri.with_estimated_coil_maps(exact)
    assert estimated.y is exact.y and torch.equal(estimated.truth, exact.truth)
    assert estimated.info["coil_map_estimate"] == "ESPIRiT"
    assert not torch.allclose(estimated.physics.coil_maps, exact.physics.coil_maps)  # not the simulation's
    term, Ax = exact.physics.data_term, exact.physics.A(exact.truth)
    assert float(term.deviance(exact.y, Ax) / term.expected_deviance(exact.y, Ax)) == pytest.approx(1.0, abs=0.2)
    # ESPIRiT's maps carry the phase of coil 0, so the zero-phase truth only fits in magnitude:
    # compare the SENSE baselines instead, both scored on magnitudes
    psnr = [image_quality(p.truth, p.baseline)["psnr"] for p in (exact, estimated)]
    assert psnr[1] > psnr[0] - 1.5


def test_the_benchmark_maps_are_the_ones_the_command_line_estimates_from_a_file(mri, tmp_path):
    path = simulate_fastmri(_head(), tmp_path / "k.h5", acceleration=4.0, center_fraction=0.25, coils=4, seed=0)
    loaded = load_problem(path)
    again = mri.with_estimated_coil_maps(loaded)
    assert torch.allclose(again.physics.coil_maps, loaded.physics.coil_maps)
    assert torch.allclose(again.baseline, loaded.baseline)


def test_single_coil_k_space_has_no_coil_maps_to_estimate(mri):
    from reddiff.operators import mri as mri_ops

    measurement = mri_ops.simulate(torch.from_numpy(_head())[None, None], coils=1, seed=0)
    problem = mri.from_measurement(measurement)
    with pytest.raises(InputError, match="no coil maps"):
        mri.with_estimated_coil_maps(problem)


def test_a_readout_oversampled_measurement_is_solved_on_its_image_grid(mri):
    """A (2h, w) k-space grid around an (h, w) image, as fastMRI's readout-oversampled files: the oversampling
    is removed (the rows outside the image hold only noise), the data still fit the truth to the noise."""
    wide = mri.canonical_problem(image=_head(), seed=0, center_fraction=0.25, readout_oversampling=2)
    assert wide.y.shape[-2:] == (SIZE, SIZE) and wide.truth.shape[-2:] == (SIZE, SIZE)
    term, Ax = wide.physics.data_term, wide.physics.A(wide.truth)
    assert float(term.deviance(wide.y, Ax) / term.expected_deviance(wide.y, Ax)) == pytest.approx(1.0, abs=0.2)
    estimated = mri.with_estimated_coil_maps(wide)
    assert estimated.physics.coil_maps.shape[-2:] == (SIZE, SIZE) and estimated.baseline.shape == wide.baseline.shape


def _filling(size: int = SIZE) -> np.ndarray:
    """A smooth object that fills the whole field of view, maximum 1."""
    yy, xx = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    return (0.6 + 0.4 * np.cos(2 * xx) * np.cos(3 * yy)).astype(np.float32)


def _map_misfit(problem, physics) -> float:
    r"""The least-squares misfit of the noise-free k-space with ``physics``' maps, over :math:`m\sigma^2`."""
    from reddiff.operators import mri as mri_ops

    clean = problem.physics.A(problem.truth)
    residual = physics.A(mri_ops.sense_cg(clean, physics, iterations=100)) - clean
    sampled = float((problem.y != 0).sum())
    return float((residual ** 2).sum()) / (sampled * float(problem.physics.data_term.sigma) ** 2)


def test_maps_estimated_on_a_padded_readout_fit_an_object_that_fills_the_field_of_view(mri):
    """On the image's own grid the object reaches the readout edges and ESPIRiT's smooth periodic maps
    cannot follow the coils there; estimated on twice the readout field of view (zero padding in hybrid
    space, or a scanner's oversampled readout), only the phase-encode edges are left."""
    from reddiff.operators import mri as mri_ops

    plain = mri.canonical_problem(image=_filling(), seed=0, center_fraction=0.25)
    unpadded = mri_ops.mri_physics(plain.physics.mask, coil_maps=mri_ops.estimate_sensitivity_maps(
        plain.y, readout_padding=1))
    padded = mri.with_estimated_coil_maps(plain).physics
    oversampled = mri.canonical_problem(image=_filling(), seed=0, center_fraction=0.25, readout_oversampling=2)
    assert oversampled.y.shape == plain.y.shape  # the oversampling is removed, as scanners do
    misfits = [_map_misfit(plain, unpadded), _map_misfit(plain, padded),
               _map_misfit(oversampled, mri.with_estimated_coil_maps(oversampled).physics)]
    assert misfits[0] > 0.8 and misfits[1] < misfits[0] / 2  # measured: 1.19 and 0.43
    assert misfits[2] == pytest.approx(misfits[1], rel=0.3)  # 0.44: the same maps, another noise draw


def test_estimated_maps_are_refined_by_jsense_only_where_the_object_reaches_the_phase_encode_edges(mri):
    from reddiff.operators.mri import sense_cg

    inside = mri.with_estimated_coil_maps(mri.canonical_problem(image=_head(), seed=0, center_fraction=0.25))
    filling = mri.canonical_problem(image=_filling(), seed=0, center_fraction=0.25)
    refined = mri.with_estimated_coil_maps(filling)
    assert inside.info["coil_map_estimate"] == "ESPIRiT" and "coil maps by ESPIRiT," in inside.description
    assert refined.info["coil_map_estimate"] == "ESPIRiT, refined by JSENSE"
    assert "refined by JSENSE" in refined.description  # what the outputs record as the problem
    # the maps' error hides in the data (misfit 0.51 against ESPIRiT's 0.43 noise variances) but not in the image:
    # the SENSE image (10 iterations) with the refined maps against ESPIRiT's alone, measured 25.37 and 18.07 dB
    # (the simulation's maps 33.47)
    psnr = [image_quality(filling.truth, sense_cg(filling.y, physics, iterations=10))["psnr"]
            for physics in (refined.physics, _espirit_alone(filling))]
    assert psnr[0] > psnr[1] + 4


def test_jsense_is_not_tried_where_too_little_k_space_is_sampled_for_its_image_step(mri):
    from reddiff.modalities.mri import JSENSE_MIN_SAMPLED

    sparse = mri.canonical_problem(image=_filling(64), seed=0, acceleration=8.0, center_fraction=0.12)
    assert float(sparse.physics.mask.mean()) < JSENSE_MIN_SAMPLED
    assert mri.with_estimated_coil_maps(sparse).info["coil_map_estimate"] == "ESPIRiT"


def _espirit_alone(problem):
    """``problem``'s physics with ESPIRiT's maps, not refined."""
    from reddiff.operators.mri import estimate_sensitivity_maps, mri_physics

    return mri_physics(problem.physics.mask, coil_maps=estimate_sensitivity_maps(problem.y))


def test_a_file_reconstructed_with_estimated_maps_says_so(mri, tmp_path):
    path = simulate_fastmri(_head(), tmp_path / "k.h5", acceleration=4.0, center_fraction=0.25, coils=4, seed=0)
    assert load_problem(path).info["coil_map_estimate"] == "ESPIRiT"
