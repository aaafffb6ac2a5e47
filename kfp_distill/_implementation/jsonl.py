"""Reading and writing JSON Lines datasets, with errors that name the file, line and field."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator

import fsspec

from kfp_distill._implementation.redaction import redact_text, redact_uri


class DatasetError(ValueError):
    """A dataset problem, located by file, line (1-based) and field."""

    def __init__(self, uri: str, message: str, line: int | None = None, field: str | None = None):
        self.uri, self.line, self.field = uri, line, field
        shown = redact_uri(uri)  # messages reach logs and reports: no credentials in them
        where = shown if line is None else f"{shown}, line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {redact_text(message)}")  # a library's error may quote the URI whole


# The largest dataset read: every contract-valid file fits (10,000 rows whose inputs may be far longer than
# the 7,168 tokens they are truncated to: 100,000 characters of up to 4 UTF-8 bytes each), and a file past
# it is refused before any of it is read.
MAX_DATASET_BYTES = 4 * 1024**3
# One line (one row) at most; the reader streams, holding one line at a time.
MAX_LINE_BYTES = 64 * 1024**2
# The longest a file may take to read (time spent waiting for its bytes): MAX_DATASET_BYTES at 1.2 MB/s. With
# MAX_DATASET_BYTES it bounds a server that gives no size and never ends its body.
MAX_READ_SECONDS = 3600.0
# An HTTP server that sends nothing for this long (connecting included) is given up on.
READ_STALL_SECONDS = 60.0
CHUNK_BYTES = 1024**2
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_STARTS = (b"\xff\xfe", b"\xfe\xff", b"{\x00", b"\x00{")
_GZIP_MAGIC = b"\x1f\x8b"

logger = logging.getLogger(__name__)


class _KeyTwice(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _object_without_repeated_keys(pairs: list[tuple[str, object]]) -> dict:
    row = {}
    for key, value in pairs:
        if key in row:
            raise _KeyTwice(key)
        row[key] = value
    return row


def _has_lone_surrogate(value: object) -> bool:
    """Whether a string in the value holds half of a UTF-16 pair (`"\\ud800"` in JSON), which no tokenizer takes."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def _open_options(uri: str) -> dict:
    """fsspec's options for the URI: HTTP reads that give up on a stalled server, and are not cut at aiohttp's
    default of 5 minutes for the whole body (MAX_READ_SECONDS bounds that instead)."""
    if uri.partition("://")[0].lower() not in ("http", "https"):
        return {}
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=READ_STALL_SECONDS, sock_read=READ_STALL_SECONDS)
    return {"client_kwargs": {"timeout": timeout}}


def _raw_lines(uri: str) -> Iterator[bytes]:
    """The file's lines as bytes, read a chunk at a time (one line held at once, at most MAX_LINE_BYTES), at
    most MAX_DATASET_BYTES in all and MAX_READ_SECONDS of waiting for them."""
    line_number = 1
    read_bytes, reading_s = 0, 0.0

    def checked(line: bytes | bytearray) -> bytes | bytearray:
        if len(line) > MAX_LINE_BYTES:
            raise DatasetError(uri, f"the line is longer than {MAX_LINE_BYTES:,} bytes", line_number)
        return line

    def next_chunk(handle) -> bytes:
        nonlocal read_bytes, reading_s
        started = time.monotonic()
        chunk = handle.read(CHUNK_BYTES)
        reading_s += time.monotonic() - started
        read_bytes += len(chunk)
        # Checked as it is read: a server need not give the size _size_of checks first.
        if read_bytes > MAX_DATASET_BYTES:
            raise DatasetError(
                uri, f"the file is longer than {MAX_DATASET_BYTES:,} bytes; the most a dataset may be is "
                f"{MAX_DATASET_BYTES:,}"
            )
        if reading_s > MAX_READ_SECONDS:
            raise DatasetError(
                uri, f"reading took longer than {MAX_READ_SECONDS:g} s, the most a dataset may take "
                f"({read_bytes:,} bytes read by then)"
            )
        return chunk

    with fsspec.open(uri, "rb", **_open_options(uri)) as handle:
        pending = bytearray()  # the start of a line whose end is not read yet
        while chunk := next_chunk(handle):
            *ended, unended = chunk.split(b"\n")
            for end in ended:
                yield checked(bytes(pending + end))
                pending = bytearray()
                line_number += 1
            pending = checked(pending + unended)
        if pending:
            yield bytes(pending)


def _size_of(uri: str) -> int | None:
    """The file's size when its filesystem says it cheaply; None when not (the read then reports any error)."""
    try:
        filesystem, path = fsspec.core.url_to_fs(uri, **_open_options(uri))
        return filesystem.size(path)
    except Exception:  # noqa: BLE001 - any failure here is reported by the read that follows
        return None


def _unreadable(uri: str, error: Exception) -> DatasetError:
    """A located error for a file that cannot be opened or read (missing, unreachable, refused, stalled, no
    filesystem)."""
    # fsspec's HTTP filesystem reports a refused connection, a timeout or an HTTP error as a missing file, with
    # the cause under one or more FileNotFoundErrors.
    cause = error
    while isinstance(cause, FileNotFoundError) and cause.__cause__ is not None:
        cause = cause.__cause__
    status = getattr(cause, "status", None)  # aiohttp's ClientResponseError
    if isinstance(cause, (TimeoutError, asyncio.TimeoutError)):  # distinct classes before Python 3.11
        return DatasetError(uri, f"cannot be read: the server sent nothing for {READ_STALL_SECONDS:g} s")
    if not isinstance(error, FileNotFoundError):
        return DatasetError(uri, f"cannot be read: {error}")
    if isinstance(cause, FileNotFoundError) or status == 404 or "404" in str(cause):
        return DatasetError(uri, "file not found")
    if isinstance(status, int):
        reason = getattr(cause, "message", "")
        return DatasetError(uri, f"cannot be read: the server answered HTTP {status} {reason}".rstrip())
    return DatasetError(uri, f"cannot be reached: {cause}")


def _first_line_problem(uri: str, raw: bytes) -> bytes:
    """The first line without a UTF-8 byte-order mark (accepted with a warning); other encodings and
    compressed files are refused with what to do."""
    if raw.startswith(_UTF8_BOM):
        logger.warning("%s starts with a UTF-8 byte-order mark; it is skipped", redact_uri(uri))
        return raw[len(_UTF8_BOM):]
    if raw.startswith(_UTF16_STARTS):
        raise DatasetError(uri, "the file is UTF-16 text; save it as UTF-8 (JSON Lines must be UTF-8)", 1)
    if raw.startswith(_GZIP_MAGIC):
        raise DatasetError(uri, "the file is gzip-compressed; decompress it (gunzip) and give the .jsonl file", 1)
    return raw


def read_jsonl(uri: str) -> Iterator[tuple[int, dict]]:
    """Yields (line number, object) for each non-blank line of a JSON Lines file, reading it as a stream.

    A UTF-8 byte-order mark is skipped with a warning.

    Args:
        uri: A local path, or any URI fsspec reads (`gs://`, `https://`, ...).

    Raises:
        DatasetError: The file is missing, unreachable or unreadable, larger than MAX_DATASET_BYTES, slower to
            read than MAX_READ_SECONDS (or an HTTP server sent nothing for READ_STALL_SECONDS), UTF-16 or
            gzip-compressed, or a line is longer than MAX_LINE_BYTES, not UTF-8, not JSON, not an object, repeats
            a key, holds a number or nesting JSON cannot read, or a lone UTF-16 surrogate.
    """
    size = _size_of(uri)
    if size is not None and size > MAX_DATASET_BYTES:
        raise DatasetError(uri, f"the file is {size:,} bytes; the most a dataset may be is {MAX_DATASET_BYTES:,}")
    lines = _raw_lines(uri)
    line_number = 0
    while True:
        try:
            raw = next(lines, None)
        except DatasetError:
            raise
        except Exception as error:  # noqa: BLE001 - every filesystem's own errors (auth, network) get located
            # Not chained: a traceback would show the library's errors, which quote the URI whole.
            raise _unreadable(uri, error) from None
        if raw is None:
            return
        line_number += 1
        if line_number == 1:
            raw = _first_line_problem(uri, raw)
        if not raw.strip():
            continue
        yield line_number, _parse_line(uri, raw, line_number)


def _parse_line(uri: str, raw: bytes, line_number: int) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(uri, f"not valid UTF-8 (byte {error.start + 1} of the line)", line_number) from None
    try:
        row = json.loads(text, object_pairs_hook=_object_without_repeated_keys)
    except _KeyTwice as error:
        raise DatasetError(uri, "the key appears twice in one object", line_number, error.key) from None
    except json.JSONDecodeError as error:
        raise DatasetError(uri, f"not valid JSON: {error.msg} at column {error.colno}", line_number) from None
    except RecursionError:
        raise DatasetError(uri, "not valid JSON here: nested too deeply", line_number) from None
    except ValueError as error:  # Python's 4,300-digit limit on integers
        raise DatasetError(uri, f"not valid JSON here: a number too long to read ({error})", line_number) from None
    if not isinstance(row, dict):
        raise DatasetError(uri, f"expected a JSON object, got {type(row).__name__}", line_number)
    for field, value in row.items():
        if _has_lone_surrogate(value):
            raise DatasetError(
                uri, "holds a lone UTF-16 surrogate (half of an escaped pair such as \\ud800)", line_number, field
            )
    return row


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Writes rows as JSON Lines atomically (a reader never sees half a file); returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp") as handle:
        try:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        except BaseException:
            handle.close()
            os.unlink(handle.name)
            raise
    os.replace(handle.name, path)
    return count


def load_rows(path: str | os.PathLike) -> list[dict]:
    """Reads a JSON Lines artifact written by `write_jsonl`."""
    return [row for _, row in read_jsonl(str(path))]
