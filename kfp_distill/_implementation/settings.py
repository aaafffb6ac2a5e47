"""Settings read when components are compiled."""

import os

from kfp_distill._version import __version__

# The container image every component runs in on Vertex AI and Kubeflow; set before compiling to use your own.
IMAGE = os.environ.get("KFP_DISTILL_IMAGE", f"ghcr.io/kfp-distill/kfp-distill:{__version__}")
