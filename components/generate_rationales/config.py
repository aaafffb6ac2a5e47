"""The settings of one generate-rationales run, checked when they are made."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from kfp_distill._implementation.setting_field import HELP, SCOPE, setting
from kfp_distill._implementation.teacher_reference import TeacherReference, parse_teacher_reference

from .answer_format import AUTO
from .prompts import DEFAULT_RATIONALE_LENGTH, validate_rationale_length

# Self-consistency samples are drawn at this temperature unless told otherwise (Wang et al. 2023 use 0.5-0.7).
SELF_CONSISTENCY_TEMPERATURE = 0.7


@dataclass
class GenerationConfig:
    """How to ask the teacher, and how much it may be asked.

    Each field owns its setting's default and help text (`setting_field.setting`); generate-rationales' signature
    and the pipeline's (with a `teacher_` prefix) repeat the settings of scope `pipeline` and `component`
    (`tests/test_settings_owners.py`).

    Raises:
        ValueError: A setting out of its range, or a teacher reference that names no teacher (the message names
            the setting and what it must be).
    """

    teacher_model_reference: str = setting(
        help="""The teacher, e.g. `qwen2.5-coder-1.5b-instruct` (llama.cpp), `http://127.0.0.1:8080/v1#qwen` (an
        OpenAI-compatible server), `gemini-2.5-flash` (Vertex AI, in `project` and `location`),
        `hf:Qwen/Qwen2.5-7B-Instruct` or `precomputed`; every form, and which wins where two could apply:
        docs/teachers.md.""",
    )
    use_gold_labels: bool = setting(
        True,
        help="Show the teacher the labels and ask it to explain them (false: it answers itself).",
        scope="component",
    )
    prompt_template: str = setting(
        "",
        help="""The teacher's user turn, with `{input_text}` (and `{output_text}` when it explains labels); empty:
        the question as it is.""",
    )
    few_shot_uri: str = setting(
        "",
        help="""JSON Lines of worked examples (`input_text`, `rationale`, `output_text`); empty: up to 4 labeled
        rows explained by the teacher, or zero-shot when no row has a label.""",
    )
    max_new_tokens: int = setting(256, help="The most tokens the teacher writes per answer.")
    temperature: float = setting(0.0, help="The teacher's sampling temperature (0: greedy).", scope="internal")
    task_type: str = setting(
        "auto",
        help="""`classification`, `extractive_qa`, `summarization`, `math` or `free_text` (the teacher's instruction
        and how answers are compared, with gold labels and in votes); `auto`: inferred from the examples.""",
        scope="component",
    )
    self_consistency_samples: int = setting(
        1,
        help="""Answers sampled per example, each with its own seed at the self-consistency temperature (0.7
        unless set otherwise); above 1 the majority answer becomes the teacher's label. Tokens and cost count
        every sample.""",
    )
    self_consistency_temperature: float = setting(
        SELF_CONSISTENCY_TEMPERATURE,
        help="The sampling temperature of those samples (above 0).",
        scope="component",
    )
    drop_contradicting_rationales: bool = setting(
        False,
        help="""Leave out of the training data the labeled examples whose teacher answer contradicts the label
        (the evaluation step keeps them, to score the teacher fairly).""",
    )
    cache_uri: str = setting(
        "",
        help="""Where the teacher's answers are kept, so a re-run re-asks nothing: an SQLite file, a local path or
        a gs:// URI copied down and back as answers arrive; empty:
        `<pipeline root>/teacher-cache/<teacher>-<digest>.sqlite`, found again by retried tasks and later runs
        (outside a pipeline, the kfp-distill cache folder).""",
    )
    max_concurrency: int = setting(
        8, help="Teacher requests in flight at once (HTTP endpoints; llama.cpp asks one at a time)."
    )
    requests_per_minute: int = setting(
        0, help="Client-side limit on requests per minute, retries included; 0: none.", scope="component"
    )
    tokens_per_minute: int = setting(
        0,
        help="""Client-side limit on prompt and completion tokens in any minute (a request counts with an estimate
        until the server reports its usage); 0: none.""",
        scope="component",
    )
    max_total_tokens: int = setting(
        0,
        help="""Token budget of each teacher step's requests (answers from the cache are free); the rows left are
        reported "not asked: budget reached". 0: no cap.""",
    )
    min_answered_fraction: float = setting(
        0.9,
        help="""A teacher step fails when a smaller share of the rows it asked about got a usable answer; it stops
        as soon as that is certain.""",
    )
    request_timeout_s: float = setting(600.0, help="Seconds one HTTP attempt may take.", scope="internal")
    max_attempts: int = setting(6, help="Attempts per request, the first included.", scope="internal")
    project: str = setting(
        "", help="Google Cloud project of a Vertex AI teacher (required for those; unused otherwise)."
    )
    location: str = setting("", help="Vertex AI region of such a teacher; empty: the global endpoint.")
    answer_format: str = setting(
        AUTO,
        help="""`json` (rationale and answer held to a JSON schema where the teacher's backend supports it:
        llama.cpp, OpenAI-compatible servers, Gemini), `text` ("... The answer is X."), or `auto`: `json` where
        supported, else `text` (also when a server refuses it).""",
    )
    class_names: tuple[str, ...] = setting(
        (),
        help="""Comma-separated classes of a classification task (the teacher's answer is held to them); empty:
        from the labels, else from the instruction in the inputs (`classes: [a, b]`).""",
    )
    probe_rows: int = setting(
        8,
        help="""Rows each teacher step asks first; it stops, saying what the teacher said and what to do, when
        fewer than half of them got a usable answer. 0: no probe.""",
    )
    rationale_length: str = setting(
        DEFAULT_RATIONALE_LENGTH,
        help="""`concise` (one or two sentences, as the paper's rationales are) or `detailed` (as long as the task
        needs): what the teacher is asked to write.""",
    )

    # Read once from teacher_model_reference, for the backend, the cache, pricing and the checks.
    teacher: TeacherReference = field(
        init=False, metadata={HELP: "The teacher as teacher_model_reference reads.", SCOPE: "internal"}
    )

    @classmethod
    def from_component_inputs(cls, inputs: dict) -> GenerationConfig:
        """The settings among generate-rationales' inputs (any others left aside), as KFP gives them.

        Args:
            inputs: The component's inputs by name; `class_names` comma-separated (a KFP parameter is a string).
        """
        settings = {setting.name: inputs[setting.name] for setting in fields(cls) if setting.name in inputs}
        settings["class_names"] = tuple(name for name in settings.get("class_names", "").split(",") if name.strip())
        return cls(**settings)

    def __post_init__(self) -> None:
        self.teacher = parse_teacher_reference(self.teacher_model_reference)
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must not be negative, got {self.temperature}")
        if self.self_consistency_samples < 1:
            raise ValueError(f"self_consistency_samples must be at least 1, got {self.self_consistency_samples}")
        if self.self_consistency_samples > 1 and self.self_consistency_temperature <= 0:
            raise ValueError(
                "self-consistency needs varied samples: self_consistency_temperature must be above 0, "
                f"got {self.self_consistency_temperature}"
            )
        if not 0.0 <= self.min_answered_fraction <= 1.0:
            raise ValueError(f"min_answered_fraction must be between 0 and 1, got {self.min_answered_fraction}")
        if self.probe_rows < 0:
            raise ValueError(f"probe_rows must not be negative (0: no probe), got {self.probe_rows}")
        validate_rationale_length(self.rationale_length)
