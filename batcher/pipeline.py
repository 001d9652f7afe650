"""Orchestration: load → normalize and validate → plan → (send) → write the results sheet.

The CLI calls one function per command; everything here takes values and
returns values, and nothing here prints.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batcher.cells import holds_escaped_cells
from batcher.columns import ColumnMap, map_columns
from batcher.loading import Sheet, load_sheet
from batcher.media import Media, MediaKind
from batcher.model import CODE_MEANINGS, Problem, RowOutcome, Status
from batcher.planning import Plan, Planner, RowPlan, SettledRow
from batcher.results import default_output, write_rows
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
    # Media files may be hard links (see batcher.media.check_file).
    allow_hardlinks: bool = False
    # Test-only: media URLs may be plain http to this machine.
    allow_loopback_media: bool = False

    @property
    def output(self) -> Path:
        """Where the results sheet goes."""
        return default_output(self.path, self.out)


@dataclass(frozen=True)
class Prepared:
    """A handoff file read, validated and planned: everything but the sending."""

    sheet: Sheet
    columns: ColumnMap
    plan: Plan
    carried: dict[int, RowOutcome]
    # Media to upload before sending, by the reference parts carry (see batcher.media).
    media: dict[str, Media] = field(default_factory=dict)


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
    # Distinct media URLs that passed what validate checks: their hosts are checked when sending.
    media_urls: int = 0

    @property
    def total(self) -> int:
        """How many rows the sheet has (blank rows not counted)."""
        return sum(self.by_status.values())

    @property
    def exit_code(self) -> int:
        """0 when every row is settled as wanted, 1 when some need attention."""
        unsettled = {Status.INVALID, Status.FAILED}
        if not self.planned_only:
            unsettled.add(Status.PENDING)
        return 1 if any(self.by_status[status] for status in unsettled) else 0

    def to_json(self) -> dict[str, Any]:
        """The summary as plain data, for `--json`."""
        return {
            "input": str(self.source),
            "results": str(self.output),
            "rows": self.total,
            "by_status": {str(status): self.by_status[status] for status in Status},
            "by_code": {
                str(code): {"count": count, "meaning": CODE_MEANINGS.get(code, "")}
                for code, count in sorted(self.by_code.items())
            },
            "problems": [
                {
                    "row": problem.row,
                    "column": problem.column,
                    "value": problem.value,
                    "code": problem.code,
                    "message": problem.message,
                }
                for problem in self.problems
            ],
        }


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
        if enabled:
            gc.enable()


def prepare(options: JobOptions) -> Prepared:
    """Load, validate and plan a handoff file; raise InputError if it cannot be used."""
    with _cyclic_gc_paused():
        sheet, columns, validator = _open(options)
        planner = Planner(campaign=options.campaign, allow_duplicates=options.allow_duplicates)
        plans: list[RowPlan] = []
        carried: dict[int, RowOutcome] = {}
        with validator:
            validator.prefetch(sheet.rows)
            for plan, sent in _planned(sheet, columns, validator, planner):
                plans.append(plan)
                if sent is not None:
                    carried[plan.row] = sent
        return Prepared(sheet, columns, planner.finish(plans), carried, validator.media)


def validate_file(options: JobOptions) -> Report:
    """The `validate` command: plan everything, send nothing, write the results sheet."""
    with _cyclic_gc_paused():
        sheet, columns, validator = _open(options)
        planner = Planner(campaign=options.campaign, allow_duplicates=options.allow_duplicates)
        report = Report(options.path, options.output, planned_only=True)

        def outcome(plan: RowPlan, sent: RowOutcome | None) -> RowOutcome:
            made = sent or planned_outcome(plan)
            _count(report, plan, made)  # as summarize() would, without keeping every row
            return made

        with validator:
            validator.prefetch(sheet.rows)
            # Each row's result line is written as soon as the row is planned, so the
            # writing overlaps with the numbers a helper process may still be working out.
            planned = _planned(sheet, columns, validator, planner)
            write_rows(sheet, columns, (outcome(*row) for row in planned), options.output)
        report.media_urls = sum(media.kind is MediaKind.URL for media in validator.media.values())
    return report


def _open(options: JobOptions) -> tuple[Sheet, ColumnMap, RowValidator]:
    """Load the sheet and map its columns; the validator is to be closed after use."""
    sheet = load_sheet(options.path, options.sheet)
    where = f"{options.path}" + (f", sheet {sheet.sheet_name!r}" if sheet.sheet_name else "")
    columns = map_columns(
        sheet.headers, where=where, has_default_sender=bool(options.default_sender)
    )
    rules = Rules(
        region=options.region,
        default_sender=options.default_sender,
        folder=options.path.parent,
        allow_loopback_media=options.allow_loopback_media,
        allow_hardlinks=options.allow_hardlinks,
    )
    escaped = holds_escaped_cells(sheet.kind, columns)
    return sheet, columns, RowValidator(columns, rules, sheet.scientific, escaped=escaped)


def _planned(
    sheet: Sheet, columns: ColumnMap, validator: RowValidator, planner: Planner
) -> Iterator[tuple[RowPlan, RowOutcome | None]]:
    """Each row's plan, in sheet order, and the result cells an earlier run sent it with."""
    status_column = columns.results.get("status")
    for row in sheet.rows:
        checked = validator(row)
        if status_column is not None and row.cell(status_column).strip().lower() == "sent":
            settled = SettledRow(row.number, checked if isinstance(checked, Message) else None)
            yield planner.plan(settled), _carried_outcome(row.cells, columns, validator.clean)
        else:
            yield planner.plan(checked), None


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
    """Count one row in the summary."""
    report.by_status[outcome.status] += 1
    if outcome.error_code.isdigit():
        report.by_code[int(outcome.error_code)] += 1
    if row.problem is not None:
        report.problems.append(row.problem)


def _carried_outcome(
    cells: tuple[str, ...], columns: ColumnMap, clean: Callable[[str], str]
) -> RowOutcome:
    """The result cells of a row an earlier run sent, kept as they are (read by `clean`)."""

    def cell(name: str) -> str:
        index = columns.results.get(name)
        return clean(cells[index]) if index is not None and index < len(cells) else ""

    return RowOutcome(
        Status.SENT,
        chat_id=cell("chat_id"),
        message_id=cell("message_id"),
        idempotency_key=cell("idempotency_key"),
        attempts=cell("attempts"),
        sent_at=cell("sent_at"),
        trace_id=cell("trace_id"),
    )
