"""What one generate-rationales run did: each row's outcome, the few-shot examples, the probe and what asking
cost. `generation.generate_rationales` returns it; `report.GenerationReport.of` counts and renders it."""

from __future__ import annotations

from dataclasses import dataclass, field

from .answer_format import TEXT
from .asking import Answer
from .config import GenerationConfig
from .task_profile import TaskProfile, Vote

# The probe (the first `probe_rows` rows, asked before the rest) stops the run below this usable share.
PROBE_MIN_USABLE_SHARE = 0.5


@dataclass(frozen=True)
class Problem:
    """A row left out of the output (or kept, but worth a look): its dataset line, why, and the start of what
    the teacher said."""

    line: int
    reason: str
    snippet: str = ""


@dataclass(frozen=True)
class RowOutcome:
    """What became of one dataset row. At most one of `failed`, `not_asked`, `unusable` is set; without them
    the row got a usable answer, which is in the output unless `dropped` or `not_span_left_out`.

    Attributes:
        line: The row's dataset line.
        explained: Whether the teacher was shown the row's gold label and asked to explain it.
        used: The teacher answers the row used (asked now or from the cache), every sample answered.
        failed: Why no request for the row got an answer.
        not_asked: Why the row was not asked (the token budget, or the probe that stopped the run).
        unusable: Why none of the row's answers could be used, with what the teacher said.
        vote: How the row's self-consistency samples voted; None with one sample per row.
        not_span: An extractive answer that is not a span of the row's context, and what became of it.
        not_span_mapped: That answer was mapped to the nearest span.
        not_span_left_out: That answer was left out (no gold label: it would have been the target).
        restating: The kept rationale only restates its answer.
        agrees_with_gold: Whether the teacher's answer agrees with the gold label; None without one (or
            when the answer was left out first).
        dropped: Why the row was left out for contradicting its gold label.
        output: The output row; None when the row is left out.
    """

    line: int
    explained: bool
    used: tuple[Answer, ...] = ()
    failed: Problem | None = None
    not_asked: Problem | None = None
    unusable: Problem | None = None
    vote: Vote | None = None
    not_span: Problem | None = None
    not_span_mapped: bool = False
    not_span_left_out: bool = False
    restating: Problem | None = None
    agrees_with_gold: bool | None = None
    dropped: Problem | None = None
    output: dict | None = None

    @property
    def answered(self) -> bool:
        """Whether the row got a usable answer (kept in the output or not)."""
        return self.failed is None and self.not_asked is None and self.unusable is None


@dataclass(frozen=True)
class FewShot:
    """The run's few-shot examples: where they came from, how many, and the rows that could not be one.

    Attributes:
        source: Where the examples came from, as the report says it.
        count: How many there are.
        problems: The rows that were tried and left out, and why.
        used: The teacher answers asked to make them (those of a structured pass the server refused included).
        self_made_candidates: Rows the teacher answered to make its own examples (no labels, no file).
    """

    source: str
    count: int = 0
    problems: tuple[Problem, ...] = ()
    used: tuple[Answer, ...] = ()
    self_made_candidates: int = 0


@dataclass(frozen=True)
class Probe:
    """The rows asked first: how many got an answer, and how many of those a usable one."""

    rows: int
    usable: int

    @property
    def stops_the_run(self) -> bool:
        return self.usable < PROBE_MIN_USABLE_SHARE * self.rows


@dataclass(frozen=True)
class GenerationOutcome:
    """What one run did, row by row and as a whole.

    Attributes:
        dataset_uri: The dataset asked about.
        teacher: The teacher's identity (what its answers are cached under).
        config: The settings of the run.
        profile: The task type, why, and the classes.
        rows: Every row's outcome, in the dataset's order.
        few_shot: The few-shot examples.
        answer_format: How answers were asked for in the end (`json` or `text`).
        answer_format_note: Why that differs from what was asked, when it does.
        samples_per_row: Self-consistency samples asked per row (1 for precomputed rationales).
        probe: The probe; None when there was none.
        requests: Answers asked for now (not from the cache).
        cache_hits: Answers from the cache.
        tokens_spent_now: Prompt and completion tokens of the answers asked for now.
        request_errors: Failed attempts (retried or not) by kind.
        rate_limit_wait_s: Time waited for the client-side rate limits, all requests together.
        wall_time_s: How long the run took.
    """

    dataset_uri: str
    teacher: str
    config: GenerationConfig
    profile: TaskProfile
    rows: tuple[RowOutcome, ...]
    few_shot: FewShot
    answer_format: str = TEXT
    answer_format_note: str = ""
    samples_per_row: int = 1
    probe: Probe | None = None
    requests: int = 0
    cache_hits: int = 0
    tokens_spent_now: int = 0
    request_errors: dict[str, int] = field(default_factory=dict)
    rate_limit_wait_s: float = 0.0
    wall_time_s: float = 0.0

    @property
    def outputs(self) -> list[dict]:
        """The output rows, in the dataset's order."""
        return [row.output for row in self.rows if row.output is not None]

    @property
    def probe_stopped_the_run(self) -> bool:
        return self.probe is not None and self.probe.stops_the_run
