"""Which formats a results sheet is written in: --out's extension decides, and only real ones."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from openpyxl import load_workbook

from batcher.results import default_output
from tests.runs import run_cli
from tests.sheets import write_csv

SENDER = "+15555550100"
ROWS = [["From", "To", "Text"], [SENDER, "4155551234", "hi"]]


def files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(
    ("out", "named"),
    [
        ("x.json", "the extension '.json'"),
        ("x.ods", "the extension '.ods'"),
        ("x.xls", "the extension '.xls'"),
        ("results", "no extension"),
    ],
)
def test_out_extension_not_written_is_a_usage_error(
    tmp_path: Path, command: str, out: str, named: str
) -> None:
    """--out naming a format chert-batch does not write: exit 2 before anything is written."""
    path = write_csv(tmp_path / "in.csv", ROWS)
    extra = ["--sandbox", "--yes"] if command == "run" else []
    done = run_cli([command, str(path), "--out", str(tmp_path / out), *extra], dict(os.environ))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--out {tmp_path / out} has {named}" in done.stderr
    assert "results are written as .csv, .tsv, .txt or .xlsx" in done.stderr
    assert "Traceback" not in done.stderr
    assert files(tmp_path) == ["in.csv"]  # no results, no journal


@pytest.mark.parametrize(
    ("out", "delimiter"), [("r.csv", ";"), ("r.txt", ";"), ("r.tsv", "\t"), ("R.CSV", ";")]
)
def test_text_formats_and_their_delimiters(tmp_path: Path, out: str, delimiter: str) -> None:
    """.csv and .txt keep the input's delimiter; .tsv is tab-separated; case does not matter."""
    path = write_csv(tmp_path / "in.csv", ROWS, delimiter=";")
    done = run_cli(["validate", str(path), "--out", str(tmp_path / out)], dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    with (tmp_path / out).open(encoding="utf-8-sig", newline="") as stream:
        header = next(csv.reader(stream, delimiter=delimiter))
    assert header[:4] == ["From", "To", "Text", "status"]


def test_xlsx_out_is_a_workbook(tmp_path: Path) -> None:
    """--out r.xlsx from a CSV writes a real workbook."""
    path = write_csv(tmp_path / "in.csv", ROWS)
    done = run_cli(["validate", str(path), "--out", str(tmp_path / "r.xlsx")], dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    assert load_workbook(tmp_path / "r.xlsx").worksheets[0]["D1"].value == "status"


@pytest.mark.parametrize(
    ("name", "results"),
    [
        ("in.csv", "in.results.csv"),
        ("in.TXT", "in.results.txt"),
        ("in.tsv", "in.results.tsv"),
        ("in.xlsx", "in.results.xlsx"),
        ("in.xlsm", "in.results.xlsx"),
        ("in.ods", "in.results.xlsx"),
        ("in.dat", "in.results.csv"),
        ("in", "in.results.csv"),
    ],
)
def test_default_results_name(name: str, results: str) -> None:
    """Beside the input; its extension when that is a format written, else .xlsx or .csv."""
    assert default_output(Path("/data") / name, None) == Path("/data") / results


def test_default_results_of_text_input_with_another_extension_is_csv(tmp_path: Path) -> None:
    """A CSV named .dat gets CSV results named .csv."""
    path = write_csv(tmp_path / "in.dat", ROWS)
    done = run_cli(["validate", str(path)], dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    assert files(tmp_path) == ["in.dat", "in.results.csv"]
