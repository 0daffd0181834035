"""The modality registry: one :class:`Modality` per imaging problem, found by name or by file.

The three built-in modalities (``ct``, ``mri``, ``astro``) register on import; other
packages add theirs through the entry-point group ``reddiff.modalities`` (an entry
point names a :class:`Modality` instance or class), or at run time with
:func:`register`. The pipeline, CLI, demo and benchmarks go through :func:`get`,
:func:`for_file` and :func:`names` and never name a modality themselves. See
``docs/adding-a-modality.md``.

Examples
--------
>>> from reddiff import modalities
>>> modalities.names()
('ct', 'mri', 'astro')
>>> modalities.get("ct").title
'X-ray CT'
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from importlib.metadata import entry_points

from ..errors import InputError
from .astro import MODALITY as _ASTRO
from .base import Classical, Demo, Modality, Option, Problem
from .ct import MODALITY as _CT
from .mri import MODALITY as _MRI

#: Entry-point group other packages register modalities under.
ENTRY_POINT_GROUP = "reddiff.modalities"

_REGISTRY: dict[str, Modality] = {}
_entry_points_loaded = False


def register(modality: Modality, *, replace: bool = False) -> Modality:
    """Add a modality (an instance, or a class taking no arguments) to the registry.

    Parameters
    ----------
    modality : Modality
    replace : bool
        Allow replacing a registered modality of the same name.

    Returns
    -------
    Modality
        The registered instance.
    """
    if isinstance(modality, type) and issubclass(modality, Modality):
        modality = modality()
    if not isinstance(modality, Modality):
        raise InputError(f"expected a reddiff.modalities.Modality, got {type(modality).__name__}",
                         field="modality")
    if not modality.name:
        raise InputError(f"{type(modality).__name__} has no name", field="modality")
    taken = modality.name in _REGISTRY or any(modality.name in m.aliases for m in _REGISTRY.values())
    if taken and not replace:
        raise InputError(f"a modality called {modality.name!r} is registered already; pass replace=True",
                         field="modality")
    _REGISTRY[modality.name] = modality
    return modality


def unregister(name: str) -> None:
    """Remove a modality from the registry (tests, plug-in development)."""
    _REGISTRY.pop(name, None)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register(point.load())
        except Exception as err:  # a broken plug-in must not break the built-in modalities
            warnings.warn(f"modality plug-in {point.name!r} ({point.value}) failed to load: {err}",
                          RuntimeWarning, stacklevel=2)


def names() -> tuple[str, ...]:
    """Names of the registered modalities, built-in ones first."""
    _load_entry_points()
    return tuple(_REGISTRY)


def get(name: str) -> Modality:
    """The modality called ``name`` (an old alias works, with a :class:`DeprecationWarning`).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True):
    ...     get("telescope").name
    'astro'
    """
    _load_entry_points()
    if isinstance(name, Modality):
        return name
    if name in _REGISTRY:
        return _REGISTRY[name]
    for modality in _REGISTRY.values():
        if name in modality.aliases:
            warnings.warn(f"modality name {name!r} is deprecated; use {modality.name!r}",
                          DeprecationWarning, stacklevel=2)
            return modality
    raise InputError(f"unknown modality {name!r}; expected one of {', '.join(_REGISTRY)}", field="modality")


def for_file(path) -> Modality:
    """The modality that reads the measurement file ``path`` (by its content, not its name).

    Examples
    --------
    >>> from reddiff.datasets import sample_path
    >>> for_file(sample_path("m13")).name
    'astro'
    """
    from reddiff.datasets import file_kind

    _load_entry_points()
    kind = file_kind(path)  # also checks the file exists and is readable
    for modality in _REGISTRY.values():
        if modality.reads(path):
            return modality
    readable = ", ".join(f"{m.title}: {' or '.join(m.file_kinds) or 'its own files'}" for m in _REGISTRY.values())
    raise InputError(f"is a {kind} file, not a measurement ({readable}); "
                     "make one from an image with `reddiff simulate`", path=path)


def option_owners(attribute: str) -> dict:
    """Option name -> ``(flag, modality name)`` over every registered modality's
    ``attribute`` (``"load_options"`` or ``"simulate_options"``), to say whose option one is.

    Examples
    --------
    >>> option_owners("load_options")["psf"]
    ('--psf', 'astro')
    """
    return {o.name: (o.cli_flag, m.name) for m in map(get, names()) for o in getattr(m, attribute)}


def defaults_for(name: str):
    """The measured RED-Diff settings of modality ``name`` (:class:`reddiff.defaults.SolverDefaults`).

    Examples
    --------
    >>> defaults_for("ct").prior
    'ct'
    """
    return get(name).defaults


class _Defaults(Mapping):
    """Read-only view: modality name -> its :class:`reddiff.defaults.SolverDefaults`."""

    def __getitem__(self, name):
        if name not in names():
            raise KeyError(name)
        return _REGISTRY[name].defaults

    def __iter__(self):
        return iter(names())

    def __len__(self):
        return len(names())

    def __repr__(self):
        return repr(dict(self))


#: Modality name -> measured solver settings, for every registered modality.
DEFAULTS = _Defaults()

for _builtin in (_CT, _MRI, _ASTRO):
    register(_builtin)

__all__ = ["Modality", "Problem", "Option", "Demo", "Classical", "register", "unregister", "names", "get", "for_file",
           "defaults_for", "option_owners", "DEFAULTS", "ENTRY_POINT_GROUP"]
