"""`run` and the account's lines: the per-line plan it sets out with, and the lines check."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import pytest

from batcher.client import Answer, Credentials, Unanswered
from batcher.pipeline import JobOptions
from batcher.running import RunOptions, RunReport, Target, run_file
from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from batcher.senderlines import Barred, lines_or_why
from batcher.sending import SendConfig
from tests.runs import LINE_A, LINE_B, cli_env, direct_rows, recipient, run_cli, sheet


def test_run_json_has_the_plan_it_set_out_with(box: RunningSandbox, tmp_path: Path) -> None:
    """run --json: "lines" counts what this run was to send, at the pace given."""
    rows = [*direct_rows(5), [LINE_A, recipient(0), "again"]]
    path = sheet(tmp_path / "in.csv", rows)
    args = ["run", str(path), "--yes", "--json", "--rate", "0", "--line-daily", "3"]
    done = run_cli(args, cli_env(box))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["lines"] == [
        {"line": LINE_A, "first_touches": 3, "follow_ups": 1, "estimate_seconds": 1200},
        {"line": LINE_B, "first_touches": 2, "follow_ups": 0, "estimate_seconds": 600},
    ]
    assert summary["line_pace"] == {"gap_seconds": 600, "daily": 3, "assumed": ["gap"]}
    again = json.loads(run_cli(args, cli_env(box)).stdout)
    assert again["lines"] == []  # nothing left to send


# The lines check ------------------------------------------------------------


def run_in_process(box: RunningSandbox, path: Path) -> RunReport:
    """`run` of a handoff file against a sandbox, in this process, no rate limit."""
    options = RunOptions(job=JobOptions(path=path), send=SendConfig(rate=0.0))
    return run_file(options, Target(box.base_url, Credentials(box.secret), "sandbox"))


def results(path: Path) -> list[dict[str, str]]:
    """The rows of a results CSV."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


def api_requests(box: RunningSandbox) -> list[tuple[str, str, int]]:
    """Every API request the sandbox saw: method, path, status."""
    seen = httpx.get(f"{box.root_url}/_sandbox/requests").json()["requests"]
    return [(entry["method"], entry["path"], entry["status"]) for entry in seen]


def test_rows_from_a_line_the_account_does_not_list_fail_unsent(tmp_path: Path) -> None:
    """Not listed: failed with 2006 and what to check, and no request from that line."""
    with running_sandbox(SandboxConfig(lines=(LINE_A,))) as box:
        report = run_in_process(box, sheet(tmp_path / "in.csv", direct_rows(6)))
        seen = api_requests(box)
    rows = results(report.output)
    assert [row["status"] for row in rows] == ["sent", "failed"] * 3
    assert {row["error_code"] for row in rows[1::2]} == {"2006"}
    assert rows[1]["error_message"] == (
        f"the account has no line {LINE_B} (Chert does not list it among the account's "
        "lines); not sent. Check --from or the From column"
    )
    assert rows[1]["idempotency_key"].startswith("cb1-")
    # The pull of opt-outs, the one look at the lines, the sends.
    lines = [("GET", "/api/v1/events", 200), ("GET", "/api/v1/phone-numbers", 200)]
    assert seen == lines + [("POST", "/api/v1/chats", 200)] * 3
    assert report.barred == {LINE_B: Barred.UNKNOWN}
    assert (report.sent_now, report.exit_code) == (3, 1)


def test_rows_from_an_inactive_line_wait_and_a_rerun_sends_them(tmp_path: Path) -> None:
    """Listed but not active: pending ("line ... is not active"); once active, a rerun sends."""
    path = sheet(tmp_path / "in.csv", direct_rows(4))
    with running_sandbox(SandboxConfig(lines=(LINE_A,), inactive=(LINE_B,))) as box:
        report = run_in_process(box, path)
        seen = api_requests(box)
    rows = results(report.output)
    assert [row["status"] for row in rows] == ["sent", "pending"] * 2
    assert rows[1]["error_message"] == (
        f"line {LINE_B} is not active in the account; not sent. Activate it (or send the "
        "row from another line), then run again"
    )
    assert rows[1]["error_code"] == ""
    assert [method for method, _, _ in seen] == ["GET", "GET", "POST", "POST"]
    assert all(status == 200 for _, _, status in seen)
    with running_sandbox(SandboxConfig(lines=(LINE_A, LINE_B))) as activated:
        again = run_in_process(activated, path)
    assert again.sent_now == 2
    assert [row["status"] for row in results(again.output)] == ["sent"] * 4


def test_a_sandbox_without_lines_is_not_checked_and_says_so_at_v(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """No GET /phone-numbers route (404): -v says so, and every row is sent as before."""
    path = sheet(tmp_path / "in.csv", direct_rows(4))
    done = run_cli(["run", str(path), "--yes", "--rate", "0", "-v", "--json"], cli_env(box))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "the account's lines were not checked (GET /phone-numbers: HTTP 404 / 1004: this "
        "sandbox accepts any sender line" in done.stderr
    )
    summary = json.loads(done.stdout)
    assert summary["by_status"]["sent"] == 4
    assert summary["barred_lines"] == []
    assert summary["lines_unchecked"].startswith("HTTP 404 / 1004")
    quiet = run_cli(["run", str(path), "--yes"], cli_env(box))
    assert "not checked" not in quiet.stderr


def test_the_summary_says_which_lines_sent_nothing_and_why(tmp_path: Path) -> None:
    """The run's summary names each barred line, its rows, and what to do."""
    config = SandboxConfig(lines=(LINE_A,), inactive=("+15555550102",))
    rows = [*direct_rows(3), ["+15555550102", recipient(9), "Hi"]]
    with running_sandbox(config) as box:
        done = run_cli(["run", str(sheet(tmp_path / "in.csv", rows)), "--yes"], cli_env(box))
        assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"Line {LINE_B} is not one of the account's lines (2006): its 1 row failed, and "
        "nothing was sent from it. Check --from or the From column."
    ) in done.stdout
    assert (
        "Line +15555550102 is not active in the account: its 1 row stays pending, and nothing"
    ) in done.stdout


@pytest.mark.parametrize(
    ("result", "lines"),
    [
        (
            Answer(
                200,
                {
                    "phone_numbers": [
                        {"phone_number": LINE_A, "is_active": True, "id": "pn_1"},
                        {"phone_number": LINE_B, "is_active": False},
                        {"phone_number": "+1 (555) 555-0102"},
                    ]
                },
            ),
            {LINE_A: True, LINE_B: False, "+15555550102": True},
        ),
        (Answer(200, {"phone_numbers": []}), {}),
        (Answer(200, {}), "an answer without a phone_numbers list"),
        (
            Answer(200, {"phone_numbers": [{"number": LINE_A}]}),
            "an answer without a phone_numbers list",
        ),
        (
            Answer(200, {"phone_numbers": ["+15555550100"]}),
            "an answer without a phone_numbers list",
        ),
        (Answer(503, {}, code=3001, message="unavailable"), "HTTP 503 / 3001: unavailable"),
        (Answer(404, {}, message="Not Found"), "HTTP 404: Not Found"),
        (Unanswered("no answer before the timeout"), "no answer before the timeout"),
    ],
    ids=["documented", "none", "no list", "other field", "strings", "5xx", "404", "timeout"],
)
def test_lines_or_why(result: Answer | Unanswered, lines: dict[str, bool] | str) -> None:
    """The account's lines from the documented answer; anything else is a reason, not a list."""
    assert lines_or_why(result) == lines
