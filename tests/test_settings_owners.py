"""Each setting is said once, by its owner; the KFP signatures and docstrings that repeat it say the same.

A setting's owner is a field of a config dataclass (`kfp_distill._implementation.setting_field.setting`): its
component's (`components/<name>/config.py`), or the pipeline's `DistillationSettings` for one that several
components read (`kfp_distill/interfaces/parameters.py`, which also declares the renamed settings, the defaults
that differ by design and the inputs that are wiring). The components' and the pipeline's signatures must hold
literals, so they repeat names, types and defaults; their docstrings repeat the help text. These tests compare
every copy with its owner and say, for each difference, what to change:

- a pipeline parameter: its type, default and docstring description against its owner's;
- a component input its own owner declares: type, default and description against that owner's;
- a component input fed by a pipeline parameter owned elsewhere: type and default against that owner's (its
  description is the component's own: what this step does with it); an input the component requires is given
  by the pipeline, so has no default to compare;
- an owner's field of scope `pipeline` or `component` must be an input of its component, one of scope `pipeline`
  a parameter of the pipeline too; a component input with no owner and no declaration fails.

Descriptions are compared as KFP reads them (whitespace aside); `.venv/bin/python tests/test_parameter_docs.py`
rewrites every docstring description from its owner.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from kfp_distill.interfaces.compiling import COMPONENTS
from kfp_distill.interfaces import parameters
from kfp_distill.interfaces.parameters import (
    COMPONENT_OWNERS,
    DIFFERENT_BY_DESIGN,
    NOT_SETTINGS,
    PIPELINE,
    RENAMED,
    DistillationSettings,
    OwnedSetting,
    owned_settings,
    pipeline_parameter_owner,
)
from kfp_distill.pipelines.distillation.pipeline import distillation

ROOT = Path(__file__).resolve().parent.parent
PIPELINE_FILE = "pipelines/distillation/pipeline.py"
REWRITE = "run .venv/bin/python tests/test_parameter_docs.py to rewrite the docstrings from the owners"
EMPTY = inspect.Parameter.empty

# The components by folder name, as COMPONENT_OWNERS, NOT_SETTINGS and DIFFERENT_BY_DESIGN name them.
COMPONENTS_BY_FOLDER = {Path(file_name).stem: component for file_name, component in COMPONENTS.items()}
PIPELINE_PARAMETERS = inspect.signature(distillation.pipeline_func).parameters


def _described(text: str | None) -> str:
    return " ".join((text or "").split())


def _setting_inputs(component) -> dict[str, inspect.Parameter]:
    """A component's parameter inputs (artifacts aside), by name, as its signature declares them."""
    signature = inspect.signature(component.python_func).parameters
    return {
        name: signature[name]
        for name, spec in component.component_spec.inputs.items()
        if not spec.type.startswith("system.")
    }


def _same_value(first: object, second: object) -> bool:
    """Equal and of the same type, so that `1` is not `True` and `0` not `0.0`."""
    return type(first) is type(second) and first == second


def _type_and_default_problems(place: str, where: str, parameter: inspect.Parameter, owned: OwnedSetting) -> list[str]:
    """How `parameter` (named at `where`) differs from `owned` in type or default, unless declared by design."""
    declared = DIFFERENT_BY_DESIGN.get((place, parameter.name))
    problems = []
    if parameter.annotation is not owned.type:
        problems.append(f"{where}: type {parameter.annotation.__name__}, but its owner {owned.where} has {owned.type}")
    # A required component input has no default to drift: the pipeline always gives it.
    required_input = place != PIPELINE and parameter.default is EMPTY
    if not required_input and not _same_value(parameter.default, owned.default):
        shown = "none (required)" if parameter.default is EMPTY else repr(parameter.default)
        wanted = "none (required)" if owned.default is EMPTY else repr(owned.default)
        problems.append(f"{where}: default {shown}, but its owner {owned.where} has {wanted}: give it {wanted}")
    if declared and not problems:
        return [
            f"{where} matches its owner {owned.where}, yet DIFFERENT_BY_DESIGN declares ({place!r}, "
            f"{parameter.name!r}) different: remove that entry from kfp_distill/interfaces/parameters.py"
        ]
    if declared:
        return []
    return [
        f"{problem} (if it differs by design, declare ({place!r}, {parameter.name!r}) in DIFFERENT_BY_DESIGN, "
        "kfp_distill/interfaces/parameters.py)"
        for problem in problems
    ]


def _help_problem(where: str, description: str | None, owned: OwnedSetting) -> list[str]:
    if _described(description) == owned.help:
        return []
    return [f"{where}: the docstring says {_described(description)!r}, its owner {owned.where} says {owned.help!r}: "
            f"{REWRITE} (or change the owner's help, then run it)"]


def pipeline_problems() -> list[str]:
    """Every way the pipeline's signature and docstring differ from the settings' owners."""
    problems = []
    for name, parameter in PIPELINE_PARAMETERS.items():
        where = f"{PIPELINE_FILE}: parameter {name}"
        try:
            owned = pipeline_parameter_owner(name)
        except LookupError as error:
            problems.append(f"{where}: {error}")
            continue
        problems += _type_and_default_problems(PIPELINE, where, parameter, owned)
        problems += _help_problem(where, distillation.component_spec.inputs[name].description, owned)
    for name in owned_settings(DistillationSettings):
        if name not in PIPELINE_PARAMETERS:
            problems.append(
                f"DistillationSettings.{name} is no parameter of the pipeline: add `{name}` to distillation's "
                f"signature and Args in {PIPELINE_FILE}, or remove it from DistillationSettings"
            )
    return problems


def _pipeline_parameter_feeding(component: str, name: str) -> str | None:
    """The pipeline parameter that gives a component input its value: declared in RENAMED, else the same name."""
    renamed = [parameter for parameter, target in RENAMED.items() if target == (component, name)]
    if renamed:
        return renamed[0]
    return name if name in PIPELINE_PARAMETERS else None


def component_problems(folder: str) -> list[str]:
    """Every way a component's signature and docstring differ from the settings' owners."""
    component = COMPONENTS_BY_FOLDER[folder]
    owner = COMPONENT_OWNERS.get(folder)
    owned = owned_settings(owner) if owner else {}
    inputs = _setting_inputs(component)
    problems = []
    for name, parameter in inputs.items():
        where = f"components/{folder}/component.py: input {name}"
        if (folder, name) in NOT_SETTINGS:
            continue
        feeding = _pipeline_parameter_feeding(folder, name)
        own = owned.get(name)
        if own is not None and own.scope == "internal":
            problems.append(f"{where}: {own.where} has scope 'internal', yet it is an input: give it scope "
                            f"'component' (or 'pipeline' when the pipeline sets it too)")
        elif own is not None:
            problems += _type_and_default_problems(folder, where, parameter, own)
            problems += _help_problem(where, component.component_spec.inputs[name].description, own)
        if feeding is not None:
            try:
                pipeline_owned = pipeline_parameter_owner(feeding)
            except LookupError:
                continue  # pipeline_problems names it
            if pipeline_owned != own:
                problems += _type_and_default_problems(folder, where, parameter, pipeline_owned)
        elif own is None:
            owner_name = owner.__name__ if owner else f"a config dataclass in components/{folder}/config.py"
            problems.append(
                f"{where} has no owner: declare it in {owner_name} with setting(default, help=..., scope=...), or, "
                f"if another step's output or a placeholder fills it, in NOT_SETTINGS "
                f"(kfp_distill/interfaces/parameters.py)"
            )
    for name, own in owned.items():
        if own.scope == "internal":
            continue
        if name not in inputs:
            problems.append(
                f"{own.where} (scope {own.scope!r}) is no input of {component.component_spec.name}: add `{name}: "
                f"{getattr(own.type, '__name__', own.type)} = {own.default!r}` to its signature and Args in "
                f"components/{folder}/component.py, or give it scope 'internal'"
            )
        elif own.scope == "pipeline" and not any(
            parameters.component_input(parameter) in ((folder, name), (None, name)) for parameter in PIPELINE_PARAMETERS
        ):
            problems.append(
                f"{own.where} has scope 'pipeline' but no pipeline parameter gives it: add `{name}` to distillation's "
                f"signature and Args in {PIPELINE_FILE} (under another name: declare it in RENAMED), or give it "
                f"scope 'component'"
            )
    return problems


def test_every_pipeline_parameter_has_its_owners_type_default_and_help():
    problems = pipeline_problems()
    assert not problems, "\n".join(problems)


def test_every_component_input_has_its_owners_type_default_and_help():
    problems = [problem for folder in COMPONENTS_BY_FOLDER for problem in component_problems(folder)]
    assert not problems, "\n".join(problems)


def test_the_declarations_name_real_components_and_inputs():
    stale = [
        f"{table} names {component}'s {name}, which it does not have"
        for table, entries in (("NOT_SETTINGS", NOT_SETTINGS), ("DIFFERENT_BY_DESIGN", DIFFERENT_BY_DESIGN))
        for component, name in entries
        if not (
            (component == PIPELINE and name in PIPELINE_PARAMETERS)
            or (component in COMPONENTS_BY_FOLDER and name in _setting_inputs(COMPONENTS_BY_FOLDER[component]))
        )
    ]
    stale += [
        f"RENAMED gives the pipeline parameter {parameter} to {component}'s {name}, which does not exist"
        for parameter, (component, name) in RENAMED.items()
        if parameter not in PIPELINE_PARAMETERS or name not in _setting_inputs(COMPONENTS_BY_FOLDER[component])
    ]
    assert not stale, "\n".join(stale)


def test_a_forgotten_copy_is_named_with_what_to_do(monkeypatch):
    """Each kind of drift is caught: an owner's default or help changed alone, a setting added to an owner only."""
    from dataclasses import fields, make_dataclass

    from kfp_distill._implementation.setting_field import HELP, setting
    from kfp_distill.components.deploy_model.config import DeploymentConfig

    changed = {"machine_type": ("e2-standard-4", None), "min_replica_count": (1, "Replicas kept warm.")}
    drifted = make_dataclass(
        "DeploymentConfig",
        [
            *(
                (item.name, type(item.default), setting(
                    changed.get(item.name, (item.default, None))[0],
                    help=changed.get(item.name, (None, None))[1] or item.metadata[HELP],
                ))
                for item in fields(DeploymentConfig)
            ),
            ("warm_up_requests", int, setting(0, help="Requests sent before traffic moves.")),
        ],
    )
    monkeypatch.setitem(COMPONENT_OWNERS, "deploy_model", drifted)

    problems = "\n".join(component_problems("deploy_model") + pipeline_problems())

    assert ("input machine_type: default 'n1-standard-2', but its owner DeploymentConfig.machine_type has "
            "'e2-standard-4': give it 'e2-standard-4'") in problems
    assert "parameter deploy_machine_type: default 'n1-standard-2'" in problems
    assert ("input min_replica_count: the docstring says 'Replicas the endpoint always runs.', its owner "
            "DeploymentConfig.min_replica_count says 'Replicas kept warm.'") in problems
    assert ("DeploymentConfig.warm_up_requests (scope 'pipeline') is no input of deploy-model: add "
            "`warm_up_requests: int = 0`") in problems
