"""Every docstring Example in reddiff.priors runs and gives the shown output."""

import doctest
import importlib
import pkgutil

import pytest

import reddiff.priors

MODULES = sorted(m.name for m in pkgutil.iter_modules(reddiff.priors.__path__, "reddiff.priors."))


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_every_public_function_has_an_example():
    missing = [name for name in reddiff.priors.__all__
               if callable(obj := getattr(reddiff.priors, name)) and not isinstance(obj, type)
               and "Examples" not in (obj.__doc__ or "")]
    assert missing == []
