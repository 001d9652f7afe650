"""`validate` never makes a results sheet say less than the journal knows, and never blocks."""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from tests.runs import (
    assert_exactly_once,
    cli_env,
    direct_rows,
    ledger,
    run_cli,
    sheet,
    start_cli,
    wait_for_deliveries,
)

RESULT_COLUMNS = ("status", "chat_id", "message_id", "idempotency_key", "sent_at")


@pytest.fixture
def box() -> Iterator[RunningSandbox]:
    """A plain sandbox: no limits, no faults."""
    with running_sandbox(SandboxConfig()) as running:
        yield running


def results(path: Path) -> list[tuple[str, ...]]:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return [tuple(row[name] for name in RESULT_COLUMNS) for row in csv.DictReader(stream)]


def statuses(path: Path) -> list[str]:
    return [row[0] for row in results(path)]


def cli_env_plain() -> dict[str, str]:
    """The test's environment (its CHERT_BATCH_HOME included), with no sandbox."""
    return dict(os.environ)


def test_validate_after_run_keeps_what_was_sent(box: RunningSandbox, tmp_path: Path) -> None:
    """The default results sheet keeps every sent row, ids and keys, after validate."""
    path = sheet(tmp_path / "in.csv", [*direct_rows(4), ["+15555550100", "415-555-12", "bad"]])
    run = run_cli(["run", str(path), "--yes", "--rate", "0"], cli_env(box))
    assert run.returncode == 1, run.stdout + run.stderr
    after_run = results(tmp_path / "in.results.csv")
    assert [row[0] for row in after_run] == ["sent"] * 4 + ["invalid"]
    done = run_cli(["validate", str(path)], cli_env(box))
    assert done.returncode == 1, done.stdout + done.stderr
    assert results(tmp_path / "in.results.csv") == after_run
    assert "  sent             4  sent; ids are in the results" in done.stdout
    journal = tmp_path / "in.results.journal.sqlite"
    assert f"Journal: {journal} (what it records as sent is shown as sent)" in done.stdout
    assert "Next: send" not in done.stdout  # nothing is left to send


def test_validate_with_journal_option_and_json(box: RunningSandbox, tmp_path: Path) -> None:
    """--journal names the journal to read; --json says which one was read."""
    path = sheet(tmp_path / "in.csv", direct_rows(3))
    journal = tmp_path / "mine.sqlite"
    run = run_cli(["run", str(path), "--yes", "--journal", str(journal)], cli_env(box))
    assert run.returncode == 0, run.stdout + run.stderr
    done = run_cli(
        [
            "validate",
            str(path),
            "--journal",
            str(journal),
            "--out",
            str(tmp_path / "v.csv"),
            "--json",
        ],
        cli_env(box),
    )
    summary = json.loads(done.stdout)
    assert (summary["journal_read"], summary["journal_busy"]) == (str(journal), False)
    assert summary["by_status"]["sent"] == 3
    assert statuses(tmp_path / "v.csv") == ["sent"] * 3


def test_validate_creates_no_journal(tmp_path: Path) -> None:
    """With no journal there, validate makes none (nor its -wal or -shm)."""
    path = sheet(tmp_path / "in.csv", direct_rows(2))
    done = run_cli(["validate", str(path)], cli_env_plain())
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "in.results.csv"]
    assert "Journal:" not in done.stdout


def test_validate_after_kill_reads_the_wal(box: RunningSandbox, tmp_path: Path) -> None:
    """A journal left by kill -9 (its -wal beside it): validate shows every row it recorded."""
    path = sheet(tmp_path / "in.csv", direct_rows(100))
    process = start_cli(["run", str(path), "--yes", "--rate", "40"], cli_env(box))
    wait_for_deliveries(box, 20)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    delivered = len(ledger(box))
    done = run_cli(["validate", str(path)], cli_env(box))
    assert done.returncode == 0, done.stdout + done.stderr
    states = statuses(tmp_path / "in.results.csv")
    # The one request in flight at the kill may have been delivered without an outcome.
    assert delivered - 1 <= states.count("sent") <= delivered
    rerun = run_cli(["run", str(path), "--yes", "--rate", "0"], cli_env(box))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_exactly_once(box, 100)


def test_validate_while_a_run_holds_the_journal(box: RunningSandbox, tmp_path: Path) -> None:
    """No wait, no failure: rows sent before the run are shown sent, and it says a run is on."""
    first = sheet(tmp_path / "first.csv", direct_rows(10))
    journal = tmp_path / "shared.journal.sqlite"
    env = cli_env(box)
    done = run_cli(["run", str(first), "--yes", "--journal", str(journal)], env)
    assert done.returncode == 0, done.stdout + done.stderr
    path = sheet(tmp_path / "in.csv", direct_rows(60))
    args = ["run", str(path), "--yes", "--rate", "10", "--journal", str(journal)]
    process = start_cli(args, env)
    wait_for_deliveries(box, 12)
    started = time.monotonic()
    out = tmp_path / "v.csv"
    seen = run_cli(["validate", str(path), "--journal", str(journal), "--out", str(out)], env)
    assert time.monotonic() - started < 15
    assert seen.returncode == 0, seen.stdout + seen.stderr
    assert f"Journal: {journal} is in use by a run right now" in seen.stdout
    states = statuses(out)
    assert states[:10] == ["sent"] * 10
    assert states.count("sent") < len(ledger(box))  # the run's own sends are not shown yet
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stdout + stderr
    assert_exactly_once(box, 60)


def test_validate_refuses_a_journal_that_is_not_one(tmp_path: Path) -> None:
    """A 0-byte journal beside the results: validate refuses it as run does, exit 2."""
    path = sheet(tmp_path / "in.csv", direct_rows(2))
    (tmp_path / "in.results.journal.sqlite").write_bytes(b"")
    done = run_cli(["validate", str(path)], cli_env_plain())
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is empty (0 bytes)" in done.stderr
    assert not (tmp_path / "in.results.csv").exists()
