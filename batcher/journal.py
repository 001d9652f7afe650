"""The journal: an SQLite file (WAL) that remembers every request's intent and outcome.

Before a request is sent its intent is committed; right after the answer, its
outcome. A crash, kill -9, lost network or Ctrl-C therefore loses nothing: a
request whose intent has no outcome was perhaps delivered, and is settled by
resending it with the same key (the API answers a repeat with the original).
Every state change is one short transaction; this module owns all the SQL.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from batcher.errors import OutputError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY,
    body_sha256 TEXT NOT NULL,
    row INTEGER NOT NULL,
    step INTEGER NOT NULL,
    chat TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    chat_id TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    error_code INTEGER NOT NULL DEFAULT 0,
    error_message TEXT NOT NULL DEFAULT '',
    trace_id TEXT NOT NULL DEFAULT '',
    sent_at TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    sha256 TEXT PRIMARY KEY,
    attachment_id TEXT NOT NULL,
    uploaded_at TEXT NOT NULL
);
"""


class State(StrEnum):
    """Where a request stands. Only `sent` is settled for good."""

    SENDING = "sending"  # intent committed, no outcome yet: perhaps delivered
    SENT = "sent"
    FAILED = "failed"  # refused, not retryable: a rerun tries once more (the account may be fixed)
    PENDING = "pending"  # retries ran out, deferred, or stopped: a rerun sends it


class Record(NamedTuple):
    """A request's journal entry."""

    key: str
    body_sha256: str
    row: int
    step: int
    chat: str
    state: State
    attempts: int = 0
    chat_id: str = ""
    message_id: str = ""
    error_code: int = 0
    error_message: str = ""
    trace_id: str = ""
    sent_at: str = ""


def body_digest(body: bytes) -> str:
    """What the journal remembers of a body: enough to tell the same body from another."""
    return hashlib.sha256(body).hexdigest()


def now_iso() -> str:
    """The current UTC time as ISO-8601 with a Z, to the second."""
    return _iso_second(int(time.time()))


@lru_cache(maxsize=4)
def _iso_second(second: int) -> str:
    # Formatted once per second: the journal asks for it on every state change.
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_RECORD_COLUMNS = ", ".join(Record._fields)


class Journal:
    """An open journal file. Not thread-safe: one event loop owns it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # A journal held by another run stays held: fail fast rather than wait for it.
            self.db = sqlite3.connect(path, isolation_level=None, timeout=0.5)
            # One run at a time per journal; it also spares every commit the shared-memory
            # index that WAL needs when other processes might read.
            self.db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process; only a power cut can lose
            # the last commits, and those are then resent under the same keys.
            self.db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints are what fsync in WAL mode: take them rarely while sending
            # (and once at close) rather than every thousand pages.
            self.db.execute("PRAGMA wal_autocheckpoint=20000")
            with self._transaction():
                self._create()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise OutputError(f"the journal {path} cannot be used ({exc}).") from None
            raise OutputError(
                f"the journal {path} is in use by another chert-batch run.",
                hint="Two runs of one sheet would race each other: wait for the other to "
                "finish, or stop it, then run again.",
            ) from None
        except sqlite3.DatabaseError as exc:
            raise OutputError(
                f"the journal {path} cannot be used ({exc}).",
                hint="Is it really a chert-batch journal? Choose another with --journal.",
            ) from None
        self._check_version()

    def _create(self) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                self.db.execute(statement)
        self.db.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
        )

    def _check_version(self) -> None:
        (version,) = self.db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if int(version) != SCHEMA_VERSION:
            raise OutputError(
                f"the journal {self.path} was written by another version of chert-batch "
                f"(schema {version}, this one reads {SCHEMA_VERSION}).",
                hint="Finish it with that version, or start afresh with another --journal.",
            )

    def target(self) -> str:
        """Where this journal's requests went (an API base URL, or "sandbox"); '' if new."""
        row = self.db.execute("SELECT value FROM meta WHERE name = 'target'").fetchone()
        return str(row[0]) if row else ""

    def set_target(self, target: str) -> None:
        """Remember where this journal's requests go, so another target is not misled."""
        self.db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('target', ?)", (target,))

    def close(self) -> None:
        """Close the file; everything is already committed."""
        self.db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def records(self, keys: Iterable[str]) -> dict[str, Record]:
        """The entries for these keys (those the journal has)."""
        wanted = set(keys)
        found: dict[str, Record] = {}
        for values in self.db.execute(f"SELECT {_RECORD_COLUMNS} FROM requests"):
            if values[0] in wanted:
                found[values[0]] = Record._make((*values[:5], State(values[5]), *values[6:]))
        return found

    def chat_ids(self) -> dict[str, str]:
        """Chat reference → chat id, for every chat a run has created or written into."""
        rows = self.db.execute(
            "SELECT chat, chat_id FROM requests WHERE state = ? AND chat_id != '' GROUP BY chat",
            (State.SENT,),
        )
        return dict(rows.fetchall())

    # Each state change below is one statement, so one transaction of its own (autocommit).

    def intend(self, key: str, body_sha256: str, row: int, step: int, chat: str) -> None:
        """Commit that a request is about to be sent (and count the attempt)."""
        self.db.execute(
            """INSERT INTO requests (key, body_sha256, row, step, chat, state, attempts, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, 1, ?)
               ON CONFLICT (key) DO UPDATE SET state = excluded.state,
                   body_sha256 = excluded.body_sha256, row = excluded.row, step = excluded.step,
                   chat = excluded.chat, attempts = attempts + 1,
                   updated_at = excluded.updated_at""",
            (key, body_sha256, row, step, chat, State.SENDING, now_iso()),
        )

    def sent(self, key: str, *, chat_id: str, message_id: str, trace_id: str) -> None:
        """Commit a success, with the ids the API gave."""
        now = now_iso()
        self.db.execute(
            """UPDATE requests SET state = ?, chat_id = ?, message_id = ?, trace_id = ?,
                   error_code = 0, error_message = '', sent_at = ?, updated_at = ?
               WHERE key = ?""",
            (State.SENT, chat_id, message_id, trace_id, now, now, key),
        )

    def settle(
        self,
        key: str,
        state: State,
        *,
        where: tuple[int, int, str],
        code: int = 0,
        message: str = "",
        trace_id: str = "",
    ) -> None:
        """Commit a failure or a pending outcome with its reason; `where` is (row, step, chat)."""
        row, step, chat = where
        self.db.execute(
            """INSERT INTO requests (key, body_sha256, row, step, chat, state, error_code,
                   error_message, trace_id, updated_at)
               VALUES (?, '', ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (key) DO UPDATE SET state = excluded.state,
                   error_code = excluded.error_code, error_message = excluded.error_message,
                   trace_id = excluded.trace_id, updated_at = excluded.updated_at""",
            (key, row, step, chat, state, code, message, trace_id, now_iso()),
        )

    def upload(self, sha256: str) -> str:
        """The attachment id of content already uploaded, or ''."""
        row = self.db.execute(
            "SELECT attachment_id FROM uploads WHERE sha256 = ?", (sha256,)
        ).fetchone()
        return str(row[0]) if row else ""

    def uploaded(self, sha256: str, attachment_id: str) -> None:
        """Remember an upload, so the same content is never uploaded again."""
        self.db.execute(
            "INSERT OR REPLACE INTO uploads (sha256, attachment_id, uploaded_at) VALUES (?, ?, ?)",
            (sha256, attachment_id, now_iso()),
        )
