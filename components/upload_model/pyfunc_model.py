"""The MLflow pyfunc model of a distilled student, logged as an MLflow "model from code" file.

MLflow copies this file next to the model and runs it when the model is loaded (no pickled objects), so it
needs kfp-distill installed where the model is loaded, and imports absolutely (it runs outside this package).
`model_input` is a list of input texts (or a one-column DataFrame); params `{"with_rationale": True}` also asks
the student for its rationale.
"""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel

from kfp_distill._implementation.model_store import answer, load_student
from kfp_distill._implementation.model_store.mlflow_backend import STUDENT_ARTIFACT


class DistilledStudentModel(PythonModel):
    """Answers with the student's label task; adds the rationale task's output when asked."""

    def load_context(self, context):
        self.predictor, self.task_type = load_student(context.artifacts[STUDENT_ARTIFACT])

    def predict(self, context, model_input, params=None):
        # MLflow hands a list of strings over as a one-column DataFrame.
        texts = model_input.iloc[:, 0].tolist() if hasattr(model_input, "iloc") else list(model_input)
        return answer(self.predictor, texts, bool((params or {}).get("with_rationale")), self.task_type)


mlflow.models.set_model(DistilledStudentModel())
