"""Orchestrating `run`: plan, subtract what the journal settled, send, and account for every row."""

from __future__ import annotations

import logging
import shlex
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx

from batcher.caller import Caller, Stopped
from batcher.client import (
    CONNECT_FAILED,
    ChertClient,
    Credentials,
    encode,
    is_loopback,
    single_connection_clients,
)
from batcher.clock import SYSTEM_CLOCK, Clock
from batcher.errors import JournalError, OutputError, PullFailed, ResultsNotWritten, UsageError
from batcher.history import History, salvage
from batcher.home import HEARTBEAT_SECONDS, Claims, RunInfo, account_id, home_folder
from batcher.journal import Journal, Record, State, body_digest, default_journal
from batcher.limiting import limit_rows
from batcher.lineplan import LinePlan, Pace, line_plans
from batcher.media import Media
from batcher.model import RowOutcome, Status
from batcher.optouts import OptOuts, pull
from batcher.pacing import LinePace
from batcher.pipeline import (
    Changed,
    JobOptions,
    Report,
    changed_since,
    prepare,
    row_outcome,
    sheet_read,
    summarize,
    who_gets,
)
from batcher.planning import KEY_PREFIX, Plan, Request, RowPlan
from batcher.preview import Shown, first_rows
from batcher.quiet import night_count
from batcher.results import check_writable, write_results
from batcher.senderlines import Barred, barred_lines, barred_outcome, read_lines
from batcher.sending import SendConfig, Sender, SendResult, Tally, sent_earlier_note
from batcher.suppression import Screen, read_suppress_files
from batcher.uploading import Uploader

log = logging.getLogger("batcher.running")

# While sending, the account's event log is read again at least this often (seconds, on
# the run's clock), so that a STOP replied meanwhile stops that person's later messages.
PULL_EVERY = 600.0


@dataclass(frozen=True)
class Target:
    """Where requests go and how they authenticate; `label` is what the journal remembers."""

    base_url: str
    credentials: Credentials
    label: str

    @property
    def account(self) -> str:
        """The account requests go to, as the per-user home names it (never the secret)."""
        return account_id(self.base_url, self.credentials.tenant, self.credentials.secret)


@dataclass(frozen=True)
class RunOptions:
    """Everything `run` needs besides the target."""

    job: JobOptions
    send: SendConfig = field(default_factory=SendConfig)
    journal: Path | None = None
    # --skip-contacted DAYS: rows whose recipients had a first touch from this account in
    # the last DAYS days (send history, any campaign) end skipped.
    skip_contacted: float | None = None
    # Test-only: cap the journal's size in pages, to meet a real "disk full" (SQLITE_FULL).
    journal_max_pages: int | None = None
    # --limit: send only the first N rows to send, chats whole (see batcher.limiting).
    limit: int | None = None
    # Pull the account's opt-outs at the start, and every `pull_every` seconds while
    # sending (--no-pull: neither; the opt-out list is applied as it is).
    pull: bool = True
    pull_every: float = PULL_EVERY

    @property
    def journal_path(self) -> Path:
        """`--journal`, or `<output stem>.journal.sqlite` beside the results sheet."""
        return self.journal or default_journal(self.job.output)


@dataclass(frozen=True)
class Preview:
    """What is about to be sent, for the confirmation; and, in rows, what will not be."""

    requests: int
    first_touches: int
    lines: tuple[LinePlan, ...]  # what each line sends, and when its last new chat can go
    already_sent: int  # rows: by an earlier run, as the journal or the sheet says
    rows: int = 0  # rows with something left to send
    invalid: int = 0
    duplicate: int = 0
    # Rows sent earlier and changed since; with resend_changed they are among the requests.
    changed: tuple[Changed, ...] = ()
    resend_changed: bool = False
    # Rows another run is sending right now: this one leaves them alone.
    elsewhere: int = 0
    # Rows to someone on the opt-out list or a --suppress file: not sent.
    suppressed: int = 0
    pace: Pace = field(default_factory=Pace)
    # The first messages to send, as recipients will see them.
    messages: tuple[Shown, ...] = ()
    # --limit N: N, and how many rows there were to send before it.
    limit: int | None = None
    limit_of: int = 0
    # Without --window: the recipients, and the wall time to say whom it is night for
    # (counted only when the confirmation is shown: it parses every distinct number).
    recipients: frozenset[str] = frozenset()
    night_at: float | None = None

    def night(self) -> int:
        """How many recipients it is night for at `night_at` (0 with --window)."""
        return 0 if self.night_at is None else night_count(self.recipients, self.night_at)


@dataclass
class RunReport(Report):
    """The summary of a run: the validate counts plus how the sending went."""

    journal: Path = Path()
    stopped: Stopped | None = None
    deferred: dict[str, datetime] = field(default_factory=dict)
    sent_now: int = 0
    # Messages found sent before this run, from another sheet or journal: by the send
    # history (nothing sent) or by Chert answering a key with its original message.
    sent_earlier: int = 0
    # Rows left out by --skip-contacted: row → the note its results carry.
    contacted: dict[int, str] = field(default_factory=dict)
    cancelled: bool = False
    # Rows another live run is sending right now (claims in the per-user home), by row.
    elsewhere: dict[int, RunInfo] = field(default_factory=dict)
    # Lines the account does not list, or lists as not active: nothing was sent from them.
    barred: dict[str, Barred] = field(default_factory=dict)
    barred_rows: dict[int, str] = field(default_factory=dict)  # row → its barred line
    # Why the account's lines were not checked ("" when they were, or nothing was sent).
    lines_unchecked: str = ""
    # --limit N: N, the rows it let go, and the rows it held back (they stay pending).
    limit: int | None = None
    limit_rows: tuple[int, ...] = ()
    limit_held: tuple[int, ...] = ()
    limit_sent: int = 0
    # --window: messages left pending outside it, and when the first may go (None: never).
    window: str = ""
    outside: int = 0
    window_opens: datetime | None = None
    # New opt-outs the run's pulls recorded; why the event log was not read ("" if it was).
    pulled: int = 0
    not_pulled: str = ""

    @property
    def exit_code(self) -> int:
        """3 when stopped early, else 0 if every row is sent or a duplicate, else 1."""
        if self.stopped is not None:
            return 3
        return 1 if self.cancelled else super().exit_code

    def rows_from(self, line: str) -> int:
        """How many rows nothing was sent for because they are from this barred line."""
        return sum(1 for barred in self.barred_rows.values() if barred == line)

    def to_json(self) -> dict[str, Any]:
        """The summary as plain data, for `--json`."""
        summary = super().to_json()
        summary.update(
            journal=str(self.journal),
            sent_now=self.sent_now,
            sent_earlier=self.sent_earlier,
            stopped=self.stopped.reason if self.stopped else None,
            deferred={line: when.isoformat() for line, when in self.deferred.items()},
            elsewhere=[
                {"row": row, "pid": run.pid, "host": run.host, "journal": run.journal}
                for row, run in sorted(self.elsewhere.items())
            ],
            barred_lines=[
                {"line": line, "why": str(why), "rows": self.rows_from(line)}
                for line, why in sorted(self.barred.items())
            ],
            lines_unchecked=self.lines_unchecked or None,
            optouts_pulled=self.pulled,
            optouts_not_pulled=self.not_pulled or None,
            limit=None
            if self.limit is None
            else {
                "limit": self.limit,
                "rows_sent": self.limit_sent,
                "rows_to_send": len(self.limit_rows) + len(self.limit_held),
                "held_back": list(self.limit_held),
            },
            outside_window={
                "window": self.window,
                "messages": self.outside,
                "opens": self.window_opens.isoformat() if self.window_opens else None,
            }
            if self.window
            else None,
        )
        return summary


def run_file(
    options: RunOptions,
    target: Target,
    *,
    confirm: Callable[[Preview], bool] = lambda preview: True,
    on_progress: Callable[[Tally], None] = lambda tally: None,
    clock: Clock = SYSTEM_CLOCK,
) -> RunReport:
    """The `run` command: everything `validate` does, then send what is not yet settled."""
    check_writable(options.job.output, "results sheet", "--out")
    check_writable(options.journal_path, "journal", "--journal")
    prepared = prepare(options.job)
    files = read_suppress_files(options.job.suppress, options.job.region)
    journal = Journal(options.journal_path, max_pages=options.journal_max_pages)
    claims: Claims | None = None
    history: History | None = None
    optouts: OptOuts | None = None
    try:
        _check_target(journal, target)
        if journal.unshared():
            # A run of this journal that was killed: what it sent goes to the history first.
            history = History(home_folder(), target.account, options.job.campaign)
            _share_outbox(journal, history)
        optouts = OptOuts()
        plan = prepared.plan
        recipients = {recipient for request in plan.requests for recipient in request.recipients}
        keys = [request.key for request in plan.requests]
        records, others = journal.recall(keys)
        conflicts = _conflicts(plan, records)
        changed = {**prepared.changed, **changed_since(plan, records, others)}
        held = conflicts | _held_changed(plan, changed, options.job.resend_changed)
        todo = [r for r in plan.requests if _unsettled(records.get(r.key)) and r.key not in held]
        # A run with nothing left to send makes no request at all: it pulls only if it may send.
        pulled = _pull_first(target, options, optouts) if todo else _Pulled()
        report = RunReport(
            options.job.path,
            options.job.output,
            changed=sorted(changed.values()),
            resend_changed=options.job.resend_changed,
            journal=options.journal_path,
            encoding=prepared.sheet.encoding,
            window=str(options.send.window or ""),
            sheet=sheet_read(prepared.sheet, prepared.columns, options.job.include_hidden),
            pulled=pulled.added,
            not_pulled=pulled.missing,
            stopped=pulled.stopped,
        )
        # Applied before the confirmation, which counts them; checked again before each request.
        screen = Screen(files, optouts.find(recipients))
        suppressed = {r.key for r in todo if screen.reason(r.recipients)}
        held |= suppressed
        todo = [r for r in todo if r.key not in suppressed]
        if todo and options.limit is not None:
            limited = limit_rows(todo, options.limit)
            held |= {r.key for r in todo if r.row in limited.held}
            todo = limited.requests
            report.limit, report.limit_rows, report.limit_held = (
                options.limit,
                limited.rows,
                limited.held,
            )
        if todo:
            # Claimed before the confirmation, so that it counts what this run will send.
            claims = Claims(home_folder(), target.account, options.journal_path, salvage)
            report.elsewhere = _claim(claims, todo)
            held |= {r.key for r in todo if r.row in report.elsewhere}
            todo = [r for r in todo if r.key not in held]
        if todo:
            # Read after claiming: a key another run sent is in the history before that
            # run gives its claim back, so no send slips between the two.
            history = history or History(home_folder(), target.account, options.job.campaign)
            earlier = _from_history(journal, history, todo)
            records = {**records, **earlier}
            report.sent_earlier = len(earlier)
            todo = [r for r in todo if r.key not in earlier]
        if todo and history is not None and options.skip_contacted is not None:
            since = clock.wall() - options.skip_contacted * _DAY
            report.contacted = _contacted(
                history, plan, todo, records, since, options.skip_contacted
            )
            held |= {r.key for r in todo if r.row in report.contacted}
            todo = [r for r in todo if r.key not in held]
        report.lines, report.pace = line_plans(todo, options.job.pace), options.job.pace
        sending = {request.row for request in todo}
        report.preview = first_rows(
            (row for row in plan.rows if row.row in sending),
            options.job.preview,
            prepared.media,
            who_gets,
        )
        night_at = None if options.send.window is not None else clock.wall()
        rows_suppressed = len({r.row for r in plan.requests if r.key in suppressed})
        # Opt-outs that could not be pulled: nothing is sent (report.stopped says why).
        may_send = bool(todo) and pulled.stopped is None
        if may_send and confirm(_preview(plan, todo, held, report, night_at, rows_suppressed)):
            _check_lines(target, options.send.timeout, todo, report)
            held |= {r.key for r in todo if r.row in report.barred_rows}
            chats = {
                ref: tuple(r for r in requests if r.key not in held)
                for ref, requests in plan.chats.items()
            }
            work = _Work(
                chats,
                records,
                prepared.media,
                claims,
                _first_touches(plan, records),
                history,
                Screen(files, lookup=optouts.find, glimpse=optouts.glance),
                _Pulls(optouts, options.pull_every)
                if options.pull and not pulled.missing
                else None,
            )
            _send_all(journal, options, target, work, on_progress, report, clock)
            records = _records_after(journal, keys, records)
        elif may_send:
            report.cancelled = True
        # Who is on a list now, opt-outs pulled while sending included: what was not sent
        # to them ends suppressed.
        screen = Screen(files, optouts.find(recipients))
    finally:
        # The claims go back only once the history holds everything sent: else they are
        # left to the next run, which takes the rest from this journal's outbox.
        shared = history is None or _share_outbox(journal, history)
        if claims is not None:
            if shared:
                claims.release()
            else:
                claims.abandon()
        if history is not None:
            history.close()
        journal.close()
        if optouts is not None:
            optouts.close()
    kept = {} if options.job.resend_changed else changed
    outcomes = {
        row.row: prepared.carried.get(row.row)
        or (kept[row.row].sent if row.row in kept else None)
        or (_elsewhere(row, report.elsewhere[row.row]) if row.row in report.elsewhere else None)
        or (_skipped(row, report.contacted[row.row]) if row.row in report.contacted else None)
        or screen.outcome(
            row,
            _settled(
                row,
                _limited(row_outcome(row, plan.chats, records, conflicts), row.row, report),
                report,
            ),
        )
        for row in plan.rows
    }
    report.limit_sent = sum(outcomes[row].status is Status.SENT for row in report.limit_rows)
    try:
        write_results(prepared.sheet, prepared.columns, outcomes, options.job.output, report.lines)
    except OutputError as error:
        raise _not_written(error, options, report.sent_now) from None
    summary = summarize(options.job, plan, outcomes)
    report.by_status, report.by_code, report.problems = (
        summary.by_status,
        summary.by_code,
        summary.problems,
    )
    report.reused_keys = summary.reused_keys
    return report


def _share_outbox(journal: Journal, history: History) -> bool:
    """Put what the journal's outbox holds into the send history; whether it holds it now."""
    try:
        entries = journal.unshared()
    except JournalError:
        return False
    if not history.share(entries):
        return False
    try:
        journal.shared()
        journal.commit()
    except JournalError:
        pass  # the history has them; the outbox shares them again, harmlessly, next time
    return True


def _check_lines(target: Target, timeout: float, todo: list[Request], report: RunReport) -> None:
    """Read the account's lines once; note in `report` the rows of lines nothing may go from.

    A list that cannot be read holds nothing back: that is said at -v, and the run goes
    on as it would without it (a send from a line that is not the account's gets 2006).
    """
    lines = anyio.run(_read_lines, target, timeout)
    if isinstance(lines, str):
        report.lines_unchecked = lines
        log.info("the account's lines were not checked (GET /phone-numbers: %s); sending", lines)
        return
    report.barred = barred_lines({r.sender for r in todo if r.sender}, lines)
    report.barred_rows = {r.row: r.sender for r in todo if r.sender in report.barred}
    for line, why in sorted(report.barred.items()):
        log.info("line %s is %s: its %d row(s) are not sent", line, why, report.rows_from(line))


async def _read_lines(target: Target, timeout: float) -> dict[str, bool] | str:
    async with _api_client(target, timeout) as http:
        return await read_lines(ChertClient(http, target.base_url, target.credentials))


def _settled(row: RowPlan, outcome: RowOutcome, report: RunReport) -> RowOutcome:
    """A row's outcome; for a row of a barred line not sent before, why nothing was sent."""
    line = report.barred_rows.get(row.row)
    if line is None or outcome.status is Status.SENT:
        return outcome
    return barred_outcome(outcome, line, report.barred[line])


def _claim(claims: Claims, todo: list[Request]) -> dict[int, RunInfo]:
    """Claim the chats this run is to send; the rows of those another live run is sending."""
    chats: dict[str, list[str]] = {}
    for request in todo:
        chats.setdefault(request.chat, []).append(request.key)
    taken = claims.claim(chats)
    return {request.row: taken[request.chat] for request in todo if request.chat in taken}


def _limited(outcome: RowOutcome, row: int, report: RunReport) -> RowOutcome:
    """A row --limit held back stays pending, and says why."""
    if outcome.status is not Status.PENDING or row not in report.limit_held:
        return outcome
    return outcome._replace(
        error_message=f"held back by --limit {report.limit} (a canary); run again without "
        "--limit to send it"
    )


_DAY = 86_400.0


def _from_history(journal: Journal, history: History, todo: list[Request]) -> dict[str, Record]:
    """The requests the account's send history holds as sent, now in this journal too.

    Sent from another sheet or journal: they are not sent again, and their ids fill the
    results (and let this sheet's later rows follow up in their chats).
    """
    earlier = history.sent(request.key for request in todo)
    found: dict[str, Record] = {}
    for request in todo:
        entry = earlier.get(request.key)
        if entry is not None:
            found[request.key] = Record(
                request.key,
                "",
                request.row,
                request.step,
                request.chat,
                State.SENT,
                chat_id=entry.chat_id,
                message_id=entry.message_id,
                error_message=sent_earlier_note(entry.sent_at[:10], "the send history"),
                trace_id=entry.trace_id,
                sent_at=entry.sent_at,
            )
    if found:
        journal.sent_earlier(list(found.values()))
    return found


def _contacted(
    history: History,
    plan: Plan,
    todo: list[Request],
    records: dict[str, Record],
    since: float,
    days: float,
) -> dict[int, str]:
    """--skip-contacted: rows with nothing sent yet whose recipients had a first touch lately.

    First touches by this sheet's own requests do not count (its chats' later rows).
    """
    contacted = history.contacted(since, exclude={request.key for request in plan.requests})
    if not contacted:
        return {}
    begun = {
        request.row
        for request in plan.requests
        if (record := records.get(request.key)) is not None and record.state is State.SENT
    }
    notes: dict[int, str] = {}
    for request in todo:
        when = [contacted[number] for number in request.recipients if number in contacted]
        if when and request.row not in begun and request.row not in notes:
            notes[request.row] = (
                f"contacted on {max(when)[:10]} (--skip-contacted {days:g}); not sent"
            )
    return notes


def _skipped(row: RowPlan, note: str) -> RowOutcome:
    """A row --skip-contacted left out."""
    keys = " ".join(request.key for request in row.requests)
    return RowOutcome(Status.SKIPPED, idempotency_key=keys, error_message=note)


def _elsewhere(row: RowPlan, run: RunInfo) -> RowOutcome:
    """A row left to the run that is sending it right now."""
    return RowOutcome(
        Status.PENDING,
        idempotency_key=" ".join(request.key for request in row.requests),
        error_message=f"being sent by another chert-batch run ({run.describe()}) right now; "
        "run again when it has finished",
    )


def _send_all(
    journal: Journal,
    options: RunOptions,
    target: Target,
    work: _Work,
    on_progress: Callable[[Tally], None],
    report: RunReport,
    clock: Clock,
) -> None:
    """Send, and account for it in the report; a failing journal or opt-out list stops it."""
    tallies: list[Tally] = []

    def progress(tally: Tally) -> None:
        if not tallies:
            tallies.append(tally)  # the sender keeps counting in this one object
        on_progress(tally)

    failures: list[OutputError] = []
    try:
        result = anyio.run(_send, journal, options, target, work, progress, clock)
    except* OutputError as failed:
        # From inside the sender's task groups it comes wrapped, maybe more than once.
        failures.append(_first(failed))
    if failures:
        report.stopped = Stopped(f"{failures[0].message}\n{failures[0].hint}")
        report.sent_now = tallies[0].sent if tallies else 0
        return
    report.pulled += work.pulls.added if work.pulls is not None else 0
    report.stopped, report.deferred = result.stopped, result.deferred
    report.outside, report.window_opens = result.outside, result.window_opens
    report.sent_now = result.sent
    report.sent_earlier += result.earlier


def _first(group: BaseExceptionGroup[OutputError]) -> OutputError:
    found = group.exceptions[0]
    return found if isinstance(found, OutputError) else _first(found)


def send_requests(
    journal: Journal,
    options: RunOptions,
    target: Target,
    chats: dict[str, tuple[Request, ...]],
    media: dict[str, Media],
    clock: Clock = SYSTEM_CLOCK,
) -> SendResult:
    """Send `chats` as a run sends its own, journaled in `journal`: what it settled, never again.

    Rate, retries, line pacing and uploads are the run's; no claims, no line check, no
    first touches from earlier runs. batcher.proofing sends its proofs through it.
    """
    _check_target(journal, target)
    records = journal.records(request.key for requests in chats.values() for request in requests)
    failures: list[OutputError] = []
    try:
        work = _Work(chats, records, media)
        return anyio.run(_send, journal, options, target, work, lambda tally: None, clock)
    except* OutputError as failed:
        failures.append(_first(failed))
    raise failures[0]


def _records_after(
    journal: Journal, keys: list[str], before: dict[str, Record]
) -> dict[str, Record]:
    """What the journal holds after sending; what it held before, if it can no longer say."""
    try:
        return journal.records(keys)
    except JournalError:
        return before


def _not_written(error: OutputError, options: RunOptions, sent_now: int) -> ResultsNotWritten:
    """After sending, a results sheet that cannot be written: what went out, how to get it."""
    out = options.job.output
    elsewhere = out.with_name(f"{out.stem}-2{out.suffix}")
    try:
        check_writable(elsewhere, "results sheet", "--out")
    except OutputError:
        elsewhere = Path.home() / elsewhere.name
    command = validate_command(options.job, options.journal_path, elsewhere)
    messages = "1 message" if sent_now == 1 else f"{sent_now} messages"
    return ResultsNotWritten(
        f"{error.message} {messages} went out in this run; the journal "
        f"{options.journal_path} has them, and what happened to every other row.",
        hint=f"Get the results sheet elsewhere without sending anything: {command}",
    )


def validate_command(job: JobOptions, journal: Path, out: Path) -> str:
    """The `validate` command that writes this job's results sheet from its journal to `out`."""
    words = ["chert-batch", "validate", str(job.path)]
    if job.sheet is not None:
        words += ["--sheet", job.sheet]
    if job.region != "US":
        words += ["--region", job.region]
    if job.default_sender:
        words += ["--from", job.default_sender]
    if job.campaign:
        words += ["--campaign", job.campaign]
    if job.allow_duplicates:
        words.append("--allow-duplicates")
    if job.template is not None:
        words += ["--template", str(job.template)]
    if job.template_replaces is not None:
        words += ["--template-replaces", job.template_replaces]
    if job.include_hidden:
        words.append("--include-hidden")
    for path in job.suppress:
        words += ["--suppress", str(path)]
    return shlex.join([*words, "--journal", str(journal), "--out", str(out)])


@dataclass(frozen=True)
class _Work:
    """What the sending stage works on: the chats, what the journal knows, media to upload."""

    chats: dict[str, tuple[Request, ...]]
    records: dict[str, Record]
    media: dict[str, Media]
    claims: Claims | None = None
    # Per line, the wall times of the first touches already sent (a rerun keeps the caps).
    history: dict[str, list[float]] = field(default_factory=dict)
    # The account's send history in the per-user home: what is sent is recorded there too.
    sent_history: History | None = None
    # Checked just before each request: the opt-out list read afresh, the --suppress files.
    screen: Screen = field(default_factory=Screen)
    # The opt-out list to pull into while sending; None: no pulls (--no-pull, no event log).
    pulls: _Pulls | None = None


@dataclass
class _Pulls:
    """The pulls made while sending: into which list, how often, and what they added."""

    store: OptOuts
    every: float
    added: int = 0


@dataclass(frozen=True)
class _Pulled:
    """What the pull at the start did: new opt-outs, or why it read nothing, or stopped the run."""

    added: int = 0
    missing: str = ""
    stopped: Stopped | None = None


def _pull_first(target: Target, options: RunOptions, store: OptOuts) -> _Pulled:
    """Pull the account's opt-outs before planning, so that the confirmation counts them.

    An account without an event log (404) is said at -v, and the list is used as it is;
    any other failure stops the run before anything is sent (exit 3), saying what to do.
    """
    if not options.pull:
        return _Pulled()

    async def pulling() -> int:
        async with _api_client(target, options.send.timeout) as http:
            client = ChertClient(http, target.base_url, target.credentials)
            return len((await pull(client, target.account, store)).added)

    try:
        added = anyio.run(pulling)
    except PullFailed as failed:
        if failed.status == 404:
            why = f"the account has no event log (GET /events: {failed.why or 'HTTP 404'})"
            log.info("%s: no opt-outs pulled; the opt-out list is applied as it is", why)
            return _Pulled(missing=why)
        return _Pulled(stopped=_pull_stopped(failed, target.base_url))
    log.info("opt-outs pulled: %d new", added)
    return _Pulled(added)


def _pull_stopped(failed: PullFailed, base_url: str) -> Stopped:
    """Why a run whose opt-outs could not be pulled stops before sending, with what to do."""
    if failed.code in (2004, 2013):
        # Credentials or clock: the summary's advice for them is the same as when sending.
        return Stopped(failed.why, failed.code, at_once=True)
    why = failed.message.replace(CONNECT_FAILED, f"{CONNECT_FAILED} to {base_url}", 1)
    return Stopped(
        f"the opt-outs were not pulled, so nothing was sent: {why} {failed.hint} "
        "(--no-pull sends with the opt-out list as it is.)",
        failed.code,
        at_once=True,
    )


async def _pull_while_sending(
    client: ChertClient, account: str, pulls: _Pulls, clock: Clock
) -> None:
    """Pull again every `pulls.every` seconds; a pull that fails is said, and tried again.

    The sender checks the list just before each request, so a person who replied STOP
    meanwhile gets nothing more. A failure does not stop the run: the list pulled at the
    start (and every opt-out since) still applies; the next pull reads what this missed.
    """
    while True:
        await clock.sleep(pulls.every)
        try:
            report = await pull(client, account, pulls.store, sleep=clock.sleep)
        except PullFailed as failed:
            log.warning("opt-outs not pulled (%s); trying again later", failed.message)
            continue
        pulls.added += len(report.added)
        if report.added:
            log.info("opt-outs pulled while sending: %d new", len(report.added))


def _api_client(target: Target, timeout: float) -> httpx.AsyncClient:
    """A client for the few calls made around sending (lines, event log), not for sending."""
    host = httpx.URL(target.base_url).host
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout), trust_env=not is_loopback(host), follow_redirects=False
    )


async def _send(
    journal: Journal,
    options: RunOptions,
    target: Target,
    work: _Work,
    on_progress: Callable[[Tally], None],
    clock: Clock,
) -> SendResult:
    config = options.send
    host = httpx.URL(target.base_url).host
    async with AsyncExitStack() as stack:
        # One connection per worker, none shared: see batcher.client. Proxy settings from
        # the environment are for the public API, not loopback.
        clients = single_connection_clients(
            config.concurrency, config.timeout, trust_env=not is_loopback(host)
        )
        for http in clients:
            await stack.enter_async_context(http)
        client = ChertClient(clients, target.base_url, target.credentials)
        caller = Caller(client, clock, rate=config.rate, retry=config.retry)
        uploader = None
        if work.media:
            # Media URLs are fetched by a client of their own: it never carries our
            # credentials, and it follows no redirect it has not checked.
            downloads = await stack.enter_async_context(
                httpx.AsyncClient(timeout=httpx.Timeout(config.timeout), follow_redirects=False)
            )
            uploader = Uploader(
                caller,
                journal,
                work.media,
                downloads,
                allow_loopback=options.job.allow_loopback_media,
                history=work.sent_history,
            )
        sender = Sender(
            caller,
            journal,
            config,
            uploader=uploader,
            clock=clock,
            pace=LinePace(options.job.line_gap, options.job.line_daily),
            history=work.history,
            sent_history=work.sent_history,
            on_progress=on_progress,
            screen=work.screen.reason,
            glance=work.screen.glance,
        )
        chat_ids = journal.chat_ids()
        async with anyio.create_task_group() as beside:
            if work.claims is not None:
                beside.start_soon(_heartbeat, work.claims)
            if work.pulls is not None:
                beside.start_soon(_pull_while_sending, client, target.account, work.pulls, clock)
            result = await sender.send(work.chats, work.records, chat_ids)
            beside.cancel_scope.cancel()
        return result


async def _heartbeat(claims: Claims) -> None:
    """Renew the claims' lease while sending, so that no other run takes them over."""
    while True:
        await anyio.sleep(HEARTBEAT_SECONDS)
        claims.beat()


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


def _first_touches(plan: Plan, records: dict[str, Record]) -> dict[str, list[float]]:
    """Per line, when the journal's first touches (chats created) went out, in wall time."""
    history: dict[str, list[float]] = {}
    for request in plan.requests:
        record = records.get(request.key)
        if request.creates_chat and record is not None and record.state is State.SENT:
            try:
                when = datetime.fromisoformat(record.sent_at).timestamp()
            except ValueError:
                continue  # a journal without the time: nothing to pace by
            history.setdefault(request.sender, []).append(when)
    return history


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


def _held_changed(plan: Plan, changed: dict[int, Changed], resend: bool) -> set[str]:
    """The keys of rows changed since they were sent: not sent unless --resend-changed."""
    if resend or not changed:
        return set()
    return {request.key for row in plan.rows if row.row in changed for request in row.requests}


def _preview(
    plan: Plan,
    todo: list[Request],
    held: set[str],
    report: RunReport,
    night_at: float | None = None,
    suppressed: int = 0,
) -> Preview:
    sending = {request.row for request in todo}
    statuses = Counter(row.status for row in plan.rows)
    settled = sum(
        1
        for row in plan.rows
        if row.status is Status.PENDING
        and row.row not in sending
        and not any(request.key in held for request in row.requests)
    )
    return Preview(
        requests=len(todo),
        first_touches=sum(request.creates_chat for request in todo),
        lines=tuple(report.lines),
        already_sent=statuses[Status.SENT] + settled,
        rows=len(sending),
        invalid=statuses[Status.INVALID],
        duplicate=statuses[Status.DUPLICATE],
        changed=tuple(report.changed),
        resend_changed=report.resend_changed,
        elsewhere=len(report.elsewhere),
        suppressed=suppressed,
        pace=report.pace,
        messages=tuple(report.preview),
        limit=report.limit,
        limit_of=len(report.limit_rows) + len(report.limit_held),
        recipients=frozenset(recipient for request in todo for recipient in request.recipients),
        night_at=night_at,
    )
