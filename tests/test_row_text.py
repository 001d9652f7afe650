"""Text is sent whole, as written, or its row is refused: never cut, never with hidden bytes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from batcher.loading import load_sheet
from batcher.model import Problem, Status
from batcher.pipeline import JobOptions, prepare
from batcher.sandbox import RunningSandbox
from batcher.validation import MAX_PART_CHARS
from tests.runs import LINE_A, cli_env, ledger, run_cli
from tests.sheets import Cell, write_xlsx

SAM = "4155551234"
COMMA_FIX = (
    'Text with commas must be quoted ("Hello, world"): save the file from a spreadsheet, '
    "which quotes it, or put quotes around such text."
)


def raw_csv(path: Path, text: str) -> Path:
    """A CSV file exactly as typed by hand, unquoted commas and all."""
    path.write_text(text, encoding="utf-8", newline="")
    return path


def verdicts(path: Path) -> list[tuple[int, Status, Problem | None]]:
    """(row, status, problem) of every row of a planned sheet."""
    prepared = prepare(JobOptions(path=path, default_sender=LINE_A))
    return [(row.row, row.status, row.problem) for row in prepared.plan.rows]


def only_problem(path: Path) -> Problem:
    """The problem of a sheet's one row."""
    [(_, status, problem)] = verdicts(path)
    assert status is Status.INVALID
    assert problem is not None
    return problem


@pytest.mark.parametrize(
    ("content", "column", "value", "message"),
    [
        (
            f"To,Text\n{SAM},Hello, world\n",
            "column C",
            " world",
            "the row has 3 cells but the header names 2 columns, and ' world' is under no "
            f"header. {COMMA_FIX}",
        ),
        (
            f"To,Text,,\n{SAM},Hi, Sam, how are you?,,\n",
            "column C",
            " Sam",
            "the row has 4 cells but the header names 2 columns, and ' Sam' is under no "
            f"header. {COMMA_FIX}",
        ),
        (
            f"To;Text\n{SAM};Hello; world\n",
            "column C",
            " world",
            "the row has 3 cells but the header names 2 columns, and ' world' is under no "
            'header. Text with semicolons must be quoted ("Hello; world"): save the file '
            "from a spreadsheet, which quotes it, or put quotes around such text.",
        ),
    ],
)
def test_csv_row_wider_than_header_is_invalid(
    tmp_path: Path, content: str, column: str, value: str, message: str
) -> None:
    """Unquoted commas in a text: the row is invalid, saying how many cells against how many."""
    problem = only_problem(raw_csv(tmp_path / "in.csv", content))
    assert (problem.row, problem.code, problem.column, problem.value) == (2, 1002, column, value)
    assert problem.message == message


def test_xlsx_cell_under_no_header_is_invalid(tmp_path: Path) -> None:
    """The same rule for a workbook, with the fix that fits one."""
    path = write_xlsx(tmp_path / "in.xlsx", [["To", "Text"], [SAM, "Hello", None, "world"]])
    problem = only_problem(path)
    assert (problem.code, problem.column, problem.value) == (1002, "column D", "world")
    assert problem.message == (
        "the row has 4 cells but the header names 2 columns, and 'world' is under no header. "
        "Give the column a header, or clear the cell."
    )


@pytest.mark.parametrize(
    "content",
    [
        f"To,Text\n{SAM},hi,,\n",
        f"To,Text,,\n{SAM},hi,,\n",
        f"To,Text\n{SAM},hi, ,\t\n",
        f'To,Text\n{SAM},"Hello, world"\n',
        f"To,,Text\n{SAM},note,hi\n",
    ],
)
def test_empty_trailing_cells_do_not_count(tmp_path: Path, content: str) -> None:
    """Empty cells past the header, quoted commas and named columns after a gap are fine."""
    [(_, status, problem)] = verdicts(raw_csv(tmp_path / "in.csv", content))
    assert (status, problem) == (Status.PENDING, None)


def test_unquoted_comma_is_not_sent_cut(tmp_path: Path, box: RunningSandbox) -> None:
    """`run` sends nothing for such a row (it used to send "Hello"), and the results say why."""
    path = raw_csv(tmp_path / "in.csv", f"From,To,Text\n{LINE_A},{SAM},Hello, world\n")
    result = run_cli(["run", str(path), "--yes"], cli_env(box))
    assert result.returncode == 1, result.stdout + result.stderr
    assert ledger(box) == []
    assert "row 2, column D: the row has 4 cells but the header names 3 columns" in result.stdout
    with (tmp_path / "in.results.csv").open(encoding="utf-8-sig", newline="") as stream:
        [row] = list(csv.DictReader(stream))
    assert (row["status"], row["error_code"]) == ("invalid", "1002")


def test_nul_anywhere_makes_its_row_invalid(tmp_path: Path) -> None:
    """A NUL early or far past the first 64 KB: that row is invalid, the others go."""
    filler = "".join(f"{SAM},filler {n:06d} {'x' * 80}\n" for n in range(1000))
    path = tmp_path / "in.csv"
    path.write_bytes(
        f"To,Text\n{SAM},early\x00nul\n{filler}{SAM},later\x00nul\n4155552671,fine\n".encode()
    )
    assert path.stat().st_size > 65536
    found = {row: (status, problem) for row, status, problem in verdicts(path)}
    for row in (2, 1003):
        status, problem = found[row]
        assert status is Status.INVALID
        assert problem is not None
        assert (problem.column, problem.code) == ("Text", 1002)
        assert problem.message.startswith("contains a NUL character (U+0000, at character 6)")
    assert found[1004] == (Status.PENDING, None)
    assert sum(status is Status.PENDING for status, _ in found.values()) == 1001


@pytest.mark.parametrize(
    ("text", "control"),
    [
        ("ding\x07dong", "U+0007 (at character 5)"),
        ("\x1b[31mred", "U+001B (at character 1)"),
        ("del\x7f", "U+007F (at character 4)"),
        ("next\x85line", "U+0085 (at character 5)"),
        ("vertical\x0btab", "U+000B (at character 9)"),
    ],
)
def test_control_characters_in_text_are_refused(tmp_path: Path, text: str, control: str) -> None:
    """A control character in a text: the row is invalid, naming it."""
    problem = only_problem(raw_csv(tmp_path / "in.csv", f'To,Text\n{SAM},"{text}"\n'))
    assert (problem.column, problem.code) == ("Text", 1002)
    assert problem.message.startswith(f"contains the control character {control}, which")


def test_tab_new_line_and_cr_are_text(tmp_path: Path) -> None:
    """Tab, new line and CR inside a text are kept, not refused."""
    path = raw_csv(tmp_path / "in.csv", f'To,Text\n{SAM},"a\tb\nc\r\nd"\n')
    [(_, status, _)] = verdicts(path)
    assert status is Status.PENDING


def test_control_character_in_subject_is_refused(tmp_path: Path) -> None:
    """The subject (a group's name) is sent too, so the same rule holds for it."""
    path = raw_csv(tmp_path / "in.csv", f"To,Subject,Text\n{SAM};4155552671,Team\x07,hi\n")
    problem = only_problem(path)
    assert (problem.column, problem.code) == ("Subject", 1002)
    assert "U+0007" in problem.message


@pytest.mark.parametrize(
    ("sheet", "template", "refused"),
    [
        # The row's cells are searched once for controls: each way one reaches a part.
        (f"To,Name,Text\n{SAM},Sam\x07,Hi {{{{Name}}}}\n", "", "Text"),
        (f"To,Name\n{SAM},Sam\n", "Hi {{Name}}\x07", "--template"),
        (f"To,Name\n{SAM},Sam\x1b\n", "Hi {{Name}}", "--template"),
        (f"To,Notes,Text\n{SAM},a\x07b,hi\n", "", ""),  # a column not sent: no matter
    ],
)
def test_control_characters_wherever_they_come_from(
    tmp_path: Path, sheet: str, template: str, refused: str
) -> None:
    """A control character reaching a part by a placeholder or --template is refused too."""
    path = raw_csv(tmp_path / "in.csv", sheet)
    options = JobOptions(path=path, default_sender=LINE_A)
    if template:
        (tmp_path / "t.txt").write_text(template, encoding="utf-8")
        options = JobOptions(path=path, default_sender=LINE_A, template=tmp_path / "t.txt")
    [row] = prepare(options).plan.rows
    if not refused:
        assert row.status is Status.PENDING
        return
    assert row.problem is not None
    assert (row.problem.column.split(" ")[0], row.problem.code) == (refused, 1002)
    assert "control character" in row.problem.message


def long_sheet(tmp_path: Path, rows: list[list[Cell]]) -> Path:
    """A CSV handoff file with long cells, quoted as a spreadsheet writes them."""
    path = tmp_path / "in.csv"
    with path.open("w", encoding="utf-8", newline="") as stream:
        csv.writer(stream).writerows(rows)
    return path


def test_fields_over_131072_characters_are_read_whole(tmp_path: Path) -> None:
    """The csv module's own limit no longer refuses the file: the cell is read whole."""
    text = "é" * 200_000
    path = long_sheet(tmp_path, [["To", "Text", "Notes"], [SAM, "hi", text]])
    [row] = load_sheet(path).rows
    assert row.cells == (SAM, "hi", text)
    [(_, status, _)] = verdicts(path)
    assert status is Status.PENDING  # a long cell that is not sent is no problem


@pytest.mark.parametrize(
    ("header", "kind"),
    [("Text", "text"), ("Subject", "subject"), ("Link", "rich link")],
)
def test_part_over_the_limit_is_invalid(tmp_path: Path, header: str, kind: str) -> None:
    """A part longer than chert-batch sends is refused with its length and the limit."""
    value = "https://example.com/" + "a" * 200_000 if kind == "rich link" else "a" * 200_000
    row: dict[str, Cell] = {"To": f"{SAM};4155552671", "Text": "hi", header: value}
    path = long_sheet(tmp_path, [list(row), list(row.values())])
    problem = only_problem(path)
    assert (problem.column, problem.code) == (header, 1009)
    assert problem.value == f"{len(value):,} characters"
    assert problem.message.startswith(
        f"the {kind} is {len(value):,} characters long; chert-batch sends at most 10,000 in "
        "one part, and never cuts one. Shorten it"
    )


def test_text_at_the_limit_is_sent_whole(tmp_path: Path, box: RunningSandbox) -> None:
    """A text of exactly the limit is sent, every character; one more is refused."""
    whole, over = "ü" * MAX_PART_CHARS, "ü" * (MAX_PART_CHARS + 1)
    path = long_sheet(
        tmp_path,
        [["From", "To", "Text"], [LINE_A, SAM, whole], [LINE_A, "4155552671", over]],
    )
    result = run_cli(["run", str(path), "--yes"], cli_env(box))
    assert result.returncode == 1, result.stdout + result.stderr
    [sent] = ledger(box)
    assert sent["parts"] == [{"type": "text", "value": whole}]
    assert "row 3, column Text: the text is 10,001 characters long" in result.stdout
