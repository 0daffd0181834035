import importlib.util
import sys
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Tests are tiny: one thread avoids oversubscribing the 2-core CI machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip cleanly where torch sees no CUDA GPU (``benchmarks/gpu_check.sh`` runs them)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def load_benchmark():
    """A loader of ``benchmarks/<filename>`` as a module (the folder is not a package), registered in
    ``sys.modules`` under ``name`` (its dataclasses need that) until the session ends."""
    loaded = []

    def load(filename: str, name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / filename
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        loaded.append(name)
        return module

    yield load
    for name in loaded:
        sys.modules.pop(name, None)
