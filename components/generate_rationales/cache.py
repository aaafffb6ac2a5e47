"""A durable SQLite cache of teacher answers: one row per answer, committed the moment it arrives.

A run killed at any point loses at most the request in flight from a local cache (from a remote one, the
answers since its last copy back); the next run re-asks nothing already kept. The key is the sha256 of (teacher identity, full prompt messages, decoding settings).

In a pipeline the cache lives under the pipeline root by default (`default_cache_uri`), so a retried task or
a new run finds it; a remote cache (`gs://...`) is worked on as a local copy that is copied back every
`SYNC_INTERVAL_S`, at the end, after an error and on SIGTERM (a cancelled or preempted task).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import signal
import sqlite3
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

from kfp_distill._implementation.redaction import redact_text, redact_uri
from kfp_distill._implementation.teacher_reference import TeacherReference

from .backends.base import Completion, DecodingSettings, TeacherRequestError, checked_completion

logger = logging.getLogger(__name__)

# How often a remote cache is copied back while the task runs: a task killed outright (out of memory,
# SIGKILL) loses at most the answers of the last interval.
SYNC_INTERVAL_S = 60.0
CACHE_FOLDER = "teacher-cache"

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
        # Unset settings stay out, so a setting added later leaves the keys of earlier answers as they were.
        {
            "teacher": teacher_identity,
            "messages": messages,
            "settings": {name: value for name, value in asdict(settings).items() if value is not None},
        },
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
        """The answer stored under `key`, or None.

        An answer whose fields do not read as one counts as none, so it is asked again: an earlier version
        stored whatever a server sent (SQLite keeps a string in an INTEGER column), and reading it back must
        not crash every later run.
        """
        row = self._connection.execute(
            "SELECT completion, prompt_tokens, completion_tokens, finish_reason, latency_s FROM answers WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        text, prompt_tokens, completion_tokens, finish_reason, latency_s = row
        try:
            completion = checked_completion(
                Completion(text, prompt_tokens, completion_tokens, finish_reason), f"answer {key[:12]} of {self.path}"
            )
        except TeacherRequestError as error:
            logger.warning("%s: asked again", error)
            return None
        if not isinstance(latency_s, float) or not 0 <= latency_s < math.inf:
            logger.warning("answer %s of %s: bad latency %r: asked again", key[:12], self.path, latency_s)
            return None
        return CachedAnswer(completion, latency_s)

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


def default_cache_uri(pipeline_root: str, teacher: str) -> str:
    """The answer cache kept under a pipeline root: `<pipeline_root>/teacher-cache/<teacher>-<digest>.sqlite`.

    `teacher` is the teacher's identity (earlier versions named the file after the teacher reference, which
    for an endpoint holds its address). The name depends on the teacher only, never on the job, so a retried
    task or a new run of the pipeline with the same root finds the answers already paid for.
    """
    teacher = teacher.strip()
    # The name is seen by whoever lists the bucket: no credentials in it (the digest stays the teacher's own).
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", redact_uri(teacher)).strip("-.")[:60] or "teacher"
    digest = hashlib.sha256(teacher.encode("utf-8")).hexdigest()[:12]
    return f"{pipeline_root.rstrip('/')}/{CACHE_FOLDER}/{readable}-{digest}.sqlite"


def _merge_file(target: Path, source: Path) -> None:
    """Adds the answers of the SQLite cache `source` that `target` lacks to `target`."""
    with contextlib.closing(sqlite3.connect(target, timeout=60)) as connection:
        connection.execute(_SCHEMA)
        connection.execute("ATTACH DATABASE ? AS remote", (str(source),))
        with connection:
            connection.execute("INSERT OR IGNORE INTO answers SELECT * FROM remote.answers")
        connection.execute("DETACH DATABASE remote")


class _RemoteCopy:
    """A local SQLite cache kept in step with a remote one that several tasks read and write at once (the
    training and evaluation teacher steps of one pipeline share a cache).

    No remote object is ever rewritten, so no interleaving of the tasks loses an answer: every copy up is a
    new object `<uri>.shards/<writer>-<n>.sqlite` (written under a temporary name, then renamed), a copy down
    merges every shard (and a cache file at the URI itself, as earlier versions wrote it; read, never
    written), and a shard is deleted only by a writer whose own newer shard, already written, holds all of
    its answers. The caches at `read_also` (and their shards) are merged at the first copy down, never written.
    """

    def __init__(
        self, filesystem, remote_path: str, local: Path, read_also: Sequence[str] = (), *, shown: dict[str, str]
    ):
        self.filesystem, self.remote_path, self.local = filesystem, remote_path, local
        # How logs name each remote cache: by its URI, redacted (a path fsspec stripped can still hold a credential).
        self.shown = dict(sorted(shown.items(), key=lambda item: -len(item[0])))
        self.read_also = list(read_also)
        self.shards = f"{remote_path}.shards"
        self._writer = uuid.uuid4().hex[:12]
        self._uploads = 0
        self._merged: set[str] = set()  # shards whose answers the local copy holds
        self._copied: tuple | None = None  # (answers, newest answer) when last copied down or up
        self._lock = threading.Lock()

    def show(self, text: str) -> str:
        """`text` (a path, an error) as a log may show it: each cache's path named by its redacted URI, any other
        URI redacted."""
        for path, uri in self.shown.items():
            text = text.replace(path, uri)
        return redact_text(text)

    def _state(self) -> tuple | None:
        if not self.local.exists():
            return None
        with contextlib.closing(sqlite3.connect(self.local, timeout=60)) as connection:
            return connection.execute("SELECT COUNT(*), MAX(created_at) FROM answers").fetchone()

    def _merge_remote(self, remote_path: str | None = None) -> None:
        """Merges the answers of the remote cache (this copy's, or another only read) and of every one of its
        shards not merged yet into the local copy."""
        own = remote_path is None
        remote_path = remote_path or self.remote_path
        sources = [remote_path] if self.filesystem.exists(remote_path) else []
        sources += sorted(self.filesystem.glob(f"{remote_path}.shards/*.sqlite"))
        partial = self.local.with_name("download.partial")  # a broken download is never merged
        for source in sources:
            if source in self._merged:  # shards never change: merged once is merged
                continue
            try:
                self.filesystem.get(source, str(partial))
            except FileNotFoundError:  # compacted by another task meanwhile: its answers are in a newer shard
                continue
            try:
                _merge_file(self.local, partial)
            except sqlite3.DatabaseError as error:
                logger.warning(
                    "remote answer cache %s unreadable (%s): left out", self.show(source), self.show(str(error))
                )
                continue
            finally:
                partial.unlink(missing_ok=True)
            if own and source != self.remote_path:  # the old single file may still be rewritten by older versions
                self._merged.add(source)

    def download(self) -> None:
        with self._lock:
            self._merge_remote()
            for remote_path in self.read_also:
                self._merge_remote(remote_path)
            self._copied = self._state()

    def upload(self) -> None:
        """Merges what the other tasks copied up, and copies the local answers up as a new shard unless
        nothing changed since the last copy; then deletes the shards that the new one holds."""
        with self._lock:
            if not self.local.exists():
                return
            self._merge_remote()
            state = self._state()
            if state == self._copied:
                return
            self._uploads += 1
            shard = f"{self.shards}/{self._writer}-{self._uploads:06d}.sqlite"
            snapshot = self.local.with_name("upload.sqlite")
            try:
                with (
                    contextlib.closing(sqlite3.connect(self.local, timeout=60)) as source,
                    contextlib.closing(sqlite3.connect(snapshot)) as target,
                ):
                    source.backup(target)  # a consistent copy while answers keep arriving, the WAL's included
                    target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                try:
                    self.filesystem.put(str(snapshot), f"{shard}.partial")
                except FileNotFoundError:  # a file system with real folders (buckets have none to make)
                    self.filesystem.makedirs(self.shards, exist_ok=True)
                    self.filesystem.put(str(snapshot), f"{shard}.partial")
                # Readers list `*.sqlite` only, so they never merge a half-written shard.
                self.filesystem.mv(f"{shard}.partial", shard)
            finally:
                snapshot.unlink(missing_ok=True)
            self._copied = state
            for stale in self._merged:
                with contextlib.suppress(FileNotFoundError):  # another task compacted it first
                    self.filesystem.rm(stale)
            self._merged = {shard}

    @contextlib.contextmanager
    def every(self, interval_s: float) -> Iterator[None]:
        """Uploads every `interval_s` seconds from a background thread while the block runs."""
        stop = threading.Event()

        def copy_periodically() -> None:
            while not stop.wait(interval_s):
                try:
                    self.upload()
                except Exception as error:  # a failed copy is tried again at the next tick and at the end
                    shown = self.show(self.remote_path), self.show(str(error))
                    logger.warning("copying the answer cache to %s failed: %s", *shown)

        thread = threading.Thread(target=copy_periodically, name="teacher-cache-copy", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def _exit(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """Turns SIGTERM into SystemExit while the block runs, so `finally` blocks (the last copy) still run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@contextlib.contextmanager
def local_cache_file(
    cache_uri: str, sync_interval_s: float = SYNC_INTERVAL_S, read_also: Sequence[str] = ()
) -> Iterator[Path | None]:
    """A local path for a cache given by URI (None for "": the caller's default).

    A local path (or `file://`) is used in place. A remote URI (`gs://...`) is copied down when it exists and
    used locally (SQLite needs a local file); it is copied back, merged with whatever the remote holds by
    then, every `sync_interval_s` seconds, on the way out (also after an error), and on SIGTERM. The answers
    of the caches at `read_also` (URIs of the same kind, e.g. files earlier versions wrote) are added first;
    those caches are never written.
    """
    if not cache_uri:
        yield None
        return
    if "://" not in cache_uri or cache_uri.startswith("file://"):
        path = Path(cache_uri.removeprefix("file://"))
        for earlier in map(Path, (uri.removeprefix("file://") for uri in read_also)):
            if earlier.exists() and earlier != path:
                path.parent.mkdir(parents=True, exist_ok=True)
                _merge_file(path, earlier)
        yield path
        return
    import fsspec

    filesystem, remote_path = fsspec.core.url_to_fs(cache_uri)
    staging = Path(tempfile.mkdtemp(prefix="teacher-cache-"))
    read_paths = [fsspec.core.url_to_fs(uri)[1] for uri in read_also]
    shown = {path: redact_uri(uri) for path, uri in [(remote_path, cache_uri), *zip(read_paths, read_also)]}
    copy = _RemoteCopy(filesystem, remote_path, staging / "teacher_answers.sqlite", read_paths, shown=shown)
    try:
        copy.download()
        with _sigterm_exits(), copy.every(sync_interval_s):
            yield copy.local
    except BaseException:
        # The task's own error is the one to report; a failed last copy is only logged beside it.
        try:
            copy.upload()
        except Exception as error:
            logger.warning("copying the answer cache to %s failed: %s", copy.show(remote_path), copy.show(str(error)))
        raise
    else:
        copy.upload()
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def teacher_cache_file(
    cache_uri: str, pipeline_root: str, teacher_identity: str, teacher: TeacherReference,
    sync_interval_s: float = SYNC_INTERVAL_S,
) -> Iterator[Path | None]:
    """The local file of the answer cache a component's run uses (see `local_cache_file`).

    `cache_uri` when given; else, with a pipeline root, the default there, named after the teacher's identity
    (`default_cache_uri`), to which the answers of the file earlier versions named after the teacher reference's
    text are added (that file is never written); else None: the kfp-distill cache folder.
    """
    read_also: tuple[str, ...] = ()
    if not cache_uri and pipeline_root:
        cache_uri = default_cache_uri(pipeline_root, teacher_identity)
        earlier = default_cache_uri(pipeline_root, teacher.text)
        read_also = (earlier,) if earlier != cache_uri else ()
    with local_cache_file(cache_uri, sync_interval_s, read_also) as path:
        yield path
