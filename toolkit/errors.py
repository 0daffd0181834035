"""Error types raised by reddiff.

Every error a user can cause derives from :class:`ReddiffError`, so callers (and
the command line) can catch reddiff's own failures without hiding bugs.
"""

from __future__ import annotations


class ReddiffError(Exception):
    """Base class of every error reddiff raises on purpose."""


class InputError(ReddiffError, ValueError):
    """An argument or an input file is not what was expected.

    Parameters
    ----------
    message : str
        What was wrong and what was expected.
    path : str or os.PathLike, optional
        The file concerned, named first in the message.
    field : str, optional
        The field, dataset or header key concerned.
    """

    def __init__(self, message: str, *, path=None, field: str | None = None):
        self.path = None if path is None else str(path)
        self.field = field
        self.message = message
        prefix = ""
        if self.path is not None:
            prefix += f"{self.path}: "
        if field is not None:
            prefix += f"[{field}] "
        super().__init__(prefix + message)

    def about(self, path) -> "InputError":
        """This error naming ``path`` (the file being read) if it names no file yet.

        Examples
        --------
        >>> str(InputError("too large", field="views").about("ct.h5"))
        'ct.h5: [views] too large'
        """
        if self.path is not None:
            return self
        return InputError(self.message, path=path, field=self.field)


class DivergenceError(ReddiffError, FloatingPointError):
    """The optimisation produced a non-finite loss or image."""
