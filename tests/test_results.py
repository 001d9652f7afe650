"""The results sheet: columns kept and appended, no formulas, atomic writes, round trips."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import load_workbook

from batcher.errors import OutputError
from batcher.pipeline import JobOptions, prepare, validate_file
from tests.sheets import write_csv, write_xlsx

SENDER = "+15555550100"
RESULT_HEADERS = [
    "status",
    "chat_id",
    "message_id",
    "error_code",
    "error_message",
    "idempotency_key",
    "attempts",
    "sent_at",
    "trace_id",
    "delivery",
    "delivered_at",
    "read_at",
    "replied_at",
    "reply",
]
ROWS = [
    ["Owner", "From", "To", "Text", "Link", "Notes"],
    ["dana", SENDER, "4155551234", "=SUM(A1:A9)", "", "-5"],
    ["dana", SENDER, "(415) 555-2671", "hi", "https://x.io", "@home"],
    ["li", SENDER, "415-555-12", "bad number", "", "+1 is not a phone"],
    ["li", SENDER, "4155551234", "=SUM(A1:A9)", "", "dup"],
]


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.reader(stream))


def read_xlsx(path: Path) -> list[list[object]]:
    sheet = load_workbook(path).worksheets[0]
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def test_csv_results_columns(tmp_path: Path) -> None:
    """Input columns unchanged and in order, result columns appended, a status per row."""
    path = write_csv(tmp_path / "in.csv", ROWS)
    report = validate_file(JobOptions(path=path))
    out = tmp_path / "in.results.csv"
    assert report.output == out
    lines = read_csv(out)
    assert lines[0] == ROWS[0] + RESULT_HEADERS
    assert [line[:6] for line in lines[1:]] == [
        ["dana", SENDER, "4155551234", "'=SUM(A1:A9)", "", "'-5"],
        ["dana", SENDER, "(415) 555-2671", "hi", "https://x.io", "'@home"],
        ["li", SENDER, "415-555-12", "bad number", "", "'+1 is not a phone"],
        ["li", SENDER, "4155551234", "'=SUM(A1:A9)", "", "dup"],
    ]
    assert [line[6] for line in lines[1:]] == ["pending", "pending", "invalid", "duplicate"]
    assert lines[3][9] == "1003"
    assert lines[1][11].startswith("cb1-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "in.results.csv"]


def test_xlsx_results_are_string_cells(tmp_path: Path) -> None:
    """In XLSX every written value is a string cell: no formula, no number."""
    path = write_csv(tmp_path / "in.csv", ROWS[:2])
    validate_file(JobOptions(path=path, out=tmp_path / "r.xlsx"))
    book = load_workbook(tmp_path / "r.xlsx")
    sheet = book.worksheets[0]
    row = next(iter(sheet.iter_rows(min_row=2, max_row=2)))
    assert all(cell.data_type == "s" for cell in row if cell.value is not None)
    assert row[3].value == "=SUM(A1:A9)"
    assert row[2].value == "4155551234"
    assert row[2].number_format == "@"


def test_out_extension_decides_format(tmp_path: Path) -> None:
    """--out with another extension converts: CSV in, XLSX out."""
    path = write_csv(tmp_path / "in.csv", ROWS[:2])
    validate_file(JobOptions(path=path, out=tmp_path / "r.xlsx"))
    assert read_xlsx(tmp_path / "r.xlsx")[1][6] == "pending"


def test_blank_rows_keep_row_numbers(tmp_path: Path) -> None:
    """The results sheet has its rows at the same numbers as the input's."""
    rows_in = [ROWS[0], ROWS[2], [], [*ROWS[2][:3], "yo"]]
    path = write_xlsx(tmp_path / "in.xlsx", rows_in, first_cell=(2, 1))
    validate_file(JobOptions(path=path))
    rows = read_xlsx(tmp_path / "in.results.xlsx")
    assert rows[1][0] == "Owner"
    assert rows[2][6] == "pending"
    assert rows[3][0] is None
    assert rows[4][6] == "pending"


def test_never_overwrites_the_input(tmp_path: Path) -> None:
    """--out pointing at the input is refused, and the input is unchanged."""
    path = write_csv(tmp_path / "in.csv", ROWS)
    before = path.read_bytes()
    with pytest.raises(OutputError, match="overwrite the input"):
        validate_file(JobOptions(path=path, out=path))
    assert path.read_bytes() == before


def test_unwritable_output_leaves_no_temporary(tmp_path: Path) -> None:
    """A failed write says what to do and leaves no half-written file behind."""
    path = write_csv(tmp_path / "in.csv", ROWS)
    with pytest.raises(OutputError, match="could not write"):
        validate_file(JobOptions(path=path, out=tmp_path / "missing" / "r.csv"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_round_trip(tmp_path: Path, kind: str) -> None:
    """Validating the results sheet gives the same statuses and keys, and updates in place."""
    rows = [
        *ROWS,
        ["li", SENDER, "4155551234;4155552671", "group hi", "https://x.io", ""],
        ["li", SENDER, "4155557788", "explicit", "", ""],
    ]
    rows[0] = [*ROWS[0], "idempotency_key"]
    rows[-1] = [*rows[-1], "my-key"]
    path = (write_csv if kind == "csv" else write_xlsx)(tmp_path / f"in.{kind}", rows)
    first = validate_file(JobOptions(path=path))
    second = validate_file(JobOptions(path=first.output, out=tmp_path / f"again.{kind}"))
    assert first.by_status == second.by_status
    read = read_csv if kind == "csv" else read_xlsx
    once, twice = read(first.output), read(second.output)
    assert once[0] == twice[0]
    assert once[0].count("status") == 1
    assert [line[6:] for line in once] == [line[6:] for line in twice]
    keys = {r.row: [q.key for q in r.requests] for r in prepare(JobOptions(path=path)).plan.rows}
    again = prepare(JobOptions(path=second.output))
    assert {r.row: [q.key for q in r.requests] for r in again.plan.rows} == keys
    assert keys[7] == ["my-key"]


def test_fixed_row_in_results_sheet_gets_a_fresh_key(tmp_path: Path) -> None:
    """A row fixed in the results sheet is a new message: its old key is not reused."""
    path = write_csv(tmp_path / "in.csv", ROWS[:2])
    first = validate_file(JobOptions(path=path))
    lines = read_csv(first.output)
    old_key = lines[1][11]
    lines[1][3] = "fixed text"
    with first.output.open("w", encoding="utf-8", newline="") as stream:
        csv.writer(stream).writerows(lines)
    (request,) = prepare(JobOptions(path=first.output)).plan.requests
    assert request.key.startswith("cb1-")
    assert request.key != old_key


def test_sent_rows_carried_over(tmp_path: Path) -> None:
    """Rows a results sheet marks sent stay sent, ids kept; their chat takes follow-ups."""
    path = write_csv(
        tmp_path / "in.csv",
        [
            ["From", "To", "Text", "status", "chat_id", "message_id"],
            [SENDER, "4155551234", "hello", "sent", "chat-9", "m-1"],
            [SENDER, "4155551234", "hello", "", "", ""],
            [SENDER, "4155551234", "second", "pending", "", ""],
        ],
    )
    prepared = prepare(JobOptions(path=path))
    assert [str(row.status) for row in prepared.plan.rows] == ["sent", "duplicate", "pending"]
    (request,) = prepared.plan.requests
    assert request.path() == "/chats/chat-9/messages"
    validate_file(JobOptions(path=path, out=tmp_path / "r.csv"))
    assert read_csv(tmp_path / "r.csv")[1][3:6] == ["sent", "chat-9", "m-1"]


def test_scientific_cell_stays_refused_through_the_results_sheet(tmp_path: Path) -> None:
    """A number Excel rounded is written back as shown, so a rerun cannot 'repair' it."""
    path = write_xlsx(
        tmp_path / "in.xlsx",
        [["From", "To", "Text"], [SENDER, 14155500000, "hi"]],
        formats={(2, 2): "0.00E+00"},
    )
    first = validate_file(JobOptions(path=path))
    assert read_xlsx(first.output)[1][1] == "1.41555E+10"
    again = prepare(JobOptions(path=first.output, out=tmp_path / "again.xlsx"))
    (row,) = again.plan.rows
    assert row.problem is not None
    assert row.problem.code == 1003


def test_follow_up_of_a_sent_row_keeps_its_key_through_validate(tmp_path: Path) -> None:
    """A pending follow-up of a sent row gets no chat id written, so its key stays put."""
    path = write_csv(
        tmp_path / "in.csv",
        [
            ["From", "To", "Text", "status", "chat_id"],
            [SENDER, "4155551234", "hello", "sent", "chat-9"],
            [SENDER, "4155551234", "second", "", ""],
        ],
    )
    before = [r.key for r in prepare(JobOptions(path=path)).plan.requests]
    first = validate_file(JobOptions(path=path, out=tmp_path / "r.csv"))
    assert read_csv(first.output)[2][4] == ""
    after = [r.key for r in prepare(JobOptions(path=first.output)).plan.requests]
    assert after == before
