"""Every docstring Example in reddiff.operators (and the data terms it adds) runs and gives the shown output."""

import doctest
import importlib
import pkgutil

import pytest

import reddiff.operators

MODULES = sorted(m.name for m in pkgutil.iter_modules(reddiff.operators.__path__, "reddiff.operators."))


@pytest.mark.parametrize("name", [*MODULES, "reddiff.likelihood"])
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("name", MODULES)
def test_every_public_function_has_an_example(name):
    module = importlib.import_module(name)
    missing = [attr for attr in getattr(module, "__all__", [])
               if callable(obj := getattr(module, attr)) and not isinstance(obj, type)
               and "Examples" not in (obj.__doc__ or "")]
    assert missing == []
