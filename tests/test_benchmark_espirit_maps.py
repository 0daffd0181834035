"""benchmarks/espirit_maps.py: the model error of ESPIRiT coil maps on generated heads."""

import pytest


@pytest.fixture(scope="module")
def espirit_maps(load_benchmark):
    return load_benchmark("espirit_maps.py", "espirit_maps_benchmark")


def test_table_gives_no_model_error_for_exact_maps_and_less_on_a_padded_readout_or_with_a_tall_kernel(
        espirit_maps, capsys):
    espirit_maps.main(["--size", "32", "--images", "1", "--half", "50", "--center-fraction", "0.25",
                       "--kernels", "unpadded", "default", "8x3"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| MNI152")]
    assert len(rows) == 1 and "half 50" in rows[0]
    exact, unpadded, padded, tall = (float(cell) for cell in rows[0].strip("| ").split(" | ")[2:])
    assert exact < 0.01  # the simulation's own maps explain its noise-free k-space
    # a head cut by the field of view: measured 3.78 on the grid, 0.69 on twice the readout field of view,
    # 1.32 with every row and an 8 x 3 kernel
    assert padded < 0.5 * unpadded and tall < 0.5 * unpadded
