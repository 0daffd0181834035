"""Every docstring Example in reddiff.datasets runs and gives the shown output."""

import doctest
import importlib
import pkgutil

import pytest

import reddiff.datasets

MODULES = sorted(m.name for m in pkgutil.iter_modules(reddiff.datasets.__path__, "reddiff.datasets."))


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_every_public_function_has_an_example():
    missing = [name for name in reddiff.datasets.__all__
               if callable(obj := getattr(reddiff.datasets, name)) and not isinstance(obj, type)
               and "Examples" not in (obj.__doc__ or "")]
    assert missing == []
