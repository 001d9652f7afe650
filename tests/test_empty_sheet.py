"""A sheet with a header and no rows under it: nothing to send is said, and it is exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from batcher.sandbox import RunningSandbox
from tests.runs import cli_env, ledger, run_cli
from tests.sheets import Cell, write_csv, write_xlsx

HEADER: list[Cell] = ["From", "To", "Text"]


def empty_sheet(tmp_path: Path, kind: str) -> Path:
    """A header row, then only blank rows."""
    rows: list[list[Cell]] = [HEADER, ["", "", ""], [None, " ", None]]
    if kind == "csv":
        return write_csv(tmp_path / "in.csv", rows)
    return write_xlsx(tmp_path / "in.xlsx", rows)


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_header_without_rows_is_nothing_to_send(
    tmp_path: Path, box: RunningSandbox, kind: str, command: str
) -> None:
    """validate and run exit 1 saying there is nothing to send; nothing written, nothing sent."""
    path = empty_sheet(tmp_path, kind)
    args = [command, str(path)] + (["--yes"] if command == "run" else [])
    result = run_cli(args, cli_env(box))
    assert result.returncode == 1, result.stdout + result.stderr
    where = f"{path}" + (", sheet 'Sheet1'" if kind == "xlsx" else "")
    assert result.stderr == (
        f"Error: {where} has a header row (From, To, Text) but no rows under it: there is "
        "nothing to send.\nAdd the messages as rows under the header, then run again.\n"
    )
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert ledger(box) == []
