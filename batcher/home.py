"""The per-user home: what outlives one file, shared by every chert-batch run of this user.

`CHERT_BATCH_HOME` when set, else the platform's user data folder
(`platformdirs.user_data_dir("chert-batch")`). It holds SQLite files that several
runs use at once: WAL, a busy timeout, and short transactions.

`history.sqlite` holds, per account, the keys that runs are sending right now
(`claims`, with the `runs` that hold them), so that two runs of one sheet with
different journals never send a key at the same time, and the send history
(`sent` and `uploads` per account, see batcher.history), under the same account
ids. An account is its base URL and tenant, or, for bearer auth without a tenant,
a one-way fingerprint of the secret: the secret itself is never stored. The
opt-out list is `optouts.sqlite` (see batcher.optouts), one for the whole home.

A claim names its run (pid, host, start, journal). A run that died leaves its claims
to be taken over: its pid is gone (same host), or its lease ran out (no heartbeat
for LEASE_SECONDS, on any host).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import platformdirs

from batcher.errors import OutputError

HOME_ENV = "CHERT_BATCH_HOME"
HISTORY = "history.sqlite"
LEASE_SECONDS = 600.0
HEARTBEAT_SECONDS = 60.0
BUSY_TIMEOUT_SECONDS = 10.0
_FINGERPRINT_LABEL = b"chert-batch account fingerprint v1"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        started TEXT NOT NULL,
        journal TEXT NOT NULL,
        heartbeat REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS claims (
        account TEXT NOT NULL,
        key TEXT NOT NULL,
        run_id TEXT NOT NULL,
        PRIMARY KEY (account, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS claims_by_run ON claims (run_id)",
)


def home_folder() -> Path:
    """The per-user home: CHERT_BATCH_HOME, or the platform's user data folder."""
    chosen = os.environ.get(HOME_ENV, "").strip()
    return Path(chosen).expanduser() if chosen else Path(platformdirs.user_data_dir("chert-batch"))


def open_home_db(folder: Path, name: str, schema: Sequence[str]) -> sqlite3.Connection:
    """Open one of the home's SQLite files, making its tables: WAL and a busy timeout.

    Autocommit, so that every change is an explicit short `transaction`. Raises
    OutputError, with what to do, when the folder or the file cannot be used.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(folder / name, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS)
        try:
            _set_up(db, schema)
        except sqlite3.Error:
            db.close()
            raise
    except (OSError, sqlite3.Error) as exc:
        raise OutputError(
            f"the chert-batch home {folder} cannot be used ({_cause(exc)}).",
            hint=f"Set {HOME_ENV} to a folder you can write to.",
        ) from None
    return db


def _set_up(db: sqlite3.Connection, schema: Sequence[str]) -> None:
    """WAL and the tables. Switching to WAL takes a lock that SQLite's busy timeout does
    not wait for when another process is opening the same new file: try again a while."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            with transaction(db):
                for statement in schema:
                    db.execute(statement)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def transaction(db: sqlite3.Connection) -> _Transaction:
    """BEGIN IMMEDIATE … COMMIT around a `with` block, rolled back on any exception."""
    return _Transaction(db)


def account_id(base_url: str, tenant: str, secret: str) -> str:
    """Who a run sends as: base URL and tenant, or a one-way fingerprint of a bearer secret."""
    if tenant:
        return f"{base_url} tenant={tenant}"
    fingerprint = hmac.new(secret.encode(), _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()
    return f"{base_url} bearer={fingerprint[:16]}"


class RunInfo(NamedTuple):
    """A run that holds claims: enough to tell a person which one it is."""

    run_id: str
    pid: int
    host: str
    started: str
    journal: str
    heartbeat: float

    def describe(self) -> str:
        """The run as a person can find it: "pid 1234, journal X" (and its host if another)."""
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"pid {self.pid}{where}, journal {self.journal}"


class Claims:
    """This run's claims on the keys it is about to send, in the home's history file.

    Open it before sending, `claim` the chats to send, `beat` while sending, and
    `release` at the end (a kill -9 leaves the claims to be taken over).
    """

    def __init__(
        self,
        folder: Path,
        account: str,
        journal: Path,
        salvage: Callable[[sqlite3.Connection, Path], bool] = lambda db, journal: True,
    ) -> None:
        self.path = folder / HISTORY
        self.account = account
        # Before a dead run's claims are taken over: what its journal sent goes into the
        # history (batcher.history.salvage); False keeps them (its journal is in use).
        self.salvage = salvage
        host = socket.gethostname()
        self.run = RunInfo(
            f"{host}:{os.getpid()}:{uuid.uuid4().hex[:12]}",
            os.getpid(),
            host,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            str(journal.resolve()),
            time.time(),
        )
        self.db = open_home_db(folder, HISTORY, _SCHEMA)

    def claim(self, chats: Mapping[str, Sequence[str]]) -> dict[str, RunInfo]:
        """Claim the keys of each chat, all of a chat or none; chats another live run holds.

        Per chat, so that no run sends a chat's later messages while another still
        sends its earlier ones. Claims of dead runs are taken over.
        """
        try:
            with self._transaction():
                self._register()
                holders = self._live_holders()
                taken: dict[str, RunInfo] = {}
                mine: list[tuple[str, str, str]] = []
                for chat, keys in chats.items():
                    holder = next((holders[k] for k in keys if k in holders), None)
                    if holder is not None:
                        taken[chat] = holder
                    else:
                        mine += [(self.account, key, self.run.run_id) for key in keys]
                self.db.executemany(
                    "INSERT OR REPLACE INTO claims (account, key, run_id) VALUES (?, ?, ?)", mine
                )
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        return taken

    def beat(self) -> None:
        """Renew this run's lease; a busy home skips a beat rather than stall sending."""
        with contextlib.suppress(sqlite3.Error):  # the lease outlasts a few missed beats
            self.db.execute(
                "UPDATE runs SET heartbeat = ? WHERE run_id = ?", (time.time(), self.run.run_id)
            )

    def release(self) -> None:
        """Give back every claim of this run, and close the home."""
        try:
            with self._transaction():
                self.db.execute("DELETE FROM claims WHERE run_id = ?", (self.run.run_id,))
                self.db.execute("DELETE FROM runs WHERE run_id = ?", (self.run.run_id,))
        except sqlite3.Error:
            pass  # left behind, they are taken over once this run is gone
        finally:
            self.db.close()

    def abandon(self) -> None:
        """Close the home, leaving this run's claims to be taken over as a dead run's."""
        self.db.close()

    def _register(self) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO runs (run_id, pid, host, started, journal, heartbeat) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (*self.run[:5], time.time()),
        )

    def _live_holders(self) -> dict[str, RunInfo]:
        """Key → the other live run claiming it; dead runs and their claims are removed."""
        runs = {
            values[0]: RunInfo(*values)
            for values in self.db.execute(
                "SELECT run_id, pid, host, started, journal, heartbeat FROM runs"
            )
        }
        me = self.run
        dead = [
            run_id
            for run_id, run in runs.items()
            if run_id != me.run_id
            # An earlier run with this very pid is over: its pid is now this process's.
            and (not _alive(run) or (run.pid, run.host) == (me.pid, me.host))
            # This run's own journal shared its outbox when it was opened.
            and (run.journal == me.journal or self.salvage(self.db, Path(run.journal)))
        ]
        for run_id in dead:
            self.db.execute("DELETE FROM claims WHERE run_id = ?", (run_id,))
            self.db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        rows = self.db.execute(
            "SELECT key, run_id FROM claims WHERE account = ? AND run_id != ?",
            (self.account, self.run.run_id),
        )
        return {key: runs[run_id] for key, run_id in rows if run_id in runs and run_id not in dead}

    def _transaction(self) -> _Transaction:
        return transaction(self.db)

    def _failed(self, exc: sqlite3.Error) -> OutputError:
        return OutputError(
            f"the claims file {self.path} cannot be used ({exc}).",
            hint=f"Set {HOME_ENV} to a folder you can write to, or check the disk.",
        )


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception: one short write."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")


def _alive(run: RunInfo, now: float | None = None) -> bool:
    """Whether a run still holds its claims: a fresh lease, and its pid there if on this host."""
    if (now or time.time()) - run.heartbeat > LEASE_SECONDS:
        return False
    return run.host != socket.gethostname() or _pid_exists(run.pid)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _cause(exc: BaseException) -> str:
    return (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
