"""kfp-distill: distilling step-by-step as Kubeflow Pipelines components."""

__version__ = "0.1.0"
