"""Validating a whole sheet at once gives exactly what validating each row alone gives."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from batcher import phones
from batcher.columns import map_columns
from batcher.loading import load_sheet
from batcher.validation import RowValidator, Rules, validate_row
from tests.sheets import Cell, write_csv, write_xlsx

SENDER = "+15555550100"
SAM = "+14155551234"
PRIYA = "(415) 555-2671"
TWENTY = ";".join(f"+1415555{n:04d}" for n in range(2000, 2020))

HEADERS = ["From", "To", "Phone 2", "Subject", "Text", "Link", "Media", "idempotency_key"]
ROWS: list[list[Cell]] = [
    [SENDER, SAM, "", "", "hi", "", "", ""],
    [SENDER, PRIYA, SAM, "Crew", "hi all", "https://x.io", "att_1", "k1 k2"],
    [SENDER, f"{SAM}; {PRIYA}", "4155551234", "", "same people twice", "", "", ""],
    [SENDER, f"{SAM};415-555-12", "", "", "one bad number", "", "", ""],
    [SENDER, SAM, "415-555-12", "", "bad in the second column", "", "", ""],
    ["12", SAM, "", "", "bad sender", "", "", ""],
    ["", SAM, "", "", "no sender", "", "", ""],
    [SENDER, "", "", "", "no recipient", "", "", ""],
    [SENDER, ";;", "", "", "only separators", "", "", ""],
    [SENDER, SAM, "", "", "", "example.com", "", ""],
    [SENDER, SAM, "", "", "", "", "att 2", ""],
    [SENDER, SAM, "", "", "", "", "", ""],
    [SENDER, ";".join(f"+1415555{n:04d}" for n in range(2000, 2032)), "", "", "32", "", "", ""],
    [SENDER, TWENTY, "+14155552031", "", "", "", "", ""],
    [SENDER, TWENTY, "4155552019", "", "x", "", "", ""],
    [" +1 555 555 0100 ", " (415) 555-1234 ", "", "", " padded ", "", "", ""],
    [SENDER, 14155551234, "", "", "numeric", "", "", ""],
    [SENDER, 14155500000, "", "", "scientific", "", "", ""],
]


def check_same(path: Path, rules: Rules) -> None:
    sheet = load_sheet(path)
    columns = map_columns(sheet.headers, where=str(path), has_default_sender=True)
    alone = [validate_row(row, columns, rules, sheet.scientific) for row in sheet.rows]
    with RowValidator(columns, rules, sheet.scientific) as validator:
        validator.prefetch(sheet.rows)
        assert [validator(row) for row in sheet.rows] == alone
        assert [validator(row) for row in sheet.rows] == alone  # again, from its caches
    lazy = RowValidator(columns, rules, sheet.scientific)  # no prefetch: worked out per row
    assert [lazy(row) for row in sheet.rows] == alone


@pytest.mark.parametrize("default_sender", ["", SENDER])
def test_csv_sheet(tmp_path: Path, default_sender: str) -> None:
    """Every verdict, problem message and column name is the same, with or without --from."""
    path = write_csv(tmp_path / "in.csv", [HEADERS, *ROWS])
    check_same(path, Rules(default_sender=default_sender))


def test_xlsx_sheet_with_scientific_cells(tmp_path: Path) -> None:
    """Scientific cells are refused per row even when their text was normalized in bulk."""
    rows = [[None if cell == "" else cell for cell in row] for row in ROWS]
    path = write_xlsx(tmp_path / "in.xlsx", [HEADERS, *rows], formats={(19, 2): "0.00E+00"})
    assert load_sheet(path).scientific == {(19, 1)}
    check_same(path, Rules(region="GB"))


def test_results_sheet(tmp_path: Path) -> None:
    """A results sheet's escaped cells are read back the same way in bulk."""
    headers = [*HEADERS, "status"]
    rows: list[list[Cell]] = [[*row, "pending"] for row in ROWS]
    rows[0][1] = "'+14155551234"
    rows[1][4] = "'=hi"
    rows[2][7] = "cb1-0123456789abcdef0123456789abcdef"
    check_same(write_csv(tmp_path / "in.csv", [headers, *rows]), Rules())


def test_short_csv_lines(tmp_path: Path) -> None:
    """Lines shorter than the header read their missing cells as empty."""
    path = write_csv(tmp_path / "in.csv", [HEADERS, [SENDER, SAM], [SENDER, SAM, "", "", "hi"]])
    check_same(path, Rules())


def test_with_a_helper_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the numbers shared with a helper process, every verdict is the same."""
    monkeypatch.setattr(phones, "PARALLEL_FROM", 10)
    monkeypatch.setattr(phones, "_usable_cpus", lambda: 2)
    started: list[object] = []
    popen = subprocess.Popen

    def spy(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(args)
        return popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    path = write_csv(tmp_path / "in.csv", [HEADERS, *ROWS, *ROWS])
    check_same(path, Rules())
    assert started  # the helper did run
