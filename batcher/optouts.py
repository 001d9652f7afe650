"""Who must not get a message: the home's opt-out list, and the replies that feed it.

- `is_opt_out(text)` is the one rule for "this reply opts out".
- `OptOuts` is the list, `optouts.sqlite` in the per-user home (see batcher.home): one
  list for the whole home, since a person who opted out is messaged from no account.
  Each number keeps when it opted out and where that came from. The file also keeps,
  per account, how far `pull` has read its event log.
- `pull(client, account, store)` reads an account's `message.received` events since
  the last pull, page by page to the end, and records every sender whose reply is an
  opt-out.

Reading the event log, where the docs are silent [our rule]: events are compared by
time and id, never by their order on the page. A pull asks for events from one second
before the newest it has read, so it works whether the API's `since` is inclusive or
not, and skips what it read before: events older than the newest one read, and, at
that very time, the ids it has seen. Several replies in one second (the log's times
are whole seconds) are thus never missed nor counted twice. The position moves only
once the last page has been read; opt-outs are kept page by page, so a pull that fails
half way loses none, and the next one reads the rest again.
"""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx

from batcher.client import FATAL_CODES, Answer, ChertClient, Credentials, Unanswered
from batcher.errors import OutputError, PullFailed
from batcher.home import HOME_ENV, account_id, home_folder, open_home_db, transaction
from batcher.phones import normalize_phone

OPTOUTS = "optouts.sqlite"
OPT_OUT_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "opt out", "revoke"}
)
RECEIVED = "message.received"
PAGE_LIMIT = 200
ATTEMPTS = 4
# Longest wait for a busy API before a pull gives up and says to pull again later.
MAX_RETRY_WAIT = 60.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BY_HAND = "added by hand"

# Inside a reply, runs of white space, hyphens and dashes count as one space: "opt-out".
_INNER = re.compile(r"[\s\-\u2010-\u2015_]+")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS optouts (
        number TEXT PRIMARY KEY,
        at TEXT NOT NULL,
        source TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS positions (
        account TEXT PRIMARY KEY,
        since TEXT NOT NULL,
        seen TEXT NOT NULL
    ) WITHOUT ROWID""",
)


def is_opt_out(text: str) -> bool:
    """Whether a whole reply is one opt-out word (STOP, UNSUBSCRIBE, ...) and nothing else.

    The reply is trimmed and case-folded, after NFKC (full-width letters are letters).
    White space, punctuation and invisible characters at either end do not count, as
    carriers treat "Stop!", "STOP." or '"stop"' as STOP; inside, white space, hyphens
    and underscores count as one space ("opt-out", "OPT  OUT"). Any other word, digit
    or symbol makes it a message, not an opt-out: "stop by tomorrow", "don't stop",
    "STOP STOP", "stop 🙏", "S.T.O.P".
    """
    plain = "".join(
        ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) != "Cf"
    )
    start, end = 0, len(plain)
    while start < end and _is_edge(plain[start]):
        start += 1
    while end > start and _is_edge(plain[end - 1]):
        end -= 1
    return _INNER.sub(" ", plain[start:end].casefold()) in OPT_OUT_WORDS


def _is_edge(ch: str) -> bool:
    """White space or punctuation, which the ends of a reply may carry around the word."""
    return ch.isspace() or unicodedata.category(ch).startswith("P")


def now_iso() -> str:
    """The current time as the list writes it: 2026-11-30T12:00:00Z."""
    return iso(datetime.now(UTC).replace(microsecond=0))


def iso(moment: datetime) -> str:
    """A time in UTC with a Z, to the second unless it has a fraction."""
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def parse_time(text: object) -> datetime | None:
    """An ISO 8601 time with a zone (a Z included), or None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


@dataclass(frozen=True)
class OptOut:
    """A number on the list: since when (ISO, UTC), and where that came from."""

    number: str
    at: str
    source: str

    def to_json(self) -> dict[str, str]:
        """The entry as `optouts list --json` prints it."""
        return {"number": self.number, "at": self.at, "source": self.source}


@dataclass(frozen=True)
class Position:
    """How far an account's event log has been read: the newest time, and its event ids.

    `since` is None before the first pull.
    """

    since: datetime | None = None
    seen: frozenset[str] = frozenset()

    def has_read(self, at: datetime, event_id: str) -> bool:
        """Whether an event at this time with this id was read by an earlier pull."""
        if self.since is None:
            return False
        return at < self.since or (at == self.since and event_id in self.seen)

    def after(self, at: datetime, event_id: str) -> Position:
        """The position once this event too has been read."""
        if self.since is None or at > self.since:
            return Position(at, frozenset({event_id}))
        if at == self.since:
            return Position(at, self.seen | {event_id})
        return self

    def merged(self, other: Position) -> Position:
        """The furthest of two positions (two pulls at once must not move it back)."""
        if other.since is None:
            return self
        merged = self
        for event_id in other.seen or {""}:
            merged = merged.after(other.since, event_id)
        return Position(merged.since, merged.seen - {""})


class OptOuts:
    """The opt-out list in the home's `optouts.sqlite`, safe for several processes at once.

    WAL, a busy timeout and one short transaction per change (see batcher.home). A
    context manager: close it when done.

    `find` answers from a copy of the whole list, read again only when the file changed:
    SQLite's `PRAGMA data_version` moves when another connection (another process) has
    committed, and this one's own changes drop the copy. So the sender's check before
    every request costs one pragma, not a query, and still sees an opt-out added or
    pulled a moment ago anywhere.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder if folder is not None else home_folder()
        self.path = self.folder / OPTOUTS
        self.db = open_home_db(self.folder, OPTOUTS, _SCHEMA)
        self._copy: dict[str, OptOut] = {}
        self._copy_version: int | None = None  # None: no copy, or this connection wrote

    def __enter__(self) -> OptOuts:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self.db.close()

    def add(self, entries: Iterable[OptOut]) -> list[OptOut]:
        """Put numbers on the list; the ones that were not on it yet, in the order given.

        A number already on it keeps the earliest time it opted out, and that source.
        """
        wanted = list({entry.number: entry for entry in entries}.values())
        if not wanted:
            return []
        with self._writing():
            present = self._present([entry.number for entry in wanted])
            self.db.executemany(
                "INSERT INTO optouts (number, at, source) VALUES (?, ?, ?) "
                "ON CONFLICT (number) DO UPDATE SET at = excluded.at, source = excluded.source "
                "WHERE excluded.at < optouts.at",
                [(entry.number, entry.at, entry.source) for entry in wanted],
            )
        return [entry for entry in wanted if entry.number not in present]

    def remove(self, numbers: Iterable[str]) -> list[str]:
        """Take numbers off the list; the ones that were on it."""
        wanted = list(dict.fromkeys(numbers))
        with self._writing():
            present = self._present(wanted)
            self.db.executemany("DELETE FROM optouts WHERE number = ?", [(n,) for n in wanted])
        return [number for number in wanted if number in present]

    def entries(self) -> list[OptOut]:
        """Every number on the list, in number order."""
        rows = self._reading("SELECT number, at, source FROM optouts ORDER BY number")
        return [OptOut(*row) for row in rows]

    def find(self, numbers: Iterable[str]) -> dict[str, OptOut]:
        """The entries of those numbers that are on the list as it is now."""
        listed = self._current()
        return {number: listed[number] for number in numbers if number in listed}

    def glance(self, numbers: Iterable[str]) -> dict[str, OptOut]:
        """Like find, from the copy as last read (by find) and this connection's own writes:
        for a check that only spares work, where a change another process committed since
        can wait for the next find."""
        listed = self._copy if self._copy_version is not None else self._current()
        return {number: listed[number] for number in numbers if number in listed}

    def _current(self) -> dict[str, OptOut]:
        """The whole list, read again only if it changed since the last read."""
        version = self._reading("PRAGMA data_version")[0][0]
        if version != self._copy_version:
            rows = self._reading("SELECT number, at, source FROM optouts")
            self._copy = {row[0]: OptOut(*row) for row in rows}
            self._copy_version = version
        return self._copy

    def position(self, account: str) -> Position:
        """How far this account's event log has been read."""
        rows = self._reading("SELECT since, seen FROM positions WHERE account = ?", (account,))
        if not rows:
            return Position()
        since, seen = rows[0]
        return Position(parse_time(since), frozenset(json.loads(seen)))

    def advance(self, account: str, position: Position) -> None:
        """Record that the event log has been read up to here (never moving it back)."""
        if position.since is None:
            return
        with self._writing():
            rows = self.db.execute(
                "SELECT since, seen FROM positions WHERE account = ?", (account,)
            ).fetchall()
            if rows:
                stored = Position(parse_time(rows[0][0]), frozenset(json.loads(rows[0][1])))
                position = stored.merged(position)
            assert position.since is not None
            self.db.execute(
                "INSERT OR REPLACE INTO positions (account, since, seen) VALUES (?, ?, ?)",
                (account, iso(position.since), json.dumps(sorted(position.seen))),
            )

    def _present(self, numbers: Sequence[str]) -> set[str]:
        present: set[str] = set()
        for start in range(0, len(numbers), 500):
            chunk = numbers[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT number FROM optouts WHERE number IN ({marks})", chunk)
            present.update(number for (number,) in rows)
        return present

    def _reading(self, sql: str, parameters: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.db.execute(sql, parameters).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One short write transaction; SQLite's errors (disk full, say) become an OutputError."""
        # data_version does not move for this connection's own commits: drop the copy.
        self._copy_version = None
        try:
            with transaction(self.db):
                yield
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: sqlite3.Error) -> OutputError:
        return OutputError(
            f"the opt-out list {self.path} cannot be used ({exc}).",
            hint=f"Check the disk, or set {HOME_ENV} to a folder you can write to.",
        )


def read_entries(folder: Path | None = None) -> dict[str, OptOut]:
    """Every number on the home's opt-out list, read only: what `validate` checks rows against.

    Neither the home nor the file is made when missing (there is no list: nothing is
    on it), and a run writing to the list meanwhile is not disturbed.
    """
    path = (folder if folder is not None else home_folder()) / OPTOUTS
    if not path.is_file():
        return {}
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT number, at, source FROM optouts").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise OutputError(
            f"the opt-out list {path} cannot be read ({exc}).",
            hint=f"Check the disk, or set {HOME_ENV} to the home that holds it.",
        ) from None
    return {row[0]: OptOut(*row) for row in rows}


# --- pull ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A message.received event, as far as the opt-out list needs it."""

    event_id: str
    at: datetime
    sender: str
    line: str
    text: str


@dataclass(frozen=True)
class PullReport:
    """What a pull read and recorded."""

    replies: int = 0
    added: tuple[OptOut, ...] = ()
    opt_outs: int = 0
    not_numbers: tuple[str, ...] = ()
    unreadable: int = 0
    pages: int = 0

    def to_json(self) -> dict[str, Any]:
        """The report as `optouts pull --json` prints it."""
        return {
            "replies": self.replies,
            "opt_out_replies": self.opt_outs,
            "added": [entry.to_json() for entry in self.added],
            "not_phone_numbers": list(self.not_numbers),
            "unreadable_events": self.unreadable,
            "pages": self.pages,
        }


Sleep = Callable[[float], Awaitable[None]]


@dataclass
class _Pulling:
    """What one pull has read so far."""

    account: str
    start: Position
    newest: Position
    read: set[str] = field(default_factory=set)
    replies: int = 0
    opt_outs: int = 0
    added: list[OptOut] = field(default_factory=list)
    not_numbers: list[str] = field(default_factory=list)
    unreadable: int = 0
    pages: int = 0

    def take(self, events: list[Any]) -> list[OptOut]:
        """The opt-outs among a page's events not read before; notes what it read."""
        found: list[OptOut] = []
        for event in events:
            reply = read_reply(event)
            if reply is None:
                # Another type of event is none of this pull's business; a reply it cannot
                # read is counted, so that the summary can say so.
                if isinstance(event, dict) and event.get("type", RECEIVED) == RECEIVED:
                    self.unreadable += 1
                continue
            if reply.event_id in self.read or self.start.has_read(reply.at, reply.event_id):
                continue
            self.read.add(reply.event_id)
            self.newest = self.newest.after(reply.at, reply.event_id)
            self.replies += 1
            if not is_opt_out(reply.text):
                continue
            self.opt_outs += 1
            phone = normalize_phone(reply.sender, "US", sender=True)
            if phone.problem:
                self.not_numbers.append(reply.sender)
                continue
            via = f"reply to {reply.line} via {self.account}" if reply.line else ""
            found.append(OptOut(phone.e164, iso(reply.at), via or f"reply via {self.account}"))
        return found

    def report(self) -> PullReport:
        return PullReport(
            replies=self.replies,
            added=tuple(self.added),
            opt_outs=self.opt_outs,
            not_numbers=tuple(dict.fromkeys(self.not_numbers)),
            unreadable=self.unreadable,
            pages=self.pages,
        )


async def pull(
    client: ChertClient, account: str, store: OptOuts, *, sleep: Sleep = anyio.sleep
) -> PullReport:
    """Read the account's new message.received events to the end; record the opt-outs.

    Raises PullFailed when the API refuses or never answers (after a few tries for
    what is worth retrying); what was found on the pages read before is kept.
    """
    start = store.position(account)
    pulling = _Pulling(account, start, start)
    since = start.since - timedelta(seconds=1) if start.since is not None else EPOCH
    params = {"type": RECEIVED, "since": iso(since), "limit": str(PAGE_LIMIT)}
    cursors: set[str] = set()
    while True:
        events, cursor = await _page(client, params, sleep)
        pulling.pages += 1
        pulling.added += store.add(pulling.take(events))
        if cursor is None:
            break
        if cursor in cursors:
            raise PullFailed(
                "the event log's pages lead back to a page already read.",
                code=0,
                why="a next_cursor repeated",
                hint="Pull again later; the opt-outs found so far are kept.",
            )
        cursors.add(cursor)
        params["cursor"] = cursor
    store.advance(account, pulling.newest)
    return pulling.report()


def read_reply(event: object) -> Reply | None:
    """The reply a message.received event holds, or None if it is not a readable one.

    The data is read from `payload.data`, or from `data` at the top if an API version
    puts it there.
    """
    if not isinstance(event, dict) or event.get("type", RECEIVED) != RECEIVED:
        return None
    payload = _object(event.get("payload"))
    data = _object(payload.get("data")) or _object(event.get("data"))
    message = _object(data.get("message"))
    event_id = event.get("id") or payload.get("event_id")
    at = parse_time(event.get("created_at")) or parse_time(payload.get("timestamp"))
    sender = _object(message.get("sender_handle")).get("handle")
    if not isinstance(event_id, str) or not event_id or at is None or not isinstance(sender, str):
        return None
    line = _object(_object(data.get("chat")).get("owner_handle")).get("handle")
    parts = message.get("parts")
    texts = [
        part["value"]
        for part in (parts if isinstance(parts, list) else [])
        if isinstance(part, dict)
        and part.get("type") == "text"
        and isinstance(part.get("value"), str)
    ]
    return Reply(event_id, at, sender, line if isinstance(line, str) else "", " ".join(texts))


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def _page(
    client: ChertClient, params: dict[str, str], sleep: Sleep
) -> tuple[list[Any], str | None]:
    """One page of the event log: its events and next cursor, retried where that helps."""
    for attempt in range(ATTEMPTS):
        answer = await client.get(f"/events?{urlencode(params)}")
        if isinstance(answer, Answer) and answer.ok:
            return _page_of(answer)
        wait = _retry_wait(answer, attempt)
        if wait is None or attempt == ATTEMPTS - 1:
            raise _failure(answer)
        await sleep(wait)
    raise AssertionError("unreachable")


def _page_of(answer: Answer) -> tuple[list[Any], str | None]:
    events = answer.payload.get("events")
    cursor = answer.payload.get("next_cursor")
    if not isinstance(events, list) or not (cursor is None or isinstance(cursor, str)):
        raise PullFailed(
            "the event log's answer is not in the documented shape "
            '({"events": [...], "next_cursor": ...}).',
            code=0,
            why="unexpected answer",
            hint="Check --base-url: it should end in /api/v1.",
        )
    return events, cursor or None


def _retry_wait(answer: Answer | Unanswered, attempt: int) -> float | None:
    """How long to wait before asking again, or None when asking again cannot help."""
    backoff = float(2**attempt)
    if isinstance(answer, Unanswered):
        return backoff
    if not answer.retryable or answer.code in FATAL_CODES:
        return None
    wait = answer.retry_after or backoff
    return wait if wait <= MAX_RETRY_WAIT else None


def _failure(answer: Answer | Unanswered) -> PullFailed:
    """The PullFailed for the last answer (or its absence), with what to do."""
    if isinstance(answer, Unanswered):
        return PullFailed(
            f"the event log could not be read: {answer.reason}.",
            code=0,
            why=answer.reason,
            hint="Check the network and --base-url, then pull again.",
        )
    hints = {
        2004: "Check CHERT_SIGNING_SECRET, --auth and --tenant.",
        2013: "Check this machine's clock: HMAC signatures allow 5 minutes of difference.",
    }
    hint = hints.get(answer.code, "Pull again later; every opt-out found so far is kept.")
    code = f" / {answer.code}" if answer.code else ""
    trace = f" (trace {answer.trace_id})" if answer.trace_id else ""
    return PullFailed(
        f"the event log could not be read: HTTP {answer.status}{code}, {answer.message}{trace}.",
        code=answer.code,
        why=answer.message,
        hint=hint,
        status=answer.status,
    )


def pull_account(
    base_url: str, credentials: Credentials, *, folder: Path | None = None, timeout: float = 30
) -> PullReport:
    """Pull the account's opt-outs into the home's list: what `optouts pull` does."""
    account = account_id(base_url, credentials.tenant, credentials.secret)

    async def pulling() -> PullReport:
        async with httpx.AsyncClient(timeout=httpx.Timeout(timeout)) as http:
            with OptOuts(folder) as store:
                return await pull(ChertClient(http, base_url, credentials), account, store)

    return anyio.run(pulling)
