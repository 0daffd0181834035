"""benchmarks/model_error.py: generated heads that fill the field of view, reconstructed with ESPIRiT
coil maps, at lam='auto' and at fixed multiples of its starting weight."""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def model_error(load_benchmark):
    return load_benchmark("model_error.py", "model_error_benchmark")


def test_the_crop_fills_the_field_of_view_with_the_head(model_error):
    image = np.zeros((120, 100), np.float32)
    image[20:100, 15:85] = 2.0  # a 'head' of 80 x 70 pixels around row 60 (five rows above the centre)
    crop = model_error.filling_crop(image, 30)
    assert crop.shape == (60, 60) and crop.max() == 1.0 and crop.min() == 1.0  # the head everywhere
    whole = model_error.filling_crop(image, 0)
    assert whole.shape == (120, 100) and whole.max() == 1.0 and whole.min() == 0.0  # the head inside


def test_quick_run_prints_the_oracle_auto_and_fixed_weight_rows(model_error, capsys):
    model_error.main(["--quick"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and rows[0]["size"] == 32
    auto, fixed = rows
    assert auto["oracle"] and len(auto["pilot_ratios"]) == 3 and auto["auto_psnr"] > 0
    assert auto["auto_lam"] == pytest.approx(auto["auto_factor"] * auto["pilot_lams"][1], rel=1e-2)
    assert fixed["factor"] == 1.0 and fixed["rho"] > 0
