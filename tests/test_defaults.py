"""reddiff.defaults: the per-modality rows and the size tiers (the top of the timestep grid, the lr)."""

import dataclasses
import json

import numpy as np
import pytest

import reddiff
from reddiff import modalities


@pytest.mark.parametrize("name, side, expected", [("ct", 128, 40), ("ct", 181, 40), ("ct", 256, None),
                                                  ("astro", 256, 40), ("mri", 64, None)])
def test_t_max_follows_the_image_size_where_the_row_says_so(name, side, expected):
    row = modalities.get(name).defaults
    assert row.for_shape((side, side)).t_max == expected
    assert row.as_kwargs(shape=(1, 1, side, side))["t_max"] == expected
    assert "size_tiers" not in row.as_kwargs()


@pytest.mark.parametrize("side, expected", [(64, 0.05), (90, 0.05), (128, 0.05 / 3), (181, 0.05 / 3),
                                            (256, 0.05 / 9)])
def test_mri_takes_a_third_of_its_lr_above_90_px_and_a_ninth_above_181(side, expected):
    row = modalities.get("mri").defaults
    assert row.for_shape((side, side)).lr == pytest.approx(expected)
    assert row.as_kwargs(shape=(1, 2, side, side))["lr"] == pytest.approx(expected)
    assert row.for_shape((side, side)).steps == row.steps and row.lr == 0.05  # only the lr changes


def test_reconstruct_runs_a_large_ct_image_over_the_full_timestep_range():
    ct = modalities.get("ct")
    image = np.full((192, 192), 0.02, dtype=np.float32)
    image[60:130, 50:140] = 0.03
    problem = ct.canonical_problem(image=image, views=8)
    result = reddiff.reconstruct(problem, steps=1, lam=1.0, n_samples=1, calibration="none", progress=False)
    assert json.loads(result.dataset.attrs["config"])["t_max"] == 999
    small = ct.canonical_problem(image=image[::4, ::4], views=8)
    result = reddiff.reconstruct(small, steps=1, lam=1.0, n_samples=1, calibration="none", progress=False)
    assert json.loads(result.dataset.attrs["config"])["t_max"] == 40


def test_size_tiers_apply_in_order_and_must_ascend():
    from reddiff.defaults import SolverDefaults
    from reddiff.errors import InputError

    row = SolverDefaults(prior="ct", steps=400, lr=0.03, lam=100.0, noise_reference=0.003, weighting="sqrt",
                         timesteps="descending", sigma_x0=0.0, t_max=40,
                         size_tiers=((90, {"lr": 0.01}), (181, {"t_max": None})))
    assert (row.for_shape((128, 128)).lr, row.for_shape((128, 128)).t_max) == (0.01, 40)
    assert (row.for_shape((256, 256)).lr, row.for_shape((256, 256)).t_max) == (0.01, None)  # both tiers
    assert row.for_shape((64, 64)) is row
    with pytest.raises(InputError, match="ascending sides, got \\[181, 90\\]"):
        dataclasses.replace(row, size_tiers=((181, {}), (90, {})))
