"""Teacher rationales (and labels where missing) for every row of a dataset, by few-shot chain of thought."""

from __future__ import annotations

import collections
import os
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from kfp_distill._implementation.answers import split_completion
from kfp_distill._implementation.jsonl import DatasetError, read_jsonl, write_jsonl
from kfp_distill._implementation.models import cache_root

from .asking import NOT_ASKED_BUDGET, Answer, Teacher, TeacherUnavailableError, Unanswered
from .backends import PrecomputedBackend, backend_for
from .backends.base import DecodingSettings
from .cache import AnswerCache
from .pricing import estimated_cost_usd
from .prompts import DEFAULT_TEMPLATE, Demonstration, Mode, build_messages, load_demonstrations, validate_template
from .rate_limit import RateLimiter
from .retry import RetryPolicy
from .task_profile import TaskProfile, majority_vote, task_profile

__all__ = ["GenerationReport", "NoUsableAnswersError", "TeacherUnavailableError", "generate_rationales"]

# Demonstrations drawn from the labeled rows when no few-shot file is given (the paper uses a handful).
DRAWN_DEMONSTRATIONS = 4
DEMONSTRATION_SEED = 0
SNIPPET_CHARS = 160
PROBLEMS_SHOWN = 20
# Self-consistency samples are drawn at this temperature unless told otherwise (Wang et al. 2023 use 0.5-0.7).
SELF_CONSISTENCY_TEMPERATURE = 0.7


class NoUsableAnswersError(RuntimeError):
    """Not one row got a usable rationale (the report says why)."""


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
    teacher: str
    rows: int = 0
    explained: int = 0
    predicted: int = 0
    few_shot_source: str = ""
    few_shot_count: int = 0
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

    @property
    def agreement_with_gold(self) -> float | None:
        return self.agreed_with_gold / self.compared_with_gold if self.compared_with_gold else None

    @property
    def mean_latency_s(self) -> float | None:
        """Mean teacher time per answer, as measured when each answer was first asked."""
        return self.teacher_latency_s / self.teacher_answers if self.teacher_answers else None

    @property
    def answered_fraction(self) -> float | None:
        """Share of the rows the teacher was asked about (budget left-outs aside) that got an answer."""
        asked = self.rows - len(self.not_asked)
        return (asked - len(self.failed)) / asked if asked else None

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
        return estimated_cost_usd(self.teacher, self.prompt_tokens, self.completion_tokens)

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
        }
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
            f"- Dataset: `{self.dataset_uri}` ({self.rows} rows)",
            f"- Teacher: `{self.teacher}`",
            f"- Task type: {self.task_type} ({self.task_type_reason})",
            f"- Prompts: {self.explained} explain the gold label, {self.predicted} ask the teacher to answer",
            f"- Few-shot examples: {self.few_shot_source}",
            f"- Answered: {self.answered}; unparseable: {len(self.unparseable)}; failed: {len(self.failed)}; "
            f"not asked: {len(self.not_asked)}"
            + (f"; dropped for contradicting the gold label: {len(self.dropped_contradicting)}"
               if self.drop_contradicting_rationales else "")
            + " (these rows are left out of the output)",
        ]
        if self.answered_fraction is not None:
            lines.append(
                f"- Rows the teacher answered: {self.answered_fraction:.1%} of those asked "
                f"(the step fails below min_answered_fraction={self.min_answered_fraction:.0%})"
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


def _unparseable_reason(completion) -> str | None:
    """Why a teacher answer cannot be used, or None when it has a rationale and an answer."""
    rationale, teacher_label = split_completion(completion.text)
    if teacher_label is None:
        reason = "no 'The answer is ...' line"
        return reason + (" (stopped at max_new_tokens)" if completion.finish_reason == "length" else "")
    return None if rationale else "empty rationale"


def _output_row(
    row: _Row, answers: list[Answer], mode: Mode, profile: TaskProfile, report: GenerationReport
) -> dict | None:
    """The output row for a row's teacher answers (one, or self-consistency samples by seed), or None after
    recording why it is left out. Samples vote: the majority answer is the teacher label, and the rationale
    is that of the first sample that gave it."""
    usable = [answer for answer in answers if _unparseable_reason(answer.completion) is None]
    if not usable:
        first = answers[0].completion
        reason = _unparseable_reason(first)
        if len(answers) > 1:
            reason = f"none of {len(answers)} samples usable; the first: {reason}"
        report.unparseable.append(Problem(row.line, reason, _snippet(first.text)))
        return None
    parsed = [split_completion(answer.completion.text) for answer in usable]
    chosen = 0
    if report.self_consistency_samples > 1:
        vote = majority_vote([label for _, label in parsed], profile.agrees)
        chosen = vote.winner
        report.votes.append((vote.votes, vote.samples))
        report.vote_ties += vote.votes == vote.runner_up
    rationale, teacher_label = parsed[chosen]
    teacher_label = profile.canonical(teacher_label)
    report.answered += 1
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


def _drawn_demonstrations(
    rows: list[_Row], teacher: Teacher, template: str, profile: TaskProfile, report: GenerationReport
) -> list[tuple[int, Demonstration]]:
    """Few-shot examples made from labeled rows: the teacher explains their gold labels zero-shot."""
    labeled = [row for row in rows if row.gold_label is not None]
    chosen = random.Random(DEMONSTRATION_SEED).sample(labeled, k=min(DRAWN_DEMONSTRATIONS, len(labeled)))
    answers = teacher.ask_all(
        [
            build_messages(row.input_text, Mode.EXPLAIN, row.gold_label, (), template, profile.system_instruction)
            for row in chosen
        ]
    )
    demonstrations = []
    for row, answer in zip(chosen, answers):
        if isinstance(answer, Unanswered):
            report.demonstration_problems.append(Problem(row.line, answer.reason))
            continue
        _count_used(answer, report)
        rationale, stated = split_completion(answer.completion.text)
        snippet = _snippet(answer.completion.text)
        if stated is None or not rationale:
            report.demonstration_problems.append(Problem(row.line, "no rationale and answer to parse", snippet))
        elif not profile.agrees(stated, row.gold_label):
            report.demonstration_problems.append(Problem(row.line, "stated answer contradicts the gold label", snippet))
        else:
            demonstrations.append((row.line, Demonstration(row.input_text, rationale, row.gold_label)))
    return demonstrations


def _write_outputs(outputs: list[dict], report: GenerationReport, output_path, report_path) -> None:
    write_jsonl(output_path, outputs)
    Path(report_path).parent.mkdir(parents=True, exist_ok=True)
    Path(report_path).write_text(report.to_markdown(), encoding="utf-8")


def generate_rationales(
    dataset_path: str | os.PathLike,
    output_path: str | os.PathLike,
    report_path: str | os.PathLike,
    teacher_model_reference: str,
    use_gold_labels: bool = True,
    prompt_template: str = "",
    few_shot_uri: str = "",
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    task_type: str = "auto",
    self_consistency_samples: int = 1,
    self_consistency_temperature: float = SELF_CONSISTENCY_TEMPERATURE,
    drop_contradicting_rationales: bool = False,
    cache_path: str | os.PathLike | None = None,
    max_concurrency: int = 8,
    requests_per_minute: int = 0,
    tokens_per_minute: int = 0,
    max_total_tokens: int = 0,
    min_answered_fraction: float = 0.9,
    request_timeout_s: float = 600.0,
    max_attempts: int = 6,
    project: str = "",
    location: str = "",
) -> GenerationReport:
    """Asks the teacher for a rationale (and a label where missing) for every row, and writes them out.

    Rows with a label are explained (EXPLAIN mode) when `use_gold_labels`, else the teacher answers them
    without seeing the label (PREDICT mode: the evaluation set). Every answer is cached durably as it
    arrives, so a re-run after a crash asks only what was not answered yet. Requests that fail with a rate
    limit, a server error, a timeout or a dropped connection are retried with exponential backoff and full
    jitter (or after the server's `Retry-After`).

    Args:
        dataset_path: Validated JSON Lines rows (`input_text`, `output_text` or null, optional `rationale`).
        output_path: Where the output rows go (JSON Lines; see the component README for the fields).
        report_path: Where the Markdown report goes.
        teacher_model_reference: `precomputed`, `gemini-<...>` or `vertex:<model>` (Vertex AI),
            `<base_url>#<model>` (OpenAI-compatible), `hf:<model>` (local Hugging Face model), or a GGUF
            catalog name, path or URI (llama.cpp); see the component README.
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
        cache_path: The SQLite answer cache; None: `teacher_answers.sqlite` under the kfp-distill cache.
        max_concurrency: Requests in flight at once (HTTP endpoints; the embedded llama.cpp model asks one
            at a time).
        requests_per_minute: Client-side limit on requests started in any minute, retries included; 0: none.
        tokens_per_minute: Client-side limit on prompt and completion tokens in any minute (a request counts
            with an estimate until the server reports its usage); 0: none.
        max_total_tokens: Stop asking once this run's requests used so many tokens (answers from the cache
            are free); the rows left are reported "not asked: budget reached". 0: no cap.
        min_answered_fraction: The step fails when a smaller share of the rows it asked about (rows left
            out for the budget aside) got an answer, usable or not; it stops as soon as that is certain.
        request_timeout_s: Seconds one HTTP attempt may take.
        max_attempts: Attempts per request, the first included.
        project: The Google Cloud project of a Vertex AI teacher (`gemini-...`, `vertex:<model>`); required
            for those, unused by the others.
        location: The Vertex AI region of such a teacher; empty: the global endpoint.

    Returns:
        The report, also written to `report_path`.

    Raises:
        DatasetError: A bad dataset or few-shot file (file, line and field named).
        PromptTemplateError: A template that cannot be filled in (before any request).
        TeacherUnavailableError: Too many requests failed (what was answered stays cached).
        NoUsableAnswersError: No row got a usable answer (outputs and report are written first).
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must not be negative, got {temperature}")
    if self_consistency_samples < 1:
        raise ValueError(f"self_consistency_samples must be at least 1, got {self_consistency_samples}")
    if self_consistency_samples > 1 and self_consistency_temperature <= 0:
        raise ValueError(
            "self-consistency needs varied samples: self_consistency_temperature must be above 0, "
            f"got {self_consistency_temperature}"
        )
    if not 0.0 <= min_answered_fraction <= 1.0:
        raise ValueError(f"min_answered_fraction must be between 0 and 1, got {min_answered_fraction}")
    started = time.perf_counter()
    dataset_uri = str(dataset_path)
    rows = _read_rows(dataset_uri)
    profile = task_profile(task_type, [row.input_text for row in rows], [row.gold_label for row in rows])
    backend = backend_for(teacher_model_reference, request_timeout_s, project, location)
    report = GenerationReport(
        dataset_uri=dataset_uri,
        teacher=backend.identity,
        rows=len(rows),
        max_total_tokens=max_total_tokens,
        min_answered_fraction=min_answered_fraction,
        task_type=profile.task_type,
        task_type_reason=profile.reason,
        drop_contradicting_rationales=drop_contradicting_rationales,
    )
    modes = {
        row.line: Mode.EXPLAIN if row.gold_label is not None and use_gold_labels else Mode.PREDICT for row in rows
    }
    report.explained = sum(mode is Mode.EXPLAIN for mode in modes.values())
    report.predicted = len(rows) - report.explained
    outputs = []

    if isinstance(backend, PrecomputedBackend):
        report.few_shot_source = "none (the rationales come with the dataset)"
        completions = [(row, backend.completion_for(row.raw, row.line, dataset_uri)) for row in rows]
        for row, completion in completions:
            output = _output_row(row, [Answer(completion, 0.0)], modes[row.line], profile, report)
            if output is not None:
                outputs.append(output)
    else:
        template = prompt_template or DEFAULT_TEMPLATE
        validate_template(template, modes.values())
        file_demonstrations = load_demonstrations(few_shot_uri) if few_shot_uri else None
        settings = DecodingSettings(max_new_tokens=max_new_tokens, temperature=temperature)
        sample_settings = [settings]
        if self_consistency_samples > 1:
            report.self_consistency_samples = self_consistency_samples
            report.self_consistency_temperature = self_consistency_temperature
            sample_settings = [
                replace(settings, temperature=self_consistency_temperature, seed=seed)
                for seed in range(self_consistency_samples)
            ]
        labeled = sum(row.gold_label is not None for row in rows)
        drawn = 0 if file_demonstrations is not None else min(DRAWN_DEMONSTRATIONS, labeled)
        rate_limiter = RateLimiter(requests_per_minute, tokens_per_minute)
        with (
            AnswerCache(cache_path or cache_root() / "teacher_answers.sqlite") as cache,
            tqdm(total=len(rows) * len(sample_settings) + drawn, desc="teacher", unit="answer") as progress,
        ):
            teacher = Teacher(
                backend,
                cache,
                settings,
                max_concurrency=max_concurrency,
                retry_policy=RetryPolicy(max_attempts=max_attempts),
                rate_limiter=rate_limiter if rate_limiter.limits_anything else None,
                max_total_tokens=max_total_tokens,
                progress=progress,
            )
            if file_demonstrations is not None:
                demonstrations = [(0, example) for example in file_demonstrations]
                report.few_shot_source = f"{len(demonstrations)} from {few_shot_uri}"
            elif drawn:
                demonstrations = _drawn_demonstrations(rows, teacher, template, profile, report)
                report.few_shot_source = (
                    f"{len(demonstrations)} labeled rows explained by the teacher (seeded draw of {drawn}; "
                    "a row's own example is left out of its prompt)"
                )
            else:
                demonstrations = []
                report.few_shot_source = "none: zero-shot chain of thought (no labeled rows, no few-shot file)"
            report.few_shot_count = len(demonstrations)
            conversations = []
            for row in rows:
                mode = modes[row.line]
                shots = [example for line, example in demonstrations if line != row.line]
                label_shown = row.gold_label if mode is Mode.EXPLAIN else None
                messages = build_messages(
                    row.input_text, mode, label_shown, shots, template, profile.system_instruction
                )
                conversations += [messages] * len(sample_settings)  # a row's samples differ in their seed
            answers = teacher.ask_all(conversations, min_answered_fraction, sample_settings * len(rows))
        _copy_stats(teacher, rate_limiter, report)
        samples = len(sample_settings)
        for index, row in enumerate(rows):
            row_answers = answers[index * samples : (index + 1) * samples]
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

    report.wall_time_s = time.perf_counter() - started
    _write_outputs(outputs, report, output_path, report_path)
    if not outputs:
        raise NoUsableAnswersError(
            f"the teacher gave no usable rationale for any of the {len(rows)} rows "
            f"({len(report.unparseable)} unparseable, {len(report.failed)} failed, "
            f"{len(report.not_asked)} not asked, {len(report.dropped_contradicting)} dropped for contradicting "
            f"the gold label); see {report_path}"
        )
    return report


def _copy_stats(teacher: Teacher, rate_limiter: RateLimiter, report: GenerationReport) -> None:
    report.requests = teacher.stats.requests
    report.cache_hits = teacher.stats.cache_hits
    report.tokens_spent_now = teacher.stats.tokens_spent
    report.request_errors = dict(teacher.stats.request_errors)
    report.rate_limit_wait_s = rate_limiter.waited_s
