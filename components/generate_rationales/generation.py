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

from .answer_format import (
    JSON,
    TEXT,
    answer_schema,
    parse_answer,
    resolve_answer_format,
    restates_answer,
    unusable_reason,
)
from .asking import (
    NOT_ASKED_BUDGET,
    Answer,
    AskingStats,
    RowTally,
    Teacher,
    TeacherUnavailableError,
    Unanswered,
)
from .backends import PrecomputedBackend, backend_for
from .backends.base import Completion, DecodingSettings, TeacherBackend
from .cache import AnswerCache
from .config import SELF_CONSISTENCY_TEMPERATURE, GenerationConfig
from .outcome import FewShot, GenerationOutcome, Probe, Problem, RowOutcome
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
from .report import GenerationReport, to_markdown
from .retry import RetryPolicy
from .task_profile import TaskProfile, majority_vote, task_profile

__all__ = [
    "NoUsableAnswersError",
    "TeacherAnswersUnusableError",
    "TeacherUnavailableError",
    "generate_rationales",
]

# Demonstrations drawn from the labeled rows when no few-shot file is given (the paper uses a handful).
DRAWN_DEMONSTRATIONS = 4
DEMONSTRATION_SEED = 0
SNIPPET_CHARS = 160
# Without labels or a few-shot file the teacher makes its own demonstrations: it answers this many rows
# this many times each, and keeps the rows whose samples all agree; up to this many draws, while a known
# class has no demonstration.
SELF_MADE_CANDIDATES = 6
SELF_MADE_SAMPLES = 3
SELF_MADE_DRAWS = 3
# Why the rows after a probe that stopped the run are not in the output (counted with the rows not asked).
NOT_ASKED_PROBE = "not asked: the probe stopped the run"
PROBE_EXAMPLES_SHOWN = 3


class NoUsableAnswersError(RuntimeError):
    """Not one row got a usable rationale (the report says why)."""


class TeacherAnswersUnusableError(NoUsableAnswersError):
    """The probe's answers were mostly unusable, so the rest was not asked (the message says what to do)."""


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


def _row_outcome(
    row: _Row, row_answers: list[Answer | Unanswered], mode: Mode, profile: TaskProfile, answer_format: str,
    voting: bool, drop_contradicting: bool,
) -> RowOutcome:
    """What becomes of a row given its teacher answers (one, or self-consistency samples by seed): its output
    row, or why it is left out, and what is worth a look. Samples vote (`voting`): the majority answer is the
    teacher label, and the rationale is that of the first sample that gave it."""
    explained = mode is Mode.EXPLAIN
    answered = [answer for answer in row_answers if isinstance(answer, Answer)]
    if not answered:
        failures = [answer.reason for answer in row_answers if answer.reason != NOT_ASKED_BUDGET]
        if failures:
            return RowOutcome(row.line, explained, failed=Problem(row.line, failures[0]))
        return RowOutcome(row.line, explained, not_asked=Problem(row.line, NOT_ASKED_BUDGET))
    used = tuple(answered)
    usable = [answer for answer in answered if _is_usable(answer.completion, answer_format)]
    if not usable:
        first = answered[0].completion
        reason = unusable_reason(first.text, first.finish_reason, answer_format)
        if len(answered) > 1:
            reason = f"none of {len(answered)} samples usable; the first: {reason}"
        return RowOutcome(row.line, explained, used, unusable=Problem(row.line, reason, _snippet(first.text)))
    parsed = [parse_answer(answer.completion.text, answer_format) for answer in usable]
    vote = majority_vote([label for _, label in parsed], profile.agrees) if voting else None
    rationale, teacher_label = parsed[vote.winner if vote else 0]
    teacher_label = profile.canonical(teacher_label, row.input_text)
    seen = {"line": row.line, "explained": explained, "used": used, "vote": vote}
    if profile.task_type == EXTRACTIVE_QA:
        not_span = teacher_answer_span(teacher_label, row.input_text, row.gold_label is not None)
        if not_span is not None:
            seen.update(not_span=Problem(row.line, not_span.note, _snippet(teacher_label)),
                        not_span_mapped=not_span.mapped)
            if not_span.label is None:  # answered, but not a target: left out as a contradicting row is
                return RowOutcome(**seen, not_span_left_out=True)
            teacher_label = not_span.label
    if restates_answer(rationale, teacher_label):
        seen["restating"] = Problem(row.line, "the rationale only restates the answer", _snippet(rationale))
    agrees = None
    if row.gold_label is not None:
        agrees = profile.agrees(teacher_label, row.gold_label)
        if drop_contradicting and not agrees:
            reason = f"the teacher's answer {teacher_label!r} contradicts the gold label {row.gold_label!r}"
            return RowOutcome(**seen, agrees_with_gold=agrees, dropped=Problem(row.line, reason, _snippet(rationale)))
    output = {
        "input_text": row.input_text,
        "output_text": row.gold_label if row.gold_label is not None else teacher_label,
        "gold_label": row.gold_label,
        "teacher_label": teacher_label,
        "rationale": rationale,
        "agrees_with_gold": agrees,
        # Every sample's tokens and time count: the teacher was paid for all of them.
        "prompt_tokens": sum(answer.completion.prompt_tokens for answer in answered),
        "completion_tokens": sum(answer.completion.completion_tokens for answer in answered),
        "latency_s": round(sum(answer.latency_s for answer in answered), 4),
    }
    if vote is not None:
        output["votes_for_label"] = vote.votes
        output["votes_cast"] = vote.samples
    return RowOutcome(**seen, agrees_with_gold=agrees, output=output)


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


def _drawn_demonstrations(
    rows: list[_Row], asking: _Asking, problems: list[Problem], used: list[Answer]
) -> list[tuple[int, Demonstration]]:
    """Few-shot examples made from labeled rows: the teacher explains their gold labels zero-shot (the rows
    that could not be one go to `problems`, the answers asked to `used`)."""
    labeled = [row for row in rows if row.gold_label is not None]
    chosen = random.Random(DEMONSTRATION_SEED).sample(labeled, k=min(DRAWN_DEMONSTRATIONS, len(labeled)))
    answers = asking.teacher.ask_all(
        [asking.messages(row, Mode.EXPLAIN, row.gold_label) for row in chosen],
        settings=[asking.settings_for(row) for row in chosen],
    )
    demonstrations = []
    for row, answer in zip(chosen, answers):
        if isinstance(answer, Unanswered):
            problems.append(Problem(row.line, answer.reason))
            continue
        used.append(answer)
        rationale, stated = parse_answer(answer.completion.text, asking.answer_format)
        snippet = _snippet(answer.completion.text)
        if stated is None or not rationale:
            problems.append(Problem(row.line, "no rationale and answer to parse", snippet))
        elif not asking.profile.agrees(stated, row.gold_label):
            problems.append(Problem(row.line, "stated answer contradicts the gold label", snippet))
        else:
            demonstrations.append((row.line, Demonstration(row.input_text, rationale, row.gold_label)))
    return demonstrations


def _self_made_demonstrations(
    rows: list[_Row], asking: _Asking, problems: list[Problem], used: list[Answer]
) -> tuple[list[tuple[int, Demonstration]], int]:
    """Few-shot examples without labels, and how many rows the teacher answered to make them: it answers a
    seeded draw of rows zero-shot, several samples each, and the rows whose samples all agree (with a rationale
    that is more than its answer) become demonstrations of their majority answer.

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
        made = _agreed_demonstrations(chosen, asking, problems, used)
        agreed += made
        labels = {demonstration.output_text for _, demonstration in agreed}  # canonical already
        if not classes or not made or not left or labels >= set(classes):
            break
    demonstrations, per_label = [], collections.Counter()
    for line, demonstration in agreed:  # in the order asked, each label up to its share
        if per_label[demonstration.output_text] < share and len(demonstrations) < DRAWN_DEMONSTRATIONS:
            per_label[demonstration.output_text] += 1
            demonstrations.append((line, demonstration))
    return sorted(demonstrations, key=lambda made: made[0]), len(rows) - len(left)  # in the dataset's order


def _agreed_demonstrations(
    chosen: list[_Row], asking: _Asking, problems: list[Problem], used: list[Answer]
) -> list[tuple[int, Demonstration]]:
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
            used.append(answer)
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
        problems.append(Problem(row.line, reason, snippet))
    return demonstrations


def _demonstrations(
    rows: list[_Row], asking: _Asking, few_shot_uri: str, file_demonstrations
) -> tuple[list[tuple[int, Demonstration]], FewShot]:
    """The run's few-shot examples (with the line of the row each was made from; 0 for a file's), and where
    they came from."""
    labeled = sum(row.gold_label is not None for row in rows)
    problems, used, candidates = [], [], 0
    if file_demonstrations is not None:
        demonstrations = [(0, example) for example in file_demonstrations]
        source = f"{len(demonstrations)} from {redact_uri(few_shot_uri)}"
    elif labeled:
        drawn = min(DRAWN_DEMONSTRATIONS, labeled)
        demonstrations = _drawn_demonstrations(rows, asking, problems, used)
        source = (
            f"{len(demonstrations)} labeled rows explained by the teacher (seeded draw of {drawn}; "
            "a row's own example is left out of its prompt)"
        )
    else:
        demonstrations, candidates = _self_made_demonstrations(rows, asking, problems, used)
        source = (
            f"{len(demonstrations)} made by the teacher (no labels, no few-shot file): it answered "
            f"{candidates} rows {SELF_MADE_SAMPLES} times each at temperature "
            f"{SELF_CONSISTENCY_TEMPERATURE:g}, and rows whose answers all agreed became examples, each class "
            "up to its share where the classes are known (a row's own example is left out of its prompt)"
            + ("; none agreed, so the rest is asked zero-shot" if not demonstrations else "")
        )
    return demonstrations, FewShot(source, len(demonstrations), tuple(problems), tuple(used), candidates)


def _write_outputs(outcome: GenerationOutcome, output_path, report_path) -> GenerationReport:
    """Writes the output rows and the Markdown report; returns the report."""
    report = GenerationReport.of(outcome)
    write_jsonl(output_path, outcome.outputs)
    Path(report_path).parent.mkdir(parents=True, exist_ok=True)
    Path(report_path).write_text(to_markdown(report), encoding="utf-8")
    return report


def generate_rationales(
    dataset_path: str | os.PathLike,
    output_path: str | os.PathLike,
    report_path: str | os.PathLike,
    config: GenerationConfig,
    cache_path: str | os.PathLike | None = None,
    backend: TeacherBackend | PrecomputedBackend | None = None,
) -> GenerationOutcome:
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
        What the run did, row by row (`report.GenerationReport.of` counts it, as written to `report_path`).

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
    modes = {
        row.line: Mode.EXPLAIN if row.gold_label is not None and config.use_gold_labels else Mode.PREDICT
        for row in rows
    }
    if isinstance(backend, PrecomputedBackend):
        answers = [[Answer(backend.completion_for(row.raw, row.line, dataset_uri), 0.0)] for row in rows]
        asked = _Asked(FewShot("none (the rationales come with the dataset)"), answers)
    else:
        asked = _ask_the_teacher(rows, modes, profile, backend, config, cache_path)
    row_outcomes = [
        _row_outcome(
            row, row_answers, modes[row.line], profile, asked.answer_format, asked.samples_per_row > 1,
            config.drop_contradicting_rationales,
        )
        for row, row_answers in zip(rows, asked.answers)
    ]
    row_outcomes += [  # after a probe that stopped the run
        RowOutcome(row.line, modes[row.line] is Mode.EXPLAIN, not_asked=Problem(row.line, NOT_ASKED_PROBE))
        for row in rows[len(asked.answers):]
    ]
    outcome = GenerationOutcome(
        dataset_uri=dataset_uri,
        teacher=backend.identity,
        config=config,
        profile=profile,
        rows=tuple(row_outcomes),
        few_shot=asked.few_shot,
        answer_format=asked.answer_format,
        answer_format_note=asked.answer_format_note,
        samples_per_row=asked.samples_per_row,
        probe=asked.probe,
        requests=asked.stats.requests,
        cache_hits=asked.stats.cache_hits,
        tokens_spent_now=asked.stats.tokens_spent,
        request_errors=dict(asked.stats.request_errors),
        rate_limit_wait_s=asked.rate_limit_wait_s,
        wall_time_s=time.perf_counter() - started,
    )
    report = _write_outputs(outcome, output_path, report_path)
    if outcome.probe_stopped_the_run:
        raise TeacherAnswersUnusableError(_probe_stopped(report, asked.answer_format, report_path))
    if not outcome.outputs:
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
    return outcome


class _StructuredOutputRefused(Exception):
    """The server refused every way of asking for a JSON answer (its own words in the message).

    Attributes:
        used: The teacher answers the refused pass used (for its few-shot examples), which still count.
    """

    def __init__(self, reason: str, used: tuple[Answer, ...]):
        super().__init__(reason)
        self.used = used


@dataclass(frozen=True)
class _Asked:
    """What asking gave: the few-shot examples, each row's answers (one per self-consistency sample; for the
    probed rows only when the probe stopped the run), the probe, how answers were asked for, and what asking
    cost."""

    few_shot: FewShot
    answers: list[list[Answer | Unanswered]]
    probe: Probe | None = None
    answer_format: str = TEXT
    answer_format_note: str = ""
    samples_per_row: int = 1
    stats: AskingStats = field(default_factory=AskingStats)
    rate_limit_wait_s: float = 0.0


def _ask_the_teacher(
    rows: list[_Row], modes: dict[int, Mode], profile: TaskProfile, backend: TeacherBackend,
    config: GenerationConfig, cache_path: str | os.PathLike | None,
) -> _Asked:
    """Asks the teacher about every row through the answer cache, in JSON where it can be and else (or when
    the server refuses a schema and `answer_format` is `auto`) in free text.

    Raises:
        TeacherAnswersUnusableError: `answer_format` is `json` and the server refused a schema.
        TeacherUnavailableError: Failed requests put min_answered_fraction out of reach.
    """
    template = config.prompt_template or DEFAULT_TEMPLATE
    validate_template(template, modes.values())
    file_demonstrations = load_demonstrations(config.few_shot_uri) if config.few_shot_uri else None
    answer_format = resolve_answer_format(config.answer_format, backend.supports_structured_output)
    settings = DecodingSettings(max_new_tokens=config.max_new_tokens, temperature=config.temperature)
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
        ask = functools.partial(_ask_every_row, rows, modes, config=config, file_demonstrations=file_demonstrations)
        asking = _Asking(teacher, template, profile, answer_format, settings, config.rationale_length)
        note = ""
        try:
            asked = ask(asking=asking)
        except _StructuredOutputRefused as refused:
            if config.answer_format.strip().lower() != "auto":
                raise TeacherAnswersUnusableError(
                    f"answer_format='json', but {refused}; use answer_format='auto' or 'text' with this server"
                ) from None
            answer_format, note = TEXT, f"the server refused structured output, so free text ({refused})"
            asked = ask(asking=replace(asking, answer_format=TEXT))
            # The answers the refused pass used count (its few-shot problems do not: those rows were asked again).
            asked = replace(asked, few_shot=replace(asked.few_shot, used=refused.used + asked.few_shot.used))
    return replace(
        asked, answer_format=answer_format, answer_format_note=note,
        samples_per_row=config.self_consistency_samples, stats=teacher.stats, rate_limit_wait_s=rate_limiter.waited_s,
    )


def _ask_every_row(
    rows: list[_Row],
    modes: dict[int, Mode],
    asking: _Asking,
    config: GenerationConfig,
    file_demonstrations: list[Demonstration] | None,
) -> _Asked:
    """Asks for every row's answers in `asking.answer_format`: demonstrations first, then the probe rows, then
    the rest (unless the probe stops the run).

    Raises:
        _StructuredOutputRefused: The server takes no JSON schema (nothing was answered in that format).
        TeacherUnavailableError: Failed requests put min_answered_fraction out of reach.
    """
    demonstrations, few_shot = _demonstrations(rows, asking, config.few_shot_uri, file_demonstrations)
    samples = config.self_consistency_samples

    def check_refusal() -> None:  # only a JSON run cares; the free-text retry after a refusal does not
        refused = getattr(asking.teacher.backend, "structured_output_refused", None)
        if refused and asking.answer_format == JSON:
            raise _StructuredOutputRefused(refused, few_shot.used)

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

    def by_row(answers: list) -> list[list[Answer | Unanswered]]:
        return [answers[n * samples : (n + 1) * samples] for n in range(len(answers) // samples)]

    answers, probe = [], None
    check_refusal()  # found out while making the demonstrations
    if probed:
        # No minimum here: unusable probe answers get the probe's own message; the rest's call checks the
        # share, failed requests of the probe included, before it asks anything.
        answers = asking.teacher.ask_all(conversations[:probed], 0.0, settings[:probed], row_of[:probed], tally)
        check_refusal()
        probe = _probe(by_row(answers), asking.answer_format)
        if probe.stops_the_run:
            return _Asked(few_shot, by_row(answers), probe)
    # Rows refused for their schema put no minimum out of reach (see RowTally): a TeacherUnavailableError here
    # is the failed requests' own, and reaches the caller as it is.
    answers += asking.teacher.ask_all(
        conversations[probed:], config.min_answered_fraction, settings[probed:], row_of[probed:], tally
    )
    check_refusal()  # without a probe, found out only now
    return _Asked(few_shot, by_row(answers), probe)


def _probe(answers: list[list[Answer | Unanswered]], answer_format: str) -> Probe:
    """How the probe rows fared: those that got an answer, and those of them with a usable one. (Failed
    requests are the retry loop's and min_answered_fraction's concern; rows left out for the budget were not
    asked.)"""
    answered = [[answer for answer in row if isinstance(answer, Answer)] for row in answers]
    usable = [any(_is_usable(answer.completion, answer_format) for answer in row) for row in answered]
    return Probe(rows=sum(map(bool, answered)), usable=sum(usable))


def _probe_stopped(report: GenerationReport, answer_format: str, report_path) -> str:
    """Why the probe stopped the run: what the teacher said, and what to do."""
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
    if answer_format == TEXT:
        advice.append(
            "use a server with structured output (response_format with a JSON schema: vLLM, llama.cpp's "
            "llama-server, OpenAI), so every answer parses"
        )
    not_asked = sum(problem.reason == NOT_ASKED_PROBE for problem in report.not_asked)
    return (
        f"the teacher gave a usable answer for only {report.probe_usable} of the first {report.probe_rows} rows "
        f"it answered ({len(report.unparseable)} unparseable, {len(report.failed)} failed), so the other "
        f"{not_asked} rows were not asked. What it said: " + "; ".join(said)
        + ". What to do: " + "; ".join(advice) + f". The report is {report_path}; the answers are cached."
    )
