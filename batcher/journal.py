"""The journal: an SQLite file (WAL) that remembers every request's intent and outcome.

Before a request is sent its intent is committed; right after the answer, its
outcome. A crash, kill -9, lost network or Ctrl-C therefore loses nothing: a
request whose intent has no outcome was perhaps delivered, and is settled by
resending it with the same key (the API answers a repeat with the original).
Every state change is one short transaction; this module owns all the journal's SQL.

A journal is what it claims or it is refused (`UnusableJournal`): a file that exists
but is empty, not SQLite, without chert-batch's tables, damaged or edited by hand is
never taken for a new journal, since that would send every request again. A new
journal is built under a temporary name and linked into place, so a crash never
leaves a half-made one. While a run holds a journal, its main file says so (written
and checkpointed at open, cleared at a clean close): a journal that says a run holds
it but has no `-wal` beside it was copied or moved without its write-ahead log, which
holds what that run recorded, and is refused too.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from batcher.errors import JournalError, OutputError, UnusableJournal

SCHEMA_VERSION = 1

# A sent request's entry in the send history (batcher.history's table `sent`), which the
# journal's outbox holds too until the history has it: one definition for both tables.
SHARED_TABLE = """(
    account TEXT NOT NULL,
    key TEXT NOT NULL,
    line TEXT NOT NULL,
    recipients TEXT NOT NULL,
    campaign TEXT NOT NULL,
    first_touch INTEGER NOT NULL,
    sent_at TEXT NOT NULL,
    sent_wall REAL NOT NULL,
    chat_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    PRIMARY KEY (account, key)
) WITHOUT ROWID"""

_SCHEMA = f"""
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE requests (
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
CREATE TABLE uploads (
    sha256 TEXT PRIMARY KEY,
    attachment_id TEXT NOT NULL,
    uploaded_at TEXT NOT NULL
);
CREATE TABLE outbox {SHARED_TABLE};
"""
# The outbox holds, in the columns of the send history's `sent` (batcher.history), what
# this journal sent and the history does not hold yet: written in the very commit that
# says a request was sent, and taken out once the history has it. A run killed between
# the two leaves it there, for the next run of this journal, or the run that takes over
# its claims (batcher.home), to put into the history. Journals made before it get it
# when a run opens them: schema 1 either way, as the outbox only ever empties.
SHARED_COLUMNS = (
    "account",
    "key",
    "line",
    "recipients",
    "campaign",
    "first_touch",
    "sent_at",
    "sent_wall",
    "chat_id",
    "message_id",
    "trace_id",
)
Shared = tuple[str, str, str, str, str, int, str, float, str, str, str]
_OUTBOX = _SCHEMA[_SCHEMA.index("CREATE TABLE outbox") :].rstrip().rstrip(";")
_UNSHARED = f"SELECT {', '.join(SHARED_COLUMNS)} FROM outbox"


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
    return iso_z(time.time())


def iso_z(wall: float) -> str:
    """A wall time as the journal and the send history write it: ISO-8601 UTC, seconds, Z."""
    return _iso_second(int(wall))


@lru_cache(maxsize=4)
def _iso_second(second: int) -> str:
    # Formatted once per second: asked for on every state change and every sent request.
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_RECORD_COLUMNS = ", ".join(Record._fields)
_TABLES = ("meta", "requests", "uploads")
_SQLITE_HEADER = b"SQLite format 3\x00"
# The meta entry that says a run holds the journal (see the module's docstring).
_HELD = "held_by"
# A row that chert-batch never writes: a state it does not know, or a number that is not one.
_EDITED = f"""SELECT key, row, state FROM requests
    WHERE state NOT IN ({", ".join(f"'{state}'" for state in State)})
       OR typeof(row) != 'integer' OR typeof(step) != 'integer'
       OR typeof(attempts) != 'integer' OR typeof(error_code) != 'integer'
    LIMIT 1"""


def default_journal(output: Path) -> Path:
    """`<results stem>.journal.sqlite` beside the results sheet."""
    return output.with_name(f"{output.stem}.journal.sqlite")


def wal_of(path: Path) -> Path:
    """The write-ahead log SQLite keeps beside a journal in WAL mode."""
    return path.with_name(path.name + "-wal")


def _intent(
    key: str, body_sha256: str, row: int, step: int, chat: str
) -> tuple[str, tuple[object, ...]]:
    """The statement that records an intent: a request is about to be sent (an attempt)."""
    return (
        """INSERT INTO requests (key, body_sha256, row, step, chat, state, attempts, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, 1, ?)
           ON CONFLICT (key) DO UPDATE SET state = excluded.state,
               body_sha256 = excluded.body_sha256, row = excluded.row, step = excluded.step,
               chat = excluded.chat, attempts = attempts + 1,
               updated_at = excluded.updated_at""",
        (key, body_sha256, row, step, chat, State.SENDING, now_iso()),
    )


class Journal:
    """An open journal file, held by this run alone. Not thread-safe: one event loop owns it.

    Intents are committed at once, each in a transaction of its own: nothing is sent
    before its intent is on disk. Outcomes (sent, failed, pending) wait for the next
    commit: the next intent's, `commit()` (the sender calls it a few milliseconds after
    an answer, see batcher.sending), or any read. A run killed before that loses the
    outcomes of its last milliseconds, which is harmless: those requests are left
    `sending`, so a rerun sends them again under the same keys, and Chert answers a key
    it has seen with the original message and its ids, sending nothing twice. One commit
    per request instead of two.

    `max_pages` caps the file's size in pages (SQLite's max_page_count), so that tests
    meet a real SQLITE_FULL ("disk full") without filling a disk.
    """

    def __init__(self, path: Path, *, max_pages: int | None = None) -> None:
        self.path = path
        # Outcomes not committed yet: (statement, parameters), in the order they came.
        self._later: list[tuple[str, tuple[object, ...]]] = []
        self._broken: JournalError | None = None  # the failed commit that lost them
        if not path.exists():
            _create(path)
        had_wal = wal_of(path).exists()
        _check_file(path)
        try:
            # A journal held by another run stays held: fail fast rather than wait for it.
            self.db = sqlite3.connect(path, isolation_level=None, timeout=0.5)
        except sqlite3.Error as exc:
            raise OutputError(f"the journal {path} cannot be opened ({exc}).") from None
        try:
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
            self._hold(had_wal)
            if max_pages is not None:
                self.db.execute(f"PRAGMA max_page_count={int(max_pages)}")
        except sqlite3.OperationalError as exc:
            self.db.close()
            if "locked" not in str(exc):
                raise _unusable(path, exc) from None
            raise OutputError(
                f"the journal {path} is in use by another chert-batch run.",
                hint="Two runs of one sheet would race each other: wait for the other to "
                "finish, or stop it, then run again.",
            ) from None
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise _unusable(path, exc) from None
        except BaseException:
            self.db.close()
            raise

    def _hold(self, had_wal: bool) -> None:
        """Check the journal is whole, then record in its main file that this run holds it."""
        # BEGIN IMMEDIATE takes the write lock first: another run's is refused right here.
        self.db.execute("BEGIN IMMEDIATE")
        try:
            check_contents(self.db, self.path, had_wal=had_wal)
            self.db.execute(_OUTBOX.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso()}
            self.db.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                (_HELD, json.dumps(holder)),
            )
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        # Into the main file now: a copy of it alone then says that a run held it.
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def target(self) -> str:
        """Where this journal's requests went (an API base URL, or "sandbox"); '' if new."""
        row = self._read("SELECT value FROM meta WHERE name = 'target'").fetchone()
        return str(row[0]) if row else ""

    def set_target(self, target: str) -> None:
        """Remember where this journal's requests go, so another target is not misled."""
        self._write("INSERT OR REPLACE INTO meta (name, value) VALUES ('target', ?)", (target,))

    def close(self) -> None:
        """Say the journal is closed cleanly, fold the log into the main file, and close it."""
        try:
            self._before_reading()  # after a failed commit, what it lost is lost: close
            self.db.execute("DELETE FROM meta WHERE name = ?", (_HELD,))
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (sqlite3.Error, JournalError):
            pass  # e.g. a full disk: the mark stays, and the -wal beside it says all
        finally:
            self.db.close()

    def commit(self) -> None:
        """Commit what waits for it (outcomes, intents given to `intend_later`), if any.

        Once a commit has failed, every later one raises the same error: what it held is
        lost, so an intent that waited for it must not be taken for committed.
        """
        if self._broken is not None:
            raise self._broken
        if self._later:
            self._write_now()

    def _write_now(self, *statements: tuple[str, tuple[object, ...]]) -> None:
        """The waiting outcomes and these statements, in one transaction."""
        if self._broken is not None:
            raise self._broken
        waiting, self._later = self._later, []
        try:
            if not waiting and len(statements) == 1:
                self.db.execute(*statements[0])  # autocommit: a transaction of its own
                return
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for sql, parameters in (*waiting, *statements):
                    self.db.execute(sql, parameters)
            except BaseException:
                if self.db.in_transaction:  # SQLite rolls some failures back itself
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            failed = journal_failed(self.path, exc)
            if waiting:
                self._broken = failed  # what waited is gone: see commit()
            raise failed from None

    def _write(self, sql: str, parameters: tuple[object, ...]) -> None:
        """A change committed at once (with any outcomes waiting before it)."""
        self._write_now((sql, parameters))

    def _write_later(self, sql: str, parameters: tuple[object, ...]) -> None:
        """An outcome: committed with the next intent, `commit()` or read."""
        self._later.append((sql, parameters))

    def _before_reading(self) -> None:
        """Commit what waits, so that a read sees it; after a failed commit, read what is."""
        if self._broken is None:
            self.commit()

    def _read(self, sql: str, parameters: tuple[object, ...] = ()) -> sqlite3.Cursor:
        self._before_reading()
        try:
            return self.db.execute(sql, parameters)
        except sqlite3.Error as exc:
            raise journal_failed(self.path, exc) from None

    def unshared(self) -> list[Shared]:
        """What this journal sent that the send history may not hold yet (the outbox)."""
        return list(self._read(_UNSHARED).fetchall())

    def shared(self) -> None:
        """The send history holds all the outbox holds so far: empty it (with the next commit).

        The caller shares every entry it put there since the last time (or got from
        `unshared`), so one statement empties it.
        """
        self._write_later("DELETE FROM outbox", ())

    def records(self, keys: Iterable[str]) -> dict[str, Record]:
        """The entries for these keys (those the journal has)."""
        return self.recall(keys)[0]

    def recall(self, keys: Iterable[str]) -> tuple[dict[str, Record], list[Record]]:
        """The entries for these keys, and the sent ones for any other key (one scan)."""
        wanted = set(keys)
        found: dict[str, Record] = {}
        others: list[Record] = []
        self._before_reading()
        try:
            for values in self.db.execute(f"SELECT {_RECORD_COLUMNS} FROM requests"):
                if values[0] in wanted:
                    found[values[0]] = _record(values)
                elif values[5] == State.SENT:
                    others.append(_record(values))
        except sqlite3.Error as exc:
            raise journal_failed(self.path, exc) from None
        return found, others

    def chat_ids(self) -> dict[str, str]:
        """Chat reference → chat id, for every chat a run has created or written into."""
        rows = self._read(
            "SELECT chat, chat_id FROM requests WHERE state = ? AND chat_id != '' GROUP BY chat",
            (State.SENT,),
        )
        return dict(rows.fetchall())

    # An intent is committed at once; outcomes wait for the next commit (see the class).

    def intend(self, key: str, body_sha256: str, row: int, step: int, chat: str) -> None:
        """Commit that a request is about to be sent (and count the attempt)."""
        self._write(*_intent(key, body_sha256, row, step, chat))

    def intend_later(self, key: str, body_sha256: str, row: int, step: int, chat: str) -> None:
        """`intend`, committed by the next `commit()`: the request may go once it returned.

        Concurrent senders each add their intent, let the others add theirs, and commit:
        the first commit holds them all, and the others find nothing left to commit.
        """
        self._write_later(*_intent(key, body_sha256, row, step, chat))

    def sent(
        self,
        key: str,
        *,
        chat_id: str,
        message_id: str,
        trace_id: str,
        sent_at: str = "",
        note: str = "",
        share: Shared | None = None,
    ) -> None:
        """Record a success, with the ids the API gave (committed with the next commit).

        `sent_at` and `note` are for a message sent earlier (the API replayed it):
        when it was sent, and what the results say about it. `share` is the send
        history's entry for it, kept in the outbox by the same commit.
        """
        now = now_iso()
        self._write_later(
            """UPDATE requests SET state = ?, chat_id = ?, message_id = ?, trace_id = ?,
                   error_code = 0, error_message = ?, sent_at = ?, updated_at = ?
               WHERE key = ?""",
            (State.SENT, chat_id, message_id, trace_id, note, sent_at or now, now, key),
        )
        if share is not None:
            marks = ", ".join("?" * len(SHARED_COLUMNS))
            self._write_later(f"INSERT OR REPLACE INTO outbox VALUES ({marks})", share)

    def sent_earlier(self, records: Sequence[Record]) -> None:
        """Commit as sent, in one transaction, requests another journal sent (the send history).

        Each record carries its ids, time and note; no attempt is counted: this journal
        sent nothing.
        """
        now = now_iso()
        self.commit()
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(
                    """INSERT INTO requests (key, body_sha256, row, step, chat, state, chat_id,
                           message_id, trace_id, error_message, sent_at, updated_at)
                       VALUES (?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (key) DO UPDATE SET state = excluded.state,
                           chat_id = excluded.chat_id, message_id = excluded.message_id,
                           trace_id = excluded.trace_id, error_code = 0,
                           error_message = excluded.error_message, sent_at = excluded.sent_at,
                           updated_at = excluded.updated_at""",
                    [
                        (
                            r.key,
                            r.row,
                            r.step,
                            r.chat,
                            State.SENT,
                            r.chat_id,
                            r.message_id,
                            r.trace_id,
                            r.error_message,
                            r.sent_at,
                            now,
                        )
                        for r in records
                    ],
                )
            except BaseException:
                if self.db.in_transaction:  # SQLite rolls some failures back itself
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise journal_failed(self.path, exc) from None

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
        """Record a failure or a pending outcome with its reason; `where` is (row, step, chat).

        Committed with the next commit, as every outcome.
        """
        row, step, chat = where
        self._write_later(
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
        row = self._read("SELECT attachment_id FROM uploads WHERE sha256 = ?", (sha256,)).fetchone()
        return str(row[0]) if row else ""

    def uploaded(self, sha256: str, attachment_id: str) -> None:
        """Remember an upload, so the same content is never uploaded again."""
        self._write(
            "INSERT OR REPLACE INTO uploads (sha256, attachment_id, uploaded_at) VALUES (?, ?, ?)",
            (sha256, attachment_id, now_iso()),
        )


def _record(values: tuple[Any, ...]) -> Record:
    return Record._make((*values[:5], State(values[5]), *values[6:]))


def _create(path: Path) -> None:
    """A new, empty journal at `path`, made whole under a temporary name, then linked there."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        db = sqlite3.connect(temporary, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # kept in the file's header
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(
                "INSERT INTO meta (name, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
            db.execute("COMMIT")
        finally:
            db.close()  # the last connection folds the log into the file and removes it
        try:
            os.link(temporary, path)  # never replaces a journal another run made meanwhile
        except FileExistsError:
            pass
        except OSError:
            if not path.exists():  # a file system without hard links
                os.replace(temporary, path)
    except (OSError, sqlite3.Error) as exc:
        raise OutputError(
            f"could not create the journal {path} ({_cause(exc)}).",
            hint="Check that its folder exists and can be written, or choose another --journal.",
        ) from None
    finally:
        for leftover in (temporary, wal_of(temporary), Path(f"{temporary}-shm")):
            leftover.unlink(missing_ok=True)


def _check_file(path: Path) -> None:
    """Refuse a file that cannot be a journal before SQLite takes it for an empty one."""
    try:
        with path.open("rb") as stream:
            header = stream.read(len(_SQLITE_HEADER))
    except IsADirectoryError:
        raise OutputError(
            f"the journal {path} is a folder.", hint="Give --journal a file name."
        ) from None
    except OSError as exc:
        raise OutputError(f"the journal {path} cannot be read ({_cause(exc)}).") from None
    if not header:
        raise UnusableJournal(
            f"the journal {path} is empty (0 bytes): whatever it recorded is gone.",
            hint=_LOST_HINT,
        )
    if header != _SQLITE_HEADER:
        raise UnusableJournal(
            f"{path} is not a chert-batch journal (not an SQLite file).",
            hint="Choose another --journal; this file is left as it is.",
        )


def check_contents(db: sqlite3.Connection, path: Path, *, had_wal: bool) -> None:
    """Refuse a journal that is damaged, incomplete, edited, or separated from its log."""
    (verdict,) = db.execute("PRAGMA quick_check(1)").fetchone()
    if verdict != "ok":
        raise UnusableJournal(f"the journal {path} is damaged ({verdict}).", hint=_LOST_HINT)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    missing = [table for table in _TABLES if table not in tables]
    if missing:
        raise UnusableJournal(
            f"{path} holds no chert-batch journal: the table {missing[0]!r} is missing.",
            hint="If it was one (a table dropped by hand, a damaged copy): " + _LOST_HINT,
        )
    meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
    if meta.get("schema") != str(SCHEMA_VERSION):
        raise UnusableJournal(
            f"the journal {path} was written by another version of chert-batch "
            f"(schema {meta.get('schema') or 'unknown'}, this one reads {SCHEMA_VERSION}).",
            hint="Finish it with that version, or start afresh with another --journal.",
        )
    edited = db.execute(_EDITED).fetchone()
    if edited is not None:
        key, row, state = edited
        raise UnusableJournal(
            f"the journal {path} was edited by hand: the request for row {row!r} "
            f"(key {key}) is in the state {state!r}, which chert-batch never writes.",
            hint="Put the row back as it was (states: sending, sent, failed, pending; "
            "'sending' when unsure, which a rerun settles under the same key), or: " + _LOST_HINT,
        )
    held = meta.get(_HELD)
    if held and not had_wal:
        raise UnusableJournal(
            f"the journal {path} was left by a run that did not close it ({_holder(held)}), "
            f"and its write-ahead log {wal_of(path).name} is not beside it: what that run "
            "recorded last is in that file.",
            hint=f"Copy {wal_of(path).name} from where the journal came from into "
            f"{path.parent}, then run again. If it is lost: " + _LOST_HINT,
        )


_LOST_HINT = (
    "Move the journal aside (keep it) and run again with the latest results sheet as the "
    "input: rows it marks sent are not sent again. Every other request is then sent "
    "under its same key, and Chert answers a key it still remembers with the original "
    "message instead of a second one (how long it remembers keys is not documented): "
    "check the results sheet first."
)


def _holder(held: str) -> str:
    try:
        holder = json.loads(held)
        return f"pid {holder['pid']} on {holder['host']}, since {holder['since']}"
    except (ValueError, TypeError, KeyError):
        return "a run chert-batch cannot name"


def _cause(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def _unusable(path: Path, exc: sqlite3.Error) -> OutputError:
    if _code(exc) in {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}:
        return UnusableJournal(f"the journal {path} is damaged ({exc}).", hint=_LOST_HINT)
    return OutputError(
        f"the journal {path} cannot be used ({exc}).",
        hint="Check that it and its folder can be written, or choose another --journal.",
    )


def _code(exc: sqlite3.Error) -> int:
    # The primary result code: extended codes keep it in their low byte.
    return int(getattr(exc, "sqlite_errorcode", 0)) & 0xFF


def journal_failed(path: Path, exc: sqlite3.Error) -> JournalError:
    """The error for a journal that failed mid-run, saying what happened and what is safe."""
    code = _code(exc)
    if code == sqlite3.SQLITE_FULL:
        what = f"the disk holding it is full ({exc})"
        fix = "Make room on that disk"
    elif code in {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}:
        what = f"it is damaged ({exc})"
        fix = "Check the disk"
    else:
        what = str(exc)
        fix = "Fix what stops it from being written"
    return JournalError(
        f"the journal {path} could not be written: {what}.",
        path=str(path),
        cause=str(exc),
        hint="Every message sent so far is safe: its intent was journaled before it was "
        "sent, so one whose outcome could not be written is settled by a rerun under the "
        f"same key, without a second message. {fix}, then run the same command again: it "
        "goes on where this one stopped.",
    )


@dataclass(frozen=True)
class JournalView:
    """What a journal held when `validate` read it, without taking it from a run.

    `busy`: a run held the journal, so only what its main file held is shown: every
    record up to that run's start (checkpointed at its open), not what it sent since.
    """

    path: Path
    records: dict[str, Record]
    busy: bool = False


def unshared_of(path: Path) -> list[Shared] | None:
    """What another run's journal sent that the send history may not hold (its outbox).

    For taking over the claims of a run that died (batcher.home): None when the journal
    is in use right now (a run holds it, and will share its outbox itself), [] when it is
    gone or holds no outbox. Read-only, as `read_journal` reads: the journal, its log and
    the mark that a run held it stay as they are, for that journal's own rerun.
    """
    if not path.is_file():
        return []
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0)
        try:
            return list(db.execute(_UNSHARED).fetchall())
        finally:
            db.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            return None
        return []  # no outbox (a journal made before it), or not a journal at all
    except sqlite3.DatabaseError:
        return []


def read_journal(path: Path) -> JournalView | None:
    """Read a journal read-only, taking no lock and creating nothing; None if there is none.

    A journal that is not what it claims is refused as `Journal` refuses it. Without a
    `-wal` the main file holds everything and is read as immutable. With one, SQLite
    reads it read-only; a run holding the journal (its lock) makes that fail at once,
    and the main file alone is read instead.
    """
    if not path.exists():
        return None
    had_wal = wal_of(path).exists()
    _check_file(path)
    if had_wal:
        try:
            return JournalView(path, _read_all(path, "mode=ro", had_wal=True))
        except sqlite3.OperationalError:
            pass  # in use by a run (locked), or its log cannot be read from here
        try:
            return JournalView(path, _read_all(path, "immutable=1", had_wal=True), busy=True)
        except (sqlite3.Error, UnusableJournal):
            # The run may be writing the main file as it is read (a checkpoint).
            return JournalView(path, {}, busy=True)
    try:
        return JournalView(path, _read_all(path, "immutable=1", had_wal=False))
    except sqlite3.DatabaseError as exc:
        raise _unusable(path, exc) from None


def _read_all(path: Path, mode: str, *, had_wal: bool) -> dict[str, Record]:
    uri = f"{path.resolve().as_uri()}?{mode}"
    db = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None)
    try:
        check_contents(db, path, had_wal=had_wal)
        rows = db.execute(f"SELECT {_RECORD_COLUMNS} FROM requests")
        return {values[0]: _record(values) for values in rows}
    finally:
        db.close()
