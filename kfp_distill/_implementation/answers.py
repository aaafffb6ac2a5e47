"""Answers: splitting a chain-of-thought completion, normalising, and scoring by text or by value.

Shared by the teacher (parsing its rationales) and evaluation (scoring every model the same way).
"""

from __future__ import annotations

import ast
import collections
import math
import operator
import re
import string

# Every pattern here reads text from outside (a teacher's answer, a student's output) and runs in linear
# time: a repeated part may start only where the run it covers starts (`(?<!...)`), so no run is scanned
# from each of its characters. (Python 3.10 has no atomic groups or possessive quantifiers.)

# "The answer is X", "Answer: X", "Final answer: X", "#### X"; the last one in the text wins.
_ANSWER_MARKER = re.compile(r"(?:the\s+(?:final\s+)?answer\s+is\s*:?|final\s+answer\s*:|answer\s*:|####)\s*", re.I)
# A completion often runs on into an invented next few-shot example: a blank line, then "Q:", "Question:",
# ... The whitespace before the word is taken whole; `_next_example_start` checks that it holds a blank line.
_NEXT_EXAMPLE = re.compile(r"(?<!\s)(\s+)(?:Q|Question|Premise|Input|Problem)\s*:", re.I)
# A run of digits, operators, brackets, dots and spaces that holds a digit.
_ARITHMETIC_SPAN = re.compile(r"(?<![-+*/().\d\s])[-+*/().\d\s]*\d[-+*/().\d\s]*")
_BOXED = "\\boxed{"
_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def _next_example_start(completion: str) -> int | None:
    """Where the first blank line that starts a new question begins (its first line break), or None."""
    for match in _NEXT_EXAMPLE.finditer(completion):
        gap = match.group(1)
        first = gap.find("\n")
        if first >= 0 and gap.find("\n", first + 1) >= 0:
            return match.start(1) + first
    return None


def cut_runaway(completion: str) -> str:
    """Drops whatever follows the first blank line that starts a new question."""
    start = _next_example_start(completion)
    return completion if start is None else completion[:start]


def _unbox(answer: str) -> str:
    r"""`$\boxed{X}$` and `\boxed{X}` as X, a box reaching to the last closing brace of the line.

    String searches rather than a pattern like `\\boxed\{(.*)\}`, which scans to the end of the line from
    every box (quadratic in a line of many); each search here starts where the last one ended.
    """
    parts, position = [], 0
    while (start := answer.find(_BOXED, position)) >= 0:
        content = start + len(_BOXED)
        in_dollars = start > position and answer[start - 1] == "$"
        end = answer.rfind("}$", content) if in_dollars else -1
        if end >= 0:
            parts += [answer[position : start - 1], answer[content:end]]
            position = end + 2
            continue
        end = answer.rfind("}", content)
        if end < 0:
            break
        parts += [answer[position:start], answer[content:end]]
        position = end + 1
    return "".join(parts) + answer[position:]


def _clean_answer(answer: str) -> str:
    answer = answer.strip().splitlines()[0] if answer.strip() else ""
    answer = _unbox(answer.strip().strip("*_`\"' "))
    return answer.rstrip(".").strip().strip("*_`\"' ")


def split_completion(completion: str) -> tuple[str, str | None]:
    """Splits a chain-of-thought completion into (rationale, answer).

    The answer is what follows the last answer marker ("The answer is ...", "Answer: ..."), up to the end
    of its line; the rationale is the text before that marker. Returns (text, None) when no answer is found.
    """
    text = cut_runaway(completion).strip()
    markers = list(_ANSWER_MARKER.finditer(text))
    if not markers:
        return text, None
    last = markers[-1]
    answer = _clean_answer(text[last.end():])
    rationale = text[: last.start()].strip()
    # "So the answer is" / "Therefore, the answer is": the connective belongs to the answer sentence.
    rationale = re.sub(r"(?:\b(?:so|thus|therefore|hence)\b[,\s]*)$", "", rationale, flags=re.I).strip()
    return rationale, (answer or None)


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ValueError("exponent too large")
        value = _OPERATORS[type(node.op)](left, right)
        # A negative base to a fractional power is complex: outside the real numbers, not an answer.
        if not isinstance(value, float):
            raise ValueError("not a real number")
        return value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    raise ValueError(f"not arithmetic: {type(node).__name__}")


def arithmetic_value(text: str) -> float | None:
    """The value of an arithmetic expression such as `( 84.0 / 2.0 )`, or None.

    Parses with `ast` and evaluates numbers and + - * / // % ** only: never `eval()`. Anything outside
    the finite real numbers (a complex power such as `(-8)**(1/3)`, an overflow) is None.
    """
    candidate = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text.strip().replace("×", "*").replace("÷", "/"))
    if not candidate or len(candidate) > 200 or not any(ch.isdigit() for ch in candidate):
        return None
    try:
        value = _evaluate(ast.parse(candidate, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError, TypeError):
        return None
    return value if math.isfinite(value) else None


def answer_value(text: str) -> float | None:
    """The numeric value of an answer: the whole text, else its last arithmetic span ("= 42 apples")."""
    value = arithmetic_value(text)
    if value is not None:
        return value
    for span in reversed(_ARITHMETIC_SPAN.findall(text)):
        value = arithmetic_value(span.strip().strip("."))
        if value is not None:
            return value
    return None


def normalize_text(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD F1: the harmonic mean of word precision and recall after `normalize_text`.

    Two empty answers agree (SQuAD v2.0's rule); an empty and a non-empty one do not.
    """
    predicted, expected = normalize_text(prediction).split(), normalize_text(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    same = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def extract_answer(prediction: str) -> str:
    """The answer in a model's output: after an answer marker if there is one, else the first line."""
    _, answer = split_completion(prediction)
    if answer is not None:
        return answer
    lines = [line for line in prediction.strip().splitlines() if line.strip()]
    return _clean_answer(lines[0]) if lines else ""


def label_answer(output: str, task_type: str) -> str:
    """A student's answer in its label-task output, as evaluation scores it: a summary may run over several
    lines; every other task's answer is one line or follows an answer marker."""
    return cut_runaway(output).strip() if task_type == "summarization" else extract_answer(output)


def answers_match(prediction: str, reference: str) -> bool:
    """True when numeric answers are equal in value, or other answers equal after normalisation.

    A numeric reference is compared by value only: normalisation drops operators, so `( 12 + 30 )` and
    `( 12 * 30 )` would read the same.
    """
    expected = arithmetic_value(reference)
    if expected is None:
        return normalize_text(prediction) == normalize_text(reference)
    found = answer_value(prediction)
    return found is not None and math.isclose(found, expected, rel_tol=1e-6, abs_tol=1e-6)
