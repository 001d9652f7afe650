"""Two runs never send one key at the same time, whatever their journals: claims in the home."""

from __future__ import annotations

import csv
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from batcher.home import HISTORY, LEASE_SECONDS, Claims, account_id, home_folder
from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from tests.runs import (
    assert_exactly_once,
    cli_env,
    direct_rows,
    ledger,
    run_cli,
    sheet,
    start_cli,
    stats,
    wait_for_deliveries,
)


@pytest.fixture
def box() -> Iterator[RunningSandbox]:
    """A plain sandbox: no limits, no faults."""
    with running_sandbox(SandboxConfig()) as running:
        yield running


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


def test_second_run_with_another_out_sends_nothing_the_first_is_sending(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """Run B (another --out, so another journal) leaves A's rows alone and says whose they are."""
    path = sheet(tmp_path / "in.csv", direct_rows(40))
    env = cli_env(box)
    first = start_cli(["run", str(path), "--yes", "--rate", "10"], env)
    wait_for_deliveries(box, 1)
    out = tmp_path / "b.csv"
    second = run_cli(["run", str(path), "--yes", "--rate", "0", "--out", str(out)], env)
    stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stdout + stderr
    assert second.returncode == 1, second.stdout + second.stderr
    journal = tmp_path / "in.results.journal.sqlite"
    rows = read(out)
    # What A had sent when B looked is in the send history: B shows it as sent earlier.
    earlier = [row for row in rows if row["status"] == "sent"]
    assert all(row["error_message"].startswith("sent earlier, on ") for row in earlier)
    waiting = [row for row in rows if row["status"] != "sent"]
    assert waiting
    assert len(earlier) + len(waiting) == 40
    assert (
        f"{len(waiting)} rows are being sent by another chert-batch run right now "
        f"(pid {first.pid}, journal {journal}): rows "
    ) in second.stdout
    assert {row["status"] for row in waiting} == {"pending"}
    assert waiting[0]["error_message"] == (
        f"being sent by another chert-batch run (pid {first.pid}, journal {journal}) right "
        "now; run again when it has finished"
    )
    # A's pull of opt-outs and look at the lines; B's pull (before it knew A had them all).
    assert stats(box)["requests"] == 2 + 1 + 40
    assert_exactly_once(box, 40)


def test_two_runs_started_together_send_each_key_once(box: RunningSandbox, tmp_path: Path) -> None:
    """Started at once on overlapping sheets: each run sends only what the other does not."""
    shared = direct_rows(30)
    a = sheet(tmp_path / "a.csv", shared)
    b = sheet(tmp_path / "b.csv", [*shared, *direct_rows(36)[30:]])
    env = cli_env(box)
    runs = [start_cli(["run", str(path), "--yes", "--rate", "20"], env) for path in (a, b)]
    for process in runs:
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode in (0, 1), stdout + stderr
    # No key sent by both, not even once more (besides the sends, a run pulls opt-outs and
    # looks at the account's lines: GET requests).
    seen = httpx.get(f"{box.root_url}/_sandbox/requests").json()["requests"]
    assert sum(entry["method"] == "POST" for entry in seen) == 36
    assert_exactly_once(box, 36)


def test_claims_of_a_killed_run_are_taken_over(box: RunningSandbox, tmp_path: Path) -> None:
    """kill -9 leaves claims behind; a run with another journal takes them over at once."""
    path = sheet(tmp_path / "in.csv", direct_rows(60))
    env = cli_env(box)
    first = start_cli(["run", str(path), "--yes", "--rate", "20"], env)
    wait_for_deliveries(box, 5)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    out = tmp_path / "b.csv"
    done = run_cli(["run", str(path), "--yes", "--rate", "0", "--out", str(out)], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "being sent by another" not in done.stdout
    assert_exactly_once(box, 60)


def test_claims_are_released_when_a_run_is_stopped(box: RunningSandbox, tmp_path: Path) -> None:
    """SIGTERM: the run stops cleanly and gives its claims back."""
    path = sheet(tmp_path / "in.csv", direct_rows(60))
    first = start_cli(["run", str(path), "--yes", "--rate", "20"], cli_env(box))
    wait_for_deliveries(box, 5)
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=30)
    assert first.returncode == 3
    with closing(sqlite3.connect(home_folder() / HISTORY)) as db:
        assert db.execute("SELECT count(*) FROM claims").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    assert len(ledger(box)) < 60


def test_settled_rerun_claims_nothing(box: RunningSandbox, tmp_path: Path) -> None:
    """A rerun with nothing to send does not even open the home."""
    path = sheet(tmp_path / "in.csv", direct_rows(3))
    assert run_cli(["run", str(path), "--yes"], cli_env(box)).returncode == 0
    (home_folder() / HISTORY).unlink()
    assert run_cli(["run", str(path), "--yes"], cli_env(box)).returncode == 0
    assert not (home_folder() / HISTORY).exists()


def test_home_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CHERT_BATCH_HOME chooses the home (tests/conftest.py sets one for every test)."""
    monkeypatch.setenv("CHERT_BATCH_HOME", str(tmp_path / "elsewhere"))
    assert home_folder() == tmp_path / "elsewhere"
    monkeypatch.delenv("CHERT_BATCH_HOME")
    assert home_folder().name == "chert-batch"


@pytest.mark.parametrize(
    ("base_url", "tenant", "secret", "account"),
    [
        ("https://api.example/v1", "acme", "s3cret", "https://api.example/v1 tenant=acme"),
        ("https://api.example/v1", "", "s3cret", "https://api.example/v1 bearer=e82ca747d147ef28"),
    ],
)
def test_account_never_holds_the_secret(
    base_url: str, tenant: str, secret: str, account: str
) -> None:
    """Base URL and tenant, or a one-way fingerprint of a bearer secret."""
    assert account_id(base_url, tenant, secret) == account
    assert secret not in account


def test_claims_per_chat_and_per_account(tmp_path: Path) -> None:
    """A chat with any key claimed by a live run is left whole; other accounts are apart."""
    mine = Claims(tmp_path, "acct-1", tmp_path / "a.sqlite")
    assert mine.claim({"chat-1": ["k1", "k2"]}) == {}
    other = Claims(tmp_path, "acct-1", tmp_path / "b.sqlite")
    # Another run in this process would look dead (its pid is ours): pretend it is elsewhere.
    with closing(sqlite3.connect(tmp_path / HISTORY)) as db, db:
        db.execute("UPDATE runs SET host = 'another-host' WHERE run_id = ?", (mine.run.run_id,))
    taken = other.claim({"chat-1": ["k2", "k3"], "chat-2": ["k4"]})
    assert list(taken) == ["chat-1"]
    assert taken["chat-1"].journal == str((tmp_path / "a.sqlite").resolve())
    assert Claims(tmp_path, "acct-2", tmp_path / "c.sqlite").claim({"chat-1": ["k2"]}) == {}
    mine.release()
    assert other.claim({"chat-1": ["k2", "k3"]}) == {}
    other.release()


def test_an_expired_lease_is_taken_over(tmp_path: Path) -> None:
    """A run on another host that stopped beating is dead once its lease runs out."""
    stale = Claims(tmp_path, "acct", tmp_path / "a.sqlite")
    stale.claim({"chat": ["k1"]})
    expired = time.time() - LEASE_SECONDS - 1
    with closing(sqlite3.connect(tmp_path / HISTORY)) as db, db:
        db.execute("UPDATE runs SET host = 'another-host', heartbeat = ?", (expired,))
    fresh = Claims(tmp_path, "acct", tmp_path / "b.sqlite")
    assert fresh.claim({"chat": ["k1"]}) == {}
    fresh.release()


def test_a_live_run_elsewhere_keeps_its_claims(tmp_path: Path) -> None:
    """A run on another host with a fresh lease keeps its claims; beats renew it."""
    holder = Claims(tmp_path, "acct", tmp_path / "a.sqlite")
    holder.claim({"chat": ["k1"]})
    with closing(sqlite3.connect(tmp_path / HISTORY)) as db, db:
        db.execute("UPDATE runs SET host = 'another-host', heartbeat = ?", (time.time() - 60,))
    assert set(Claims(tmp_path, "acct", tmp_path / "b.sqlite").claim({"chat": ["k1"]})) == {"chat"}
    holder.beat()  # renews this run's lease, whatever host the row names
    with closing(sqlite3.connect(tmp_path / HISTORY)) as db:
        (beat,) = db.execute("SELECT heartbeat FROM runs WHERE host = 'another-host'").fetchone()
    assert time.time() - beat < 5
    holder.release()
