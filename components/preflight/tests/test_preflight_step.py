"""The preflight step: one input per setting it checks, a report of its problems and notes, a refusal on problems."""

import inspect
import logging

import pytest

from kfp_distill._implementation.preflight import SETTINGS, PreflightError, preflight
from kfp_distill.components.preflight.component import preflight as preflight_step
from kfp_distill.components.preflight.report import check_and_report, to_markdown

PULLABLE = "us-central1-docker.pkg.dev/my-project/kfp-distill/kfp-distill:0.1.0"
FINE = {
    "project": "my-project",
    "teacher_model_reference": "gemini-2.5-flash",
    "student_model_reference": "smollm2-135m-instruct",
    "kfp_distill_image_uri": PULLABLE,
}
# Without a project: a local teacher (a Vertex AI teacher would be refused).
LOCAL = {**FINE, "project": "", "teacher_model_reference": "smollm2-135m-instruct"}


def test_the_step_takes_exactly_the_settings_the_checks_read():
    assert set(preflight_step.component_spec.inputs) == set(SETTINGS)
    assert set(preflight_step.component_spec.outputs) == {"report"}


def test_the_steps_defaults_are_the_pipelines():
    from kfp_distill.pipelines.distillation.pipeline import distillation

    pipeline = inspect.signature(distillation.pipeline_func).parameters
    step = inspect.signature(preflight_step.python_func).parameters
    # The references have no default: a step that checks a teacher and a student is told which.
    assert {name for name in SETTINGS if step[name].default is inspect.Parameter.empty} == {
        "teacher_model_reference", "student_model_reference"
    }
    # The pipeline passes the image it was compiled with; the step alone has no image of its own to check.
    assert step["kfp_distill_image_uri"].default == "" and "kfp_distill_image_uri" not in pipeline
    differing = {
        name: (step[name].default, pipeline[name].default)
        for name in SETTINGS
        if name in pipeline and step[name].default is not inspect.Parameter.empty
        and step[name].default != pipeline[name].default
    }
    assert not differing, f"(step, pipeline) defaults: {differing}"


def test_a_job_with_nothing_to_say_gets_a_report_that_says_so(tmp_path):
    report = tmp_path / "report.md"
    assert check_and_report(FINE, report).notes == []
    assert report.read_text() == (
        "# Preflight\n\nNothing found that would fail after money is spent, and nothing to note.\n"
    )


def test_notes_reach_the_report_and_the_log(tmp_path, caplog):
    report = tmp_path / "report.md"
    local = {**LOCAL, "tensorboard_resource_id": "1", "kfp_distill_image_uri": "ghcr.io/me/kfp-distill"}
    with caplog.at_level(logging.WARNING, logger="kfp_distill.preflight"):
        found = check_and_report(local, report)
    tensorboard, image = found.notes
    assert report.read_text() == (
        "# Preflight\n\nNothing found that would fail after money is spent.\n\n"
        "## Notes: settings without effect as given\n\n"
        f"- {tensorboard}\n- {image}\n"
    )
    assert [record.getMessage() for record in caplog.records] == [tensorboard, image]


def test_problems_are_reported_then_refused(tmp_path):
    report = tmp_path / "report.md"
    refused = {**FINE, "accelerator_type": "TPU", "teacher_model_reference": "text-unicorn@001",
               "kfp_distill_image_uri": "ghcr.io/me/kfp-distill"}
    found = preflight(refused)
    assert len(found.problems) == 3
    with pytest.raises(PreflightError) as raised:
        check_and_report(refused, report)
    assert raised.value.problems == found.problems
    assert report.read_text() == to_markdown(found)
    assert to_markdown(found).startswith(
        "# Preflight\n\nRefused before anything was spent: 3 problems.\n\n## Problems\n\n"
        f"- {found.problems[0]}\n- {found.problems[1]}\n- {found.problems[2]}\n"
    )


def test_the_step_runs_as_a_pipeline_task_and_writes_its_report(tmp_path):
    from kfp_distill.pipelines.local_runner import init_local_runner

    init_local_runner(tmp_path)
    task = preflight_step(**{**LOCAL, "tensorboard_resource_id": "1"})
    assert "tensorboard_resource_id is set but project is empty" in open(task.outputs["report"].path).read()
