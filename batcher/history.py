"""The send history: every message sent from an account, kept in the per-user home.

The journal belongs to one results file; the history outlives it. It lives in the
home's `history.sqlite` (beside the claims, see batcher.home), per account, and holds:

- `sent`: one entry per request the API accepted (idempotency key, line,
  recipients, campaign, when, chat and message ids). A run never sends a key the
  history holds as sent for its account, whatever the sheet's name or folder, `--out`
  or `--journal`: the entry fills the row's results instead. Its first touches
  (`POST /chats`) tell `--skip-contacted` who was contacted when.
- `uploads`: each media content (sha256) uploaded, with its attachment id, so that a
  new journal reuses it: the same body under the same key, never a second upload
  whose new id would make the API refuse the key as "used with a different body".

Several runs use the file at once: WAL, a busy timeout, and one short transaction
per write. One connection per run, kept open. A run shares what it sent in batches
(`share`, one transaction for many entries: a few microseconds each, where a
transaction per entry cost 25-50): each entry is first written into the run's journal,
in the commit that records the request as sent (its outbox, see batcher.journal), and
taken out of it once shared. So a run killed in between leaves it in its journal, and
`salvage` puts it into the history when another run takes over the dead run's claims
(before that run reads the history), or the journal's own rerun shares it at the start.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from batcher.errors import OutputError
from batcher.home import BUSY_TIMEOUT_SECONDS, HISTORY, HOME_ENV
from batcher.journal import SHARED_COLUMNS, SHARED_TABLE, Shared, iso_z, unshared_of
from batcher.planning import Request

log = logging.getLogger("batcher.history")

_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS sent {SHARED_TABLE}",
    "CREATE INDEX IF NOT EXISTS sent_first_touches ON sent (account, first_touch, sent_wall)",
    """CREATE TABLE IF NOT EXISTS uploads (
        account TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        attachment_id TEXT NOT NULL,
        uploaded_at TEXT NOT NULL,
        PRIMARY KEY (account, sha256)
    ) WITHOUT ROWID""",
)
# SQLite's default limit on the parameters of one statement is 999 (older builds).
_CHUNK = 500
_SHARE = (
    f"INSERT OR REPLACE INTO sent ({', '.join(SHARED_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(SHARED_COLUMNS))})"
)


class Sent(NamedTuple):
    """A request the history holds as sent from this account."""

    key: str
    line: str
    recipients: tuple[str, ...]
    campaign: str
    first_touch: bool
    sent_at: str  # ISO-8601 UTC with a Z
    chat_id: str
    message_id: str
    trace_id: str


class History:
    """One account's send history, open for one run."""

    def __init__(self, folder: Path, account: str, campaign: str = "") -> None:
        self.path = folder / HISTORY
        self.account = account
        self.campaign = campaign
        self._warned = False
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                self.db.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            raise OutputError(
                f"the send history {self.path} cannot be used ({exc}).",
                hint=f"Set {HOME_ENV} to a folder you can write to, or check the disk.",
            ) from None

    def sent(self, keys: Iterable[str]) -> dict[str, Sent]:
        """The entries of these keys that this account has sent."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Sent] = {}
        try:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = self.db.execute(
                    "SELECT key, line, recipients, campaign, first_touch, sent_at, chat_id, "
                    f"message_id, trace_id FROM sent WHERE account = ? AND key IN ({marks})",
                    (self.account, *chunk),
                )
                for key, line, recipients, campaign, first, *rest in rows:
                    found[key] = Sent(
                        key, line, tuple(recipients.split()), campaign, bool(first), *rest
                    )
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        return found

    def entry(
        self, request: Request, *, chat_id: str, message_id: str, trace_id: str, wall: float
    ) -> Shared:
        """The history's entry for a request the API accepted, for `share`."""
        return (
            self.account,
            request.key,
            request.sender,
            " ".join(sorted(request.recipients)),
            self.campaign,
            int(request.creates_chat),
            iso_z(wall),
            wall,
            chat_id,
            message_id,
            trace_id,
        )

    def share(self, entries: Sequence[Shared]) -> bool:
        """Remember requests the API accepted, in one short transaction; whether it worked.

        A busy or failing home is said, once: the entries stay in the journal's outbox.
        """
        if not entries:
            return True
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(_SHARE, entries)
            except BaseException:
                if self.db.in_transaction:  # SQLite rolls some failures back itself
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._warn(exc)
            return False
        return True

    def contacted(self, since: float, exclude: Iterable[str] = ()) -> dict[str, str]:
        """Recipient → when (ISO) this account last made a first touch to them since `since`.

        Entries under the keys in `exclude` do not count (a sheet's own chats).
        """
        left_out = set(exclude)
        latest: dict[str, tuple[float, str]] = {}
        try:
            rows = self.db.execute(
                "SELECT key, recipients, sent_wall, sent_at FROM sent "
                "WHERE account = ? AND first_touch = 1 AND sent_wall >= ?",
                (self.account, since),
            )
            for key, recipients, wall, sent_at in rows:
                if key in left_out:
                    continue
                for number in recipients.split():
                    if number not in latest or latest[number][0] < wall:
                        latest[number] = (wall, sent_at)
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        return {number: sent_at for number, (_, sent_at) in latest.items()}

    def upload(self, sha256: str) -> str:
        """The attachment id this account was given for this content, or ''."""
        try:
            row = self.db.execute(
                "SELECT attachment_id FROM uploads WHERE account = ? AND sha256 = ?",
                (self.account, sha256),
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        return str(row[0]) if row else ""

    def uploaded(self, sha256: str, attachment_id: str, wall: float) -> None:
        """Remember an upload for this account, so no later run uploads it again."""
        self._write(
            "INSERT OR REPLACE INTO uploads (account, sha256, attachment_id, uploaded_at) "
            "VALUES (?, ?, ?, ?)",
            (self.account, sha256, attachment_id, iso_z(wall)),
        )

    def close(self) -> None:
        """Close the history."""
        self.db.close()

    def _write(self, sql: str, parameters: tuple[object, ...]) -> None:
        # The journal holds the same outcome, and it is what a rerun of this sheet reads:
        # a history that cannot be written now is said, not a reason to stop sending.
        try:
            self.db.execute(sql, parameters)
        except sqlite3.Error as exc:
            self._warn(exc)

    def _warn(self, exc: sqlite3.Error) -> None:
        if not self._warned:
            self._warned = True
            log.warning("the send history %s could not be written (%s)", self.path, exc)

    def _failed(self, exc: sqlite3.Error) -> OutputError:
        return OutputError(
            f"the send history {self.path} cannot be read ({exc}).",
            hint=f"Set {HOME_ENV} to a folder you can write to, or check the disk.",
        )


def salvage(db: sqlite3.Connection, journal: Path) -> bool:
    """Put what a dead run's journal sent into the history open on `db`; False if in use.

    Called by batcher.home when a run takes over the claims of a run that died, in the
    same transaction, so that no run reads the history without those entries.
    """
    entries = unshared_of(journal)
    if entries is None:
        return False
    if entries:
        for statement in _SCHEMA:
            db.execute(statement)
        db.executemany(_SHARE, entries)
        log.info("%d sent request(s) of a run that stopped put into the history", len(entries))
    return True
