"""Benchmark `chert-batch validate` on a large XLSX handoff file against the irreducible work.

Two subprocesses, run alternately --repeat times (best wall time kept, peak memory
from each child's own rusage via os.wait4):

- baseline: `polars.read_excel(path, infer_schema_length=0)`, then parse +
  is_valid_number + E.164 of every From and To number, once each (lru_cache);
- validate: `chert-batch validate FILE --out TMP.csv` (exit 0 or 1 both count as ran);
  `--results xlsx` writes TMP.xlsx instead (the default for XLSX input);
- validate, placeholders: the same rows, but every Message cell greets by placeholder
  (`{{First name}}` or `{{First name|there}}`) instead of the name typed in, so every
  row is rendered; the baseline is the same irreducible work on that sheet.

The goal is validate <= 1.3x the baseline, for both sheets. Each sheet (First name,
From, To, Group name, Message, Link, Owner; text and numeric phone cells, ~30 % repeated
recipients, ~5 % group rows, ~10 % links) is written once with openpyxl (write_only, a
declared dependency) to bench/out/ (gitignored) and reused for the same --rows.

`--hidden-every N` hides every N-th data row of each sheet (as a filter would write
them, <row ... hidden="1">): the cost of finding hidden rows, which validate then skips.

Run: python bench/validate.py [--rows 100000] [--repeat 3] [--results csv|xlsx]
     [--hidden-every N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "out"
GOAL = 1.3
HEADERS = ("First name", "From", "To", "Group name", "Message", "Link", "Owner")
SENDERS = tuple(f"+1 555 555 {line:04d}" for line in range(100, 120))  # possible, not valid
AREA_CODES = ("212", "415", "646", "650", "312", "617", "303", "206", "718", "773")
NAMES = ("Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jamal")
OWNERS = ("maria@example.com", "tom@example.com", "priya@example.com", "li@example.com")
MESSAGES = (
    "Hi {name}, your order #{n} ships today. Reply STOP to opt out.",
    "{name}, the spring sale starts Friday: 20% off everything in store.",
    "Hey {name}! Your appointment is confirmed for tomorrow at {h}:30.",
    "Thanks for joining, {name}. Your member code is {n}.",
    "{name}, we saved your cart. Anything we can help with?",
)
SPLIT = re.compile(r"[;,]")


def generate(path: Path, rows: int, seed: int = 2024, *, placeholders: bool = False) -> None:
    """Write a marketing-style handoff sheet of `rows` data rows (deterministic for a seed).

    With `placeholders`, each message greets by {{First name}} (every other one with a
    fallback) rather than by the name itself: the same random draws, the same rows.
    """
    import phonenumbers
    from openpyxl import Workbook

    rng = random.Random(seed)
    seen: list[tuple[str, str]] = []
    unique: set[tuple[str, str]] = set()

    def fresh() -> tuple[str, str]:
        while True:
            if rng.random() < 0.1:  # London, e.g. +44 20 7946 0958
                number = ("44", f"207{rng.randrange(10**7):07d}")
            else:
                exchange = rng.randrange(200, 1000)
                number = ("1", f"{rng.choice(AREA_CODES)}{exchange}{rng.randrange(10**4):04d}")
            parsed = phonenumbers.parse("+" + "".join(number))
            if number not in unique and phonenumbers.is_valid_number(parsed):
                unique.add(number)
                seen.append(number)
                return number

    def recipient() -> tuple[str, str]:
        return rng.choice(seen) if seen and rng.random() < 0.3 else fresh()

    def text(number: tuple[str, str]) -> str:
        country, national = number
        if country == "44":
            return f"+44 {national[:2]} {national[2:6]} {national[6:]}"
        a, e, line = national[:3], national[3:6], national[6:]
        return rng.choice((f"+1 {a} {e} {line}", f"({a}) {e}-{line}", f"{a}.{e}.{line}"))

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Contacts")
    sheet.append(HEADERS)
    for index in range(rows):
        name = rng.choice(NAMES)
        group = ""
        to: str | int
        if rng.random() < 0.05:
            members = dict.fromkeys(recipient() for _ in range(rng.randint(2, 5)))
            to = "; ".join(text(number) for number in members)
            group = f"{rng.choice(('Launch', 'VIP', 'Book club'))} crew {index % 97}"
        elif rng.random() < 0.3:  # a typed number: Excel keeps digits only, no "+"
            to = int("".join(recipient()))
        else:
            to = text(recipient())
        template = rng.choice(MESSAGES)
        greeting = ("{{First name}}", "{{First name|there}}")[index % 2] if placeholders else name
        message = template.format(name=greeting, n=rng.randrange(10**6), h=rng.randint(8, 17))
        link = f"https://example.com/offers/{rng.randrange(10**6)}" if rng.random() < 0.1 else None
        owner = rng.choice(OWNERS)
        sheet.append([name, rng.choice(SENDERS), to, group or None, message, link, owner])
    partial = path.with_suffix(".partial")
    workbook.save(partial)
    partial.replace(path)  # an interrupted run leaves no half-written cache


def baseline(path: Path) -> None:
    """The irreducible work: read every cell as text, then E.164 every number once."""
    import phonenumbers
    import polars as pl

    @lru_cache(maxsize=1 << 17)
    def e164(raw: str) -> str:
        raw = raw.strip()
        for candidate in (raw,) if raw.startswith("+") else (raw, "+" + raw):
            try:
                number = phonenumbers.parse(candidate, "US")
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
        return ""

    frame = pl.read_excel(path, infer_schema_length=0)
    cells = [*frame.get_column("From").to_list()]
    for to in frame.get_column("To").to_list():
        cells.extend(SPLIT.split(to or ""))
    found = [e164(cell) for cell in cells if cell and cell.strip()]
    print(json.dumps({"rows": frame.height, "numbers": len(found), "valid": sum(map(bool, found))}))


@dataclass(frozen=True)
class Run:
    """One child process: wall time, its own peak RSS, exit code and standard output."""

    seconds: float
    peak_mb: float
    code: int
    stdout: str


def hide_rows(source: Path, path: Path, every: int) -> None:
    """A copy of the sheet with every `every`-th data row hidden, written into its XML."""

    def hidden(match: re.Match[bytes]) -> bytes:
        number = int(match.group(1))
        keep = number == 1 or (number - 1) % every
        return match.group() if keep else match.group() + b' hidden="1"'

    partial = path.with_suffix(".partial")
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename.startswith("xl/worksheets/sheet"):
                data = re.sub(rb'<row r="([0-9]+)"', hidden, data)
            new.writestr(info, data)
    partial.replace(path)


def measure(name: str, argv: list[str], ok: tuple[int, ...]) -> Run:
    """Run a command; stop if it crashed. os.wait4 gives this child's own ru_maxrss (KiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)  # reaped: tell Popen
        out.seek(0)
        err.seek(0)
        run = Run(seconds, usage.ru_maxrss / 1024, code, out.read().decode(errors="replace"))
        if code not in ok:
            sys.stderr.write(f"{name} exited {code}:\n{err.read().decode(errors='replace')}\n")
            raise SystemExit(1)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="data rows (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument(
        "--results", choices=("csv", "xlsx"), default="csv", help="results format (default csv)"
    )
    parser.add_argument("--hidden-every", type=int, default=0, help="hide every N-th row")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--baseline-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rows < 1 or args.repeat < 1 or args.hidden_every < 0:
        parser.error("--rows and --repeat must be at least 1, --hidden-every at least 0")
    if args.baseline_child:
        baseline(args.baseline_child)
        return
    figures = {
        variant: measure_sheet(
            args.rows,
            args.repeat,
            args.results,
            args.hidden_every,
            placeholders=variant == "placeholders",
        )
        for variant in ("plain", "placeholders")
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    for variant, figure in figures.items():
        verdict = "PASS" if figure["pass"] else "over"
        print(f"{variant} sheet")
        print(f"  rows                    {args.rows:>10,}  ({args.results} results)")
        base_peak, subject_peak = figure["baseline_peak_mb"], figure["validate_peak_mb"]
        print(f"  baseline (read + E.164) {figure['baseline_s']:>9.2f} s  peak {base_peak:>6} MB")
        print(
            f"  chert-batch validate    {figure['validate_s']:>9.2f} s  peak {subject_peak:>6} MB"
        )
        print(f"  ratio                   {figure['ratio']:>9.2f}x  goal <= {GOAL}x: {verdict}")
        print(f"  (best of {figure['repeat']}; validate exit {figure['validate_exit']})")


def measure_sheet(
    rows: int, repeat: int, results_kind: str, hidden_every: int, *, placeholders: bool
) -> dict[str, Any]:
    """Baseline and validate, alternately, on one generated sheet: the figures."""
    tag = "-placeholders" if placeholders else ""
    sheet = OUT_DIR / f"validate-{rows}{tag}.xlsx"
    if not sheet.exists():
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        print(f"writing {sheet} ({rows:,} rows, once)...", file=sys.stderr)
        generate(sheet, rows, placeholders=placeholders)
    if hidden_every:
        plain, sheet = sheet, OUT_DIR / f"validate-{rows}{tag}-hidden{hidden_every}.xlsx"
        if not sheet.exists():
            hide_rows(plain, sheet, hidden_every)
    base_argv = [sys.executable, __file__, "--baseline-child", str(sheet)]
    with tempfile.TemporaryDirectory() as tmp:
        subject_argv = [sys.executable, "-c", "from batcher.cli import main; main()"]
        results = Path(tmp) / f"results.{results_kind}"
        subject_argv += ["validate", str(sheet), "--out", str(results)]
        base_runs: list[Run] = []
        subject_runs: list[Run] = []
        for _ in range(repeat):
            base_runs.append(measure("baseline", base_argv, (0,)))
            subject_runs.append(measure("chert-batch validate", subject_argv, (0, 1)))
            if not results.exists():  # exit 1 is also what a crash gives
                sys.stderr.write("chert-batch validate wrote no results: not a measurement\n")
                raise SystemExit(1)
            results.unlink()
    base = min(run.seconds for run in base_runs)
    subject = min(run.seconds for run in subject_runs)
    return {
        "rows": rows,
        "results": results_kind,
        "hidden_every": hidden_every,
        "repeat": len(base_runs),
        "baseline_s": round(base, 3),
        "validate_s": round(subject, 3),
        "ratio": round(subject / base, 2),
        "goal": GOAL,
        "pass": subject / base <= GOAL,
        "baseline_peak_mb": round(max(run.peak_mb for run in base_runs), 1),
        "validate_peak_mb": round(max(run.peak_mb for run in subject_runs), 1),
        "validate_exit": subject_runs[-1].code,
        "baseline_numbers": json.loads(base_runs[-1].stdout),
    }


if __name__ == "__main__":
    main()
