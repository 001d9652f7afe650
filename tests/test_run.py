"""`chert-batch run` against the sandbox over loopback: exactly once, whatever goes wrong."""

from __future__ import annotations

import csv
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from batcher.client import Credentials
from batcher.pipeline import JobOptions
from batcher.running import RunOptions, RunReport, Target, run_file
from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from batcher.sending import RetryPolicy, SendConfig, Tally
from tests.runs import (
    LINE_A,
    LINE_B,
    assert_exactly_once,
    cli_env,
    direct_rows,
    ledger,
    recipient,
    run_cli,
    sheet,
    start_cli,
    stats,
    wait_for_deliveries,
)

# Retries as in production, but with short waits so that a test takes seconds.
QUICK = RetryPolicy(
    attempts=10, total_seconds=60, wait_initial=0.02, wait_max=0.2, wait_jitter=0.02
)


@pytest.fixture
def box() -> Iterator[RunningSandbox]:
    """A plain sandbox: no limits, no faults."""
    with running_sandbox(SandboxConfig()) as running:
        yield running


def send(box: RunningSandbox, path: Path, *, mode: str = "bearer", **config: object) -> RunReport:
    """Run a handoff file in-process against the sandbox."""
    settings: dict[str, object] = {"rate": 0.0, "retry": QUICK, **config}
    options = RunOptions(job=JobOptions(path=path), send=SendConfig(**settings))  # type: ignore[arg-type]
    credentials = Credentials(box.secret, mode, box.tenant)  # type: ignore[arg-type]
    return run_file(options, Target(box.base_url, credentials, "sandbox"))


def statuses(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return [row["status"] for row in csv.DictReader(stream)]


def test_sends_every_row_once_and_reruns_send_nothing(box: RunningSandbox, tmp_path: Path) -> None:
    """A clean run sends all; rerunning the file or its results sheet sends nothing new."""
    path = sheet(tmp_path / "in.csv", direct_rows(30))
    report = send(box, path)
    assert (report.sent_now, report.exit_code) == (30, 0)
    assert statuses(report.output) == ["sent"] * 30
    again = send(box, path)
    assert again.sent_now == 0
    fed_back = run_file(
        RunOptions(
            job=JobOptions(path=report.output, out=tmp_path / "again.csv"),
            journal=tmp_path / "fresh.journal.sqlite",
        ),
        Target(box.base_url, Credentials(box.secret), "sandbox"),
    )
    assert fed_back.sent_now == 0
    assert statuses(tmp_path / "again.csv") == ["sent"] * 30
    # The messages, and the first run's pull of opt-outs and one look at the account's
    # lines: the reruns, with nothing to send, make no request at all.
    assert stats(box)["requests"] == 32
    assert_exactly_once(box, 30)


def test_results_carry_ids_keys_and_attempts(box: RunningSandbox, tmp_path: Path) -> None:
    """Each sent row has its chat id, message id, key, attempts, time and trace id."""
    path = sheet(tmp_path / "in.csv", direct_rows(2))
    report = send(box, path)
    with report.output.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    delivered = {m["idempotency_key"]: m for m in ledger(box)}
    for row in rows:
        message = delivered[row["idempotency_key"]]
        assert (row["chat_id"], row["message_id"]) == (message["chat_id"], message["id"])
        assert row["attempts"] == "1"
        assert row["sent_at"].endswith("Z")
        assert len(row["trace_id"]) == 12


@pytest.mark.parametrize(
    "faults",
    [
        {"p503": 0.4},
        {"pdrop": 0.4},
        {"pslow": 0.3, "slow_seconds": 2.0},
        {"p503": 0.2, "pdrop": 0.2, "pslow": 0.1, "slow_seconds": 2.0},
    ],
)
def test_faults_end_with_every_row_sent_exactly_once(
    tmp_path: Path, faults: dict[str, float]
) -> None:
    """503s, dropped connections after the work and stalls past --timeout: all sent, once."""
    rows = direct_rows(24)
    rows.append([LINE_A, f"{recipient(0)};{recipient(1)}", "group hello"])
    rows.append([LINE_A, recipient(0), "second message in an existing chat"])
    with running_sandbox(SandboxConfig(seed=7, **faults)) as faulty:  # type: ignore[arg-type]
        report = send(faulty, sheet(tmp_path / "in.csv", rows), timeout=0.5, concurrency=4)
        assert statuses(report.output) == ["sent"] * 26
        assert_exactly_once(faulty, 26)
        assert stats(faulty)["requests"] > 26  # the faults really happened


def test_follow_up_waits_for_its_chat(box: RunningSandbox, tmp_path: Path) -> None:
    """Rows of one chat go in sheet order; split group rows go creation first."""
    rows = [
        [LINE_A, recipient(1), "one"],
        [LINE_A, recipient(1), "two"],
        [LINE_A, recipient(1), "three"],
    ]
    path = sheet(tmp_path / "in.csv", rows)
    send(box, path, concurrency=8)
    texts = [m["parts"][0]["value"] for m in ledger(box)]
    assert texts == ["one", "two", "three"]
    assert len({m["chat_id"] for m in ledger(box)}) == 1


def test_failed_creation_fails_its_follow_ups(tmp_path: Path) -> None:
    """A refused first message fails the row; later rows of that chat name it."""
    tallies: list[Tally] = []
    with running_sandbox(SandboxConfig()) as box:
        # An attachment id Chert never had: only the API can tell, and it refuses (1002).
        rows = [
            [LINE_B, recipient(1), "one", "att-never-uploaded"],
            [LINE_B, recipient(1), "two", ""],
        ]
        path = sheet(tmp_path / "in.csv", rows, headers=["From", "To", "Text", "Media"])
        options = RunOptions(
            job=JobOptions(path=path),
            send=SendConfig(rate=0, retry=QUICK),
        )
        target = Target(box.base_url, Credentials(box.secret), "sandbox")
        report = run_file(options, target, on_progress=lambda t: tallies.append(replace(t)))
    assert (tallies[-1].failed, tallies[-1].pending, tallies[-1].done) == (2, 0, 2)
    with report.output.open(encoding="utf-8-sig", newline="") as stream:
        first, second = csv.DictReader(stream)
    assert (first["status"], first["error_code"]) == ("failed", "1002")
    assert second["status"] == "failed"
    assert "row 2, which creates this chat, failed (1002)" in second["error_message"]
    assert report.exit_code == 1


def test_rate_limit_answers_are_retried(tmp_path: Path) -> None:
    """429 / 1007 from the API: the run slows down and still sends everything once."""
    with running_sandbox(SandboxConfig(rate=20)) as box:
        report = send(box, sheet(tmp_path / "in.csv", direct_rows(30)))
        assert report.sent_now == 30
        assert_exactly_once(box, 30)


def test_rate_windows(box: RunningSandbox, tmp_path: Path) -> None:
    """No 1-second window carries more than rate + 1 requests (server's clock)."""
    send(box, sheet(tmp_path / "in.csv", direct_rows(50)), rate=20.0, concurrency=8)
    times = sorted(
        r["t"]
        for r in httpx.get(f"{box.root_url}/_sandbox/requests").json()["requests"]
        if r["method"] == "POST"  # not the one look at the account's lines
    )
    assert len(times) == 50
    worst = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert worst <= 21


def test_one_line_deferred_while_the_others_go_on(tmp_path: Path) -> None:
    """A line out of capacity for longer than --max-wait defers its new chats only."""
    rows = [[LINE_A, recipient(n), f"A{n}"] for n in range(3)]
    rows += [[LINE_B, recipient(10), f"B{n}"] for n in range(3)]
    with running_sandbox(SandboxConfig(line_gap=3600)) as box:
        report = send(box, sheet(tmp_path / "in.csv", rows), max_wait=5)
        delivered = sorted(m["parts"][0]["value"] for m in ledger(box))
    # Line A's three new chats race for its one first touch; line B's chat goes on.
    assert [text[0] for text in delivered] == ["A", "B", "B", "B"]
    assert delivered[1:] == ["B0", "B1", "B2"]
    assert set(report.deferred) == {LINE_A}
    with report.output.open(encoding="utf-8-sig", newline="") as stream:
        results = list(csv.DictReader(stream))
    line_a = sorted((row["status"], row["error_message"][:15]) for row in results[:3])
    assert line_a == [("pending", "deferred until "), ("pending", "deferred until "), ("sent", "")]
    assert [row["status"] for row in results[3:]] == ["sent"] * 3


def test_short_capacity_wait_resumes_one_at_a_time(tmp_path: Path) -> None:
    """A capacity wait within --max-wait pauses the line, then it resumes without a herd."""
    rows = [[LINE_A, recipient(n), f"A{n}"] for n in range(4)]
    with running_sandbox(SandboxConfig(line_gap=0.4)) as box:
        report = send(box, sheet(tmp_path / "in.csv", rows), max_wait=5, concurrency=8)
        refused = stats(box)["by_code"].get("4002", 0)
    assert report.sent_now == 4
    assert refused <= 6  # at most the first herd and a probe or two, not one per wait


def test_hmac(tmp_path: Path) -> None:
    """--auth hmac signs every attempt; the sandbox accepts them."""
    with running_sandbox(SandboxConfig(tenant="acme", p503=0.3, seed=3)) as box:
        report = send(box, sheet(tmp_path / "in.csv", direct_rows(10)), mode="hmac")
        assert report.sent_now == 10
        assert_exactly_once(box, 10)


@pytest.mark.parametrize("auth", ["bearer", "hmac"])
def test_wrong_secret_stops_at_once_with_exit_3(
    box: RunningSandbox, tmp_path: Path, auth: str
) -> None:
    """Bad credentials stop the whole run at once, saying to check the secret."""
    path = sheet(tmp_path / "in.csv", direct_rows(40))
    env = cli_env(box, CHERT_SIGNING_SECRET="Zq-not-the-secret")
    done = run_cli(["run", str(path), "--yes", "--auth", auth, "--rate", "0", "-vv"], env)
    assert done.returncode == 3
    assert "Chert refused the credentials (2004" in done.stdout
    assert "check CHERT_SIGNING_SECRET" in done.stdout.replace("Check", "check")
    assert "Zq-not-the-secret" not in done.stdout + done.stderr  # not even in -vv logs
    assert "HTTP Request: GET" in done.stderr
    assert stats(box)["requests"] == 1  # the pull of opt-outs, refused: nothing else
    assert ledger(box) == []


def test_no_terminal_needs_yes(box: RunningSandbox, tmp_path: Path) -> None:
    """Without a terminal to confirm on, --yes is required: a usage error otherwise."""
    path = sheet(tmp_path / "in.csv", direct_rows(1))
    done = run_cli(["run", str(path)], cli_env(box))
    assert done.returncode == 2
    assert "Pass --yes to send." in done.stderr
    assert ledger(box) == []


def test_plain_http_only_to_loopback(tmp_path: Path) -> None:
    """http:// to another host is refused before anything is read or sent."""
    path = sheet(tmp_path / "in.csv", direct_rows(1))
    env = cli_env_without_box(CHERT_BASE_URL="http://example.com/api/v1")
    done = run_cli(["run", str(path), "--yes"], env)
    assert done.returncode == 2
    assert "plain http:// to a host that is not this machine" in done.stderr


def cli_env_without_box(**extra: str) -> dict[str, str]:
    import os

    return {**os.environ, "CHERT_SIGNING_SECRET": "s3cret", **extra}


def test_sigkill_mid_run_then_rerun_sends_each_once(box: RunningSandbox, tmp_path: Path) -> None:
    """A run killed with SIGKILL loses nothing: the rerun finishes, nothing twice."""
    path = sheet(tmp_path / "in.csv", direct_rows(120))
    env = cli_env(box)
    process = start_cli(["run", str(path), "--yes", "--rate", "40"], env)
    wait_for_deliveries(box, 30)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert 30 <= len(ledger(box)) < 120
    done = run_cli(["run", str(path), "--yes", "--rate", "0"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(box, 120)
    assert statuses(tmp_path / "in.results.csv") == ["sent"] * 120


def test_sigterm_stops_cleanly_then_rerun_finishes(box: RunningSandbox, tmp_path: Path) -> None:
    """SIGTERM: stop starting requests, write the results, exit 3, say how to finish."""
    path = sheet(tmp_path / "in.csv", direct_rows(100))
    env = cli_env(box)
    process = start_cli(["run", str(path), "--yes", "--rate", "25"], env)
    wait_for_deliveries(box, 10)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 3, stdout + stderr
    assert "Stopped early: terminated (SIGTERM)" in stdout
    assert "Rerun the same command to finish" in stdout
    assert "Traceback" not in stderr
    states = statuses(tmp_path / "in.results.csv")
    assert states.count("sent") == len(ledger(box)) < 100
    assert set(states) == {"sent", "pending"}
    done = run_cli(["run", str(path), "--yes", "--rate", "0"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(box, 100)


def test_one_run_per_journal(box: RunningSandbox, tmp_path: Path) -> None:
    """A second run on a journal in use is refused, saying why, and sends nothing."""
    path = sheet(tmp_path / "in.csv", direct_rows(200))
    env = cli_env(box)
    first = start_cli(["run", str(path), "--yes", "--rate", "20"], env)
    wait_for_deliveries(box, 1)
    second = run_cli(["run", str(path), "--yes", "--rate", "0"], env)
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=20)
    assert second.returncode == 2, second.stdout + second.stderr
    assert "is in use by another chert-batch run" in second.stderr
    assert_exactly_once(box, len(ledger(box)))


def test_clock_skew_stops_the_run_and_says_check_the_clock(tmp_path: Path) -> None:
    """401 / 2013 (a server whose clock disagrees, which no sandbox fakes on demand) stops all."""
    import anyio

    from batcher.caller import Caller
    from batcher.client import ChertClient
    from batcher.clock import SYSTEM_CLOCK
    from batcher.journal import Journal
    from batcher.pipeline import prepare
    from batcher.render import run_summary
    from batcher.sending import Sender

    seen: list[str] = []

    def skewed(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        error = {"status": 401, "code": 2013, "message": "timestamp skew", "retryable": False}
        return httpx.Response(401, json={"success": False, "error": error, "trace_id": "t"})

    plan = prepare(JobOptions(path=sheet(tmp_path / "in.csv", direct_rows(20)))).plan
    journal = Journal(tmp_path / "j.sqlite")

    async def go() -> RunReport:
        transport = httpx.MockTransport(skewed)
        async with httpx.AsyncClient(transport=transport) as http:
            client = ChertClient(http, "https://api.example/api/v1", Credentials("s", "hmac", "t"))
            caller = Caller(client, SYSTEM_CLOCK, rate=0, retry=RetryPolicy())
            result = await Sender(caller, journal, SendConfig(rate=0, concurrency=1)).send(
                plan.chats, {}, {}
            )
        report = RunReport(tmp_path / "in.csv", tmp_path / "out.csv", journal=tmp_path / "j")
        report.stopped = result.stopped
        return report

    report = anyio.run(go)
    assert len(seen) == 1  # the first refusal stops everything
    assert report.exit_code == 3
    assert "Check this machine's clock" in run_summary(report, "chert-batch run in.csv")
