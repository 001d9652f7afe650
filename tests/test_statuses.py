"""The statuses `skipped` and `suppressed`: settled, counted, and kept by a results sheet."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from batcher.client import Credentials
from batcher.model import SETTLED, Status
from batcher.pipeline import JobOptions, Report
from batcher.render import run_summary
from batcher.running import RunOptions, RunReport, Target, run_file
from batcher.sandbox import RunningSandbox
from batcher.sending import SendConfig
from tests.runs import LINE_A, ledger, recipient, sheet


@pytest.mark.parametrize(
    ("counts", "planned_only", "code"),
    [
        ({Status.SENT: 2, Status.SKIPPED: 1, Status.SUPPRESSED: 1}, False, 0),
        ({Status.SKIPPED: 3}, False, 0),
        ({Status.SUPPRESSED: 1, Status.DUPLICATE: 1}, False, 0),
        ({Status.SENT: 1, Status.SKIPPED: 1, Status.PENDING: 1}, False, 1),
        ({Status.SUPPRESSED: 1, Status.FAILED: 1}, False, 1),
        ({Status.SUPPRESSED: 1, Status.PENDING: 2}, True, 0),
        ({Status.SKIPPED: 1, Status.INVALID: 1}, True, 1),
    ],
)
def test_exit_code(counts: dict[Status, int], planned_only: bool, code: int) -> None:
    """Skipped and suppressed rows are settled: they alone never make a run exit 1."""
    report = Report(Path("in.csv"), Path("out.csv"), planned_only=planned_only)
    report.by_status = Counter(counts)
    assert report.exit_code == code
    if not planned_only:
        run = RunReport(Path("in.csv"), Path("out.csv"))
        run.by_status = Counter(counts)
        assert run.exit_code == code


def test_settled_statuses() -> None:
    """One set says which statuses are settled."""
    assert {Status.SENT, Status.DUPLICATE, Status.SKIPPED, Status.SUPPRESSED} == SETTLED


def _results(path: Path, rows: list[list[str]]) -> Path:
    headers = ["From", "To", "Text", "status", "error_message"]
    return sheet(path, rows, headers)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


def test_results_sheet_keeps_skipped_and_suppressed(box: RunningSandbox, tmp_path: Path) -> None:
    """Fed back in, skipped and suppressed rows stay so with their notes; nothing sent for them."""
    path = _results(
        tmp_path / "earlier.results.csv",
        [
            [LINE_A, recipient(1), "hello", "skipped", "contacted on 2026-11-28"],
            [LINE_A, recipient(2), "hello", "suppressed", "opted out on 2026-11-30"],
            [LINE_A, recipient(3), "hello", "pending", ""],
        ],
    )
    out = tmp_path / "again.csv"
    options = RunOptions(job=JobOptions(path=path, out=out), send=SendConfig(rate=0.0))
    target = Target(box.base_url, Credentials(box.secret, "bearer", box.tenant), "sandbox")
    report = run_file(options, target)
    rows = _read(out)
    assert [(row["status"], row["error_message"]) for row in rows] == [
        ("skipped", "contacted on 2026-11-28"),
        ("suppressed", "opted out on 2026-11-30"),
        ("sent", ""),
    ]
    assert [message["to"] for message in ledger(box)] == [[recipient(3)]]
    assert report.exit_code == 0
    assert (report.by_status[Status.SKIPPED], report.by_status[Status.SUPPRESSED]) == (1, 1)
    summary = run_summary(report, "chert-batch run again.csv")
    assert "  skipped          1  hidden in the sheet or contacted recently; not sent" in summary
    assert "  suppressed       1  opted out or on a suppression list; not sent" in summary
    assert report.to_json()["by_status"] == {
        "sent": 1,
        "invalid": 0,
        "failed": 0,
        "pending": 0,
        "duplicate": 0,
        "skipped": 1,
        "suppressed": 1,
    }
