"""A durable SQLite cache of teacher answers: one row per answer, committed the moment it arrives.

A run killed at any point loses at most the request in flight; the next run re-asks nothing already
answered. The key is the sha256 of (teacher identity, full prompt messages, decoding settings).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from .backends.base import Completion, DecodingSettings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    teacher TEXT NOT NULL,
    completion TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT,
    latency_s REAL NOT NULL,
    created_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class CachedAnswer:
    completion: Completion
    latency_s: float


def answer_key(teacher_identity: str, messages: list[dict[str, str]], settings: DecodingSettings) -> str:
    """The cache key of one request."""
    payload = json.dumps(
        {"teacher": teacher_identity, "messages": messages, "settings": asdict(settings)},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class AnswerCache:
    """The answers table of one SQLite file (WAL mode, so readers never block the writer).

    Args:
        path: The SQLite file; created with its folder when missing.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(self.path, timeout=60)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.execute(_SCHEMA)
        self._connection.commit()

    def get(self, key: str) -> CachedAnswer | None:
        row = self._connection.execute(
            "SELECT completion, prompt_tokens, completion_tokens, finish_reason, latency_s FROM answers WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        text, prompt_tokens, completion_tokens, finish_reason, latency_s = row
        return CachedAnswer(Completion(text, prompt_tokens, completion_tokens, finish_reason), latency_s)

    def put(self, key: str, teacher_identity: str, completion: Completion, latency_s: float) -> None:
        """Stores and commits one answer."""
        with self._connection:  # commits on exit
            self._connection.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    teacher_identity,
                    completion.text,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    completion.finish_reason,
                    latency_s,
                    time.time(),
                ),
            )

    def __len__(self) -> int:
        return self._connection.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> "AnswerCache":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


@contextlib.contextmanager
def local_cache_file(cache_uri: str) -> Iterator[Path]:
    """A local path for a cache given by URI.

    A local path (or `file://`) is used in place. A remote URI (`gs://...`) is copied down when it exists,
    used locally (SQLite needs a local file), and copied back on the way out, even after an error.
    """
    if "://" not in cache_uri or cache_uri.startswith("file://"):
        yield Path(cache_uri.removeprefix("file://"))
        return
    import fsspec

    filesystem, remote_path = fsspec.core.url_to_fs(cache_uri)
    staging = Path(tempfile.mkdtemp(prefix="teacher-cache-"))
    local = staging / "teacher_answers.sqlite"
    try:
        if filesystem.exists(remote_path):
            filesystem.get(remote_path, str(local))
        yield local
    finally:
        if local.exists():
            # Fold the write-ahead log into the main file so one file carries every answer.
            with contextlib.closing(sqlite3.connect(local)) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            filesystem.put(str(local), remote_path)
        shutil.rmtree(staging, ignore_errors=True)
