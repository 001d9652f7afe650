"""Stopping signals at every stage: exit 3 with the command to go on, nothing lost or left.

Each test runs the CLI as a real process and signals it at a stage it can see from
outside: handlers installed (loading and planning), the results being written, or
messages arriving at the sandbox.
"""

from __future__ import annotations

import csv
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from batcher.sandbox import RunningSandbox
from tests.runs import (
    LINE_A,
    assert_exactly_once,
    cli_env,
    direct_rows,
    ledger,
    run_cli,
    sheet,
    start_cli,
    wait_for_deliveries,
)

PROC = Path("/proc")
needs_proc = pytest.mark.skipif(not PROC.is_dir(), reason="needs /proc to see a handler installed")
ROWS = 30_000  # enough for seconds of planning and writing on a fast machine


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll until `condition` holds; fail saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout} s"
        time.sleep(0.01)


def catches(process: subprocess.Popen[str], signum: int) -> bool:
    """Whether the process has a handler for `signum` (its SigCgt mask, from /proc)."""
    status = (PROC / str(process.pid) / "status").read_text()
    caught = int(
        next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16
    )
    return bool(caught >> (signum - 1) & 1)


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Wait for the process; its exit code, stdout and stderr."""
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


def yes(command: str) -> list[str]:
    """--yes for run (there is no terminal to confirm on); validate asks nothing."""
    return ["--yes"] if command == "run" else []


def bad_rows(count: int) -> list[list[str]]:
    """Rows that all fail validation: a run has nothing to send, only results to write."""
    return [[LINE_A, f"415-555-{n % 100:02d}", f"Hello #{n}"] for n in range(count)]


def leftovers(folder: Path) -> list[str]:
    """Temporary files left in a folder (the results writer's, openpyxl's)."""
    return sorted(
        path.name
        for path in folder.iterdir()
        if path.name.endswith(".tmp") or path.name.startswith("openpyxl")
    )


@needs_proc
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_stop_while_loading_or_planning_exits_3(
    box: RunningSandbox, tmp_path: Path, command: str, signum: signal.Signals
) -> None:
    """SIGTERM or SIGHUP before anything is sent: exit 3, what happened, the command again."""
    path = sheet(tmp_path / "in.csv", direct_rows(ROWS))
    process = start_cli([command, str(path), *yes(command)], cli_env(box))
    wait_until(lambda: catches(process, signum), "installing the handler")
    process.send_signal(signum)
    code, _, stderr = finish(process)
    assert code == 3, stderr
    assert "Traceback" not in stderr
    what = "nothing was sent" + (
        ", and no results sheet was written" if command == "validate" else ""
    )
    assert f"Stopped ({signum.name}): {what}." in stderr
    assert f"chert-batch {command} {path}" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # no results, no temp file
    assert ledger(box) == []


def writing_started(tmp_path: Path) -> Callable[[], bool]:
    """Whether the results workbook is being written: its rows are spooled in TMPDIR first.

    Rows in a spool file (a size), not just the folder batcher.results makes for them.
    """
    spools = tmp_path / "tmp"
    return lambda: any(spool.stat().st_size for spool in spools.glob("chert-batch-*/*"))


@pytest.mark.parametrize(
    ("command", "rows"),
    [("validate", direct_rows(ROWS)), ("run", bad_rows(ROWS))],
)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_while_writing_the_results_leaves_no_temporary_file(
    box: RunningSandbox, tmp_path: Path, command: str, rows: list[list[str]], signum: signal.Signals
) -> None:
    """Signalled while the results are written: exit 3, no temporary file anywhere."""
    (tmp_path / "tmp").mkdir()
    path = sheet(tmp_path / "in.csv", rows)
    env = cli_env(box, TMPDIR=str(tmp_path / "tmp"))
    out = ["--out", str(tmp_path / "out.xlsx")]
    process = start_cli([command, str(path), *yes(command), *out], env)
    wait_until(writing_started(tmp_path), "writing the results")
    process.send_signal(signum)
    code, _, stderr = finish(process)
    assert code == 3, stderr
    assert f"Stopped ({signum.name})" in stderr
    assert "Traceback" not in stderr
    assert leftovers(tmp_path) == []
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "out.xlsx").exists()


def statuses(path: Path) -> list[str]:
    """The status column of a CSV results sheet."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return [row["status"] for row in csv.DictReader(stream)]


def test_sighup_mid_run_writes_the_results_and_the_rerun_finishes(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """SIGHUP (the terminal closed) mid-run stops as SIGTERM does; the rerun sends the rest."""
    path = sheet(tmp_path / "in.csv", direct_rows(200))
    env = cli_env(box)
    process = start_cli(["run", str(path), "--yes", "--rate", "20"], env)
    wait_for_deliveries(box, 10)
    process.send_signal(signal.SIGHUP)
    code, stdout, stderr = finish(process)
    assert "Traceback" not in stderr
    assert code == 3, stdout + stderr
    assert "Rerun the same command to finish" in stdout
    assert set(statuses(tmp_path / "in.results.csv")) == {"sent", "pending"}
    done = run_cli(["run", str(path), "--yes", "--rate", "0"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(box, 200)


def test_sigterm_while_writing_the_results_after_sending(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """Signalled while writing the results after a send: exit 3, no temporary file."""
    (tmp_path / "tmp").mkdir()
    path = sheet(tmp_path / "in.csv", [*direct_rows(1), *bad_rows(ROWS)])
    env = cli_env(box, TMPDIR=str(tmp_path / "tmp"))
    process = start_cli(["run", str(path), "--yes", "--out", str(tmp_path / "out.xlsx")], env)
    wait_until(writing_started(tmp_path), "writing the results")
    process.send_signal(signal.SIGTERM)
    code, _, stderr = finish(process)
    assert code == 3, stderr
    assert leftovers(tmp_path) == []
    assert list((tmp_path / "tmp").iterdir()) == []
    assert_exactly_once(box, 1)
