"""Reusing kfp-distill's components in your own pipeline: teacher labels and rationales, exported for review.

Two of our components, validate-dataset and generate-rationales, become steps of a larger pipeline of yours:
your data is checked against the contract, a teacher labels and explains every row, and a step of your own
(`export_for_review`) turns the result into a CSV that people can review before anything is tuned on it.

The components come in two forms, and the same pipeline is built from each:
- from Python, where kfp-distill is installed: `from kfp_distill.components.<name>.component import <name>`
  (deploy-model's is `deploy_registered_model`, apart from the pipeline's `deploy_model` setting);
- from the compiled YAML files in `compiled/components/`, where it is not (only kfp is needed to compile):
  `kfp.components.load_component_from_file("compiled/components/<name>.yaml")`.
Either way the steps run in the kfp-distill image the YAML names (`KFP_DISTILL_IMAGE` when compiled).

    python examples/reuse_components.py OUTPUT_DIR   # writes both pipelines' YAML to OUTPUT_DIR

`tests/test_reuse_example.py` compiles both forms and runs the Python one with kfp.local.
"""

import sys
from pathlib import Path

from kfp import compiler, components, dsl
from kfp.dsl import Dataset, Input, Output

from kfp_distill import DEFAULT_STUDENT, IMAGE
from kfp_distill.components.generate_rationales.component import generate_rationales
from kfp_distill.components.validate_dataset.component import validate_dataset

COMPILED_COMPONENTS = Path(__file__).resolve().parent.parent / "compiled" / "components"
validate_dataset_from_yaml = components.load_component_from_file(str(COMPILED_COMPONENTS / "validate_dataset.yaml"))
generate_rationales_from_yaml = components.load_component_from_file(
    str(COMPILED_COMPONENTS / "generate_rationales.yaml")
)


# Your own step. It needs only the standard library, so any image with kfp installed would do; ours has kfp.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def export_for_review(distilled_dataset: Input[Dataset], review_sheet: Output[Dataset]) -> int:
    """Writes the teacher's labels and rationales as a CSV, rows the teacher disagreed with the gold label first.

    Args:
        distilled_dataset: generate-rationales' output (JSON Lines with input_text, gold_label, teacher_label, ...).
        review_sheet: The CSV: input_text, gold_label, teacher_label, agrees_with_gold, rationale.

    Returns:
        How many rows the sheet holds.
    """
    import csv
    import json

    with open(distilled_dataset.path) as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    # agrees_with_gold is False, None (no gold label) or True: disagreements, then unlabeled rows, then agreements.
    rows.sort(key=lambda row: {False: 0, None: 1, True: 2}[row.get("agrees_with_gold")])
    columns = ["input_text", "gold_label", "teacher_label", "agrees_with_gold", "rationale"]
    with open(review_sheet.path, "w", newline="") as sheet:
        writer = csv.DictWriter(sheet, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({name: row.get(name) for name in columns})
    return len(rows)


def build_review_pipeline(validate_dataset_op, generate_rationales_op, name: str):
    """Builds the review pipeline from the two components, as Python objects or as loaded YAML.

    Args:
        validate_dataset_op: kfp-distill's validate-dataset component.
        generate_rationales_op: kfp-distill's generate-rationales component.
        name: The pipeline's name.

    Returns:
        The pipeline, ready to compile or to run with kfp.local.
    """

    @dsl.pipeline(name=name, description="A teacher labels and explains your examples; you review them as a CSV.")
    def teacher_labels_for_review(
        dataset_uri: str,
        teacher_model_reference: str,
        student_model_reference: str = DEFAULT_STUDENT,
        teacher_cache_uri: str = "",
    ) -> int:
        validation = validate_dataset_op(dataset_uri=dataset_uri, student_model_reference=student_model_reference)
        teaching = generate_rationales_op(
            dataset=validation.outputs["train_dataset"],
            teacher_model_reference=teacher_model_reference,
            cache_uri=teacher_cache_uri,
        )
        return export_for_review(distilled_dataset=teaching.outputs["distilled_dataset"]).outputs["Output"]

    return teacher_labels_for_review


review_pipeline = build_review_pipeline(validate_dataset, generate_rationales, "teacher-labels-for-review")
review_pipeline_from_yaml = build_review_pipeline(
    validate_dataset_from_yaml, generate_rationales_from_yaml, "teacher-labels-for-review-from-yaml"
)

if __name__ == "__main__":
    output_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    output_dir.mkdir(parents=True, exist_ok=True)
    for pipeline in (review_pipeline, review_pipeline_from_yaml):
        compiler.Compiler().compile(pipeline, str(output_dir / f"{pipeline.name}.yaml"))
        print(output_dir / f"{pipeline.name}.yaml")
