"""The generate-rationales report: the counts of a run's outcome (`GenerationReport.of`), its metrics, and its
Markdown (`to_markdown`)."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from kfp_distill._implementation.redaction import redact_uri
from kfp_distill._implementation.spans import EXTRACTIVE_QA
from kfp_distill._implementation.teacher_reference import TeacherReference

from .answer_format import JSON, TEXT
from .outcome import PROBE_MIN_USABLE_SHARE, GenerationOutcome, Problem
from .pricing import estimated_cost_usd
from .prompts import DEFAULT_RATIONALE_LENGTH

__all__ = ["GenerationReport", "to_markdown"]

PROBLEMS_SHOWN = 20


@dataclass(frozen=True)
class GenerationReport:
    """What the teacher did on one dataset, in the counts the report and the metrics show (`of` makes one
    from a run's outcome)."""

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
    unparseable: tuple[Problem, ...] = ()
    failed: tuple[Problem, ...] = ()
    not_asked: tuple[Problem, ...] = ()
    demonstration_problems: tuple[Problem, ...] = ()
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
    votes: tuple[tuple[int, int], ...] = ()  # per voted row: (majority votes, answers)
    vote_ties: int = 0  # voted rows whose majority tied with another answer (the lowest seed's won)
    drop_contradicting_rationales: bool = False
    dropped_contradicting: tuple[Problem, ...] = ()
    restating: tuple[Problem, ...] = ()  # kept rows whose rationale only restates the answer
    not_spans: tuple[Problem, ...] = ()  # extractive answers not found in their context
    not_spans_mapped: int = 0  # of those, mapped to the nearest span
    not_spans_left_out: int = 0  # of those, left out (no gold label: the answer would be the target)

    @classmethod
    def of(cls, outcome: GenerationOutcome) -> GenerationReport:
        """The counts of a run's outcome, row by row in the dataset's order."""
        rows, config = outcome.rows, outcome.config
        used = [answer for row in rows for answer in row.used] + list(outcome.few_shot.used)
        voted = [row.vote for row in rows if row.vote is not None]
        return cls(
            dataset_uri=outcome.dataset_uri,
            teacher=outcome.teacher,
            teacher_reference=config.teacher,
            rows=len(rows),
            explained=sum(row.explained for row in rows),
            predicted=sum(not row.explained for row in rows),
            few_shot_source=outcome.few_shot.source,
            few_shot_count=outcome.few_shot.count,
            self_made_candidates=outcome.few_shot.self_made_candidates,
            answer_format=outcome.answer_format,
            answer_format_note=outcome.answer_format_note,
            rationale_length=config.rationale_length,
            class_source=outcome.profile.class_source,
            classes=outcome.profile.classes,
            probe_rows=outcome.probe.rows if outcome.probe else 0,
            probe_usable=outcome.probe.usable if outcome.probe else 0,
            answered=sum(row.answered for row in rows),
            unparseable=tuple(row.unusable for row in rows if row.unusable),
            failed=tuple(row.failed for row in rows if row.failed),
            not_asked=tuple(row.not_asked for row in rows if row.not_asked),
            demonstration_problems=outcome.few_shot.problems,
            compared_with_gold=sum(row.agrees_with_gold is not None for row in rows),
            agreed_with_gold=sum(row.agrees_with_gold is True for row in rows),
            explanations_contradicting_gold=sum(row.explained and row.agrees_with_gold is False for row in rows),
            requests=outcome.requests,
            cache_hits=outcome.cache_hits,
            teacher_answers=len(used),
            prompt_tokens=sum(answer.completion.prompt_tokens for answer in used),
            completion_tokens=sum(answer.completion.completion_tokens for answer in used),
            teacher_latency_s=sum(answer.latency_s for answer in used),
            wall_time_s=outcome.wall_time_s,
            request_errors=dict(outcome.request_errors),
            tokens_spent_now=outcome.tokens_spent_now,
            max_total_tokens=config.max_total_tokens,
            rate_limit_wait_s=outcome.rate_limit_wait_s,
            min_answered_fraction=config.min_answered_fraction,
            task_type=outcome.profile.task_type,
            task_type_reason=outcome.profile.reason,
            self_consistency_samples=outcome.samples_per_row,
            self_consistency_temperature=config.self_consistency_temperature if outcome.samples_per_row > 1 else 0.0,
            votes=tuple((vote.votes, vote.samples) for vote in voted),
            vote_ties=sum(vote.votes == vote.runner_up for vote in voted),
            drop_contradicting_rationales=config.drop_contradicting_rationales,
            dropped_contradicting=tuple(row.dropped for row in rows if row.dropped),
            restating=tuple(row.restating for row in rows if row.restating),
            not_spans=tuple(row.not_span for row in rows if row.not_span),
            not_spans_mapped=sum(row.not_span_mapped for row in rows),
            not_spans_left_out=sum(row.not_span_left_out for row in rows),
        )

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


def to_markdown(report: GenerationReport) -> str:
    """The report as Markdown: what the teacher did, then a table for each kind of row left out or worth a look."""
    lines = [
        "# Teacher rationales",
        "",
        f"- Dataset: `{redact_uri(report.dataset_uri)}` ({report.rows} rows)",
        f"- Teacher: `{report.teacher}`",
        f"- Task type: {report.task_type} ({report.task_type_reason})",
        f"- Prompts: {report.explained} explain the gold label, {report.predicted} ask the teacher to answer",
        f"- Few-shot examples: {report.few_shot_source}",
        f"- Answer format: {report.answer_format}"
        + (" (a JSON object held to a schema: rationale, then answer)" if report.answer_format == JSON else
           " (a rationale ending 'The answer is ...')")
        + (f"; {report.answer_format_note}" if report.answer_format_note else ""),
        f"- Rationales asked for: {report.rationale_length}",
    ]
    if report.task_type == "classification":
        listed = ", ".join(report.classes) if report.classes else "none listed"
        lines.append(f"- Classes: {report.class_source} ({listed})")
    if report.probe_rows:
        lines.append(
            f"- Probe: {report.probe_usable} of the {report.probe_rows} rows answered first got a usable answer before the "
            f"rest were asked (the run stops below {PROBE_MIN_USABLE_SHARE:.0%})"
        )
    lines += [
        f"- Answered (usable): {report.answered}; unparseable: {len(report.unparseable)}"
        + (f" ({report.cut_off} cut off at max_new_tokens)" if report.cut_off else "")
        + f"; failed: {len(report.failed)}; "
        f"not asked: {len(report.not_asked)}"
        + (f"; dropped for contradicting the gold label: {len(report.dropped_contradicting)}"
           if report.drop_contradicting_rationales else "")
        + " (these rows are left out of the output)",
    ]
    if report.answered_fraction is not None:
        lines.append(
            f"- Rows with a usable answer: {report.answered_fraction:.1%} of those asked "
            f"(the step fails below min_answered_fraction={report.min_answered_fraction:.0%})"
        )
    if report.not_spans:
        kept = len(report.not_spans) - report.not_spans_mapped - report.not_spans_left_out
        lines.append(
            f"- Extractive answers that are not spans of their context: {len(report.not_spans)} "
            f"({report.not_spans_left_out} left out of the output, {report.not_spans_mapped} mapped to the nearest "
            f"span and {kept} kept as given where a gold label is the target; listed below)"
        )
    if report.restating:
        lines.append(
            f"- Rationales that only restate the answer: {len(report.restating)} (kept; listed below)"
        )
    if report.agreement_with_gold is not None:
        lines.append(
            f"- Agreement with gold: {report.agreed_with_gold}/{report.compared_with_gold} "
            f"({report.agreement_with_gold:.1%})"
        )
    if report.explanations_contradicting_gold:
        lines.append(
            f"- Explanations whose stated answer contradicts the gold label: "
            f"{report.explanations_contradicting_gold} "
            + ("(dropped)" if report.drop_contradicting_rationales else "(kept, agrees_with_gold=false)")
        )
    if report.self_consistency_samples > 1:
        lines.append(_votes_markdown(report))
    latency = "n/a" if report.mean_latency_s is None else f"{report.mean_latency_s:.2f} s"
    cost = report.estimated_cost_usd
    lines += [
        f"- Teacher answers used: {report.teacher_answers} ({report.requests} asked now, {report.cache_hits} from the cache)",
        f"- Mean teacher latency per answer: {latency}; wall time of this run: {report.wall_time_s:.1f} s",
        f"- Tokens: {report.prompt_tokens} prompt, {report.completion_tokens} completion; "
        f"spent by this run's requests: {report.tokens_spent_now}"
        + (f" (cap {report.max_total_tokens})" if report.max_total_tokens else ""),
        "- Estimated cost: "
        + ("n/a (no price known for this teacher)" if cost is None else f"${cost:.4f} at list prices (pricing.py)"),
    ]
    if report.request_errors:
        kinds = ", ".join(f"{kind}: {count}" for kind, count in sorted(report.request_errors.items()))
        lines.append(f"- Request errors (retried or not): {sum(report.request_errors.values())} ({kinds})")
    if report.rate_limit_wait_s:
        lines.append(
            f"- Waited for the client-side rate limits: {report.rate_limit_wait_s:.1f} s (all requests together)"
        )
    for title, problems in (
        ("Unparseable answers", report.unparseable),
        ("Failed requests", report.failed),
        ("Not asked", report.not_asked),
        ("Dropped: the teacher's answer contradicts the gold label", report.dropped_contradicting),
        ("Rationales that only restate the answer", report.restating),
        ("Extractive answers that are not spans of their context", report.not_spans),
        ("Few-shot examples left out", report.demonstration_problems),
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


def _votes_markdown(report: GenerationReport) -> str:
    line = (
        f"- Self-consistency: {report.self_consistency_samples} samples per row at temperature "
        f"{report.self_consistency_temperature:g}, the majority answer kept"
    )
    if not report.votes:
        return line + "; no row was voted on"
    tally = collections.Counter(report.votes)
    by_share = sorted(tally, key=lambda votes: (-votes[0] / votes[1], -votes[1]))
    spread = ", ".join(f"{votes}/{answers}: {tally[votes, answers]}" for votes, answers in by_share)
    return (
        f"{line}; unanimous: {report.unanimous} of {len(report.votes)} voted rows "
        f"(mean vote share {report.mean_vote_share:.0%}); rows by votes for the majority answer / samples "
        f"answered: {spread}; ties broken by the lowest seed: {report.vote_ties}"
    )
