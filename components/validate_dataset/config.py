"""The settings validate-dataset owns: the data and how to read it (`setting_field.setting` fields).

The component's signature and the pipeline's repeat them as literals; `tests/test_settings_owners.py` holds the
copies equal to these.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfp_distill._implementation.setting_field import setting


@dataclass
class ValidationConfig:
    """Which data a run reads, and how."""

    dataset_uri: str = setting(
        help="""JSON Lines training data (`input_text`, optional `output_text`; a local path, `gs://` or `https://`
        URI), or an application's logged conversations in OpenAI chat, Gemini tuning or Amazon Bedrock invocation
        log format (docs/logs.md).""",
    )
    evaluation_data_uri: str = setting(
        "", help="Evaluation data (10 to 250 labeled examples); enables evaluation. Empty: none."
    )
    task_type: str = setting(
        "auto",
        help="""`classification`, `extractive_qa`, `summarization`, `math` or `free_text`: the teacher's
        instruction, how answers are compared and which metrics the evaluation reports; `auto`: inferred once by
        validate-dataset from the training and evaluation data.""",
    )
    use_logged_answers: bool = setting(
        True,
        help="""For logged conversations: a conversation's final answer becomes its `output_text`, a label the
        teacher explains; false: the teacher answers every training prompt afresh. Logged evaluation rows are
        scored against their logged answers either way.""",
    )
