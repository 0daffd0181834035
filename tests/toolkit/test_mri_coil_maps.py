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


def test_a_readout_oversampled_file_keeps_its_recon_grid_with_estimated_maps(mri):
    """A (2h, w) k-space grid around an (h, w) image, as fastMRI's readout-oversampled files."""
    from reddiff.operators import mri as mri_ops
    from reddiff.operators.base import Measurement

    truth = mri.canonical_problem(image=_head(), seed=0).truth
    h, w = truth.shape[-2:]
    columns = mri_ops.make_mask("random", (h, w), acceleration=2.0, center_fraction=0.25, seed=0)[0]
    grid = mri_ops.mri_physics(columns.expand(2 * h, w), coil_maps=mri_ops.birdcage_maps(4, (2 * h, w)),
                               sigma=0.01, image_shape=(h, w))
    wide = mri.from_measurement(Measurement(y=grid.A(truth), physics=grid, x_true=truth, info={}))
    estimated = mri.with_estimated_coil_maps(wide)
    assert isinstance(estimated.physics, mri_ops.CentredGrid)
    assert estimated.physics.image_shape == (h, w) and estimated.baseline.shape == wide.baseline.shape
