"""kfp-distill: distilling step-by-step as Kubeflow Pipelines components.

The names a pipeline or a script of yours needs, so that none has to reach into `kfp_distill._implementation`:
the default teacher and student, the image the components run in (`KFP_DISTILL_IMAGE` when compiled), the
variable a hosted teacher's API key is read from, the one that has a step draw its progress bars,
`load_model` (a registered distilled student, by name or Vertex AI resource name, ready to answer), and the
version. The components themselves are
`kfp_distill.components.<name>.component.<name>` (deploy-model's is `deploy_registered_model`, named apart from
the `deploy_model` setting), the pipeline `kfp_distill.pipelines.distillation.pipeline`.
"""

from kfp_distill._version import __version__

__all__ = [
    "DEFAULT_STUDENT", "DEFAULT_TEACHER", "IMAGE", "PROGRESS_BARS_ENV", "TEACHER_API_KEY_ENV", "__version__", "load_model"
]


def __getattr__(name: str):
    """A public name, imported from the module that owns it on first use.

    Not at import time: importing any kfp_distill module runs this file first, and the Makefile reads the image
    name so with a bare python3 (no third-party packages).
    """
    if name in ("DEFAULT_STUDENT", "DEFAULT_TEACHER"):
        from kfp_distill._implementation import models as owner
    elif name in ("IMAGE", "PROGRESS_BARS_ENV"):
        from kfp_distill._implementation import settings as owner
    elif name == "TEACHER_API_KEY_ENV":
        from kfp_distill._implementation import teacher_key as owner
    elif name == "load_model":
        from kfp_distill._implementation import model_store as owner
    else:
        raise AttributeError(f"module 'kfp_distill' has no attribute {name!r}")
    return getattr(owner, name)
