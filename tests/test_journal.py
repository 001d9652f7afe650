"""The journal is what it claims, or it is refused: never taken for new, never a traceback."""

from __future__ import annotations

import csv
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from batcher.errors import JournalError, UnusableJournal
from batcher.journal import Journal, State, wal_of
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


@pytest.fixture
def box() -> Iterator[RunningSandbox]:
    """A plain sandbox: no limits, no faults."""
    with running_sandbox(SandboxConfig()) as running:
        yield running


def statuses(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return [row["status"] for row in csv.DictReader(stream)]


def sent_journal(box: RunningSandbox, folder: Path, rows: int = 5) -> tuple[Path, Path]:
    """A sheet run to the end against the sandbox, and its journal."""
    path = sheet(folder / "in.csv", direct_rows(rows))
    done = run_cli(["run", str(path), "--yes", "--rate", "0"], cli_env(box))
    assert done.returncode == 0, done.stdout + done.stderr
    return path, folder / "in.results.journal.sqlite"


def truncate(journal: Path) -> None:
    journal.write_bytes(b"")


def not_sqlite(journal: Path) -> None:
    journal.write_text("From,To,Text\n", encoding="utf-8")


def edit(journal: Path, sql: str) -> None:
    """Change a journal as a person with the sqlite3 shell would, and close it."""
    with closing(sqlite3.connect(journal)) as db, db:
        db.execute(sql)


def drop_requests(journal: Path) -> None:
    edit(journal, "DROP TABLE requests")


def corrupt_a_page(journal: Path) -> None:
    """Overwrite the last page (the requests table's leaf or index) with noise."""
    data = bytearray(journal.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    start = len(data) - page
    data[start : start + page] = bytes((n * 37 + 11) % 256 for n in range(page))
    journal.write_bytes(bytes(data))


def edit_state(journal: Path) -> None:
    edit(journal, "UPDATE requests SET state = 'done' WHERE row = 3")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (truncate, "is empty (0 bytes): whatever it recorded is gone."),
        (not_sqlite, "is not a chert-batch journal (not an SQLite file)."),
        (drop_requests, "holds no chert-batch journal: the table 'requests' is missing."),
        (corrupt_a_page, "is damaged ("),
        (edit_state, "was edited by hand: the request for row 3 (key cb1-"),
    ],
)
def test_a_journal_that_is_not_what_it_claims_is_refused(
    box: RunningSandbox, tmp_path: Path, damage: Callable[[Path], None], message: str
) -> None:
    """Refused with one message and exit 2; nothing sent; the file left as it was."""
    path, journal = sent_journal(box, tmp_path)
    damage(journal)
    before = journal.read_bytes()
    done = run_cli(["run", str(path), "--yes", "--rate", "0"], cli_env(box))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"Error: the journal {journal} {message}" in done.stderr or (
        f"Error: {journal} {message}" in done.stderr
    ), done.stderr
    assert len(ledger(box)) == 5  # nothing sent again
    assert journal.read_bytes() == before
    assert statuses(tmp_path / "in.results.csv") == ["sent"] * 5  # the sheet still tells


def test_refusal_says_what_to_do(box: RunningSandbox, tmp_path: Path) -> None:
    """The advice: keep it, rerun from the results sheet, and what the keys then do."""
    path, journal = sent_journal(box, tmp_path)
    truncate(journal)
    done = run_cli(["run", str(path), "--yes"], cli_env(box))
    assert (
        "Move the journal aside (keep it) and run again with the latest results sheet as "
        "the input: rows it marks sent are not sent again."
    ) in done.stderr


def test_hand_edited_state_is_refused_in_process(tmp_path: Path) -> None:
    """A state chert-batch never writes makes opening the journal fail, not reading it."""
    journal = Journal(tmp_path / "j.sqlite")
    journal.intend("k1", "", 2, 1, "new:a>b")
    journal.close()
    edit(tmp_path / "j.sqlite", "UPDATE requests SET attempts = 'many'")
    with pytest.raises(UnusableJournal, match="edited by hand"):
        Journal(tmp_path / "j.sqlite")


def test_clean_close_leaves_one_file_that_says_no_run_holds_it(tmp_path: Path) -> None:
    """After close: no -wal, and the main file alone opens again as the same journal."""
    journal = Journal(tmp_path / "j.sqlite")
    journal.intend("k1", "", 2, 1, "new:a>b")
    journal.sent("k1", chat_id="c", message_id="m", trace_id="t")
    journal.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.sqlite"]
    copy = tmp_path / "copy" / "j.sqlite"
    copy.parent.mkdir()
    shutil.copy(tmp_path / "j.sqlite", copy)
    again = Journal(copy)
    assert again.records(["k1"])["k1"].state is State.SENT
    again.close()


def test_killed_run_copied_without_its_wal_is_refused(box: RunningSandbox, tmp_path: Path) -> None:
    """kill -9, then the journal copied alone: refused; copied with its -wal: goes on."""
    path = sheet(tmp_path / "in.csv", direct_rows(100))
    process = start_cli(["run", str(path), "--yes", "--rate", "40"], cli_env(box))
    wait_for_deliveries(box, 20)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    journal = tmp_path / "in.results.journal.sqlite"
    assert wal_of(journal).exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(journal, elsewhere / journal.name)
    args = ["run", str(path), "--yes", "--rate", "0", "--journal", str(elsewhere / journal.name)]
    refused = run_cli([*args, "--out", str(elsewhere / "r.csv")], cli_env(box))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "was left by a run that did not close it (pid " in refused.stderr
    assert f"its write-ahead log {journal.name}-wal is not beside it" in refused.stderr
    assert f"Copy {journal.name}-wal from where the journal came from" in refused.stderr
    shutil.copy(wal_of(journal), elsewhere / wal_of(journal).name)
    done = run_cli([*args, "--out", str(elsewhere / "r.csv")], cli_env(box))
    assert done.returncode == 0, done.stdout + done.stderr
    assert statuses(elsewhere / "r.csv") == ["sent"] * 100
    assert_exactly_once(box, 100)


def limited_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_journal_that_cannot_be_made_leaves_no_file(box: RunningSandbox, tmp_path: Path) -> None:
    """Creating a journal that fails half-way (a file size limit) leaves no 0-byte journal."""
    path = sheet(tmp_path / "in.csv", direct_rows(3))
    done = subprocess.run(
        [sys.executable, "-m", "batcher", "run", str(path), "--yes"],
        env=cli_env(box),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=limited_file_size(1024),
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "could not create the journal" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
    assert ledger(box) == []


def test_disk_full_while_journaling_stops_cleanly(box: RunningSandbox, tmp_path: Path) -> None:
    """SQLITE_FULL mid-run: one message naming the file, exit 3; a rerun with room finishes."""
    path = sheet(tmp_path / "in.csv", direct_rows(200))
    journal = tmp_path / "in.results.journal.sqlite"
    args = ["run", str(path), "--yes", "--rate", "0", "--concurrency", "4"]
    full = run_cli([*args, "--journal-max-pages", "12"], cli_env(box))
    assert full.returncode == 3, full.stdout + full.stderr
    assert "Traceback" not in full.stderr
    assert f"the journal {journal} could not be written: the disk holding it is full" in full.stdout
    assert "Every message sent so far is safe" in full.stdout
    assert "then run the same command again: it goes on where this one stopped." in full.stdout
    states = statuses(tmp_path / "in.results.csv")
    assert 0 < states.count("sent") < 200
    assert set(states) == {"sent", "pending"}
    done = run_cli(args, cli_env(box))
    assert done.returncode == 0, done.stdout + done.stderr
    assert statuses(tmp_path / "in.results.csv") == ["sent"] * 200
    assert_exactly_once(box, 200)


def test_intents_committed_together_or_not_at_all(tmp_path: Path) -> None:
    """Intents waiting for one commit: committed together; when that commit fails, every
    later commit raises too, so no sender takes its lost intent for committed, while
    what was committed before can still be read."""
    journal = Journal(tmp_path / "j.sqlite", max_pages=12)
    try:
        journal.intend_later("k-0", "", 2, 1, "chat")
        journal.intend_later("k-1", "", 3, 1, "chat")
        journal.commit()
        journal.commit()  # nothing left: the second sender's commit is a no-op
        assert {key: r.state for key, r in journal.records(["k-0", "k-1"]).items()} == {
            "k-0": State.SENDING,
            "k-1": State.SENDING,
        }
        for n in range(2, 2_000):  # far more than 12 pages hold
            journal.intend_later(f"k-{n}-{'x' * 200}", "", n, 1, "chat")
        with pytest.raises(JournalError, match="full"):
            journal.commit()
        with pytest.raises(JournalError, match="full"):
            journal.commit()  # another sender's intent was in the lost commit
        assert set(journal.records(["k-0", "k-1", "k-2"])) == {"k-0", "k-1"}
    finally:
        journal.close()
