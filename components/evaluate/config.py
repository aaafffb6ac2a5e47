"""The settings evaluate owns: the deploy gate it judges (`setting_field.setting`).

The component's signature and the pipeline's repeat them as literals (the pipeline with a `deploy_` prefix, as
the gate decides deploy-model's work); `tests/test_settings_owners.py` holds the copies equal to these.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfp_distill._implementation.setting_field import setting


@dataclass
class EvaluationConfig:
    """Whether the distilled student has earned its deployment."""

    min_share_of_teacher: float = setting(
        0.0,
        help="""The deploy gate: the share of the teacher's score on the task's main metric (accuracy, SQuAD F1,
        ROUGE-L or chrF) that the distilled student must reach on the evaluation rows to be deployed, 0.9 for 90%;
        a student below it, or one without evaluation rows to judge it on, is registered with the decision
        recorded, not deployed. 0: no gate.""",
    )
    gate_on_lower_bound: bool = setting(
        False,
        help="""Hold the deploy gate to the lower bound of the 95% interval (paired bootstrap over the evaluation
        rows) of the student's score less that share of the teacher's: the student is deployed only when it
        reaches the share with that confidence.""",
    )
