"""Extractive answers are spans of their context: where the context is, the span nearest a given answer, and
greedy decoding held to spans.

An extractive-QA input is laid out as the contract's examples lay it out, `question: ... context: ...` (or the
context first): the context is the passage after `context:`, up to a `question:` that follows it, else the
whole input. A student answering such an input is decoded under `SpanLogitsProcessor`: at each step only the
tokens that keep its answer a substring of the context may come next, and the end of the answer only once it
holds a word. A teacher's answer that is not a span of its context is left out of the training targets, or,
where it is scored against a gold label, mapped to the nearest span (`nearest_span`: the words of the
context with the best SQuAD F1 against it).

Decoding compares bytes: a byte-level BPE vocabulary (GPT-2, Llama 3, SmolLM) reaches every character of the
context, even one its tokens spell in pieces; another vocabulary compares each token's text as it decodes
after another token (a SentencePiece token's leading space included), and reaches the characters its tokens
spell whole.
"""

from __future__ import annotations

import collections
import functools
import re
import string
import unicodedata
from dataclasses import dataclass
from typing import Sequence

from kfp_distill._implementation.answers import normalize_text
from kfp_distill._implementation.limits import MAX_INPUT_TOKENS

CONTEXT_MARKER = re.compile(r"\bcontext\s*:", re.I)
QUESTION_MARKER = re.compile(r"\bquestion\s*:", re.I)
EXTRACTIVE_QA = "extractive_qa"
# No student reads more of an input than MAX_INPUT_TOKENS tokens; a token is rarely longer than 8 characters.
# Past this, a context costs the decoding constraint work and could never have been read.
MAX_CONTEXT_CHARS = 8 * MAX_INPUT_TOKENS
# A teacher's answer is compared with spans of at most this many words more than it has.
_SPAN_SLACK_WORDS = 8
_EDGE_PUNCTUATION = ".,;:!?\"'()[]{}<>`"


def context_passage(input_text: str) -> str:
    """The passage an extractive-QA input's answer is a span of: after `context:`, up to a `question:` that
    follows it; the whole input when it names no context. Cut to its first MAX_CONTEXT_CHARS characters."""
    marker = CONTEXT_MARKER.search(input_text)
    if marker is None:
        passage = input_text
    else:
        passage = input_text[marker.end():]
        question = QUESTION_MARKER.search(passage)
        if question is not None:
            passage = passage[: question.start()]
    return passage.strip()[:MAX_CONTEXT_CHARS]


def is_span(answer: str, context: str) -> bool:
    """Whether an answer (its surrounding whitespace aside) occurs in the context as written there."""
    stripped = answer.strip()
    return bool(stripped) and stripped in context


@dataclass(frozen=True)
class Span:
    """A span of a context and its SQuAD word F1 against the answer it was found for."""

    text: str
    f1: float


def nearest_span(answer: str, context: str) -> Span | None:
    """The span of `context` nearest `answer`.

    The answer itself where it occurs; else the same text in the context's case; else the run of the
    context's words with the best SQuAD word F1 against the answer (the shortest, then the first, among
    equals), without the punctuation at its edges. None when no word of the context is a word of the answer.
    """
    stripped = answer.strip()
    if not stripped:
        return None
    if stripped in context:
        return Span(stripped, 1.0)
    found = context.lower().find(stripped.lower())
    if found >= 0 and len(context.lower()) == len(context):  # lower() kept every character's offset
        return Span(context[found : found + len(stripped)], 1.0)
    wanted = collections.Counter(normalize_text(stripped).split())
    wanted_length = sum(wanted.values())
    words = [(match.start(), match.end(), normalize_text(match.group()).split())
             for match in re.finditer(r"\S+", context)]
    best: tuple[float, int, int] | None = None  # (F1, -length, -first word): max() prefers short and early
    bounds = (0, 0)
    for first, (_, _, tokens) in enumerate(words):
        if not wanted.keys() & tokens:
            continue
        used: collections.Counter = collections.Counter()
        overlap = length = 0
        for last in range(first, min(len(words), first + wanted_length + _SPAN_SLACK_WORDS)):
            for token in words[last][2]:
                length += 1
                overlap += used[token] < wanted[token]
                used[token] += 1
            if not wanted.keys() & words[last][2]:
                continue  # a span that ends on a word the answer lacks has a shorter, better one
            score = (2 * overlap / (length + wanted_length), -length, -first)  # F1 = 2PR/(P+R), in counts
            if best is None or score > best:
                best, bounds = score, (words[first][0], words[last][1])
    if best is None:
        return None
    text = context[bounds[0] : bounds[1]].strip(_EDGE_PUNCTUATION + string.whitespace)
    return Span(text, best[0]) if text else None


@dataclass(frozen=True)
class TeacherSpan:
    """What becomes of a teacher's extractive answer that is not a span of its context.

    Attributes:
        label: The teacher's label to keep: the nearest span, or the answer as given; None: leave the row out.
        mapped: Whether `label` is the nearest span.
        note: What happened, for the generation report.
    """

    label: str | None
    mapped: bool
    note: str


def teacher_answer_span(answer: str, input_text: str, has_gold_label: bool) -> TeacherSpan | None:
    """What becomes of a teacher's answer to an extractive-QA input; None when it is a span of the context.

    A row without a gold label, whose target would be the answer, is left out. A row with one (an evaluation
    row, scored by its teacher label) keeps the nearest span (`nearest_span`), or the answer as given when no
    word of it is in the context. Measured on 150 QED rows answered by the default teacher (100 training rows,
    50 evaluation rows; `benchmarks/extractive_spans.py`): 39 answers were not spans, and mostly wrong (SQuAD
    F1 23.1% against gold, 53.2% for the 111 that were spans). As training targets, leaving them out keeps
    111 rows at F1 53.2%, mapping them 147 rows at F1 46.7%. Scored as the teacher's answers, mapping lifts
    EM from 28.0% to 30.0% and F1 from 45.3% to 45.8% (45.5% when only spans sharing half the answer's words
    are taken), where leaving them out (unanswered) drops F1 to 39.3%.
    """
    context = context_passage(input_text)
    if is_span(answer, context):
        return None
    if not has_gold_label:
        return TeacherSpan(None, False, "left out: not a span of its context")
    nearest = nearest_span(answer, context)
    if nearest is None:
        return TeacherSpan(answer, False, "kept as given: no word of it is in its context")
    return TeacherSpan(nearest.text, True, f"mapped to the nearest span of its context: {nearest.text!r}")


@dataclass(frozen=True)
class _Vocabulary:
    """A tokenizer's tokens as the bytes each adds to a decoded text; None for tokens an answer never holds."""

    pieces: tuple[bytes | None, ...]
    by_piece: dict[bytes, tuple[int, ...]]
    prefixes: frozenset[bytes]  # every non-empty prefix of every piece: where a walk along the context stops


def _byte_level_pieces(tokenizer, anchor: int, anchor_text: str) -> list[bytes | None] | None:
    """Each token's bytes read through the byte-level BPE alphabet, or None when the tokenizer is not byte-level
    (a token's characters are outside the alphabet, or a token's bytes do not decode as the tokenizer does)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    alphabet = {character: byte for byte, character in bytes_to_unicode().items()}
    pieces: list[bytes | None] = []
    for token in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))):
        if token is None or any(character not in alphabet for character in token):
            pieces.append(None)
            continue
        pieces.append(bytes(alphabet[character] for character in token))
    if sum(piece is None for piece in pieces) > len(tokenizer.added_tokens_decoder):
        return None
    for token_id in range(0, len(pieces), 97):  # a sample: the bytes say what decoding says
        piece = pieces[token_id]
        if piece is None or token_id in tokenizer.added_tokens_decoder:
            continue
        try:
            text = piece.decode("utf-8")
        except UnicodeDecodeError:
            continue
        decoded = tokenizer.decode([anchor, token_id], clean_up_tokenization_spaces=False)
        if decoded[len(anchor_text):] != text:
            return None
    return pieces


@functools.lru_cache(maxsize=8)
def _vocabulary(tokenizer) -> _Vocabulary:
    """The tokenizer's pieces (computed once per tokenizer: about half a second for 50,000 tokens)."""
    anchor = tokenizer("a", add_special_tokens=False)["input_ids"][-1]
    anchor_text = tokenizer.decode([anchor], clean_up_tokenization_spaces=False)
    pieces = _byte_level_pieces(tokenizer, anchor, anchor_text)
    if pieces is None:  # each token's text as it decodes after another token
        texts = tokenizer.batch_decode(
            [[anchor, token_id] for token_id in range(len(tokenizer))], clean_up_tokenization_spaces=False
        )
        pieces = [
            None if "\ufffd" in text or not text.startswith(anchor_text) else text[len(anchor_text):].encode()
            for text in texts
        ]
    for token_id in tokenizer.added_tokens_decoder:  # special and added tokens are not text of a context
        if token_id < len(pieces):
            pieces[token_id] = None
    by_piece: dict[bytes, list[int]] = collections.defaultdict(list)
    for token_id, piece in enumerate(pieces):
        if piece:
            by_piece[piece].append(token_id)
    prefixes = frozenset(piece[:end] for piece in by_piece for end in range(1, len(piece) + 1))
    return _Vocabulary(tuple(pieces), {piece: tuple(ids) for piece, ids in by_piece.items()}, prefixes)


def _word_edges(text: str) -> set[int]:
    """The byte offsets in `text` (UTF-8) where a span may start or end: not inside a character, nor between
    two letters or digits of a word; any two characters of a script written without spaces (wide: CJK, kana)."""
    def in_word(character: str) -> bool:
        return character.isalnum() and unicodedata.east_asian_width(character) not in ("W", "F")

    edges, offset = {0}, 0
    for before, after in zip(text, text[1:]):
        offset += len(before.encode())
        if not (in_word(before) and in_word(after)):
            edges.add(offset)
    edges.add(len(text.encode()))
    return edges


class SpanConstraint:
    """Which tokens may come next in one answer so that it stays a span of its context.

    The answer starts and ends at the edge of a word of the context (with or without the space before it);
    its first token holds more than whitespace; it may end (end of sequence) once it holds a word and stops
    at the edge of one. `answer()` gives the text the constraint tracked, so it is a span however a tokenizer
    would clean up its decoding.
    """

    def __init__(self, tokenizer, context: str, end_ids: Sequence[int]):
        self._vocabulary = _vocabulary(tokenizer)
        # A space before the passage: an answer may start with the space that precedes a word.
        self._context = (" " + context).encode()
        self._edges = _word_edges(" " + context)
        self._end_ids = tuple(end_ids)
        vocabulary, text = self._vocabulary, self._context
        self._matches: list[tuple[int, ...]] = []  # per byte position: the tokens whose piece starts there
        for position in range(len(text) + 1):
            found: list[int] = []
            end = position + 1
            while end <= len(text) and text[position:end] in vocabulary.prefixes:
                found.extend(vocabulary.by_piece.get(text[position:end], ()))
                end += 1
            self._matches.append(tuple(found))
        self._first = sorted({
            token_id
            for position, found in enumerate(self._matches)
            if position in self._edges
            for token_id in found
            if vocabulary.pieces[token_id].decode("utf-8", errors="replace").strip()  # a word, not a space
        })

    def _ends(self, generated: Sequence[int]) -> set[int]:
        """Where in the context an answer of these tokens can end (byte offsets after it); empty when nowhere."""
        ends: set[int] = set()
        for index, token_id in enumerate(generated):
            piece = self._vocabulary.pieces[token_id] if token_id < len(self._vocabulary.pieces) else None
            if not piece:
                return set()  # a token the constraint never allows: not generated under it
            if index == 0:
                start = self._context.find(piece)
                while start >= 0:
                    if start in self._edges:
                        ends.add(start + len(piece))
                    start = self._context.find(piece, start + 1)
            else:
                ends = {end + len(piece) for end in ends if self._context.startswith(piece, end)}
        return ends

    def allowed(self, generated: Sequence[int]) -> list[int] | None:
        """The tokens that may follow `generated` (the answer's tokens so far); None once it has ended."""
        if any(token_id in self._end_ids for token_id in generated):
            return None
        if not generated:
            return self._first or list(self._end_ids)  # an empty context: the only span is the empty answer
        ends = self._ends(generated)
        allowed = {token_id for end in ends for token_id in self._matches[end]}
        if not self._edges.isdisjoint(ends) or not allowed:
            allowed.update(self._end_ids)
        return sorted(allowed)

    def answer(self, generated: Sequence[int]) -> str:
        """The answer the tokens spell, up to the end of sequence: a span of the context, whitespace stripped."""
        pieces = []
        for token_id in generated:
            if token_id in self._end_ids:
                break
            if token_id < len(self._vocabulary.pieces):
                pieces.append(self._vocabulary.pieces[token_id] or b"")
        # A generation cut at max_new_tokens may stop inside a character: its last bytes are dropped.
        return b"".join(pieces).decode("utf-8", errors="ignore").strip()


class SpanLogitsProcessor:
    """A `transformers` logits processor: each row of a batch may only continue its answer as a span.

    Args:
        constraints: One `SpanConstraint` per row of the batch.
        prompt_length: Where the answers start in the sequences `generate` passes (the padded prompt's length;
            an encoder-decoder's decoder prompt).
    """

    def __init__(self, constraints: Sequence[SpanConstraint], prompt_length: int):
        self.constraints = list(constraints)
        self.prompt_length = prompt_length

    def __call__(self, input_ids, scores):
        import torch

        mask = torch.zeros_like(scores)
        for row, constraint in enumerate(self.constraints):
            allowed = constraint.allowed(input_ids[row, self.prompt_length:].tolist())
            if allowed is not None:  # a row that ended is padded by generate, whatever it scores
                mask[row] = float("-inf")
                mask[row, allowed] = 0.0
        return scores + mask


def span_constraints(tokenizer, input_texts: Sequence[str], end_ids: Sequence[int]) -> list[SpanConstraint]:
    """One constraint per extractive-QA input: its answer is a span of its `context_passage`."""
    return [SpanConstraint(tokenizer, context_passage(text), end_ids) for text in input_texts]
