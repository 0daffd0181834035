"""The ``reddiff`` command line: one typer app, one function per command.

Commands call library functions; errors a user can cause (:class:`ReddiffError`)
print one line naming the file and the problem and exit with status 1, with the
traceback only under ``--debug``.
"""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="RED-Diff reconstruction of MRI, CT and telescope images, with uncertainty maps.")


@app.callback()
def main() -> None:
    """RED-Diff reconstruction of MRI, CT and telescope images, with uncertainty maps."""
