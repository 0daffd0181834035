"""benchmarks/tune_defaults.py: how a winner is chosen and when the steps grid is extended."""

import importlib.util
from pathlib import Path

import pytest

from reddiff import modalities

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tune():
    """benchmarks/tune_defaults.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("tune_benchmark", ROOT / "benchmarks" / "tune_defaults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(lr, steps, score):
    return {"lr": lr, "_lr": lr, "steps": steps, "score": score, "mean_psnr": score, "psnr": {}, "seconds": 0}


def test_the_winner_is_the_best_score_and_a_near_tie_goes_to_fewer_steps(tune):
    rows = [_row(0.001, 50, 40.00), _row(0.001, 100, 40.08), _row(0.003, 100, 39.0)]
    assert tune.winner(rows) is rows[0]
    rows[1]["score"] = 40.5
    assert tune.winner(rows) is rows[1]


def test_the_steps_grid_grows_past_whichever_edge_still_gains(tune):
    shipped = modalities.get("astro").defaults.steps  # 50
    lr = modalities.get("astro").defaults.lr
    fewest_wins = [_row(lr, shipped // 2, 41.0), _row(lr, shipped, 40.5), _row(lr, 2 * shipped, 40.0)]
    assert tune._steps_beyond_edge("astro", fewest_wins) == {"lr": lr, "steps": shipped // 4}
    most_wins = [_row(lr, shipped // 2, 40.0), _row(lr, shipped, 40.5), _row(lr, 2 * shipped, 41.0)]
    assert tune._steps_beyond_edge("astro", most_wins) == {"lr": lr, "steps": 4 * shipped}
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
