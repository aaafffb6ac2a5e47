"""The settings of one generate-rationales run, checked when they are made."""

from __future__ import annotations

from dataclasses import dataclass, field

from kfp_distill._implementation.teacher_reference import TeacherReference, parse_teacher_reference

from .answer_format import AUTO
from .prompts import DEFAULT_RATIONALE_LENGTH, validate_rationale_length

# Self-consistency samples are drawn at this temperature unless told otherwise (Wang et al. 2023 use 0.5-0.7).
SELF_CONSISTENCY_TEMPERATURE = 0.7


@dataclass
class GenerationConfig:
    """How to ask the teacher, and how much it may be asked.

    Attributes:
        teacher_model_reference: The teacher (read by `kfp_distill._implementation.teacher_reference`, which
            documents every form).
        teacher: The teacher as `teacher_model_reference` reads (set from it).
        use_gold_labels: Show the teacher the gold labels and ask it to explain them.
        prompt_template: The user turn, with `{input_text}` (and `{output_text}`, explain mode only);
            empty: the question as it is.
        few_shot_uri: JSON Lines few-shot examples (`input_text`, `rationale`, `output_text`); empty: up to
            4 labeled rows explained by the teacher, or zero-shot when no row has a label.
        max_new_tokens: The most tokens the teacher writes per answer.
        temperature: The teacher's sampling temperature (0: greedy).
        task_type: `classification`, `extractive_qa`, `summarization`, `math` or `free_text`: picks the
            teacher's system instruction and how answers are compared (with gold labels, and in votes);
            `auto`: inferred from the rows (the report says which type and why).
        self_consistency_samples: Answers sampled per row (k); above 1, each row is asked k times at
            `self_consistency_temperature` with seeds 0..k-1 (each sample cached on its own), the majority
            answer becomes the teacher label and the first sample that gave it supplies the rationale.
            Tokens and cost count every sample.
        self_consistency_temperature: The sampling temperature of those samples (above 0).
        drop_contradicting_rationales: Leave out of the output the labeled rows whose teacher answer
            contradicts the gold label (counted and listed in the report); False keeps them, flagged
            `agrees_with_gold: false`. Meant for training data: on an evaluation set it would hide the
            teacher's mistakes.
        max_concurrency: Requests in flight at once (HTTP endpoints; the embedded llama.cpp model asks one
            at a time).
        requests_per_minute: Client-side limit on requests started in any minute, retries included; 0: none.
        tokens_per_minute: Client-side limit on prompt and completion tokens in any minute (a request counts
            with an estimate until the server reports its usage); 0: none.
        max_total_tokens: Stop asking once this run's requests used so many tokens (answers from the cache
            are free); the rows left are reported "not asked: budget reached". 0: no cap.
        min_answered_fraction: The step fails when a smaller share of the rows it asked about (rows left
            out for the budget aside) got a usable answer; it stops as soon as that is certain.
        request_timeout_s: Seconds one HTTP attempt may take.
        max_attempts: Attempts per request, the first included.
        project: The Google Cloud project of a Vertex AI teacher; required for those, unused by the others.
        location: The Vertex AI region of such a teacher; empty: the global endpoint.
        answer_format: `json` (a rationale and an answer as fields of a JSON object, held to a JSON schema
            where the backend supports it: llama.cpp, OpenAI-compatible servers, Gemini), `text` (a
            rationale ending "The answer is <answer>."), or `auto`: `json` where the backend supports
            structured output, else `text` (also when a server refuses it).
        class_names: The classes of a classification task (a structured answer can only be one of them);
            empty: from the labeled rows, else from the instruction in the inputs (`classes: [a, b]`).
        probe_rows: Rows asked first (with all their samples); the run stops with a message showing what
            the teacher said when fewer than half of them got a usable answer. 0: no probe.
        rationale_length: `concise` (one or two sentences, as the paper's rationales are) or `detailed` (as
            long as the task needs): what the teacher's instruction asks for; `detailed` by default (the README's Results compare them).

    Raises:
        ValueError: A setting out of its range, or a teacher reference that names no teacher (the message names
            the setting and what it must be).
    """

    teacher_model_reference: str
    use_gold_labels: bool = True
    prompt_template: str = ""
    few_shot_uri: str = ""
    max_new_tokens: int = 256
    temperature: float = 0.0
    task_type: str = "auto"
    self_consistency_samples: int = 1
    self_consistency_temperature: float = SELF_CONSISTENCY_TEMPERATURE
    drop_contradicting_rationales: bool = False
    max_concurrency: int = 8
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    max_total_tokens: int = 0
    min_answered_fraction: float = 0.9
    request_timeout_s: float = 600.0
    max_attempts: int = 6
    project: str = ""
    location: str = ""
    answer_format: str = AUTO
    class_names: tuple[str, ...] = ()
    probe_rows: int = 8
    rationale_length: str = DEFAULT_RATIONALE_LENGTH
    teacher: TeacherReference = field(init=False)

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
