"""Teacher rationales (and labels where missing) for every row of a dataset, by few-shot chain of thought."""

from __future__ import annotations

import collections
import functools
import os
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from kfp_distill._implementation.jsonl import DatasetError, read_jsonl, write_jsonl
from kfp_distill._implementation.models import cache_root
from kfp_distill._implementation.redaction import redact_uri
from kfp_distill._implementation.spans import EXTRACTIVE_QA, teacher_answer_span
from kfp_distill._implementation.teacher_reference import TeacherReference

from .answer_format import (
    JSON,
    TEXT,
    answer_schema,
    parse_answer,
    resolve_answer_format,
    restates_answer,
    unusable_reason,
)
from .asking import NOT_ASKED_BUDGET, Answer, RowTally, Teacher, TeacherUnavailableError, Unanswered
from .backends import PrecomputedBackend, backend_for
from .backends.base import Completion, DecodingSettings, TeacherBackend
from .cache import AnswerCache
from .config import SELF_CONSISTENCY_TEMPERATURE, GenerationConfig
from .pricing import estimated_cost_usd
from .prompts import (
    DEFAULT_RATIONALE_LENGTH,
    DEFAULT_TEMPLATE,
    Demonstration,
    Mode,
    build_messages,
    load_demonstrations,
    validate_template,
)
from .rate_limit import RateLimiter
from .retry import RetryPolicy
from .task_profile import TaskProfile, majority_vote, task_profile

__all__ = [
    "GenerationReport",
    "NoUsableAnswersError",
    "TeacherAnswersUnusableError",
    "TeacherUnavailableError",
    "generate_rationales",
]

# Demonstrations drawn from the labeled rows when no few-shot file is given (the paper uses a handful).
DRAWN_DEMONSTRATIONS = 4
DEMONSTRATION_SEED = 0
SNIPPET_CHARS = 160
PROBLEMS_SHOWN = 20
# Without labels or a few-shot file the teacher makes its own demonstrations: it answers this many rows
# this many times each, and keeps the rows whose samples all agree; up to this many draws, while a known
# class has no demonstration.
SELF_MADE_CANDIDATES = 6
SELF_MADE_SAMPLES = 3
SELF_MADE_DRAWS = 3
# The probe (the first `probe_rows` rows, asked before the rest) stops the run below this usable share.
PROBE_MIN_USABLE_SHARE = 0.5
# Why the rows after a probe that stopped the run are not in the output (counted with the rows not asked).
NOT_ASKED_PROBE = "not asked: the probe stopped the run"
PROBE_EXAMPLES_SHOWN = 3


class NoUsableAnswersError(RuntimeError):
    """Not one row got a usable rationale (the report says why)."""


class TeacherAnswersUnusableError(NoUsableAnswersError):
    """The probe's answers were mostly unusable, so the rest was not asked (the message says what to do)."""


@dataclass(frozen=True)
class Problem:
    """A row left out of the output: its dataset line, why, and the start of what the teacher said."""

    line: int
    reason: str
    snippet: str = ""


@dataclass
class GenerationReport:
    """What the teacher did on one dataset."""

    dataset_uri: str
    teacher: str  # the teacher's identity
    teacher_reference: TeacherReference  # what the teacher is priced by
    rows: int = 0
    explained: int = 0
    predicted: int = 0
    few_shot_source: str = ""
    few_shot_count: int = 0
    self_made_candidates: int = 0  # rows the teacher answered to make its own demonstrations
    answer_format: str = TEXT
    answer_format_note: str = ""
    rationale_length: str = DEFAULT_RATIONALE_LENGTH
    class_source: str = ""
    classes: tuple[str, ...] = ()
    probe_rows: int = 0
    probe_usable: int = 0
    answered: int = 0
    unparseable: list[Problem] = field(default_factory=list)
    failed: list[Problem] = field(default_factory=list)
    not_asked: list[Problem] = field(default_factory=list)
    demonstration_problems: list[Problem] = field(default_factory=list)
    compared_with_gold: int = 0
    agreed_with_gold: int = 0
    explanations_contradicting_gold: int = 0
    requests: int = 0
    cache_hits: int = 0
    teacher_answers: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    teacher_latency_s: float = 0.0
    wall_time_s: float = 0.0
    request_errors: dict[str, int] = field(default_factory=dict)  # failed attempts (retried or not) by kind
    tokens_spent_now: int = 0
    max_total_tokens: int = 0
    rate_limit_wait_s: float = 0.0
    min_answered_fraction: float = 0.0
    task_type: str = ""
    task_type_reason: str = ""
    self_consistency_samples: int = 1
    self_consistency_temperature: float = 0.0
    votes: list[tuple[int, int]] = field(default_factory=list)  # per voted row: (majority votes, answers)
    vote_ties: int = 0  # voted rows whose majority tied with another answer (the lowest seed's won)
    drop_contradicting_rationales: bool = False
    dropped_contradicting: list[Problem] = field(default_factory=list)
    restating: list[Problem] = field(default_factory=list)  # kept rows whose rationale only restates the answer
    not_spans: list[Problem] = field(default_factory=list)  # extractive answers not found in their context
    not_spans_mapped: int = 0  # of those, mapped to the nearest span
    not_spans_left_out: int = 0  # of those, left out (no gold label: the answer would be the target)

    @property
    def agreement_with_gold(self) -> float | None:
        return self.agreed_with_gold / self.compared_with_gold if self.compared_with_gold else None

    @property
    def mean_latency_s(self) -> float | None:
        """Mean teacher time per answer, as measured when each answer was first asked."""
        return self.teacher_latency_s / self.teacher_answers if self.teacher_answers else None

    @property
    def answered_fraction(self) -> float | None:
        """Share of the rows the teacher was asked about (budget left-outs aside) that got a usable answer."""
        asked = self.rows - len(self.not_asked)
        return self.answered / asked if asked else None

    @property
    def cut_off(self) -> int:
        """Unusable answers that stopped at max_new_tokens."""
        return sum("cut off at max_new_tokens" in problem.reason for problem in self.unparseable)

    @property
    def unanimous(self) -> int:
        """Voted rows whose answered samples all gave the same answer."""
        return sum(votes == answers for votes, answers in self.votes)

    @property
    def mean_vote_share(self) -> float | None:
        """Mean share of a voted row's answered samples that gave its majority answer."""
        return sum(votes / answers for votes, answers in self.votes) / len(self.votes) if self.votes else None

    @property
    def estimated_cost_usd(self) -> float | None:
        """What the teacher answers used here cost (from the cache or not), for teachers with a known price."""
        return estimated_cost_usd(self.teacher_reference, self.prompt_tokens, self.completion_tokens)

    def metrics(self) -> dict[str, float]:
        """Scalar metrics (those that exist) for KFP's Metrics artifact."""
        values: dict[str, float] = {
            "rows": self.rows,
            "answered": self.answered,
            "unparseable": len(self.unparseable),
            "failed": len(self.failed),
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "few_shot_examples": self.few_shot_count,
            "not_asked": len(self.not_asked),
            "request_errors": sum(self.request_errors.values()),
            "tokens_spent_now": self.tokens_spent_now,
            "rate_limit_wait_s": self.rate_limit_wait_s,
            "dropped_contradicting": len(self.dropped_contradicting),
            "cut_off": self.cut_off,
            "restating_rationales": len(self.restating),
        }
        if self.task_type == EXTRACTIVE_QA:
            values["answers_not_spans"] = len(self.not_spans)
        if self.self_consistency_samples > 1:
            values["self_consistency_unanimous"] = self.unanimous
        optional = {
            "agreement_with_gold": self.agreement_with_gold,
            "mean_latency_s": self.mean_latency_s,
            "answered_fraction": self.answered_fraction,
            "estimated_cost_usd": self.estimated_cost_usd,
            "self_consistency_mean_vote_share": self.mean_vote_share,
        }
        values.update({name: value for name, value in optional.items() if value is not None})
        return values

    def to_markdown(self) -> str:
        lines = [
            "# Teacher rationales",
            "",
            f"- Dataset: `{redact_uri(self.dataset_uri)}` ({self.rows} rows)",
            f"- Teacher: `{self.teacher}`",
            f"- Task type: {self.task_type} ({self.task_type_reason})",
            f"- Prompts: {self.explained} explain the gold label, {self.predicted} ask the teacher to answer",
            f"- Few-shot examples: {self.few_shot_source}",
            f"- Answer format: {self.answer_format}"
            + (" (a JSON object held to a schema: rationale, then answer)" if self.answer_format == JSON else
               " (a rationale ending 'The answer is ...')")
            + (f"; {self.answer_format_note}" if self.answer_format_note else ""),
            f"- Rationales asked for: {self.rationale_length}",
        ]
        if self.task_type == "classification":
            listed = ", ".join(self.classes) if self.classes else "none listed"
            lines.append(f"- Classes: {self.class_source} ({listed})")
        if self.probe_rows:
            lines.append(
                f"- Probe: {self.probe_usable} of the {self.probe_rows} rows answered first got a usable answer before the "
                f"rest were asked (the run stops below {PROBE_MIN_USABLE_SHARE:.0%})"
            )
        lines += [
            f"- Answered (usable): {self.answered}; unparseable: {len(self.unparseable)}"
            + (f" ({self.cut_off} cut off at max_new_tokens)" if self.cut_off else "")
            + f"; failed: {len(self.failed)}; "
            f"not asked: {len(self.not_asked)}"
            + (f"; dropped for contradicting the gold label: {len(self.dropped_contradicting)}"
               if self.drop_contradicting_rationales else "")
            + " (these rows are left out of the output)",
        ]
        if self.answered_fraction is not None:
            lines.append(
                f"- Rows with a usable answer: {self.answered_fraction:.1%} of those asked "
                f"(the step fails below min_answered_fraction={self.min_answered_fraction:.0%})"
            )
        if self.not_spans:
            kept = len(self.not_spans) - self.not_spans_mapped - self.not_spans_left_out
            lines.append(
                f"- Extractive answers that are not spans of their context: {len(self.not_spans)} "
                f"({self.not_spans_left_out} left out of the output, {self.not_spans_mapped} mapped to the nearest "
                f"span and {kept} kept as given where a gold label is the target; listed below)"
            )
        if self.restating:
            lines.append(
                f"- Rationales that only restate the answer: {len(self.restating)} (kept; listed below)"
            )
        if self.agreement_with_gold is not None:
            lines.append(
                f"- Agreement with gold: {self.agreed_with_gold}/{self.compared_with_gold} "
                f"({self.agreement_with_gold:.1%})"
            )
        if self.explanations_contradicting_gold:
            lines.append(
                f"- Explanations whose stated answer contradicts the gold label: "
                f"{self.explanations_contradicting_gold} "
                + ("(dropped)" if self.drop_contradicting_rationales else "(kept, agrees_with_gold=false)")
            )
        if self.self_consistency_samples > 1:
            lines.append(self._votes_markdown())
        latency = "n/a" if self.mean_latency_s is None else f"{self.mean_latency_s:.2f} s"
        cost = self.estimated_cost_usd
        lines += [
            f"- Teacher answers used: {self.teacher_answers} ({self.requests} asked now, {self.cache_hits} from the cache)",
            f"- Mean teacher latency per answer: {latency}; wall time of this run: {self.wall_time_s:.1f} s",
            f"- Tokens: {self.prompt_tokens} prompt, {self.completion_tokens} completion; "
            f"spent by this run's requests: {self.tokens_spent_now}"
            + (f" (cap {self.max_total_tokens})" if self.max_total_tokens else ""),
            "- Estimated cost: "
            + ("n/a (no price known for this teacher)" if cost is None else f"${cost:.4f} at list prices (pricing.py)"),
        ]
        if self.request_errors:
            kinds = ", ".join(f"{kind}: {count}" for kind, count in sorted(self.request_errors.items()))
            lines.append(f"- Request errors (retried or not): {sum(self.request_errors.values())} ({kinds})")
        if self.rate_limit_wait_s:
            lines.append(
                f"- Waited for the client-side rate limits: {self.rate_limit_wait_s:.1f} s (all requests together)"
            )
        for title, problems in (
            ("Unparseable answers", self.unparseable),
            ("Failed requests", self.failed),
            ("Not asked", self.not_asked),
            ("Dropped: the teacher's answer contradicts the gold label", self.dropped_contradicting),
            ("Rationales that only restate the answer", self.restating),
            ("Extractive answers that are not spans of their context", self.not_spans),
            ("Few-shot examples left out", self.demonstration_problems),
        ):
            if not problems:
                continue
            lines += ["", f"## {title}", "", "| line | reason | teacher said |", "|---|---|---|"]
            for problem in problems[:PROBLEMS_SHOWN]:
                snippet = problem.snippet.replace("|", "\\|")
                lines.append(f"| {problem.line} | {problem.reason.replace('|', '/')} | {snippet} |")
            if len(problems) > PROBLEMS_SHOWN:
                lines.append(f"\n... and {len(problems) - PROBLEMS_SHOWN} more.")
        return "\n".join(lines) + "\n"

    def _votes_markdown(self) -> str:
        line = (
            f"- Self-consistency: {self.self_consistency_samples} samples per row at temperature "
            f"{self.self_consistency_temperature:g}, the majority answer kept"
        )
        if not self.votes:
            return line + "; no row was voted on"
        tally = collections.Counter(self.votes)
        by_share = sorted(tally, key=lambda votes: (-votes[0] / votes[1], -votes[1]))
        spread = ", ".join(f"{votes}/{answers}: {tally[votes, answers]}" for votes, answers in by_share)
        return (
            f"{line}; unanimous: {self.unanimous} of {len(self.votes)} voted rows "
            f"(mean vote share {self.mean_vote_share:.0%}); rows by votes for the majority answer / samples "
            f"answered: {spread}; ties broken by the lowest seed: {self.vote_ties}"
        )


@dataclass(frozen=True)
class _Row:
    line: int
    input_text: str
    gold_label: str | None
    raw: dict


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[:SNIPPET_CHARS] + "..."


def _read_rows(dataset_uri: str) -> list[_Row]:
    rows = []
    for line, row in read_jsonl(dataset_uri):
        input_text = row.get("input_text")
        if not isinstance(input_text, str) or not input_text.strip():
            raise DatasetError(dataset_uri, "input_text must be a non-empty string", line, "input_text")
        gold = row.get("output_text")
        if gold is not None and not isinstance(gold, str):
            raise DatasetError(dataset_uri, "output_text must be a string or null", line, "output_text")
        rows.append(_Row(line, input_text, gold, row))
    if not rows:
        raise DatasetError(dataset_uri, "the dataset holds no examples")
    return rows


def _count_used(answer: Answer, report: GenerationReport) -> None:
    """Adds one teacher answer that this dataset uses (asked now or cached) to the report's totals."""
    report.teacher_answers += 1
    report.prompt_tokens += answer.completion.prompt_tokens
    report.completion_tokens += answer.completion.completion_tokens
    report.teacher_latency_s += answer.latency_s


def _output_row(
    row: _Row, answers: list[Answer], mode: Mode, profile: TaskProfile, report: GenerationReport
) -> dict | None:
    """The output row for a row's teacher answers (one, or self-consistency samples by seed), or None after
    recording why it is left out. Samples vote: the majority answer is the teacher label, and the rationale
    is that of the first sample that gave it."""
    fmt = report.answer_format
    usable = [answer for answer in answers if _is_usable(answer.completion, fmt)]
    if not usable:
        first = answers[0].completion
        reason = unusable_reason(first.text, first.finish_reason, fmt)
        if len(answers) > 1:
            reason = f"none of {len(answers)} samples usable; the first: {reason}"
        report.unparseable.append(Problem(row.line, reason, _snippet(first.text)))
        return None
    parsed = [parse_answer(answer.completion.text, fmt) for answer in usable]
    chosen = 0
    if report.self_consistency_samples > 1:
        vote = majority_vote([label for _, label in parsed], profile.agrees)
        chosen = vote.winner
        report.votes.append((vote.votes, vote.samples))
        report.vote_ties += vote.votes == vote.runner_up
    rationale, teacher_label = parsed[chosen]
    teacher_label = profile.canonical(teacher_label, row.input_text)
    report.answered += 1
    if profile.task_type == EXTRACTIVE_QA:
        not_span = teacher_answer_span(teacher_label, row.input_text, row.gold_label is not None)
        if not_span is not None:
            report.not_spans.append(Problem(row.line, not_span.note, _snippet(teacher_label)))
            report.not_spans_mapped += not_span.mapped
            if not_span.label is None:  # answered, but not a target: left out as a contradicting row is
                report.not_spans_left_out += 1
                return None
            teacher_label = not_span.label
    if restates_answer(rationale, teacher_label):
        report.restating.append(Problem(row.line, "the rationale only restates the answer", _snippet(rationale)))
    agrees = None
    if row.gold_label is not None:
        agrees = profile.agrees(teacher_label, row.gold_label)
        report.compared_with_gold += 1
        report.agreed_with_gold += agrees
        if mode is Mode.EXPLAIN and not agrees:
            report.explanations_contradicting_gold += 1
        if report.drop_contradicting_rationales and not agrees:
            reason = f"the teacher's answer {teacher_label!r} contradicts the gold label {row.gold_label!r}"
            report.dropped_contradicting.append(Problem(row.line, reason, _snippet(rationale)))
            return None
    output = {
        "input_text": row.input_text,
        "output_text": row.gold_label if row.gold_label is not None else teacher_label,
        "gold_label": row.gold_label,
        "teacher_label": teacher_label,
        "rationale": rationale,
        "agrees_with_gold": agrees,
        # Every sample's tokens and time count: the teacher was paid for all of them.
        "prompt_tokens": sum(answer.completion.prompt_tokens for answer in answers),
        "completion_tokens": sum(answer.completion.completion_tokens for answer in answers),
        "latency_s": round(sum(answer.latency_s for answer in answers), 4),
    }
    if report.self_consistency_samples > 1:
        output["votes_for_label"] = vote.votes
        output["votes_cast"] = vote.samples
    return output


def _is_usable(completion: Completion, answer_format: str) -> bool:
    return unusable_reason(completion.text, completion.finish_reason, answer_format) is None


@dataclass(frozen=True)
class _Asking:
    """What every request of one run shares: the teacher, the prompt parts, and the decoding settings."""

    teacher: Teacher
    template: str
    profile: TaskProfile
    answer_format: str
    settings: DecodingSettings
    rationale_length: str = DEFAULT_RATIONALE_LENGTH

    def messages(self, row: _Row, mode: Mode, label: str | None, shots=()) -> list[dict[str, str]]:
        system = self.profile.system_instruction(self.answer_format, self.rationale_length)
        return build_messages(row.input_text, mode, label, shots, self.template, system, self.answer_format)

    def settings_for(self, row: _Row, **changes) -> DecodingSettings:
        """The row's decoding settings: a structured answer is held to the schema of the row's classes."""
        schema = None
        if self.answer_format == JSON and getattr(self.teacher.backend, "supports_structured_output", False):
            schema = answer_schema(self.profile.classes_for(row.input_text))
        return replace(self.settings, response_schema=schema, **changes)


def _drawn_demonstrations(rows: list[_Row], asking: _Asking, report: GenerationReport) -> list[tuple[int, Demonstration]]:
    """Few-shot examples made from labeled rows: the teacher explains their gold labels zero-shot."""
    labeled = [row for row in rows if row.gold_label is not None]
    chosen = random.Random(DEMONSTRATION_SEED).sample(labeled, k=min(DRAWN_DEMONSTRATIONS, len(labeled)))
    answers = asking.teacher.ask_all(
        [asking.messages(row, Mode.EXPLAIN, row.gold_label) for row in chosen],
        settings=[asking.settings_for(row) for row in chosen],
    )
    demonstrations = []
    for row, answer in zip(chosen, answers):
        if isinstance(answer, Unanswered):
            report.demonstration_problems.append(Problem(row.line, answer.reason))
            continue
        _count_used(answer, report)
        rationale, stated = parse_answer(answer.completion.text, asking.answer_format)
        snippet = _snippet(answer.completion.text)
        if stated is None or not rationale:
            report.demonstration_problems.append(Problem(row.line, "no rationale and answer to parse", snippet))
        elif not asking.profile.agrees(stated, row.gold_label):
            report.demonstration_problems.append(Problem(row.line, "stated answer contradicts the gold label", snippet))
        else:
            demonstrations.append((row.line, Demonstration(row.input_text, rationale, row.gold_label)))
    return demonstrations


def _self_made_demonstrations(
    rows: list[_Row], asking: _Asking, report: GenerationReport
) -> list[tuple[int, Demonstration]]:
    """Few-shot examples without labels: the teacher answers a seeded draw of rows zero-shot, several
    samples each, and the rows whose samples all agree (with a rationale that is more than its answer)
    become demonstrations of their majority answer.

    Where the dataset's classes are known, each class gets at most its share of the demonstrations, and while
    a class has none (and the last draw made some) another draw is asked, up to `SELF_MADE_DRAWS`: a small
    teacher agrees with itself most on the class it favours, and examples of that class alone (seen on e-SNLI:
    2 of 2 self-made examples `neutral`, then 86 of 100 rows labeled `neutral`) would teach it to favour it more.
    """
    classes = () if asking.profile.per_row_classes else asking.profile.classes
    share = max(1, DRAWN_DEMONSTRATIONS // len(classes)) if classes else DRAWN_DEMONSTRATIONS
    draw = random.Random(DEMONSTRATION_SEED)
    left, agreed = list(rows), []
    for _ in range(SELF_MADE_DRAWS):
        chosen = draw.sample(left, k=min(SELF_MADE_CANDIDATES, len(left)))
        left = [row for row in left if row not in chosen]
        made = _agreed_demonstrations(chosen, asking, report)
        agreed += made
        labels = {demonstration.output_text for _, demonstration in agreed}  # canonical already
        if not classes or not made or not left or labels >= set(classes):
            break
    demonstrations, per_label = [], collections.Counter()
    for line, demonstration in agreed:  # in the order asked, each label up to its share
        if per_label[demonstration.output_text] < share and len(demonstrations) < DRAWN_DEMONSTRATIONS:
            per_label[demonstration.output_text] += 1
            demonstrations.append((line, demonstration))
    report.self_made_candidates = len(rows) - len(left)
    return sorted(demonstrations, key=lambda made: made[0])  # in the dataset's order


def _agreed_demonstrations(chosen: list[_Row], asking: _Asking, report: GenerationReport) -> list[tuple[int, Demonstration]]:
    """The chosen rows whose samples all agree, as demonstrations of their answer; why the others are not."""
    conversations, settings, row_of = [], [], []
    for number, row in enumerate(chosen):
        for seed in range(SELF_MADE_SAMPLES):
            conversations.append(asking.messages(row, Mode.PREDICT, None))
            settings.append(asking.settings_for(row, temperature=SELF_CONSISTENCY_TEMPERATURE, seed=seed))
            row_of.append(number)
    answers = asking.teacher.ask_all(conversations, settings=settings, rows=row_of)
    demonstrations = []
    for number, row in enumerate(chosen):
        samples = answers[number * SELF_MADE_SAMPLES : (number + 1) * SELF_MADE_SAMPLES]
        answered = [answer for answer in samples if isinstance(answer, Answer)]
        for answer in answered:
            _count_used(answer, report)
        parsed = [
            parse_answer(answer.completion.text, asking.answer_format)
            for answer in answered
            if _is_usable(answer.completion, asking.answer_format)
        ]
        snippet = _snippet(answered[0].completion.text) if answered else ""
        if len(parsed) < SELF_MADE_SAMPLES:
            reason = f"{len(parsed)} of {SELF_MADE_SAMPLES} samples usable"
        elif majority_vote([label for _, label in parsed], asking.profile.agrees).votes < SELF_MADE_SAMPLES:
            reason = "the samples disagree: " + " / ".join(label for _, label in parsed)
        elif restates_answer(*parsed[0]):
            reason = "the rationale only restates the answer"
        else:
            rationale, label = parsed[0]
            label = asking.profile.canonical(label, row.input_text)
            demonstrations.append((row.line, Demonstration(row.input_text, rationale, label)))
            continue
        report.demonstration_problems.append(Problem(row.line, reason, snippet))
    return demonstrations


def _demonstrations(
    rows: list[_Row], asking: _Asking, few_shot_uri: str, file_demonstrations, report: GenerationReport
) -> list[tuple[int, Demonstration]]:
    """The run's few-shot examples (with the line of the row each was made from; 0 for a file's), and the
    report's word on where they came from."""
    labeled = sum(row.gold_label is not None for row in rows)
    if file_demonstrations is not None:
        demonstrations = [(0, example) for example in file_demonstrations]
        report.few_shot_source = f"{len(demonstrations)} from {redact_uri(few_shot_uri)}"
    elif labeled:
        drawn = min(DRAWN_DEMONSTRATIONS, labeled)
        demonstrations = _drawn_demonstrations(rows, asking, report)
        report.few_shot_source = (
            f"{len(demonstrations)} labeled rows explained by the teacher (seeded draw of {drawn}; "
            "a row's own example is left out of its prompt)"
        )
    else:
        demonstrations = _self_made_demonstrations(rows, asking, report)
        report.few_shot_source = (
            f"{len(demonstrations)} made by the teacher (no labels, no few-shot file): it answered "
            f"{report.self_made_candidates} rows {SELF_MADE_SAMPLES} times each at temperature "
            f"{SELF_CONSISTENCY_TEMPERATURE:g}, and rows whose answers all agreed became examples, each class "
            "up to its share where the classes are known (a row's own example is left out of its prompt)"
            + ("; none agreed, so the rest is asked zero-shot" if not demonstrations else "")
        )
    report.few_shot_count = len(demonstrations)
    return demonstrations


def _write_outputs(outputs: list[dict], report: GenerationReport, output_path, report_path) -> None:
    write_jsonl(output_path, outputs)
    Path(report_path).parent.mkdir(parents=True, exist_ok=True)
    Path(report_path).write_text(report.to_markdown(), encoding="utf-8")


def generate_rationales(
    dataset_path: str | os.PathLike,
    output_path: str | os.PathLike,
    report_path: str | os.PathLike,
    config: GenerationConfig,
    cache_path: str | os.PathLike | None = None,
    backend: TeacherBackend | PrecomputedBackend | None = None,
) -> GenerationReport:
    """Asks the teacher for a rationale (and a label where missing) for every row, and writes them out.

    Rows with a label are explained (EXPLAIN mode) when `config.use_gold_labels`, else the teacher answers
    them without seeing the label (PREDICT mode: the evaluation set). Every answer is cached durably as it
    arrives, so a re-run after a crash asks only what was not answered yet. Requests that fail with a rate
    limit, a server error, a timeout or a dropped connection are retried with exponential backoff and full
    jitter (or after the server's `Retry-After`).

    Args:
        dataset_path: Validated JSON Lines rows (`input_text`, `output_text` or null, optional `rationale`).
        output_path: Where the output rows go (JSON Lines; see the component README for the fields).
        report_path: Where the Markdown report goes.
        config: The teacher and how to ask it.
        cache_path: The SQLite answer cache; None: `teacher_answers.sqlite` under the kfp-distill cache.
        backend: The teacher `config.teacher` names, when the caller made it already (the
            component does, to name its cache file after the teacher); None: made here.

    Returns:
        The report, also written to `report_path`.

    Raises:
        DatasetError: A bad dataset or few-shot file (file, line and field named).
        PromptTemplateError: A template that cannot be filled in (before any request).
        TeacherUnavailableError: Too many requests failed (what was answered stays cached).
        NoUsableAnswersError: No row got a usable answer (outputs and report are written first).
        TeacherAnswersUnusableError: The probe's answers were mostly unusable (the rest was not asked).
    """
    started = time.perf_counter()
    dataset_uri = str(dataset_path)
    rows = _read_rows(dataset_uri)
    profile = task_profile(
        config.task_type, [row.input_text for row in rows], [row.gold_label for row in rows], config.class_names
    )
    backend = backend or backend_for(config.teacher, config.request_timeout_s, config.project, config.location)
    report = GenerationReport(
        dataset_uri=dataset_uri,
        teacher=backend.identity,
        teacher_reference=config.teacher,
        rows=len(rows),
        max_total_tokens=config.max_total_tokens,
        min_answered_fraction=config.min_answered_fraction,
        task_type=profile.task_type,
        task_type_reason=profile.reason,
        class_source=profile.class_source,
        classes=profile.classes,
        drop_contradicting_rationales=config.drop_contradicting_rationales,
        rationale_length=config.rationale_length,
    )
    modes = {
        row.line: Mode.EXPLAIN if row.gold_label is not None and config.use_gold_labels else Mode.PREDICT
        for row in rows
    }
    report.explained = sum(mode is Mode.EXPLAIN for mode in modes.values())
    report.predicted = len(rows) - report.explained

    if isinstance(backend, PrecomputedBackend):
        report.few_shot_source = "none (the rationales come with the dataset)"
        answers = [[Answer(backend.completion_for(row.raw, row.line, dataset_uri), 0.0)] for row in rows]
    else:
        template = config.prompt_template or DEFAULT_TEMPLATE
        validate_template(template, modes.values())
        file_demonstrations = load_demonstrations(config.few_shot_uri) if config.few_shot_uri else None
        report.answer_format = resolve_answer_format(config.answer_format, backend.supports_structured_output)
        settings = DecodingSettings(max_new_tokens=config.max_new_tokens, temperature=config.temperature)
        if config.self_consistency_samples > 1:
            report.self_consistency_samples = config.self_consistency_samples
            report.self_consistency_temperature = config.self_consistency_temperature
        rate_limiter = RateLimiter(config.requests_per_minute, config.tokens_per_minute)
        with (
            AnswerCache(cache_path or cache_root() / "teacher_answers.sqlite") as cache,
            tqdm(total=len(rows) * config.self_consistency_samples, desc="teacher", unit="answer") as progress,
        ):
            teacher = Teacher(
                backend,
                cache,
                settings,
                max_concurrency=config.max_concurrency,
                retry_policy=RetryPolicy(max_attempts=config.max_attempts),
                rate_limiter=rate_limiter if rate_limiter.limits_anything else None,
                max_total_tokens=config.max_total_tokens,
                progress=progress,
            )
            ask = functools.partial(
                _ask_every_row,
                rows,
                modes,
                report,
                config=config,
                file_demonstrations=file_demonstrations,
                written_to=(output_path, report_path),
            )
            asking = _Asking(teacher, template, profile, report.answer_format, settings, config.rationale_length)
            try:
                answers = ask(asking=asking)
            except _StructuredOutputRefused as refused:
                if config.answer_format.strip().lower() != "auto":
                    raise TeacherAnswersUnusableError(
                        f"answer_format='json', but {refused}; use answer_format='auto' or 'text' with this server"
                    ) from None
                report.answer_format = TEXT
                report.answer_format_note = f"the server refused structured output, so free text ({refused})"
                report.demonstration_problems.clear()
                answers = ask(asking=replace(asking, answer_format=TEXT))
        _copy_stats(teacher, rate_limiter, report)

    outputs = _tally(rows, answers, modes, profile, report)
    report.wall_time_s = time.perf_counter() - started
    _write_outputs(outputs, report, output_path, report_path)
    if not outputs:
        raise NoUsableAnswersError(
            f"the teacher gave no usable rationale for any of the {len(rows)} rows "
            f"({len(report.unparseable)} unparseable, {len(report.failed)} failed, "
            f"{len(report.not_asked)} not asked, {len(report.dropped_contradicting)} dropped for contradicting "
            f"the gold label); see {report_path}"
        )
    if report.answered_fraction is not None and report.answered_fraction < config.min_answered_fraction:
        raise TeacherUnavailableError(
            f"only {report.answered_fraction:.1%} of the rows asked got a usable answer ({report.answered} of "
            f"{report.rows - len(report.not_asked)}), below min_answered_fraction={config.min_answered_fraction}; "
            f"see {report_path}; the answers are kept in the cache"
        )
    return report


class _StructuredOutputRefused(Exception):
    """The server refused every way of asking for a JSON answer (its own words in the message)."""


def _ask_every_row(
    rows: list[_Row],
    modes: dict[int, Mode],
    report: GenerationReport,
    asking: _Asking,
    config: GenerationConfig,
    file_demonstrations: list[Demonstration] | None,
    written_to: tuple,
) -> list[list[Answer | Unanswered]]:
    """Every row's answers (one per self-consistency sample): demonstrations first, then the probe rows,
    then the rest.

    Raises:
        _StructuredOutputRefused: The server takes no JSON schema (nothing was answered in that format).
        TeacherAnswersUnusableError: Too few probe rows got a usable answer (report and outputs written).
    """
    demonstrations = _demonstrations(rows, asking, config.few_shot_uri, file_demonstrations, report)
    samples = config.self_consistency_samples
    def refused() -> str | None:  # only a JSON run cares; the free-text retry after a refusal does not
        found = getattr(asking.teacher.backend, "structured_output_refused", None)
        return found if asking.answer_format == JSON else None

    conversations, settings, row_of = [], [], []
    for number, row in enumerate(rows):
        mode = modes[row.line]
        shots = [example for line, example in demonstrations if line != row.line]
        messages = asking.messages(row, mode, row.gold_label if mode is Mode.EXPLAIN else None, shots)
        for seed in range(samples):  # a row's samples differ in their seed
            changes = {"temperature": config.self_consistency_temperature, "seed": seed} if samples > 1 else {}
            conversations.append(messages)
            settings.append(asking.settings_for(row, **changes))
            row_of.append(number)
    tally = RowTally(row_of, functools.partial(_is_usable, answer_format=asking.answer_format))
    probed = min(config.probe_rows, len(rows)) * samples
    answers = []
    if refused():  # found out while making the demonstrations
        raise _StructuredOutputRefused(refused())
    if probed:
        # No minimum here: unusable probe answers get the probe's own message; the rest's call checks the
        # share, failed requests of the probe included, before it asks anything.
        answers = asking.teacher.ask_all(conversations[:probed], 0.0, settings[:probed], row_of[:probed], tally)
        if refused():
            raise _StructuredOutputRefused(refused())
        _check_probe(rows, probed // samples, answers, modes, asking, report, *written_to)
    try:
        answers += asking.teacher.ask_all(
            conversations[probed:], config.min_answered_fraction, settings[probed:], row_of[probed:], tally
        )
    finally:
        if refused():
            raise _StructuredOutputRefused(refused())  # without a probe, found out only now
    return [answers[number * samples : (number + 1) * samples] for number in range(len(rows))]


def _check_probe(
    rows: list[_Row], probe_rows: int, answers: list, modes: dict[int, Mode], asking: _Asking,
    report: GenerationReport, output_path, report_path,
) -> None:
    """Stops the run when too few of the first `probe_rows` rows that got an answer got a usable one, saying
    what the teacher said and what to do; the report counts the other rows as not asked. (Failed requests
    are the retry loop's and min_answered_fraction's concern; rows left out for the budget were not asked.)"""
    probed = rows[:probe_rows]
    samples = len(answers) // len(probed)
    by_row = [answers[n * samples : (n + 1) * samples] for n in range(len(probed))]
    answered = [[answer for answer in row if isinstance(answer, Answer)] for row in by_row]
    usable = [any(_is_usable(answer.completion, asking.answer_format) for answer in row) for row in answered]
    report.probe_rows, report.probe_usable = sum(map(bool, answered)), sum(usable)
    if report.probe_usable >= PROBE_MIN_USABLE_SHARE * report.probe_rows:
        return
    outputs = _tally(probed, by_row, modes, asking.profile, report)
    report.not_asked += [Problem(row.line, NOT_ASKED_PROBE) for row in rows[probe_rows:]]
    _copy_stats(asking.teacher, None, report)
    _write_outputs(outputs, report, output_path, report_path)
    said = [
        f"line {problem.line}: {problem.reason}: {problem.snippet!r}"
        for problem in report.unparseable[:PROBE_EXAMPLES_SHOWN]
    ]
    advice = [
        "give worked examples: a few-shot file (few_shot_uri: input_text, rationale, output_text) or a few "
        "labeled training rows (output_text), which the teacher then explains as demonstrations",
        "use a larger teacher",
    ]
    if report.cut_off:
        advice.append("raise max_new_tokens (answers were cut off)")
    if asking.answer_format == TEXT:
        advice.append(
            "use a server with structured output (response_format with a JSON schema: vLLM, llama.cpp's "
            "llama-server, OpenAI), so every answer parses"
        )
    raise TeacherAnswersUnusableError(
        f"the teacher gave a usable answer for only {report.probe_usable} of the first {report.probe_rows} rows "
        f"it answered ({len(report.unparseable)} unparseable, {len(report.failed)} failed), so the other "
        f"{report.rows - len(probed)} rows were not asked. What it said: " + "; ".join(said)
        + ". What to do: " + "; ".join(advice) + f". The report is {report_path}; the answers are cached."
    )


def _tally(
    rows: list[_Row], answers: list[list], modes: dict[int, Mode], profile: TaskProfile, report: GenerationReport
) -> list[dict]:
    """The output rows for every row's answers, with the report's counts."""
    outputs = []
    for row, row_answers in zip(rows, answers):
        answered = [answer for answer in row_answers if isinstance(answer, Answer)]
        if not answered:
            reasons = [answer.reason for answer in row_answers]
            failures = [reason for reason in reasons if reason != NOT_ASKED_BUDGET]
            problems = report.failed if failures else report.not_asked
            problems.append(Problem(row.line, failures[0] if failures else NOT_ASKED_BUDGET))
            continue
        for answer in answered:
            _count_used(answer, report)
        output = _output_row(row, answered, modes[row.line], profile, report)
        if output is not None:
            outputs.append(output)
    return outputs


def _copy_stats(teacher: Teacher, rate_limiter: RateLimiter | None, report: GenerationReport) -> None:
    report.requests = teacher.stats.requests
    report.cache_hits = teacher.stats.cache_hits
    report.tokens_spent_now = teacher.stats.tokens_spent
    report.request_errors = dict(teacher.stats.request_errors)
    report.rate_limit_wait_s = rate_limiter.waited_s if rate_limiter else 0.0
