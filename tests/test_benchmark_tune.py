"""benchmarks/tune_defaults.py: how a winner is chosen and when the steps grid is extended."""

import pytest
import torch

from reddiff import modalities


@pytest.fixture(scope="module")
def tune(load_benchmark):
    return load_benchmark("tune_defaults.py", "tune_benchmark")


def _row(lr, steps, score, t_max=None):
    return {"lr": lr, "_lr": lr, "steps": steps, "t_max": t_max, "score": score, "mean_psnr": score, "psnr": {},
            "seconds": 0}


def test_the_winner_is_the_best_score_and_a_near_tie_goes_to_fewer_steps(tune):
    rows = [_row(0.001, 50, 40.00), _row(0.001, 100, 40.08), _row(0.003, 100, 39.0)]
    assert tune.winner(rows) is rows[0]
    rows[1]["score"] = 40.5
    assert tune.winner(rows) is rows[1]


def test_the_steps_grid_grows_past_whichever_edge_still_gains(tune):
    shipped = modalities.get("astro").defaults.steps
    lr = modalities.get("astro").defaults.lr
    fewest_wins = [_row(lr, shipped // 2, 41.0), _row(lr, shipped, 40.5), _row(lr, 2 * shipped, 40.0)]
    assert tune._steps_beyond_edge("astro", fewest_wins) == {"lr": lr, "steps": shipped // 4, "t_max": None}
    most_wins = [_row(lr, shipped // 2, 40.0), _row(lr, shipped, 40.5), _row(lr, 2 * shipped, 41.0)]
    assert tune._steps_beyond_edge("astro", most_wins) == {"lr": lr, "steps": 4 * shipped, "t_max": None}
    inside = [_row(lr, shipped // 2, 40.0), _row(lr, shipped, 41.0), _row(lr, 2 * shipped, 40.0)]
    assert tune._steps_beyond_edge("astro", inside) is None
    flat = [_row(lr, shipped // 2, 40.05), _row(lr, shipped, 40.0)]
    assert tune._steps_beyond_edge("astro", flat) is None  # gains no more than the tie margin
    at_floor = [_row(lr, shipped // 8, 41.0), _row(lr, shipped // 4, 40.0)]
    assert tune._steps_beyond_edge("astro", at_floor) is None  # 1/16 of the shipped steps is past the floor


def test_real_tuning_images_decide_the_score_where_a_modality_has_them(tune, monkeypatch):
    class Result:
        def __init__(self, db):
            self.dataset = type("D", (), {"attrs": {"psnr_db": db}})()

    scores = iter([30.0, 40.0])
    monkeypatch.setattr(tune.reddiff, "reconstruct", lambda problem, **_: Result(next(scores)))
    row = tune.run("astro", {"generated": None, "real": None}, {"lr": 0.001, "steps": 5}, None, {"real"})
    assert (row["score"], row["mean_psnr"]) == (40.0, 35.0)


def test_the_steps_grid_compares_runs_at_the_same_top_of_the_timestep_grid(tune):
    shipped, lr = modalities.get("astro").defaults.steps, modalities.get("astro").defaults.lr
    rows = [_row(lr, shipped, 40.0, t_max=999), _row(lr, 2 * shipped, 39.0, t_max=999),
            _row(lr, 2 * shipped, 41.0, t_max=40)]
    assert tune._steps_beyond_edge("astro", rows) is None  # no shorter run at t_max 40 to compare with
    rows.append(_row(lr, shipped, 40.0, t_max=40))
    assert tune._steps_beyond_edge("astro", rows) == {"lr": lr, "steps": 4 * shipped, "t_max": 40}


def test_the_grid_crosses_every_top_with_every_lr_and_steps(tune):
    row = modalities.get("astro").defaults
    settings = tune.grid("astro", False, lr_multiples=(1, 3), step_multiples=(1,), t_maxes=(999, 40))
    assert [(s["t_max"], s["lr"]) for s in settings] == [(999, row.lr), (999, 3 * row.lr), (40, row.lr),
                                                         (40, 3 * row.lr)]
    rows = [_row(s["lr"], s["steps"], 40.0 + i, s["t_max"]) for i, s in enumerate(settings)]
    lines = tune.table("astro", rows).splitlines()
    assert "t_max" in lines[2] and "| 999 |" in lines[4] and "| 40 |" in lines[-1]


def test_size_measures_the_validation_images_on_that_grid(tune):
    problems, real = tune.validation_problems("ct", 2, size=48)
    assert len(problems) == 2 and not real
    assert {tuple(p.truth.shape[-2:]) for p in problems.values()} == {(48, 48)}
    assert {tuple(p.baseline.shape[-2:]) for p in problems.values()} == {(48, 48)}


def test_the_oracle_row_scores_the_truth_tuned_classical_method_beside_the_settings(tune):
    problems, real = tune.validation_problems("mri", 2, size=16)
    best = tune.classical(problems, real)
    assert set(best["psnr"]) == set(problems) and all(m.startswith("TV") for m in best["classical"].values())
    assert best["score"] == pytest.approx(sum(best["psnr"].values()) / 2, abs=0.01)
    rows = [_row(modalities.get("mri").defaults.lr, modalities.get("mri").defaults.steps, best["score"] - 1.0)]
    rows[0]["psnr"] = {label: 0.0 for label in problems}
    last = tune.table("mri", rows, best).splitlines()[-1]
    assert last.startswith("| truth-tuned classical |") and "| +1.00 |" in last


def test_on_a_large_grid_the_settings_centre_on_the_row_run_there(tune):
    row = modalities.get("ct").defaults
    large = row.for_shape((256, 256))
    assert large.t_max is None and row.t_max == 40
    settings = tune.grid("ct", False, lr_multiples=(1,), step_multiples=(1,), size=256)
    assert settings == [{"lr": large.lr, "steps": large.steps, "t_max": None}]
    rows = [_row(large.lr, large.steps, 30.0, large.t_max)]
    assert "| +0.00 |" in tune.table("ct", rows, size=256)  # the shipped row at that size is found
    assert "| +0.00 |" not in tune.table("ct", rows)


def test_estimated_coil_maps_reconstruct_the_same_measurements_with_espirit_maps(tune):
    exact, _ = tune.validation_problems("mri", 2, size=64)
    estimated, _ = tune.validation_problems("mri", 2, size=64, estimated_coil_maps=True)
    assert set(estimated) == set(exact)
    for label, problem in estimated.items():
        assert torch.equal(problem.y, exact[label].y) and problem.info["coil_map_estimate"] == "ESPIRiT"
        assert not torch.allclose(problem.physics.coil_maps, exact[label].physics.coil_maps)
