"""Benchmark writing a styled 100,000-row results workbook against bare xlsxwriter.

In one process, alternately, --repeat times (best wall time kept):

- baseline: xlsxwriter (`constant_memory=True`) writing the same cells, every one with
  write_string, unstyled: no formats, widths, filter, frozen pane or Summary sheet;
- ours: `batcher.results.write_results` writing the results workbook: the same cells,
  styled (bold frozen header, filter, fitted widths, coloured statuses, Text-formatted
  phone columns) and the Summary sheet, atomically.

The sheet (7 input columns like bench/validate.py's, then the 9 result columns) and its
outcomes (about 80 % sent, 8 % invalid, 5 % duplicate, 4 % pending, 3 % failed) are made
in memory first and are not timed. The goal is ours <= 1.3x the baseline.

Run: python bench/results.py [--rows 100000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from xlsxwriter import Workbook

from batcher.columns import ColumnMap, map_columns
from batcher.lineplan import LinePlan
from batcher.loading import Sheet, SheetRow
from batcher.model import RowOutcome, Status
from batcher.results import write_results

GOAL = 1.3
HEADERS = ("First name", "From", "To", "Group name", "Message", "Link", "Owner")
NAMES = ("Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jamal")
OWNERS = ("maria@example.com", "tom@example.com", "priya@example.com", "li@example.com")
STATUSES = (
    (Status.SENT, 0.80),
    (Status.INVALID, 0.08),
    (Status.DUPLICATE, 0.05),
    (Status.PENDING, 0.04),
    (Status.FAILED, 0.03),
)


def made(rows: int, seed: int = 2024) -> tuple[Sheet, ColumnMap, dict[int, RowOutcome]]:
    """A results sheet's input and outcomes, deterministic for a seed."""
    rng = random.Random(seed)
    statuses = [status for status, _ in STATUSES]
    weights = [weight for _, weight in STATUSES]
    sheet_rows = []
    outcomes: dict[int, RowOutcome] = {}
    for number in range(2, rows + 2):
        name = rng.choice(NAMES)
        to = f"+1415{rng.randrange(10**7):07d}"
        link = f"https://example.com/offers/{rng.randrange(10**6)}" if rng.random() < 0.1 else ""
        text = f"Hi {name}, your order #{rng.randrange(10**6)} ships today. Reply STOP to opt out."
        cells = (name, f"+1555555{rng.randrange(100, 120):04d}", to, "", text, link)
        sheet_rows.append(SheetRow(number, (*cells, rng.choice(OWNERS))))
        status = rng.choices(statuses, weights)[0]
        key = f"cb1-{rng.getrandbits(128):032x}"
        if status is Status.SENT:
            outcome = RowOutcome(
                status,
                chat_id=f"{rng.getrandbits(128):032x}",
                message_id=f"{rng.getrandbits(128):032x}",
                idempotency_key=key,
                attempts="1",
                sent_at="2026-12-02T14:31:13Z",
                trace_id=f"{rng.getrandbits(48):012x}",
            )
        elif status is Status.INVALID:
            message = f"To: '{to[:-3]}' is not a valid phone number."
            outcome = RowOutcome(status, error_code="1003", error_message=message)
        elif status is Status.FAILED:
            outcome = RowOutcome(status, error_code="4001", error_message="downstream failed")
        else:
            outcome = RowOutcome(status, idempotency_key=key)
        outcomes[number] = outcome
    sheet = Sheet(Path("in.xlsx"), "xlsx", 1, HEADERS, tuple(sheet_rows), sheet_name="Contacts")
    columns = map_columns(HEADERS, where="bench", has_default_sender=False)
    return sheet, columns, outcomes


def bare(path: Path, lines: list[list[str]]) -> None:
    """The baseline: the same cells, each with write_string, nothing else."""
    book = Workbook(str(path), {"constant_memory": True})
    worksheet = book.add_worksheet("Contacts")
    write = worksheet.write_string
    for row, line in enumerate(lines):
        for column, value in enumerate(line):
            if value:
                write(row, column, value)
    book.close()


def timed(work: Callable[[], None]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="data rows (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be at least 1")
    sheet, columns, outcomes = made(args.rows)
    header = [*HEADERS, *RowOutcome._fields]
    lines = [header]
    lines += [[*row.cells, *outcomes[row.number].cells().values()] for row in sheet.rows]
    plans = [LinePlan(f"+1555555{line:04d}", args.rows // 20, 0, 86_400.0) for line in range(20)]
    base_runs: list[float] = []
    our_runs: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = folder / "ours.xlsx"
        for _ in range(args.repeat):
            base_runs.append(timed(lambda: bare(folder / "bare.xlsx", lines)))
            our_runs.append(timed(lambda: write_results(sheet, columns, outcomes, out, plans)))
        sizes = {name: (folder / name).stat().st_size for name in ("bare.xlsx", "ours.xlsx")}
    base, ours = min(base_runs), min(our_runs)
    figures = {
        "rows": args.rows,
        "cells": sum(map(bool, (cell for line in lines for cell in line))),
        "repeat": args.repeat,
        "xlsxwriter_s": round(base, 3),
        "ours_s": round(ours, 3),
        "ratio": round(ours / base, 2),
        "goal": GOAL,
        "pass": ours / base <= GOAL,
        "xlsxwriter_mb": round(sizes["bare.xlsx"] / 1e6, 1),
        "ours_mb": round(sizes["ours.xlsx"] / 1e6, 1),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    verdict = "PASS" if figures["pass"] else "over"
    print(f"rows                          {args.rows:>10,}  ({figures['cells']:,} cells)")
    print(f"xlsxwriter, unstyled          {base:>9.2f} s  {figures['xlsxwriter_mb']:>5} MB")
    print(f"write_results, styled+Summary {ours:>9.2f} s  {figures['ours_mb']:>5} MB")
    print(f"ratio                         {ours / base:>9.2f}x  goal <= {GOAL}x: {verdict}")
    print(f"(best of {args.repeat})")


if __name__ == "__main__":
    main()
