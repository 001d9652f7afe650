"""Orchestrating `run`: plan, subtract what the journal settled, send, and account for every row."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx

from batcher.client import ChertClient, Credentials, encode, is_loopback
from batcher.errors import UsageError
from batcher.journal import Journal, Record, State, body_digest
from batcher.media import Media
from batcher.model import RowOutcome, Status
from batcher.pipeline import JobOptions, Report, planned_outcome, prepare, summarize
from batcher.planning import KEY_PREFIX, Plan, Request, RowPlan
from batcher.results import write_results
from batcher.sending import SendConfig, Sender, SendResult, Stopped, Tally
from batcher.uploading import Uploader


@dataclass(frozen=True)
class Target:
    """Where requests go and how they authenticate; `label` is what the journal remembers."""

    base_url: str
    credentials: Credentials
    label: str


@dataclass(frozen=True)
class RunOptions:
    """Everything `run` needs besides the target."""

    job: JobOptions
    send: SendConfig = field(default_factory=SendConfig)
    journal: Path | None = None

    @property
    def journal_path(self) -> Path:
        """`--journal`, or `<output stem>.journal.sqlite` beside the results sheet."""
        if self.journal is not None:
            return self.journal
        output = self.job.output
        return output.with_name(f"{output.stem}.journal.sqlite")


@dataclass(frozen=True)
class Preview:
    """What is about to be sent, for the confirmation; and, in rows, what will not be."""

    requests: int
    first_touches: int
    by_line: dict[str, int]
    already_sent: int  # rows: by an earlier run, as the journal or the sheet says
    rows: int = 0  # rows with something left to send
    invalid: int = 0
    duplicate: int = 0


@dataclass
class RunReport(Report):
    """The summary of a run: the validate counts plus how the sending went."""

    journal: Path = Path()
    stopped: Stopped | None = None
    deferred: dict[str, datetime] = field(default_factory=dict)
    sent_now: int = 0
    cancelled: bool = False

    @property
    def exit_code(self) -> int:
        """3 when stopped early, else 0 if every row is sent or a duplicate, else 1."""
        if self.stopped is not None:
            return 3
        return 1 if self.cancelled else super().exit_code

    def to_json(self) -> dict[str, Any]:
        """The summary as plain data, for `--json`."""
        summary = super().to_json()
        summary.update(
            journal=str(self.journal),
            sent_now=self.sent_now,
            stopped=self.stopped.reason if self.stopped else None,
            deferred={line: when.isoformat() for line, when in self.deferred.items()},
        )
        return summary


def run_file(
    options: RunOptions,
    target: Target,
    *,
    confirm: Callable[[Preview], bool] = lambda preview: True,
    on_progress: Callable[[Tally], None] = lambda tally: None,
) -> RunReport:
    """The `run` command: everything `validate` does, then send what is not yet settled."""
    prepared = prepare(options.job)
    journal = Journal(options.journal_path)
    try:
        _check_target(journal, target)
        plan = prepared.plan
        keys = [request.key for request in plan.requests]
        records = journal.records(keys)
        conflicts = _conflicts(plan, records)
        todo = [
            r for r in plan.requests if _unsettled(records.get(r.key)) and r.key not in conflicts
        ]
        report = RunReport(options.job.path, options.job.output, journal=options.journal_path)
        if todo and confirm(_preview(plan, todo, conflicts)):
            chats = {
                ref: tuple(r for r in requests if r.key not in conflicts)
                for ref, requests in plan.chats.items()
            }
            result = anyio.run(
                _send, journal, options, target, _Work(chats, records, prepared.media), on_progress
            )
            report.stopped, report.deferred = result.stopped, result.deferred
            report.sent_now = result.sent
            records = journal.records(keys)
        elif todo:
            report.cancelled = True
    finally:
        journal.close()
    outcomes = {
        row.row: prepared.carried.get(row.row) or row_outcome(row, plan, records, conflicts)
        for row in plan.rows
    }
    write_results(prepared.sheet, prepared.columns, outcomes, options.job.output)
    summary = summarize(options.job, plan, outcomes)
    report.by_status, report.by_code, report.problems = (
        summary.by_status,
        summary.by_code,
        summary.problems,
    )
    return report


@dataclass(frozen=True)
class _Work:
    """What the sending stage works on: the chats, what the journal knows, media to upload."""

    chats: dict[str, tuple[Request, ...]]
    records: dict[str, Record]
    media: dict[str, Media]


async def _send(
    journal: Journal,
    options: RunOptions,
    target: Target,
    work: _Work,
    on_progress: Callable[[Tally], None],
) -> SendResult:
    config = options.send
    limits = httpx.Limits(
        max_connections=config.concurrency, max_keepalive_connections=config.concurrency
    )
    host = httpx.URL(target.base_url).host
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                timeout=httpx.Timeout(config.timeout),
                limits=limits,
                # Proxy settings from the environment are for the public API, not loopback.
                trust_env=not is_loopback(host),
                follow_redirects=False,
            )
        )
        client = ChertClient(http, target.base_url, target.credentials)
        sender = Sender(client, journal, config, on_progress=on_progress)
        if work.media:
            # Media URLs are fetched by a client of their own: it never carries our
            # credentials, and it follows no redirect it has not checked.
            downloads = await stack.enter_async_context(
                httpx.AsyncClient(timeout=httpx.Timeout(config.timeout), follow_redirects=False)
            )
            sender.uploader = Uploader(
                sender,
                journal,
                work.media,
                downloads,
                allow_loopback=options.job.allow_loopback_media,
            )
        return await sender.send(work.chats, work.records, journal.chat_ids())


def _check_target(journal: Journal, target: Target) -> None:
    known = journal.target()
    if known and known != target.label:
        raise UsageError(
            f"the journal {journal.path} records sends to {known}, not to {target.label}.",
            hint="Give this run its own --journal (and --out), so neither is mistaken for "
            "the other.",
        )
    if not known:
        journal.set_target(target.label)


def _unsettled(record: Record | None) -> bool:
    return record is None or record.state is not State.SENT


def _conflicts(plan: Plan, records: dict[str, Record]) -> set[str]:
    """Explicit keys the journal saw with another body: the API would refuse them (422).

    Derived keys need no check: they are hashes of the content, so a known key
    is content already settled, even if this run would send it by another route.
    """
    return {
        request.key
        for request in plan.requests
        if not request.key.startswith(KEY_PREFIX)
        and (record := records.get(request.key)) is not None
        and record.body_sha256
        and record.body_sha256 != body_digest(encode(request.body()))
    }


def _preview(plan: Plan, todo: list[Request], conflicts: set[str]) -> Preview:
    by_line: Counter[str] = Counter(request.sender or "(existing chats)" for request in todo)
    sending = {request.row for request in todo}
    statuses = Counter(row.status for row in plan.rows)
    settled = sum(
        1
        for row in plan.rows
        if row.status is Status.PENDING
        and row.row not in sending
        and not any(request.key in conflicts for request in row.requests)
    )
    return Preview(
        requests=len(todo),
        first_touches=sum(request.creates_chat for request in todo),
        by_line=dict(by_line),
        already_sent=statuses[Status.SENT] + settled,
        rows=len(sending),
        invalid=statuses[Status.INVALID],
        duplicate=statuses[Status.DUPLICATE],
    )


def row_outcome(
    row: RowPlan, plan: Plan, records: dict[str, Record], conflicts: set[str]
) -> RowOutcome:
    """A row's result columns from its requests' journal entries."""
    if row.status is not Status.PENDING:
        return planned_outcome(row)
    keys = " ".join(request.key for request in row.requests)
    found = [records.get(request.key) for request in row.requests]
    done = [record for record in found if record and record.state is State.SENT]
    common = {
        "idempotency_key": keys,
        "message_id": " ".join(record.message_id for record in done),
        "attempts": str(sum(record.attempts for record in found if record)),
    }
    if len(done) == len(found):
        last = done[-1]
        return RowOutcome(
            Status.SENT,
            chat_id=done[0].chat_id,
            sent_at=last.sent_at,
            trace_id=last.trace_id,
            **common,
        )
    for request, record in zip(row.requests, found, strict=True):
        if request.key in conflicts:
            return RowOutcome(
                Status.FAILED,
                error_message=f"the key {request.key} was already sent with other content; "
                "give this row a new idempotency_key (or clear the cell)",
                **common,
            )
        if record is not None and record.state is State.FAILED:
            return RowOutcome(
                Status.FAILED,
                error_code=str(record.error_code or ""),
                error_message=_sent_part(done) + record.error_message,
                trace_id=record.trace_id,
                **common,
            )
    reason = _pending_reason(row, plan, records)
    status = Status.FAILED if reason.startswith(_CREATOR_FAILED) else Status.PENDING
    return RowOutcome(status, error_message=_sent_part(done) + reason, **common)


def _sent_part(done: list[Record]) -> str:
    return f"first part sent (chat {done[0].chat_id}); the rest: " if done else ""


_CREATOR_FAILED = "not sent:"


def _pending_reason(row: RowPlan, plan: Plan, records: dict[str, Record]) -> str:
    for request in row.requests:
        record = records.get(request.key)
        if record is None:
            creator = _creator(request, plan)
            if creator is not None and creator.row != row.row:
                made = records.get(creator.key)
                if made is not None and made.state is State.FAILED:
                    return (
                        f"{_CREATOR_FAILED} row {creator.row}, which creates this chat, failed "
                        f"({made.error_code or 'refused'}). Fix row {creator.row}, then run again."
                    )
                if made is None or made.state is not State.SENT:
                    return f"waits for row {creator.row}, which creates this chat; run again"
            return "not sent yet (the run stopped before it); run again"
        if record.state is State.SENDING:
            return (
                "interrupted before an answer: perhaps delivered. Run again: the same key "
                "settles it without sending twice"
            )
        if record.state is State.PENDING:
            return record.error_message
    return "not sent yet; run again"


def _creator(request: Request, plan: Plan) -> Request | None:
    first = plan.chats.get(request.chat, ())
    return first[0] if first and first[0].creates_chat else None
