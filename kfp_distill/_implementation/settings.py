"""Settings read from the environment: when components are compiled, and when a step runs."""

import os

from kfp_distill._version import __version__

# The container image every component runs in on Vertex AI and Kubeflow; set before compiling to use your own.
IMAGE = os.environ.get("KFP_DISTILL_IMAGE", f"ghcr.io/kfp-distill/kfp-distill:{__version__}")

# Set (to 1) by the local runner for the steps it runs, whose progress bars it shows on a terminal: tune-student
# then draws Hugging Face's bars instead of leaving them out, as it does for a log (Vertex AI, Kubeflow).
PROGRESS_BARS_ENV = "KFP_DISTILL_PROGRESS_BARS"
