"""Orchestration: load → normalize and validate → plan → (send) → write the results sheet.

The CLI calls one function per command; everything here takes values and
returns values, and nothing here prints.
"""

from __future__ import annotations

import gc
import itertools
import operator
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from batcher.answers import is_reused_key
from batcher.cells import holds_escaped_cells
from batcher.columns import ColumnMap, column_name, map_columns
from batcher.errors import NothingToSend, UsageError
from batcher.journal import JournalView, Record, State, default_journal, read_journal
from batcher.lineplan import LinePlan, LineTally, Pace
from batcher.loading import Sheet, SheetRow, load_sheet
from batcher.media import Media, MediaKind
from batcher.model import (
    CODE_MEANINGS,
    KEPT_FROM_RESULTS,
    SETTLED,
    Problem,
    ProblemSource,
    RowOutcome,
    Status,
    api_text,
)
from batcher.optouts import read_entries
from batcher.phones import PhoneBook
from batcher.planning import Plan, Planner, Request, RowPlan, SettledRow
from batcher.preview import PREVIEW_COUNT, Shown, first_rows, json_preview, shown_row
from batcher.results import default_output, write_results, write_rows
from batcher.suppression import Screen, read_suppress_files
from batcher.templates import (
    all_placeholders_known,
    missing_error,
    missing_placeholders,
    read_template,
    replaced_column,
)
from batcher.validation import Message, RowValidator, Rules


@dataclass(frozen=True)
class JobOptions:
    """What every command needs to read and plan a handoff file."""

    path: Path
    out: Path | None = None
    sheet: str | None = None
    region: str = "US"
    default_sender: str = ""
    campaign: str = ""
    allow_duplicates: bool = False
    # Rows sent earlier and changed since are sent again as new messages (else kept as sent).
    resend_changed: bool = False
    # Media files may be hard links (see batcher.media.check_file).
    allow_hardlinks: bool = False
    # Test-only: media URLs may be plain http to this machine.
    allow_loopback_media: bool = False
    # A line's first touches: at least this many seconds apart, at most this many a day
    # (--line-gap / --line-daily). run paces by them; None: learned from the API, and
    # Chert's documented figure for the plan's estimate.
    line_gap: float | None = None
    line_daily: int | None = None
    # --template: a UTF-8 file holding every row's text; --template-replaces: the text
    # column it takes the place of (see batcher.templates.replaced_column).
    template: Path | None = None
    template_replaces: str | None = None
    # How many of the first messages to send validate and run's confirmation show.
    preview: int = PREVIEW_COUNT
    # Rows hidden in the sheet are sent too (else they end `skipped`).
    include_hidden: bool = False
    # --suppress: do-not-contact files; rows to their numbers end `suppressed`.
    suppress: tuple[Path, ...] = ()

    @property
    def output(self) -> Path:
        """Where the results sheet goes."""
        return default_output(self.path, self.out)

    @property
    def pace(self) -> Pace:
        """The pace of a line's first touches the plan's estimates use."""
        return Pace.of(self.line_gap, self.line_daily)


class Changed(NamedTuple):
    """A row sent earlier whose content has changed since: sending it is a second message.

    `sent` is the row's result as it was sent: what it keeps, with a note, when it is
    not sent again (without --resend-changed).
    """

    row: int
    sent_at: str
    who: str
    sent: RowOutcome


@dataclass(frozen=True)
class SheetRead:
    """What the summary tells of the sheet read: hidden sheets, rows and columns."""

    name: str = ""
    hidden: bool = False  # the sheet itself is hidden (--sheet named it)
    passed_over: tuple[str, ...] = ()  # hidden sheets before it, not the default
    hidden_rows: int = 0  # data rows hidden in the sheet
    include_hidden: bool = False  # ... and sent anyway
    # Hidden columns that are read as fields all the same, by name ("Text_2").
    hidden_fields: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """As plain data, for `--json`."""
        return {
            "name": self.name or None,
            "hidden": self.hidden,
            "hidden_sheets_passed_over": list(self.passed_over),
            "hidden_rows": self.hidden_rows,
            "hidden_rows_sent": self.include_hidden and self.hidden_rows > 0,
            "hidden_columns_read": list(self.hidden_fields),
        }


def sheet_read(sheet: Sheet, columns: ColumnMap, include_hidden: bool) -> SheetRead:
    """What the summary tells of a sheet as loaded."""
    fields = {
        columns.sender,
        *columns.recipients,
        columns.subject,
        *(index for _, index in columns.parts),
        columns.chat_id,
        columns.idempotency_key,
    }
    hidden_fields = tuple(
        column_name(sheet.headers, index)
        for index in sorted(sheet.hidden_columns)
        if index in fields
    )
    hidden_rows = (
        sum(row.number in sheet.hidden_rows for row in sheet.rows) if sheet.hidden_rows else 0
    )
    return SheetRead(
        sheet.sheet_name,
        sheet.sheet_state != "visible",
        sheet.passed_over,
        hidden_rows,
        include_hidden,
        hidden_fields,
    )


# What a row skipped because it is hidden says (and what a results sheet keeps of it).
HIDDEN_NOTE = "hidden in the sheet"

HiddenVerdict = Literal["skip", "plan anew", "as it is"]


def hidden_verdict(
    hidden: bool, earlier: Status | None, note: str, include_hidden: bool
) -> HiddenVerdict:
    """What hiding does to a row: skip it, plan it anew, or leave it as it is.

    `hidden`: the row is hidden in the sheet; `earlier`, `note`: the status a results
    sheet gives it for good (see model.KEPT_FROM_RESULTS) and its error_message. A row
    skipped as hidden by an earlier run stays skipped (the results sheet need not hide
    it), and both are sent with --include-hidden. Any other kept status (sent,
    suppressed, skipped for another reason) stays as it is, hidden or not.
    """
    if earlier is Status.SKIPPED and note == HIDDEN_NOTE:
        return "plan anew" if include_hidden else "skip"
    if earlier is not None or include_hidden:
        return "as it is"
    return "skip" if hidden else "as it is"


@dataclass(frozen=True)
class Prepared:
    """A handoff file read, validated and planned: everything but the sending."""

    sheet: Sheet
    columns: ColumnMap
    plan: Plan
    carried: dict[int, RowOutcome]
    # Media to upload before sending, by the reference parts carry (see batcher.media).
    media: dict[str, Media] = field(default_factory=dict)
    # Rows a results sheet marks sent whose content has changed since, by row.
    changed: dict[int, Changed] = field(default_factory=dict)


@dataclass
class Report:
    """What happened, for the summary: counts by status and by code, and the problems."""

    source: Path
    output: Path
    by_status: Counter[Status] = field(default_factory=Counter)
    by_code: Counter[int] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    # validate only plans: `pending` is then the expected outcome, not unfinished work.
    planned_only: bool = False
    # The journal validate read, if any, and whether a run held it (see JournalView).
    journal_read: Path | None = None
    journal_busy: bool = False
    # Rows sent earlier and changed since (sent again only with --resend-changed).
    changed: list[Changed] = field(default_factory=list)
    resend_changed: bool = False
    # Distinct media URLs that passed what validate checks: their hosts are checked when sending.
    media_urls: int = 0
    # Failed rows whose derived key Chert had with other content: sent earlier, nothing to fix.
    reused_keys: int = 0
    # The encoding a CSV file was read in ("UTF-8", "Windows-1252", ...); "" for XLSX.
    encoding: str = ""
    # What each line is to send and when its last new chat can go, at `pace`.
    lines: list[LinePlan] = field(default_factory=list)
    pace: Pace = field(default_factory=Pace)
    # The first messages to send, as recipients will see them (JobOptions.preview of them).
    preview: list[Shown] = field(default_factory=list)
    sheet: SheetRead = field(default_factory=SheetRead)

    @property
    def total(self) -> int:
        """How many rows the sheet has (blank rows not counted)."""
        return sum(self.by_status.values())

    @property
    def exit_code(self) -> int:
        """0 when every row is settled (see model.SETTLED), 1 when some need attention.

        validate only plans: for it, `pending` (would be sent) is as wanted too.
        """
        fine = SETTLED | {Status.PENDING} if self.planned_only else SETTLED
        return (
            1 if any(count for status, count in self.by_status.items() if status not in fine) else 0
        )

    def to_json(self) -> dict[str, Any]:
        """The summary as plain data, for `--json`."""
        return {
            "input": str(self.source),
            "encoding": self.encoding or None,
            "results": str(self.output),
            "sheet": self.sheet.to_json(),
            "rows": self.total,
            "by_status": {str(status): self.by_status[status] for status in Status},
            "by_code": {
                str(code): {"count": count, "meaning": self.meaning(code)}
                for code, count in sorted(self.by_code.items())
            },
            "changed": [
                {"row": c.row, "sent_at": c.sent_at, "to": c.who, "sent_again": self.resend_changed}
                for c in self.changed
            ],
            "lines": [plan.to_json() for plan in self.lines],
            "line_pace": {
                "gap_seconds": self.pace.gap,
                "daily": self.pace.daily,
                "assumed": [
                    name
                    for name, given in (
                        ("gap", self.pace.gap_given),
                        ("daily", self.pace.daily_given),
                    )
                    if not given
                ],
            },
            "preview": json_preview(self.preview),
            "journal_read": str(self.journal_read) if self.journal_read else None,
            "journal_busy": self.journal_busy,
            "problems": [
                {
                    "row": problem.row,
                    "column": problem.column,
                    "value": problem.value,
                    "code": problem.code,
                    "meaning": self.meaning(problem.code) if problem.code else "",
                    "message": problem.message,
                    "source": problem.source,
                }
                for problem in self.problems
            ],
        }

    def meaning(self, code: int) -> str:
        """What a code means; for a code chert-batch has no words for, what the API said."""
        known = CODE_MEANINGS.get(code)
        if known is not None:
            return known
        said = (p.message for p in self.problems if p.code == code and p.source == "api")
        return next(said, "")


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the duration, then restore it as it was.

    A large sheet becomes millions of small objects that all stay alive until the end,
    and none of them forms a cycle (reference counting frees whatever is dropped). The
    collector would still walk them over and over as they pile up: about a second for
    100,000 rows, for nothing.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # Everything allocated meanwhile sits in the youngest generation: the first
        # collection after enabling would walk all of it (0.12 s for 100,000 rows). A
        # freeze and unfreeze moves it to the oldest one at once, where it is walked
        # only when that generation is next collected in full, as any long-lived data is.
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()


def prepare(options: JobOptions) -> Prepared:
    """Load, validate and plan a handoff file; raise InputError if it cannot be used."""
    with _cyclic_gc_paused():
        sheet, columns, validator = _open(options)
        planner = Planner(campaign=options.campaign, allow_duplicates=options.allow_duplicates)
        plans: list[RowPlan] = []
        carried: dict[int, RowOutcome] = {}
        changed: dict[int, Changed] = {}
        with validator:
            validator.prefetch(_to_check(sheet, options))
            for plan, sent in _planned(sheet, columns, validator, planner, options, changed):
                plans.append(plan)
                if sent is not None:
                    carried[plan.row] = sent
        whole = planner.finish(plans)
        return Prepared(sheet, columns, whole, carried, validator.media, changed)


def validate_file(options: JobOptions, journal: Path | None = None) -> Report:
    """The `validate` command: plan everything, send nothing, write the results sheet.

    What the journal (`journal`, or the default one beside the results) records is
    shown as it is: a results sheet never says less than the journal knows. It is read
    read-only, without its lock: a run holding it goes on undisturbed. Rows to someone
    on the opt-out list (read only, as it stands) or in a --suppress file end `suppressed`.
    """
    output = options.output
    screen = Screen(read_suppress_files(options.suppress, options.region), read_entries())
    view = read_journal(journal or default_journal(output))
    if view is not None and view.records:
        report = _validate_with(options, view, screen)
    else:
        report = _validate_streaming(options, screen)
    if view is not None:
        report.journal_read, report.journal_busy = view.path, view.busy
    return report


def _validate_with(options: JobOptions, view: JournalView, screen: Screen) -> Report:
    """validate against a journal's records: the whole plan first, then the sheet."""
    prepared = prepare(options)
    plan, records = prepared.plan, view.records
    keys = {request.key for request in plan.requests}
    others = [r for key, r in records.items() if key not in keys and r.state is State.SENT]
    changed = {**prepared.changed, **changed_since(plan, records, others)}
    outcomes: dict[int, RowOutcome] = {}
    tally = LineTally()
    for row in plan.rows:
        known = any(request.key in records for request in row.requests)
        outcome = row_outcome(row, plan.chats, records) if known else planned_outcome(row)
        if row.row in changed and not options.resend_changed:
            outcome = changed[row.row].sent
        outcomes[row.row] = prepared.carried.get(row.row) or screen.outcome(row, outcome)
        if outcomes[row.row].status in _TO_SEND:
            for request in row.requests:
                if (record := records.get(request.key)) is None or record.state is not State.SENT:
                    tally.add(request)
    plans = tally.plans(options.pace)
    write_results(prepared.sheet, prepared.columns, outcomes, options.output, plans)
    report = summarize(options, plan, outcomes)
    report.lines, report.pace = plans, options.pace
    to_send = (row for row in plan.rows if outcomes[row.row].status is Status.PENDING)
    report.preview = first_rows(to_send, options.preview, prepared.media, who_gets)
    report.sheet = sheet_read(prepared.sheet, prepared.columns, options.include_hidden)
    report.planned_only = True
    report.encoding = prepared.sheet.encoding
    report.changed = sorted(changed.values())
    report.media_urls = sum(media.kind is MediaKind.URL for media in prepared.media.values())
    return report


def _validate_streaming(options: JobOptions, screen: Screen) -> Report:
    """validate with no journal to consult: each row is written as soon as it is planned."""
    with _cyclic_gc_paused():
        sheet, columns, validator = _open(options)
        planner = Planner(campaign=options.campaign, allow_duplicates=options.allow_duplicates)
        report = Report(
            options.path,
            options.output,
            planned_only=True,
            encoding=sheet.encoding,
            pace=options.pace,
            sheet=sheet_read(sheet, columns, options.include_hidden),
        )
        tally = LineTally()

        def outcome(plan: RowPlan, sent: RowOutcome | None) -> RowOutcome:
            made = sent or screen.outcome(plan, planned_outcome(plan))
            _count(report, plan, made)  # as summarize() would, without keeping every row
            if made.status is Status.PENDING:
                for request in plan.requests:
                    tally.add(request)
            if made.status is Status.PENDING and len(report.preview) < options.preview:
                report.preview.append(shown_row(plan, validator.media, who_gets))
            return made

        with validator:
            validator.prefetch(_to_check(sheet, options))
            # Each row's result line is written as soon as the row is planned, so the
            # writing overlaps with the numbers a helper process may still be working out.
            changed: dict[int, Changed] = {}
            planned = _planned(sheet, columns, validator, planner, options, changed)
            made = (outcome(*row) for row in planned)
            # The Summary sheet asks for the plans once every row is written and counted.
            write_rows(sheet, columns, made, options.output, lambda: tally.plans(options.pace))
        report.media_urls = sum(media.kind is MediaKind.URL for media in validator.media.values())
    report.changed = sorted(changed.values())
    report.lines = tally.plans(options.pace)
    return report


# Rows a run would send (again): not yet sent, or refused before and retried.
_TO_SEND = frozenset({Status.PENDING, Status.FAILED})


def _open(options: JobOptions) -> tuple[Sheet, ColumnMap, RowValidator]:
    """Load the sheet and map its columns; the validator is to be closed after use."""
    if options.template_replaces is not None and options.template is None:
        raise UsageError(
            "--template-replaces says which text column --template replaces, and there is "
            "no --template.",
            hint="Add --template FILE, or drop --template-replaces.",
        )
    template = read_template(options.template) if options.template is not None else ""
    # A large workbook's numbers are worked out by a helper while the sheet is read.
    book = PhoneBook(options.region)
    book.read_ahead(options.path)
    try:
        return _opened(options, template, book)
    except BaseException:
        book.close()
        raise


def _opened(
    options: JobOptions, template: str, book: PhoneBook
) -> tuple[Sheet, ColumnMap, RowValidator]:
    sheet = load_sheet(options.path, options.sheet)
    where = f"{options.path}" + (f", sheet {sheet.sheet_name!r}" if sheet.sheet_name else "")
    columns = map_columns(
        sheet.headers,
        where=where,
        has_default_sender=bool(options.default_sender),
        has_template=bool(template),
    )
    replaces = None
    if options.template is not None:
        replaces = replaced_column(
            columns, where=where, template=options.template, replaces=options.template_replaces
        )
    if not sheet.rows:
        named = ", ".join(header for header in sheet.headers if header)
        raise NothingToSend(
            f"{where} has a header row ({named}) but no rows under it: there is nothing to send.",
            hint="Add the messages as rows under the header, then run again.",
        )
    rules = Rules(
        region=options.region,
        default_sender=options.default_sender,
        folder=options.path.parent,
        allow_loopback_media=options.allow_loopback_media,
        allow_hardlinks=options.allow_hardlinks,
        template=template,
        template_name=f"--template {options.template}" if options.template else "",
        template_replaces=replaces,
    )
    _check_placeholders(sheet, columns, rules, where)
    escaped = holds_escaped_cells(sheet.kind, columns)
    delimiter = sheet.delimiter if sheet.kind == "csv" else ""
    validator = RowValidator(
        columns,
        rules,
        sheet.scientific,
        escaped=escaped,
        delimiter=delimiter,
        formats_problem=sheet.formats_problem,
        recipients=book,
    )
    return sheet, columns, validator


def _check_placeholders(sheet: Sheet, columns: ColumnMap, rules: Rules, where: str) -> None:
    """Every placeholder names a column, or nothing is sent: a UsageError listing them all."""
    indexes = [index for kind, index in columns.parts if kind != "media"]
    indexes = [index for index in indexes if index != rules.template_replaces]
    if columns.subject is not None:
        indexes.append(columns.subject)
    texts = (_column(sheet.rows, index) for index in indexes)
    if all(all_placeholders_known(column, sheet.headers) for column in (*texts, [rules.template])):
        return  # nearly always: the cells' rows need not be worked out
    cells = ((row.number, row.cell(index)) for row in sheet.rows for index in indexes)
    template = [(0, rules.template)] if rules.template else []
    missing = missing_placeholders(itertools.chain(template, cells), sheet.headers)
    if missing:
        raise missing_error(where, missing, sheet.headers)


def _column(rows: Sequence[SheetRow], index: int) -> Iterable[str]:
    """Every row's cell in one column, in order ("" past the end of a short row)."""
    cells = list(map(operator.itemgetter(1), rows))
    if min(map(len, cells), default=0) > index:  # no row is short: no Python per cell
        return map(operator.itemgetter(index), cells)
    return (row.cell(index) for row in rows)


def _planned(
    sheet: Sheet,
    columns: ColumnMap,
    validator: RowValidator,
    planner: Planner,
    options: JobOptions,
    changed: dict[int, Changed],
) -> Iterator[tuple[RowPlan, RowOutcome | None]]:
    """Each row's plan, in sheet order, and the result cells an earlier run sent it with.

    A row marked sent whose content no longer gives the keys it was sent under was
    edited since: it goes into `changed`, and is planned anew only with resend_changed.
    """
    status_column = columns.results.get("status")
    key_column = columns.results.get("idempotency_key")
    note_column = columns.results.get("error_message")
    hidden_rows = sheet.hidden_rows
    for row in sheet.rows:
        earlier = _kept_status(row.cell(status_column)) if status_column is not None else None
        if hidden_rows or earlier is Status.SKIPPED:
            note = validator.clean(row.cell(note_column)) if note_column is not None else ""
            verdict = hidden_verdict(
                row.number in hidden_rows, earlier, note, options.include_hidden
            )
            if verdict == "skip":
                skipped = SettledRow(row.number, None, Status.SKIPPED)
                yield planner.plan(skipped), RowOutcome(Status.SKIPPED, error_message=HIDDEN_NOTE)
                continue
            if verdict == "plan anew":
                earlier = None
        checked = validator(row)
        if earlier is not None and earlier is not Status.SENT:
            # Skipped or suppressed in an earlier run: it stays so, with its note.
            yield (
                planner.plan(SettledRow(row.number, None, earlier)),
                _carried_outcome(row.cells, columns, validator.clean, earlier),
            )
        elif earlier is Status.SENT:
            message = checked if isinstance(checked, Message) else None
            sent = _carried_outcome(row.cells, columns, validator.clean)
            keys = row.cell(key_column).split() if key_column is not None else []
            if message is not None and not planner.still_as_sent(message, keys):
                who = describe_chat(message.recipients, message.subject, message.chat_id)
                kept = sent._replace(error_message=changed_note(sent.sent_at))
                changed[row.number] = Changed(row.number, sent.sent_at, who, kept)
                if options.resend_changed:
                    yield planner.plan(message), None
                    continue
                sent = kept
            yield planner.plan(SettledRow(row.number, message)), sent
        else:
            yield planner.plan(checked), None


def _to_check(sheet: Sheet, options: JobOptions) -> Iterable[SheetRow]:
    """The rows whose numbers are worked out: not those skipped as hidden."""
    if not sheet.hidden_rows or options.include_hidden:
        return sheet.rows
    return [row for row in sheet.rows if row.number not in sheet.hidden_rows]


def _kept_status(cell: str) -> Status | None:
    """The status a results sheet's cell gives a row for good (sent, skipped, ...), if any."""
    try:
        status = Status(cell.strip().lower())
    except ValueError:
        return None
    return status if status in KEPT_FROM_RESULTS else None


def changed_note(sent_at: str) -> str:
    """What a row sent earlier and changed since says when it is not sent again."""
    when = f" on {sent_at[:10]}" if sent_at else ""
    return f"changed since it was sent{when}; not sent again (--resend-changed sends the new text)"


def who_gets(row: RowPlan) -> str:
    """Who a planned row's messages reach, as describe_chat says it."""
    first = row.requests[0]
    return describe_chat(first.recipients, first.subject, first.chat_id)


def describe_chat(recipients: Sequence[str], subject: str, chat_id: str) -> str:
    """Who a chat reaches, in words a confirmation can use (the sheet holds no names)."""
    if len(recipients) == 1:
        return recipients[0]
    if recipients:
        named = f' "{subject}"' if subject else ""
        return f"the group{named} ({len(recipients)} people: {recipients[0]}, ...)"
    return f"chat {chat_id}"


def changed_since(
    plan: Plan, records: Mapping[str, Record], others: Iterable[Record]
) -> dict[int, Changed]:
    """Rows the journal knows as sent under another key: edited since they were sent.

    "The same row" is the same row number in the same chat (sender and recipients, or
    chat id), with a journal record sent under a key this plan no longer makes. A row
    inserted above others shifts their numbers, but the rows then meet other chats, or
    keys the plan still makes; a warning that is sometimes unneeded beats a silent
    second message.
    """
    earlier: dict[tuple[int, str], list[Record]] = {}
    for record in others:
        earlier.setdefault((record.row, record.chat), []).append(record)
    if not earlier:
        return {}
    found: dict[int, Changed] = {}
    for row in plan.rows:
        for request in row.requests:
            sent = earlier.get((row.row, request.chat))
            now = records.get(request.key)
            if sent and (now is None or now.state is not State.SENT):
                sent.sort(key=lambda record: record.step)
                who = describe_chat(request.recipients, request.subject, request.chat_id)
                found[row.row] = Changed(row.row, sent[-1].sent_at, who, _sent_outcome(sent))
                break
    return found


def _sent_outcome(sent: Sequence[Record]) -> RowOutcome:
    """The result a changed row keeps: what the journal holds as sent for it, with a note."""
    return RowOutcome(
        Status.SENT,
        chat_id=sent[0].chat_id,
        message_id=" ".join(record.message_id for record in sent),
        error_message=changed_note(sent[-1].sent_at),
        idempotency_key=" ".join(record.key for record in sent),
        attempts=str(sum(record.attempts for record in sent)),
        sent_at=sent[-1].sent_at,
        trace_id=sent[-1].trace_id,
    )


def planned_outcome(row: RowPlan) -> RowOutcome:
    """A row's result columns before anything is sent."""
    if row.problem is not None:
        return RowOutcome(
            Status.INVALID,
            error_code=str(row.problem.code),
            error_message=f"{row.problem.column}: {row.problem.message}",
        )
    if row.status is Status.DUPLICATE:
        return RowOutcome(
            Status.DUPLICATE,
            error_message=f"repeats row {row.duplicate_of}; not sent again "
            "(--allow-duplicates sends it anyway)",
        )
    keys = " ".join([request.key for request in row.requests])
    # No chat id for a row not sent: a chat_id cell means "follow up in this chat" when
    # the sheet is read again, and the writer keeps any chat id the row itself names.
    return RowOutcome(row.status, idempotency_key=keys)


def summarize(options: JobOptions, plan: Plan, outcomes: dict[int, RowOutcome]) -> Report:
    """Counts by status and by code, and every problem in sheet order."""
    report = Report(options.path, options.output)
    for row in plan.rows:
        _count(report, row, outcomes[row.row])
    return report


def _count(report: Report, row: RowPlan, outcome: RowOutcome) -> None:
    """Count one row in the summary; a failed row is a problem too (the API's, if coded)."""
    report.by_status[outcome.status] += 1
    coded = outcome.error_code.isdigit()
    if coded:
        report.by_code[int(outcome.error_code)] += 1
    if row.problem is not None:
        report.problems.append(row.problem)
    elif outcome.status is Status.FAILED:
        # Local refusals are `invalid`: a failed row with a code is one Chert answered.
        code = int(outcome.error_code) if coded else 0
        source: ProblemSource = "api" if coded else "local"
        report.problems.append(Problem(row.row, "", "", code, outcome.error_message, source))
        report.reused_keys += is_reused_key(outcome.error_message)


def _carried_outcome(
    cells: tuple[str, ...],
    columns: ColumnMap,
    clean: Callable[[str], str],
    status: Status = Status.SENT,
) -> RowOutcome:
    """The result cells of a row an earlier run settled, kept as they are (read by `clean`).

    A sent row keeps its ids; a skipped or suppressed one its note (why it was not sent).
    """

    def cell(name: str) -> str:
        index = columns.results.get(name)
        return clean(cells[index]) if index is not None and index < len(cells) else ""

    return RowOutcome(
        status,
        chat_id=cell("chat_id"),
        message_id=cell("message_id"),
        error_message="" if status is Status.SENT else cell("error_message"),
        idempotency_key=cell("idempotency_key"),
        attempts=cell("attempts"),
        sent_at=cell("sent_at"),
        trace_id=cell("trace_id"),
    )


def row_outcome(
    row: RowPlan,
    chats: Mapping[str, Sequence[Request]],
    records: Mapping[str, Record],
    conflicts: Collection[str] = (),
) -> RowOutcome:
    """A row's result columns from its requests' journal entries (`chats`: the plan's)."""
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
            # Sent records carry a note only when sent earlier, from another sheet or journal.
            error_message=next(
                (record.error_message for record in done if record.error_message), ""
            ),
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
                error_message=_sent_part(done) + api_text(record.error_message),
                trace_id=record.trace_id,
                **common,
            )
    reason = _pending_reason(row, chats, records)
    status = Status.FAILED if reason.startswith(_CREATOR_FAILED) else Status.PENDING
    return RowOutcome(status, error_message=_sent_part(done) + reason, **common)


def _sent_part(done: list[Record]) -> str:
    return f"first part sent (chat {done[0].chat_id}); the rest: " if done else ""


_CREATOR_FAILED = "not sent:"


def _pending_reason(
    row: RowPlan, chats: Mapping[str, Sequence[Request]], records: Mapping[str, Record]
) -> str:
    for request in row.requests:
        record = records.get(request.key)
        if record is None:
            creator = _creator(request, chats)
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
            return api_text(record.error_message)
    return "not sent yet; run again"


def _creator(request: Request, chats: Mapping[str, Sequence[Request]]) -> Request | None:
    first = chats.get(request.chat, ())
    return first[0] if first and first[0].creates_chat else None
