"""The results writer's shortcuts: result columns in order, rows without an outcome."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from batcher.columns import RESULT_COLUMNS, map_columns
from batcher.loading import load_sheet
from batcher.model import RowOutcome, Status
from batcher.results import write_results, write_rows
from tests.sheets import write_csv


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.reader(stream))


def test_outcome_fields_are_the_result_columns_in_order() -> None:
    """The writer appends an outcome's fields as they come: they must be the columns."""
    assert RowOutcome._fields == RESULT_COLUMNS
    outcome = RowOutcome(Status.INVALID, error_code="1003", trace_id="t")
    assert list(outcome.cells()) == list(RESULT_COLUMNS)
    assert tuple(outcome.cells().values()) == (str(outcome.status), *outcome[1:])


@pytest.mark.parametrize(
    ("headers", "expected_tail"),
    [
        (["From", "To", "Text"], [""] * len(RESULT_COLUMNS)),
        # A results sheet: its own result columns keep their cells; the rest are appended.
        (
            ["From", "To", "Text", "status", "chat_id"],
            ["pending", "chat-1"] + [""] * (len(RESULT_COLUMNS) - 2),
        ),
    ],
)
def test_rows_without_an_outcome_keep_their_cells(
    tmp_path: Path, headers: list[str], expected_tail: list[str]
) -> None:
    """A row missing from `outcomes` is written as read, padded to the header's width."""
    first = ["+15555550100", "4155551234", "hi", "pending", "chat-1"][: len(headers)]
    path = write_csv(tmp_path / "in.csv", [headers, first, ["+15555550100", "4155552671"]])
    sheet = load_sheet(path)
    columns = map_columns(sheet.headers, where="in.csv", has_default_sender=False)
    outcome = RowOutcome(Status.INVALID, error_code="1001", error_message="Text: empty")
    write_results(sheet, columns, {3: outcome}, tmp_path / "out.csv")
    header, row2, row3 = read_csv(tmp_path / "out.csv")
    assert len(header) == len(row2) == len(row3) == 3 + len(RESULT_COLUMNS)
    assert row2 == first[:3] + expected_tail
    assert row3[:3] == ["+15555550100", "4155552671", ""]
    assert row3[header.index("status")] == "invalid"
    assert row3[header.index("error_message")] == "Text: empty"


def test_write_rows_takes_outcomes_as_it_writes(tmp_path: Path) -> None:
    """write_rows gives the same file as write_results, taking each outcome when needed."""
    rows = [["From", "To", "Text"], *([f"+1555555010{n}", "4155551234", "hi"] for n in range(5))]
    path = write_csv(tmp_path / "in.csv", rows)
    sheet = load_sheet(path)
    columns = map_columns(sheet.headers, where="in.csv", has_default_sender=False)
    outcomes = {
        row.number: RowOutcome(Status.PENDING, idempotency_key=f"k{row.number}")
        for row in sheet.rows
    }
    write_results(sheet, columns, outcomes, tmp_path / "all.csv")
    taken: list[int] = []

    def made() -> Iterator[RowOutcome | None]:
        for row in sheet.rows:
            taken.append(row.number)
            yield outcomes[row.number]

    write_rows(sheet, columns, made(), tmp_path / "made.csv")
    assert (tmp_path / "made.csv").read_bytes() == (tmp_path / "all.csv").read_bytes()
    assert taken == [2, 3, 4, 5, 6]
