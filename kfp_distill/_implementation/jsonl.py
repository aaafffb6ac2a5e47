"""Reading and writing JSON Lines datasets, with errors that name the file, line and field."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import fsspec


class DatasetError(ValueError):
    """A dataset problem, located by file, line (1-based) and field."""

    def __init__(self, uri: str, message: str, line: int | None = None, field: str | None = None):
        self.uri, self.line, self.field = uri, line, field
        where = uri if line is None else f"{uri}, line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")


def read_jsonl(uri: str) -> Iterator[tuple[int, dict]]:
    """Yields (line number, object) for each non-blank line of a JSON Lines file.

    Args:
        uri: A local path, or any URI fsspec reads (`gs://`, `https://`, ...).

    Raises:
        DatasetError: The file is missing or unreadable, a line is not UTF-8, not JSON, or not an object.
    """
    try:
        with fsspec.open(uri, "rb") as handle:
            raw_lines = handle.read().split(b"\n")
    except FileNotFoundError:
        raise DatasetError(uri, "file not found") from None
    except (OSError, ValueError) as error:
        raise DatasetError(uri, f"cannot be read: {error}") from error
    for line_number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DatasetError(uri, f"not valid UTF-8 (byte {error.start + 1} of the line)", line_number) from None
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            raise DatasetError(uri, f"not valid JSON: {error.msg} at column {error.colno}", line_number) from None
        if not isinstance(row, dict):
            raise DatasetError(uri, f"expected a JSON object, got {type(row).__name__}", line_number)
        yield line_number, row


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
