"""``python -m reddiff`` runs the command line (also under ``torchrun``)."""

from .cli import app

app()
