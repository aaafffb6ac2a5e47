"""Starts a compiled pipeline on Vertex AI Pipelines from a pipelineJobs request body, checked first.

The request body is the one Vertex AI's distillation page shows for `POST .../pipelineJobs`:
`displayName`, `runtimeConfig.gcsOutputDirectory`, `runtimeConfig.parameterValues`,
`encryptionSpec.kmsKeyName`, `serviceAccount` and `templateUri`. The Vertex SDK only rejects unknown
parameter names; here every parameter's name, type and presence is checked against the template's
input definitions, and every problem is reported at once, before anything is sent. So are the preflight's
problems (retired models, an unsupported accelerator, a malformed secret name, a serving image Vertex AI cannot
pull), found in the values the template's preflight step, its first, would check again; a template without one
(users submit their own templates too) is said to have had nothing checked.
"""

from __future__ import annotations

import difflib
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import yaml

from kfp_distill._implementation.preflight import SETTINGS, Preflight, preflight
from kfp_distill.components.preflight import report as preflight_report
from kfp_distill.components.preflight.component import preflight as preflight_step

# An Artifact Registry template: https://REGION-kfp.pkg.dev/PROJECT/REPO/PACKAGE/TAG_OR_VERSION.
ARTIFACT_REGISTRY_URI = re.compile(
    r"^(?P<host>https://[\w-]+-kfp\.pkg\.dev/[^/]+/[^/]+)/(?P<package>[^/]+)/(?P<reference>[^/]+)$"
)

TOP_LEVEL_FIELDS = ("displayName", "runtimeConfig", "encryptionSpec", "serviceAccount", "templateUri")
RUNTIME_CONFIG_FIELDS = ("gcsOutputDirectory", "parameterValues")
ENCRYPTION_SPEC_FIELDS = ("kmsKeyName",)

NO_PREFLIGHT = "this template has no preflight step: nothing was checked before spending"

# The JSON types each KFP parameter type accepts; bool is excluded from numbers because it subclasses int.
TYPE_DESCRIPTIONS = {
    "STRING": "a string",
    "NUMBER_INTEGER": "an integer",
    "NUMBER_DOUBLE": "a number",
    "BOOLEAN": "true or false",
    "LIST": "a list",
    "STRUCT": "an object",
}


class RequestError(ValueError):
    """A pipelineJobs request that cannot be sent; `problems` lists every reason, one message each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the pipelineJobs request:\n- " + "\n- ".join(problems))


@dataclass(frozen=True)
class ParameterDefinition:
    """One input parameter of a compiled pipeline.

    Attributes:
        name: The parameter's name.
        parameter_type: The KFP type: STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, LIST or STRUCT.
        required: True when the template gives it no default and does not mark it optional.
    """

    name: str
    parameter_type: str
    required: bool


@dataclass
class PipelineJobRequest:
    """A checked pipelineJobs request, in the Vertex SDK's terms.

    Attributes:
        display_name: `displayName`.
        template_uri: `templateUri`, as given.
        pipeline_root: `runtimeConfig.gcsOutputDirectory`, or None for the template's default.
        parameter_values: `runtimeConfig.parameterValues`, with numbers and booleans in their template types.
        encryption_spec_key_name: `encryptionSpec.kmsKeyName`, or None.
        service_account: `serviceAccount`, or None for the project's default.
        notes: Settings that will have no effect as given (they only apply with a project).
    """

    display_name: str
    template_uri: str
    pipeline_root: str | None = None
    parameter_values: dict[str, Any] = field(default_factory=dict)
    encryption_spec_key_name: str | None = None
    service_account: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_request_body(self) -> dict:
        """The request in the pipelineJobs body's own shape, fields left out where not given."""
        runtime_config: dict[str, Any] = {"parameterValues": self.parameter_values}
        if self.pipeline_root:
            runtime_config["gcsOutputDirectory"] = self.pipeline_root
        body: dict[str, Any] = {"displayName": self.display_name, "runtimeConfig": runtime_config}
        if self.encryption_spec_key_name:
            body["encryptionSpec"] = {"kmsKeyName": self.encryption_spec_key_name}
        if self.service_account:
            body["serviceAccount"] = self.service_account
        body["templateUri"] = self.template_uri
        return body

    def to_json(self) -> str:
        """The request body as indented JSON, for `--dry-run`."""
        return json.dumps(self.to_request_body(), indent=2)


def load_template(template_uri: str, credentials: Any = None) -> dict:
    """Reads a compiled pipeline from a local path, a `file://` or fsspec URI, or Artifact Registry.

    Args:
        template_uri: Where the compiled YAML is; `https://REGION-kfp.pkg.dev/PROJECT/REPO/PACKAGE/TAG`
            (or `.../sha256:...`) is downloaded with `kfp.registry.RegistryClient`.
        credentials: Google credentials for Artifact Registry; None uses the application default.

    Returns:
        The pipeline spec as a dict.
    """
    registry = ARTIFACT_REGISTRY_URI.match(template_uri)
    if registry is None:
        with fsspec.open(template_uri, "r") as template_file:
            return yaml.safe_load(template_file)

    from kfp.registry import RegistryClient

    reference = registry["reference"]
    version, tag = (reference, None) if reference.startswith("sha256:") else (None, reference)
    client = RegistryClient(host=registry["host"], auth=credentials)
    with tempfile.TemporaryDirectory() as directory:
        path = client.download_pipeline(
            registry["package"], version=version, tag=tag, file_name=str(Path(directory) / "template.yaml")
        )
        return yaml.safe_load(Path(path).read_text())


def parameter_definitions(template: dict) -> dict[str, ParameterDefinition]:
    """The pipeline's input parameters, from `root.inputDefinitions.parameters` of its compiled spec."""
    parameters = template.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return {
        name: ParameterDefinition(
            name=name,
            parameter_type=definition["parameterType"],
            required="defaultValue" not in definition and not definition.get("isOptional", False),
        )
        for name, definition in parameters.items()
    }


def _converted(value: Any, parameter_type: str) -> tuple[bool, Any]:
    """Returns (accepted, value in the parameter's type)."""
    if parameter_type == "STRING":
        return isinstance(value, str), value
    if parameter_type == "BOOLEAN":
        if isinstance(value, bool):
            return True, value
        # Vertex AI's distillation guide quotes "enable_checkpoint_selection" in its example body; Vertex reads
        # "true"/"false" as booleans.
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return True, value.lower() == "true"
        return False, value
    if isinstance(value, bool):
        return False, value
    if parameter_type == "NUMBER_INTEGER":
        if isinstance(value, int):
            return True, value
        # JSON has one number type: 300.0 is the integer 300, 0.5 is not an integer.
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return False, value
    if parameter_type == "NUMBER_DOUBLE":
        return isinstance(value, (int, float)), float(value) if isinstance(value, (int, float)) else value
    if parameter_type == "LIST":
        return isinstance(value, list), value
    if parameter_type == "STRUCT":
        return isinstance(value, dict), value
    return False, value


def validate_parameters(parameter_values: dict[str, Any], template: dict) -> tuple[dict[str, Any], list[str]]:
    """Checks parameter values against the template's input definitions.

    Args:
        parameter_values: `runtimeConfig.parameterValues` of the request.
        template: The compiled pipeline spec.

    Returns:
        The values converted to their template types, and one message per problem (unknown name,
        wrong type, missing required parameter); no problems means the values can be sent.
    """
    definitions = parameter_definitions(template)
    converted: dict[str, Any] = {}
    problems = []
    for name, value in parameter_values.items():
        definition = definitions.get(name)
        if definition is None:
            close = difflib.get_close_matches(name, definitions, n=1)
            hint = f"did you mean {close[0]}?" if close else f"the template takes {', '.join(sorted(definitions))}"
            problems.append(f"runtimeConfig.parameterValues.{name}: unknown parameter; {hint}")
            continue
        accepted, typed_value = _converted(value, definition.parameter_type)
        if not accepted:
            problems.append(
                f"runtimeConfig.parameterValues.{name}: wrong type: expected "
                f"{TYPE_DESCRIPTIONS.get(definition.parameter_type, definition.parameter_type)} "
                f"({definition.parameter_type}), got {json.dumps(value)}"
            )
            continue
        converted[name] = typed_value
    for name, definition in definitions.items():
        if definition.required and name not in parameter_values:
            problems.append(
                f"runtimeConfig.parameterValues.{name}: missing required parameter ({definition.parameter_type})"
            )
    return converted, problems


def preflight_tasks(template: dict) -> list[dict]:
    """The top-level tasks of a compiled pipeline that run kfp-distill's preflight step.

    A task is known by what its executor runs (the step's function, in a program that imports its module), not by
    its name or its component's, which a template's author may change.
    """
    components = template.get("components", {})
    executors = template.get("deploymentSpec", {}).get("executors", {})

    def runs_preflight(task: dict) -> bool:
        component = components.get(task.get("componentRef", {}).get("name", ""), {})
        container = executors.get(component.get("executorLabel", ""), {}).get("container", {})
        # A Python component's container runs `... --function_to_execute NAME` on a program holding its source.
        function = container.get("args", [])[-2:]
        program = " ".join(part for part in container.get("command", []) if isinstance(part, str))
        return function == ["--function_to_execute", preflight_step.python_func.__name__] and (
            preflight_report.__name__ in program
        )

    tasks = template.get("root", {}).get("dag", {}).get("tasks", {})
    return [task for task in tasks.values() if runs_preflight(task)]


def preflight_settings(
    parameter_values: dict[str, Any], template: dict, task: dict
) -> tuple[dict[str, Any], list[str]]:
    """The values a preflight task will check before spending, as this request sets them.

    Args:
        parameter_values: The request's parameter values, in their template types.
        template: The compiled pipeline spec.
        task: One of its `preflight_tasks`.

    Returns:
        The settings (pipeline parameters with the template's defaults, constants, and the component's own
        defaults for what the task leaves unset), and the names of those another step gives only at run time.
    """

    def defaults(inputs: dict) -> dict[str, Any]:
        parameters = inputs.get("inputDefinitions", {}).get("parameters", {})
        return {name: definition.get("defaultValue") for name, definition in parameters.items()}

    pipeline_defaults = defaults(template["root"])
    component = template.get("components", {}).get(task.get("componentRef", {}).get("name", ""), {})
    settings = {name: value for name, value in defaults(component).items() if name in SETTINGS}
    at_run_time = []
    for name, source in task.get("inputs", {}).get("parameters", {}).items():
        if name not in SETTINGS:
            continue
        if "componentInputParameter" in source:
            parameter = source["componentInputParameter"]
            value = parameter_values.get(parameter, pipeline_defaults.get(parameter))
        elif "runtimeValue" in source:
            value = source["runtimeValue"].get("constant")
        else:
            at_run_time.append(name)
            continue
        # None: a required parameter the request leaves out, a problem of its own.
        if value is not None:
            settings[name] = value
    return settings, at_run_time


def template_preflight(parameter_values: dict[str, Any], template: dict) -> Preflight:
    """What the template's preflight step would find in this request's values, found before anything is sent.

    Args:
        parameter_values: The request's parameter values, in their template types.
        template: The compiled pipeline spec.

    Returns:
        The problems and notes; without a preflight step, a note that nothing was checked.
    """
    tasks = preflight_tasks(template)
    if not tasks:
        return Preflight(notes=[NO_PREFLIGHT])
    found = Preflight()
    for task in tasks:
        settings, at_run_time = preflight_settings(parameter_values, template, task)
        checked = preflight(settings)
        checked.notes += [f"{name} comes from another step at run time: the preflight step checks it then"
                          for name in at_run_time]
        found.problems += [problem for problem in checked.problems if problem not in found.problems]
        found.notes += [note for note in checked.notes if note not in found.notes]
    return found


def _unknown_fields(section: dict, known: tuple[str, ...], prefix: str) -> list[str]:
    return [
        f"{prefix}{name}: unknown field; kfp-distill submit takes {', '.join(known)}"
        for name in section
        if name not in known
    ]


def _optional_string(section: dict, name: str, prefix: str, problems: list[str]) -> str | None:
    value = section.get(name)
    if value is not None and not isinstance(value, str):
        problems.append(f"{prefix}{name}: wrong type: expected a string, got {json.dumps(value)}")
        return None
    return value or None


def _section(request: dict, name: str, problems: list[str]) -> dict:
    value = request.get(name, {})
    if not isinstance(value, dict):
        problems.append(f"{name}: wrong type: expected an object, got {json.dumps(value)}")
        return {}
    return value


def validate_request(request: dict, template: dict | None = None, credentials: Any = None) -> PipelineJobRequest:
    """Checks a pipelineJobs request body and returns it in the Vertex SDK's terms.

    Args:
        request: The request body (the JSON that Vertex AI's distillation guide's `curl` example posts).
        template: The compiled pipeline spec; None reads it from the request's `templateUri`.
        credentials: Google credentials for reading the template from Artifact Registry.

    Returns:
        The checked request, parameter values converted to their template types.

    Raises:
        RequestError: Listing every problem found, one message each.
    """
    if not isinstance(request, dict):
        raise RequestError([f"the request body must be a JSON object, got {json.dumps(request)[:80]}"])
    problems = _unknown_fields(request, TOP_LEVEL_FIELDS, "")
    runtime_config = _section(request, "runtimeConfig", problems)
    encryption_spec = _section(request, "encryptionSpec", problems)
    problems += _unknown_fields(runtime_config, RUNTIME_CONFIG_FIELDS, "runtimeConfig.")
    problems += _unknown_fields(encryption_spec, ENCRYPTION_SPEC_FIELDS, "encryptionSpec.")

    for required in ("displayName", "templateUri"):
        if request.get(required) in (None, ""):
            problems.append(f"{required}: missing required field")
    display_name = _optional_string(request, "displayName", "", problems)
    template_uri = _optional_string(request, "templateUri", "", problems)
    pipeline_root = _optional_string(runtime_config, "gcsOutputDirectory", "runtimeConfig.", problems)
    key_name = _optional_string(encryption_spec, "kmsKeyName", "encryptionSpec.", problems)
    service_account = _optional_string(request, "serviceAccount", "", problems)

    parameter_values = runtime_config.get("parameterValues", {})
    if not isinstance(parameter_values, dict):
        problems.append(f"runtimeConfig.parameterValues: wrong type: expected an object, got {json.dumps(parameter_values)}")
        parameter_values = {}
    if template is None and template_uri:
        try:
            template = load_template(template_uri, credentials)
        except Exception as error:  # Any failure to read the template is one more problem to report.
            problems.append(f"templateUri: cannot read {template_uri}: {error}")
    typed_values, notes = {}, []
    if template is not None and not (isinstance(template, dict) and "root" in template):
        problems.append(f"templateUri: {template_uri} is not a compiled pipeline (it has no `root`)")
    elif template is not None:
        typed_values, parameter_problems = validate_parameters(parameter_values, template)
        problems += parameter_problems
        found = template_preflight(typed_values, template)
        problems += found.problems
        notes = found.notes

    if problems:
        raise RequestError(problems)
    return PipelineJobRequest(
        display_name=display_name,
        template_uri=template_uri,
        pipeline_root=pipeline_root,
        parameter_values=typed_values,
        encryption_spec_key_name=key_name,
        service_account=service_account,
        notes=notes,
    )


def _sdk_template_path(template_uri: str) -> str:
    """The SDK reads local paths, gs:// and https:// itself, but not `file://`."""
    return template_uri.removeprefix("file://")


def build_pipeline_job(
    request: PipelineJobRequest,
    project: str | None = None,
    location: str | None = None,
    credentials: Any = None,
):
    """Builds the `google.cloud.aiplatform.PipelineJob` a checked request describes; sends nothing.

    Args:
        request: A request returned by `validate_request`.
        project: The Google Cloud project the job runs in; None uses the SDK's default.
        location: The region the job runs in (the guide's PIPELINE_JOB_REGION); None uses the SDK's default.
        credentials: Google credentials; None uses the application default.

    Returns:
        The PipelineJob, ready for `.submit(service_account=request.service_account)`.
    """
    from google.cloud import aiplatform

    return aiplatform.PipelineJob(
        display_name=request.display_name,
        template_path=_sdk_template_path(request.template_uri),
        pipeline_root=request.pipeline_root,
        parameter_values=request.parameter_values,
        encryption_spec_key_name=request.encryption_spec_key_name,
        project=project,
        location=location,
        credentials=credentials,
    )


def submit(
    request: dict,
    project: str | None = None,
    location: str | None = None,
    credentials: Any = None,
    dry_run: bool = False,
    on_note: Callable[[str], None] | None = None,
):
    """Checks a pipelineJobs request body and, unless `dry_run`, starts the pipeline on Vertex AI.

    Args:
        request: The request body, as the guide's `request.json`.
        project: The Google Cloud project; None uses the SDK's default.
        location: The region the pipeline job runs in; None uses the SDK's default.
        credentials: Google credentials; None uses the application default.
        dry_run: Check only: return the checked request and send nothing.
        on_note: Called with each of the check's notes (settings without effect as given) before anything is sent.

    Returns:
        The checked `PipelineJobRequest` with `dry_run`, else the submitted `aiplatform.PipelineJob`.

    Raises:
        RequestError: Listing every problem found in the request; nothing was sent.
    """
    checked = validate_request(request, credentials=credentials)
    for note in checked.notes if on_note else []:
        on_note(note)
    if dry_run:
        return checked
    job = build_pipeline_job(checked, project=project, location=location, credentials=credentials)
    job.submit(service_account=checked.service_account)
    return job
