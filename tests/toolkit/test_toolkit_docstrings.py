"""Every docstring Example in reddiff's top-level modules and modalities runs and gives the shown output."""

import doctest
import importlib
import pkgutil

import pytest

import reddiff

MODULES = sorted([m.name for m in pkgutil.iter_modules(reddiff.__path__, "reddiff.")
                  if not m.ispkg and m.name not in ("reddiff.__main__", "reddiff.cli")]
                 + ["reddiff.modalities"]
                 + [m.name for m in pkgutil.iter_modules(reddiff.modalities.__path__, "reddiff.modalities.")])


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
