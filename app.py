"""Entry point of the MNIST lab dashboard: routes to the pages, nothing else."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pages.parts.routing import run_app  # noqa: E402

run_app()
