"""Placeholders and --template through validate and run: verdicts, keys, round trips."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from batcher.cli import main
from batcher.client import Credentials
from batcher.pipeline import JobOptions
from batcher.running import RunOptions, Target, run_file
from batcher.sandbox import RunningSandbox
from batcher.sending import SendConfig
from tests.runs import LINE_A, assert_exactly_once, ledger
from tests.sheets import Table, write_csv, write_xlsx

SAM, ANA = "+14155551234", "+14155552671"
HEADERS = ["First Name", "From", "To", "Text"]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def write(path: Path, rows: Table) -> Path:
    """A handoff file in the format the suffix names."""
    return write_xlsx(path, rows) if path.suffix == ".xlsx" else write_csv(path, rows)


def results(path: Path) -> list[dict[str, str]]:
    """The rows of a results sheet, CSV or XLSX, as dicts of text."""
    if path.suffix == ".xlsx":
        sheet = load_workbook(path, read_only=True).active
        assert sheet is not None
        rows = [
            ["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)
        ]
        return [dict(zip(rows[0], row, strict=False)) for row in rows[1:]]
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


def validate_json(path: Path, *args: str) -> dict[str, object]:
    code, output = invoke("validate", str(path), "--json", *args)
    assert code in (0, 1), output
    summary = json.loads(output)
    assert isinstance(summary, dict)
    return summary


def keys_of(path: Path, *args: str) -> list[str]:
    """The idempotency keys validate writes for each row."""
    out = path.with_name(f"{path.stem}.checked{path.suffix}")
    validate_json(path, "--out", str(out), *args)
    return [row["idempotency_key"] for row in results(out)]


def test_a_placeholder_naming_no_column_is_a_usage_error(tmp_path: Path) -> None:
    """Every missing placeholder is listed with its rows, and the sheet's columns; exit 2."""
    path = write_csv(
        tmp_path / "in.csv",
        [
            HEADERS,
            ["Sam", LINE_A, SAM, "Hi {{Frist Name}}, see you at {{Venue}}"],
            ["Ana", LINE_A, ANA, "Hi {{frist-name|there}}"],
        ],
    )
    code, output = invoke("validate", str(path))
    assert code == 2
    assert output == (
        f"Error: {path}: 2 placeholders name no column: {{{{Frist Name}}}} (rows 2, 3); "
        "{{Venue}} (row 2). The sheet's columns are: 'First Name', 'From', 'To', 'Text'.\n"
        "Write each placeholder as one of those columns (case, spaces, dashes and "
        "underscores do not matter), or add the column. Nothing was sent.\n"
    )
    assert not (tmp_path / "in.results.csv").exists()


@pytest.mark.parametrize(
    ("name", "text", "status", "message"),
    [
        ("Sam", "Hi {{First Name}}", "pending", ""),
        ("", "Hi {{First Name|there}}", "pending", ""),
        ("\u00a0\u200b", "Hi {{First Name|there}}", "pending", ""),
        (
            "",
            "Hi {{First Name}}",
            "invalid",
            "Text: {{First Name}} has nothing to fill it: column 'First Name' is empty in "
            "this row. Fill it in, or give the placeholder a fallback: {{First Name|there}}.",
        ),
        (
            "  ",
            "Hi {{first_name}}",
            "invalid",
            "Text: {{first_name}} has nothing to fill it: column 'First Name' is empty in "
            "this row. Fill it in, or give the placeholder a fallback: {{first_name|there}}.",
        ),
        (
            "Sam",
            "Hi {{First Name}",
            "invalid",
            "Text: a stray '{{' at character 4 is not part of a whole placeholder. Write "
            "{{Column}} or {{Column|fallback}}, or remove the braces.",
        ),
    ],
)
def test_empty_cell_verdicts(
    tmp_path: Path, name: str, text: str, status: str, message: str
) -> None:
    """An empty cell behind a placeholder without a fallback, or stray braces: invalid."""
    path = write_csv(tmp_path / "in.csv", [HEADERS, [name, LINE_A, SAM, text]])
    validate_json(path)
    (row,) = results(tmp_path / "in.results.csv")
    assert (row["status"], row["error_message"]) == (status, message)


def test_subject_and_link_cells_are_rendered(tmp_path: Path) -> None:
    """Subject and link cells take placeholders too; the preview shows them filled."""
    path = write_csv(
        tmp_path / "in.csv",
        [
            ["Team", "Code", "From", "To", "Subject", "Text", "Link"],
            [
                "Ops",
                "x1",
                LINE_A,
                f"{SAM}; {ANA}",
                "{{Team}} crew",
                "Hi all",
                "https://e.com/{{Code}}",
            ],
        ],
    )
    summary = validate_json(path)
    assert summary["preview"] == [
        {
            "row": 2,
            "from": LINE_A,
            "to": f'the group "Ops crew" (2 people: {SAM}, ...)',
            "parts": [
                {"type": "text", "value": "Hi all"},
                {"type": "rich_link", "value": "https://e.com/x1"},
            ],
        }
    ]


def test_1005_applies_to_the_rendered_text(tmp_path: Path) -> None:
    """A URL that a placeholder brings into a DM's first text is refused with 1005."""
    path = write_csv(
        tmp_path / "in.csv",
        [["Site", "From", "To", "Text"], ["https://e.com/x", LINE_A, SAM, "See {{Site}}"]],
    )
    summary = validate_json(path)
    problems = summary["problems"]
    assert isinstance(problems, list)
    assert [(p["code"], p["value"]) for p in problems] == [(1005, "See https://e.com/x")]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_keys_follow_the_rendered_text(tmp_path: Path, suffix: str) -> None:
    """A rendered text has the key the same text typed out has; a new name, a new key."""
    typed = write(tmp_path / f"typed{suffix}", [HEADERS, ["Sam", LINE_A, SAM, "Hi Sam"]])
    merged = write(
        tmp_path / f"merged{suffix}", [HEADERS, ["Sam", LINE_A, SAM, "Hi {{First Name}}"]]
    )
    renamed = write(
        tmp_path / f"renamed{suffix}", [HEADERS, ["Sammy", LINE_A, SAM, "Hi {{First Name}}"]]
    )
    other = ".xlsx" if suffix == ".csv" else ".csv"
    across = write(
        tmp_path / f"across{other}", [HEADERS, ["Sam", LINE_A, SAM, "Hi {{First Name}}"]]
    )
    assert keys_of(merged) == keys_of(typed) == keys_of(across)
    assert keys_of(renamed) != keys_of(merged)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_results_sheet_fed_back_renders_the_same_keys(
    box: RunningSandbox, tmp_path: Path, suffix: str
) -> None:
    """Run a sheet with placeholders, feed its results back in: same keys, nothing resent."""
    path = write(
        tmp_path / f"in{suffix}",
        [
            HEADERS,
            ["Sam", LINE_A, SAM, "-Hi {{First Name|there}}"],
            ["", LINE_A, ANA, "'Hi {{First Name|there}}, {{To}}"],
        ],
    )
    target = Target(box.base_url, Credentials(box.secret), "sandbox")
    first = run_file(RunOptions(job=JobOptions(path=path), send=SendConfig(rate=0)), target)
    assert (first.sent_now, first.exit_code) == (2, 0)
    assert sorted(m["parts"][0]["value"] for m in ledger(box)) == [
        f"'Hi there, {ANA}",
        "-Hi Sam",
    ]
    sent = results(first.output)
    again = run_file(
        RunOptions(
            job=JobOptions(path=first.output, out=tmp_path / f"again{suffix}"),
            journal=tmp_path / "fresh.journal.sqlite",
            send=SendConfig(rate=0),
        ),
        target,
    )
    assert (again.sent_now, again.exit_code, again.changed) == (0, 0, [])
    assert keys_of(first.output) == [row["idempotency_key"] for row in sent]
    assert_exactly_once(box, 2)


def test_template_gives_every_rows_text(tmp_path: Path) -> None:
    """--template FILE: one text for a sheet of recipients and data; keys as if typed."""
    template = tmp_path / "invite.txt"
    template.write_text("Hi {{First Name|there}}, the doors open at 7.\n", encoding="utf-8")
    path = write_csv(
        tmp_path / "in.csv", [["First Name", "From", "To"], ["Sam", LINE_A, SAM], ["", LINE_A, ANA]]
    )
    typed = write_csv(
        tmp_path / "typed.csv",
        [
            HEADERS,
            ["Sam", LINE_A, SAM, "Hi Sam, the doors open at 7."],
            ["", LINE_A, ANA, "Hi there, the doors open at 7."],
        ],
    )
    code, output = invoke("validate", str(path), "--template", str(template))
    assert code == 0, output
    assert f"Next: send with: chert-batch run {path} --template {template}" in output
    assert f"row 3: {LINE_A} -> {ANA}: Hi there, the doors open at 7." in output
    assert keys_of(path, "--template", str(template)) == keys_of(typed)


def test_template_and_a_text_column(tmp_path: Path) -> None:
    """A sheet with a text column and --template: usage error, unless told which it replaces."""
    template = tmp_path / "t.txt"
    template.write_text("Hi {{First Name}}", encoding="utf-8")
    path = write_csv(tmp_path / "in.csv", [HEADERS, ["Sam", LINE_A, SAM, "old text"]])
    code, output = invoke("validate", str(path), "--template", str(template))
    assert code == 2
    assert output == (
        f"Error: {path} has a text column ('Text'), and --template {template} gives every "
        "row's text too.\nTo send the template instead of the column, add "
        "--template-replaces Text; to send the column, drop --template.\n"
    )
    code, output = invoke(
        "validate", str(path), "--template", str(template), "--template-replaces", "text"
    )
    assert code == 0, output
    assert f"row 2: {LINE_A} -> {SAM}: Hi Sam" in output
    run_args = shlex.join(["--template", str(template), "--template-replaces", "text"])
    assert f"Next: send with: chert-batch run {path} {run_args}" in output
    code, output = invoke(
        "validate", str(path), "--template", str(template), "--template-replaces", "Body"
    )
    assert code == 2
    assert "--template-replaces 'Body' names no text column of" in output


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"\n\n", "is empty."),
        (b"Hi \xe9t\xe9", "byte 4 is not UTF-8 text (b'\\xe9')."),
        ("\ufeffHi {{Nick}}".encode(), "a placeholder names no column: {{Nick}} (in --template)"),
    ],
)
def test_unusable_templates(tmp_path: Path, content: bytes, said: str) -> None:
    """An empty, non-UTF-8 or mistaken template file is a usage error, saying what is wrong."""
    template = tmp_path / "t.txt"
    template.write_bytes(content)
    path = write_csv(tmp_path / "in.csv", [["From", "To"], [LINE_A, SAM]])
    code, output = invoke("validate", str(path), "--template", str(template))
    assert code == 2
    assert said in output


def test_a_template_row_problem_names_the_template(tmp_path: Path) -> None:
    """A row the template cannot be filled in for is invalid, naming the --template file."""
    template = tmp_path / "t.txt"
    template.write_text("Hi {{First Name}}", encoding="utf-8")
    path = write_csv(tmp_path / "in.csv", [["First Name", "From", "To"], ["", LINE_A, SAM]])
    code, output = invoke("validate", str(path), "--template", str(template))
    assert code == 1
    assert (
        f"  row 2, --template {template}: {{{{First Name}}}} has nothing to fill it: column "
        "'First Name' is empty in this row."
    ) in output


@pytest.mark.parametrize(
    ("headers", "cells", "said"),
    [
        (HEADERS, ["Sam\x01", LINE_A, SAM, "Hi {{First Name}}"], "Text: contains the control "),
        (HEADERS, ["", LINE_A, SAM, "Hi {{First Name|\x7f}}"], "Text: contains the control "),
        (
            [*HEADERS, "Group name"],
            ["Sam", LINE_A, f"{SAM}; {ANA}", "Hi", "Crew of {{First Name}}\x1b"],
            "Group name: contains the control character U+001B",
        ),
    ],
)
def test_a_rendered_text_with_a_control_character_is_refused(
    tmp_path: Path, headers: list[str], cells: list[str], said: str
) -> None:
    """A control character the filled-in text gets from a cell is caught like any other."""
    validate_json(write_csv(tmp_path / "in.csv", [headers, cells]))
    (row,) = results(tmp_path / "in.results.csv")
    assert row["status"] == "invalid"
    assert row["error_message"].startswith(said)


def test_a_control_character_in_the_template_is_refused(tmp_path: Path) -> None:
    """The --template text comes from no cell: its own control characters are caught too."""
    template = tmp_path / "t.txt"
    template.write_text("Hi\x07 {{First Name}}", encoding="utf-8")
    path = write_csv(tmp_path / "in.csv", [["First Name", "From", "To"], ["Sam", LINE_A, SAM]])
    code, output = invoke("validate", str(path), "--template", str(template))
    assert code == 1
    assert f"row 2, --template {template}: contains the control character U+0007" in output
