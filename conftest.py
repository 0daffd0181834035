"""Repository-wide pytest set-up: notebooks run in fast mode under the test suite.

``REDDIFF_FAST=1`` is inherited by the notebook kernels that nbmake starts; each
notebook reads it to cut steps, samples and image sizes (a user running a notebook
by hand gets the full settings).
"""

import os

os.environ.setdefault("REDDIFF_FAST", "1")
