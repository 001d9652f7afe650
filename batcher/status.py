"""`status`: delivery, reads and replies of a results sheet's sent rows, read back into it.

Reads the history of each distinct chat of the sheet's `sent` rows
(`GET /chats/{id}/messages`, paging back with `before` until the rows' messages
are found), through the same `Caller` as sends: paced, retried where that is
safe. It only reads: nothing is ever sent.

Each sent row gets the result columns `delivery` (sent / delivered / read, the
least advanced of the row's messages), `delivered_at`, `read_at`, `replied_at`
and `reply`: the first inbound text after the row's first message, at most
`REPLY_LIMIT` characters. A reply that is an opt-out (`is_opt_out`) puts its
sender on the opt-out list, and its cell starts with `OPTED_OUT` so the row says
so. A row only moves forward (`forward`): a chat that is gone or could not be
read leaves the row as it was, and a reply once written stays.

The sheet is rewritten in place, atomically: the results writer writes a
temporary file beside it, which then replaces it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import anyio
import httpx

from batcher.caller import Caller, RetryPolicy
from batcher.cells import holds_escaped_cells, unescape_csv_cell
from batcher.client import Answer, ChertClient, Unanswered
from batcher.clock import SYSTEM_CLOCK, Clock
from batcher.columns import RESULT_COLUMNS, ColumnMap, map_columns
from batcher.errors import InputError, OutputError
from batcher.loading import Sheet, load_sheet
from batcher.model import RowOutcome, Status
from batcher.optouts import OptOut, OptOuts, is_opt_out
from batcher.phones import normalize_phone
from batcher.results import write_rows
from batcher.running import Target

REPLY_LIMIT = 200
OPTED_OUT = "[opted out] "
# Pages of one chat's history read at most, looking for a row's message.
MAX_PAGES = 50
DELIVERY_RANK = {"": 0, "sent": 1, "delivered": 2, "read": 3}
TRACKING = ("delivery", "delivered_at", "read_at", "replied_at", "reply")
Json = dict[str, Any]


@dataclass(frozen=True)
class StatusOptions:
    """What `status` reads and how fast: the results sheet, the pace, the timeout."""

    path: Path
    rate: float = 10.0
    concurrency: int = 4
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class Tracking:
    """The five columns `status` fills for a row."""

    delivery: str = ""
    delivered_at: str = ""
    read_at: str = ""
    replied_at: str = ""
    reply: str = ""

    @property
    def opted_out(self) -> bool:
        """Whether the row's reply opted out."""
        return self.reply.startswith(OPTED_OUT)


def forward(old: Tracking, new: Tracking) -> Tracking:
    """What a row shows after a read: never less than before (sent -> delivered -> read).

    A time or a reply once known stays; a delivery moves only to a later stage.
    """
    newer = DELIVERY_RANK.get(new.delivery, 0) > DELIVERY_RANK.get(old.delivery, 0)
    replied = bool(old.replied_at or old.reply)
    return Tracking(
        delivery=new.delivery if newer else old.delivery,
        delivered_at=old.delivered_at or new.delivered_at,
        read_at=old.read_at or new.read_at,
        replied_at=old.replied_at if replied else new.replied_at,
        reply=old.reply if replied else new.reply,
    )


@dataclass(frozen=True)
class History:
    """A chat's messages, oldest first, as far back as the rows needed."""

    messages: tuple[Json, ...]


@dataclass(frozen=True)
class Unread:
    """A chat whose history could not be read; `gone` when the API has no such chat (404)."""

    reason: str
    gone: bool = False


ChatRead = History | Unread


@dataclass(frozen=True)
class Reply:
    """The first inbound message after a row's message."""

    at: str
    text: str
    sender: str


def text_of(message: Json) -> str:
    """A message's text parts, joined by a space."""
    parts = message.get("parts")
    return " ".join(
        part["value"]
        for part in (parts if isinstance(parts, list) else [])
        if isinstance(part, dict)
        and part.get("type") == "text"
        and isinstance(part.get("value"), str)
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def track(ids: Sequence[str], history: Sequence[Json]) -> tuple[Tracking, Reply | None]:
    """A row's tracking from its chat's history: its messages' delivery, and the first reply.

    Empty when none of the row's messages is in the history.
    """
    where = {_text(message.get("id")): index for index, message in enumerate(history)}
    found = [where[message_id] for message_id in ids if message_id in where]
    if not found:
        return Tracking(), None
    mine = [history[index] for index in found]
    least = min(mine, key=lambda message: DELIVERY_RANK.get(_text(message.get("status")), 1))
    stage = _text(least.get("status"))
    delivery = stage if stage in DELIVERY_RANK and stage else "sent"
    reply = next(
        (
            message
            for message in history[min(found) + 1 :]
            if message.get("direction") == "inbound" and text_of(message)
        ),
        None,
    )
    tracking = Tracking(
        delivery=delivery,
        delivered_at=_text(least.get("delivered_at")) if delivery != "sent" else "",
        read_at=_text(least.get("read_at")) if delivery == "read" else "",
    )
    if reply is None:
        return tracking, None
    text = text_of(reply)
    sender = _text(_object(reply.get("sender_handle")).get("handle"))
    found_reply = Reply(_text(reply.get("created_at")), text, sender)
    shown = (OPTED_OUT if is_opt_out(text) else "") + text[:REPLY_LIMIT]
    return Tracking(
        tracking.delivery, tracking.delivered_at, tracking.read_at, found_reply.at, shown
    ), found_reply


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass
class Stage:
    """One line of the funnel: how many sent rows got how far."""

    sent: int = 0
    delivered: int = 0
    read: int = 0
    replied: int = 0
    opted_out: int = 0

    def count(self, tracking: Tracking) -> None:
        """Count one sent row."""
        rank = DELIVERY_RANK.get(tracking.delivery, 0)
        self.sent += 1
        self.delivered += rank >= DELIVERY_RANK["delivered"]
        self.read += rank >= DELIVERY_RANK["read"]
        self.replied += bool(tracking.replied_at or tracking.reply)
        self.opted_out += tracking.opted_out

    def to_json(self) -> dict[str, Any]:
        """Counts and percentages of the sent rows."""
        counts = {
            "sent": self.sent,
            "delivered": self.delivered,
            "read": self.read,
            "replied": self.replied,
            "opted_out": self.opted_out,
        }
        return {
            **counts,
            "percent": {name: percent(value, self.sent) for name, value in counts.items()},
        }


def percent(part: int, whole: int) -> float:
    """`part` as a percentage of `whole`, to one decimal (0 of nothing is 0)."""
    return round(100 * part / whole, 1) if whole else 0.0


@dataclass
class StatusReport:
    """What `status` read and wrote."""

    path: Path
    rows: int = 0
    chats: int = 0
    updated: int = 0
    gone: list[str] = field(default_factory=list)
    unread: dict[str, str] = field(default_factory=dict)
    opt_outs: list[OptOut] = field(default_factory=list)
    not_recorded: list[int] = field(default_factory=list)
    overall: Stage = field(default_factory=Stage)
    lines: dict[str, Stage] = field(default_factory=dict)
    stopped: str = ""

    @property
    def exit_code(self) -> int:
        """0 when every chat was read (or is gone), 1 when some could not be, 3 when stopped."""
        if self.stopped:
            return 3
        return 1 if self.unread else 0

    def to_json(self) -> dict[str, Any]:
        """The report as `status --json` prints it."""
        return {
            "results": str(self.path),
            "sent_rows": self.rows,
            "chats": self.chats,
            "rows_updated": self.updated,
            "chats_gone": self.gone,
            "chats_unread": self.unread,
            "opt_outs_added": [entry.to_json() for entry in self.opt_outs],
            "opt_outs_not_recorded_rows": self.not_recorded,
            "funnel": self.overall.to_json(),
            "by_line": {line: stage.to_json() for line, stage in sorted(self.lines.items())},
            "stopped": self.stopped or None,
        }


@dataclass(frozen=True)
class SentRow:
    """A sent row of the sheet: where it is, its line, chat, messages and result cells."""

    index: int
    number: int
    line: str
    recipients: tuple[str, ...]
    chat_id: str
    message_ids: tuple[str, ...]
    cells: dict[str, str]

    @property
    def tracking(self) -> Tracking:
        """What the sheet says already."""
        return Tracking(*(self.cells[name] for name in TRACKING))


def load_results(path: Path) -> tuple[Sheet, ColumnMap]:
    """The results sheet and its columns; InputError unless it is one (a `status` column)."""
    sheet = load_sheet(path)
    columns = map_columns(
        sheet.headers, where=str(path), has_default_sender=True, has_template=True
    )
    if not columns.is_results_sheet or "chat_id" not in columns.results:
        raise InputError(
            f"{path} is not a results sheet: it has no status and chat_id columns.",
            hint="Give the results sheet `run` wrote (<input>.results.xlsx or .csv).",
        )
    return sheet, columns


def sent_rows(sheet: Sheet, columns: ColumnMap) -> list[SentRow]:
    """The rows whose status is `sent` and that name their chat."""
    unescape = holds_escaped_cells(sheet.kind, columns)

    def read(cells: tuple[str, ...], index: int | None) -> str:
        value = cells[index] if index is not None and index < len(cells) else ""
        return unescape_csv_cell(value) if unescape else value

    found: list[SentRow] = []
    for position, row in enumerate(sheet.rows):
        cells = {name: read(row.cells, columns.results.get(name)) for name in RESULT_COLUMNS}
        if cells["status"].strip() != Status.SENT or not cells["chat_id"].strip():
            continue
        line = read(row.cells, columns.sender).strip()
        phone = normalize_phone(line, "US", sender=True) if line else None
        recipients = tuple(read(row.cells, index).strip() for index in columns.recipients)
        found.append(
            SentRow(
                index=position,
                number=row.number,
                line=phone.e164 if phone is not None and not phone.problem else line,
                recipients=tuple(r for r in recipients if r),
                chat_id=cells["chat_id"].strip(),
                message_ids=tuple(cells["message_id"].split()),
                cells=cells,
            )
        )
    return found


async def read_history(caller: Caller, chat_id: str, wanted: set[str]) -> ChatRead:
    """A chat's history back to the oldest of the `wanted` message ids (or its start)."""
    messages: list[Json] = []
    before: str | None = None
    for _ in range(MAX_PAGES):
        query = f"?{urlencode({'before': before})}" if before else ""
        path = f"/chats/{quote(chat_id, safe='')}/messages{query}"

        async def get(path: str = path) -> Answer | Unanswered:
            return await caller.client.get(path)

        result = await caller.call(get)
        if isinstance(result, Unanswered):
            return Unread(result.reason)
        if result.status == 404:
            return Unread("the API has no such chat (404)", gone=True)
        if not result.ok:
            return Unread(_refusal(result))
        page = result.payload.get("messages")
        if not isinstance(page, list) or not all(isinstance(m, dict) for m in page):
            return Unread('the answer is not in the documented shape ({"messages": [...]})')
        messages[:0] = page
        seen = {_text(message.get("id")) for message in messages}
        oldest = _text(page[0].get("id")) if page else ""
        if wanted <= seen or result.payload.get("has_more") is not True or not oldest:
            break
        if oldest == before:
            break  # an API that ignores `before`: its pages would never end
        before = oldest
    return History(tuple(messages))


def _refusal(answer: Answer) -> str:
    code = f" / {answer.code}" if answer.code else ""
    return f"HTTP {answer.status}{code}: {answer.message or 'refused'}"


async def read_chats(
    caller: Caller, wanted: Mapping[str, set[str]], concurrency: int
) -> dict[str, ChatRead]:
    """The history of every chat, `concurrency` at a time."""
    reads: dict[str, ChatRead] = {}
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(chat_id: str) -> None:
        async with limiter:
            reads[chat_id] = await read_history(caller, chat_id, wanted[chat_id])

    async with anyio.create_task_group() as group:
        for chat_id in wanted:
            group.start_soon(one, chat_id)
    return reads


def status_file(
    options: StatusOptions,
    target: Target,
    *,
    clock: Clock = SYSTEM_CLOCK,
    transport: httpx.AsyncBaseTransport | None = None,
    home: Path | None = None,
) -> StatusReport:
    """The `status` command: read every sent row's chat, fill the columns, count the funnel."""
    sheet, columns = load_results(options.path)
    rows = sent_rows(sheet, columns)
    wanted: dict[str, set[str]] = {}
    for row in rows:
        wanted.setdefault(row.chat_id, set()).update(row.message_ids)
    report = StatusReport(options.path, rows=len(rows), chats=len(wanted))

    async def reading() -> tuple[dict[str, ChatRead], str]:
        limits = httpx.Limits(max_connections=options.concurrency)
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(options.timeout), limits=limits, transport=transport
        ) as http:
            client = ChertClient(http, target.base_url, target.credentials)
            caller = Caller(client, clock, rate=options.rate, retry=options.retry)
            reads = await read_chats(caller, wanted, options.concurrency)
            return reads, caller.stopped.reason if caller.stopped else ""

    reads, report.stopped = anyio.run(reading) if wanted else ({}, "")
    for chat_id, read in reads.items():
        if isinstance(read, Unread):
            if read.gone:
                report.gone.append(chat_id)
            elif not report.stopped:
                report.unread[chat_id] = read.reason
    outcomes: dict[int, RowOutcome] = {}
    found: list[OptOut] = []
    for row in rows:
        old = row.tracking
        new = old
        history = reads.get(row.chat_id)
        if isinstance(history, History):
            seen, reply = track(row.message_ids, history.messages)
            new = forward(old, seen)
            if reply is not None and is_opt_out(reply.text) and new.reply.startswith(OPTED_OUT):
                number = _opted_out_number(reply, row)
                if number:
                    via = f"reply to {row.line} (status of {options.path.name})"
                    found.append(OptOut(number, reply.at, via))
                else:
                    report.not_recorded.append(row.number)
        if new != old:
            report.updated += 1
            cells = {**row.cells, **_cells(new)}
            outcomes[row.index] = RowOutcome(
                Status.SENT, *(cells[name] for name in RESULT_COLUMNS[1:])
            )
        report.overall.count(new)
        report.lines.setdefault(row.line or "(no line)", Stage()).count(new)
    if found:
        with OptOuts(home) as store:
            report.opt_outs = store.add(found)
    if outcomes:
        rewrite(sheet, columns, outcomes)
    return report


def _cells(tracking: Tracking) -> dict[str, str]:
    return {name: getattr(tracking, name) for name in TRACKING}


def _opted_out_number(reply: Reply, row: SentRow) -> str:
    """Who opted out: the reply's sender, else the row's one recipient; "" when unknown."""
    candidates = [reply.sender] if reply.sender else list(row.recipients)
    if len(candidates) != 1:
        return ""
    phone = normalize_phone(candidates[0], "US", sender=True)
    return "" if phone.problem else phone.e164


def rewrite(sheet: Sheet, columns: ColumnMap, outcomes: Mapping[int, RowOutcome]) -> None:
    """Write the sheet back in place with these rows' result cells, atomically."""
    path = sheet.path
    temporary = path.with_name(f".{path.stem}.status.{os.getpid()}{path.suffix}")

    def each() -> Iterator[RowOutcome | None]:
        for index in range(len(sheet.rows)):
            yield outcomes.get(index)

    try:
        write_rows(sheet, columns, each(), temporary)
        os.replace(temporary, path)
    except OSError as exc:
        raise OutputError(
            f"could not write {path} ({exc.strerror or exc}).",
            hint="Close the file if a spreadsheet has it open, then run status again.",
        ) from None
    finally:
        temporary.unlink(missing_ok=True)
