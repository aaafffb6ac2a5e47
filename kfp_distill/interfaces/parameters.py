"""Which owner each setting of the `distillation` pipeline and its components has, and the reference made from it.

A setting is owned once: by its component's config dataclass (`components/<name>/config.py`), or by
`DistillationSettings` below when the pipeline hands it to several components that each use it their own way.
The owner's field holds the name, type, default and help text; the component's signature and the pipeline's
repeat them as literals (KFP reads both from source) and `tests/test_settings_owners.py` fails, saying what to
change, when a copy differs. What the copies may do differently is declared here, once: the pipeline's names for
renamed settings (`RENAMED`), defaults or types that differ by design (`DIFFERENT_BY_DESIGN`), and the inputs that
are wiring between steps rather than settings (`NOT_SETTINGS`). docs/parameters.md and `kfp-distill run --help`
take each pipeline parameter's help from here.

Adding a setting: declare it in its owner with `setting(default, help=...)`; add it, as a literal, to the component's
signature and the pipeline's (and pass it on in the pipeline); run `.venv/bin/python tests/test_parameter_docs.py`
(docstring descriptions, README input lists, docs/parameters.md) and `kfp-distill compile`.
`tests/test_settings_owners.py` names whatever is still missing.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass

from kfp_distill._implementation.models import DEFAULT_STUDENT, DEFAULT_TEACHER
from kfp_distill._implementation.setting_field import HELP, SCOPE, setting
from kfp_distill.components.deploy_model.config import DeploymentConfig
from kfp_distill.components.evaluate.config import EvaluationConfig
from kfp_distill.components.generate_rationales.config import GenerationConfig
from kfp_distill.components.tune_student.config import TuningConfig
from kfp_distill.components.upload_model.config import UploadConfig
from kfp_distill.components.validate_dataset.config import ValidationConfig
from kfp_distill.pipelines.distillation.pipeline import DEFAULT_KUBERNETES_SECRET

PIPELINE = "distillation"


@dataclass
class DistillationSettings:
    """The pipeline's settings that several components read, each for its own purpose (each component's
    docstring says which); the pipeline passes them on under the same names."""

    project: str = setting("", help="Google Cloud project; empty keeps everything off Google Cloud.")
    location: str = setting(
        "", help="Region the distilled model is uploaded to, and where a Vertex AI teacher runs."
    )
    accelerator_type: str = setting(
        "GPU",
        help="""`GPU`: with a project, tuning runs as a Vertex AI custom job on 8 x NVIDIA A100 80GB; without one, in
        the pipeline's own process or pod, on its devices. `TPU` is not supported yet: the preflight step stops the
        run before the teacher is asked anything.""",
    )
    teacher_model_reference: str = setting(
        DEFAULT_TEACHER,
        help="""The teacher, e.g. `qwen2.5-coder-1.5b-instruct` (llama.cpp, the default), `http://127.0.0.1:8080/v1#qwen`
        (an OpenAI-compatible server), `gemini-2.5-flash` (Vertex AI, in `project` and `location`),
        `hf:Qwen/Qwen2.5-7B-Instruct` or `precomputed` (the data carries rationales); every form, and which wins
        where two could apply: docs/teachers.md.""",
    )
    student_model_reference: str = setting(
        DEFAULT_STUDENT, help="The student: a catalog name, a Hugging Face id, a local path or a URI."
    )
    encryption_spec_key_name: str = setting("", help="A customer-managed encryption key.")
    teacher_api_key_secret: str = setting(
        "",
        help="""A Secret Manager secret version (`projects/P/secrets/S/versions/latest`) holding an
        OpenAI-compatible teacher's API key, read by the teacher steps at run time with the job's service account
        (it needs roles/secretmanager.secretAccessor on the secret). The key itself is never a parameter:
        parameters are recorded in the job. Empty: the key comes from the step's environment.""",
    )
    teacher_api_key_kubernetes_secret: str = setting(
        DEFAULT_KUBERNETES_SECRET,
        help="""On Kubeflow (compiled/distillation-kubeflow.yaml), the Kubernetes secret in the run's namespace
        whose `api_key` becomes the teacher steps' KFP_DISTILL_TEACHER_API_KEY; a missing secret leaves it unset.
        Vertex AI and kfp.local ignore it.""",
    )


# Each component's owner: its config dataclass. preflight owns no setting: every input it takes is another
# owner's setting.
COMPONENT_OWNERS: dict[str, type] = {
    "validate_dataset": ValidationConfig,
    "generate_rationales": GenerationConfig,
    "tune_student": TuningConfig,
    "evaluate": EvaluationConfig,
    "upload_model": UploadConfig,
    "deploy_model": DeploymentConfig,
}

# Pipeline parameters named apart from the component input they feed: pipeline parameter -> (component, input).
RENAMED: dict[str, tuple[str, str]] = {
    **{
        f"teacher_{name}": ("generate_rationales", name)
        for name in (
            "prompt_template",
            "few_shot_uri",
            "max_new_tokens",
            "cache_uri",
            "max_concurrency",
            "max_total_tokens",
            "self_consistency_samples",
            "answer_format",
            "probe_rows",
            "rationale_length",
            "min_answered_fraction",
        )
    },
    **{
        f"deploy_{name}": ("deploy_model", name)
        for name in ("machine_type", "min_replica_count", "max_replica_count", "traffic_percentage")
    },
    **{f"deploy_{name}": ("evaluate", name) for name in ("min_share_of_teacher", "gate_on_lower_bound")},
}

# (pipeline or component, parameter) -> why its type or default is not its owner's. The help text still is.
DIFFERENT_BY_DESIGN: dict[tuple[str, str], str] = {
    (PIPELINE, "class_names"): "a KFP parameter is a string: the classes comma-separated; the owner holds a tuple",
    ("generate_rationales", "class_names"): "a KFP parameter is a string: the classes comma-separated",
    ("tune_student", "micro_batch_size"): "a KFP parameter cannot be None: 0 stands for the owner's None",
    ("validate_dataset", "enable_checkpoint_selection"): (
        "alone, validate-dataset warns as if the last checkpoint were kept; the pipeline passes its own setting"
    ),
}

# (component, input) -> why it is no setting: the pipeline fills it from another step's output, a placeholder or
# a constant, so it has no owner (its component's docstring describes it).
NOT_SETTINGS: dict[tuple[str, str], str] = {
    ("preflight", "kfp_distill_image_uri"): "the pipeline passes the image it was compiled with",
    ("generate_rationales", "pipeline_root"): "the pipeline passes dsl.PIPELINE_ROOT_PLACEHOLDER",
    ("tune_student", "task_type"): "validate-dataset's output",
    ("evaluate", "task_type"): "validate-dataset's output",
    ("evaluate", "task_type_reason"): "validate-dataset's output",
    ("upload_model", "pipeline_job_name"): "the pipeline passes dsl.PIPELINE_JOB_NAME_PLACEHOLDER",
    ("upload_model", "kfp_distill_image_uri"): "the pipeline passes the image it was compiled with",
    ("upload_model", "gate_decision"): "evaluate's output, or the no-evaluation branch's",
    ("upload_model", "gate_reason"): "evaluate's output, or the no-evaluation branch's",
    ("deploy_model", "model_resource_name"): "upload-model's output",
    ("deploy_model", "gate_decision"): "evaluate's output, or the no-evaluation branch's",
    ("deploy_model", "gate_reason"): "evaluate's output, or the no-evaluation branch's",
    ("deploy_model", "service_account"): "the pipeline passes the job's service account placeholder",
}


@dataclass(frozen=True)
class OwnedSetting:
    """One setting as its owner declares it.

    Attributes:
        owner: The config dataclass that owns it.
        name: Its field's name in the owner.
        type: Its type as a KFP signature holds it: `str`, `int`, `float` or `bool` (a Literal's values' type).
        default: Its default; `inspect.Parameter.empty` when it is required.
        help: What it means, one paragraph.
        scope: `pipeline`, `component` or `internal` (`setting_field.Scope`).
    """

    owner: type
    name: str
    type: object
    default: object
    help: str
    scope: str

    @property
    def where(self) -> str:
        """`Owner.field`, as messages name it."""
        return f"{self.owner.__name__}.{self.name}"


def owned_settings(owner: type) -> dict[str, OwnedSetting]:
    """Every field of a config dataclass as an `OwnedSetting`, by name."""
    hints = typing.get_type_hints(owner)
    settings = {}
    for owned in dataclasses.fields(owner):
        if owned.default is not dataclasses.MISSING:
            default = owned.default
        elif owned.default_factory is not dataclasses.MISSING:
            default = owned.default_factory()
        else:
            default = inspect.Parameter.empty
        settings[owned.name] = OwnedSetting(
            owner=owner,
            name=owned.name,
            type=_kfp_type(hints[owned.name]),
            default=default,
            help=owned.metadata.get(HELP, ""),
            scope=owned.metadata.get(SCOPE, "pipeline"),
        )
    return settings


def _kfp_type(hint: object) -> object:
    """A Literal's values' type (`Literal["full", "lora"]` is a `str`); any other type as it is."""
    if typing.get_origin(hint) is typing.Literal:
        return type(typing.get_args(hint)[0])
    return hint


def component_input(parameter: str) -> tuple[str | None, str]:
    """The (component, input) a pipeline parameter is declared to feed under another name, else (None, parameter)."""
    return RENAMED.get(parameter, (None, parameter))


def pipeline_parameter_owner(parameter: str) -> OwnedSetting:
    """The owner's declaration of a pipeline parameter's setting.

    Raises:
        LookupError: No owner declares it, or several component owners do and none is named (the message says
            how to declare it).
    """
    component, name = component_input(parameter)
    if component is not None:
        owned = owned_settings(COMPONENT_OWNERS[component])
        if name not in owned:
            raise LookupError(
                f"RENAMED maps the pipeline parameter {parameter} to {component}'s {name}, which "
                f"{COMPONENT_OWNERS[component].__name__} does not declare: add it there with setting(...)"
            )
        return owned[name]
    pipeline_owned = owned_settings(DistillationSettings)
    if parameter in pipeline_owned:
        return pipeline_owned[parameter]
    candidates = [
        owned[parameter]
        for owned in map(owned_settings, COMPONENT_OWNERS.values())
        if parameter in owned and owned[parameter].scope == "pipeline"
    ]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise LookupError(
            f"the pipeline parameter {parameter} has no owner: declare it with setting(default, help=...) in the "
            f"config dataclass of the component that uses it (components/<name>/config.py), or in "
            f"DistillationSettings (kfp_distill/interfaces/parameters.py) when several components use it"
        )
    owners = ", ".join(candidate.where for candidate in candidates)
    raise LookupError(
        f"the pipeline parameter {parameter} is declared by {owners}: move it to DistillationSettings, or mark all "
        f"but one scope='component'"
    )


def pipeline_help(parameter: str) -> str:
    """What a pipeline parameter means, as its owner says."""
    return pipeline_parameter_owner(parameter).help


def _reference_default(parameter: inspect.Parameter) -> str:
    if parameter.default is inspect.Parameter.empty:
        return "required"
    if isinstance(parameter.default, bool):
        return f"`{str(parameter.default).lower()}`"
    return f"`{parameter.default}`" if parameter.default != "" else '`""`'


def reference_markdown(pipeline_func) -> str:
    """docs/parameters.md: the pipeline's parameters in a table (name, type, default, meaning), from their owners."""
    rows = [
        f"| `{name}` | {parameter.annotation.__name__} | {_reference_default(parameter)} | "
        f"{pipeline_help(name).replace('|', '&#124;')} |"
        for name, parameter in inspect.signature(pipeline_func).parameters.items()
    ]
    return "\n".join(
        [
            "# Pipeline parameters",
            "",
            "Every parameter of the `distillation` pipeline (compiled/distillation.yaml), with its type, default and "
            "meaning.",
            "This page is generated from the settings' owners (`kfp_distill/interfaces/parameters.py` names each "
            "one's);",
            "`tests/test_parameter_docs.py` fails when it is stale: rewrite it with "
            "`.venv/bin/python tests/test_parameter_docs.py`.",
            "The same text is each input's `description` in the compiled template and the help of `kfp-distill run "
            "--help`.",
            "",
            "| Parameter | Type | Default | Meaning |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )
