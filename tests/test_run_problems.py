"""Rows Chert refused are problems like any other: code, meaning and the API's own words."""

from __future__ import annotations

import csv
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batcher.model import api_text
from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from tests.runs import LINE_A, LINE_B, cli_env, direct_rows, recipient, run_cli, sheet


@pytest.fixture
def box() -> Iterator[RunningSandbox]:
    """A sandbox whose account has line A only."""
    with running_sandbox(SandboxConfig(lines=(LINE_A,))) as running:
        yield running


REFUSED = [
    [LINE_A, recipient(1), "hello", ""],
    [LINE_A, "", "into a chat that does not exist", "chat-nope"],
    [LINE_B, recipient(2), "from a line not on the account", ""],
]


def run_refused(box: RunningSandbox, tmp_path: Path, *extra: str) -> tuple[int, str]:
    path = sheet(tmp_path / "in.csv", REFUSED, headers=["From", "To", "Text", "chat_id"])
    done = run_cli(["run", str(path), "--yes", "--rate", "0", *extra], cli_env(box))
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout


def test_summary_shows_each_refusal_with_code_meaning_and_message(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """Each failed row is a Problems line: row, code, meaning, the API's message."""
    code, output = run_refused(box, tmp_path)
    assert code == 1
    assert "  1004             1  no such chat or message" in output
    assert "  2006             1  sender line not on this account" in output
    assert "Problems:" in output
    assert "  row 3: Chert refused it (1004, no such chat or message): no chat chat-nope" in output
    assert "  row 4: Chert refused it (2006, sender line not on this account): " in output


def test_json_problems_say_they_came_from_the_api(box: RunningSandbox, tmp_path: Path) -> None:
    """--json lists the refusals as problems with "source": "api" and the code's meaning."""
    _, output = run_refused(box, tmp_path, "--json")
    summary = json.loads(output)
    assert summary["by_code"]["1004"] == {"count": 1, "meaning": "no such chat or message"}
    problems = {problem["row"]: problem for problem in summary["problems"]}
    assert sorted(problems) == [3, 4]
    assert problems[3] == {
        "row": 3,
        "column": "",
        "value": "",
        "code": 1004,
        "meaning": "no such chat or message",
        "message": "no chat chat-nope",
        "source": "api",
    }
    assert problems[4]["source"] == "api"
    assert problems[4]["code"] == 2006


def test_local_problems_say_so_in_json(box: RunningSandbox, tmp_path: Path) -> None:
    """A row refused before sending is a problem with "source": "local"."""
    path = sheet(tmp_path / "in.csv", [[LINE_A, "415-555-12", "hi"]])
    done = run_cli(["run", str(path), "--yes", "--json"], cli_env(box))
    (problem,) = json.loads(done.stdout)["problems"]
    assert (problem["source"], problem["code"]) == ("local", 1003)
    assert problem["meaning"] == "invalid phone number"


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("no chat chat-nope", "no chat chat-nope"),
        ("bad\x1b[31m red\x07 bell", "bad[31m red bell"),
        ("two\nlines\r\n\tand a tab", "two lines and a tab"),
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1 is a formula too", "'+1 is a formula too"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-1", "'-1"),
        ("  padded  ", "padded"),
        ("x" * 400, "x" * 299 + "…"),
        ("", ""),
    ],
)
def test_api_text_is_one_safe_short_line(message: str, shown: str) -> None:
    """What the API says is shown without control characters, capped, never a formula."""
    assert api_text(message) == shown


def test_code_without_a_meaning_shows_the_apis_message(tmp_path: Path) -> None:
    """A code chert-batch has no meaning for is explained by what the API said."""
    from batcher.model import CODE_MEANINGS, Problem
    from batcher.pipeline import Report

    report = Report(tmp_path / "in.csv", tmp_path / "out.csv")
    report.by_code[7777] += 1
    report.problems.append(Problem(2, "", "", 7777, "quota of widgets exceeded", "api"))
    assert 7777 not in CODE_MEANINGS
    assert report.meaning(7777) == "quota of widgets exceeded"
    assert report.to_json()["by_code"]["7777"]["meaning"] == "quota of widgets exceeded"


def test_no_connection_at_all_stops_within_seconds(tmp_path: Path) -> None:
    """A closed port: exit 3 within seconds, naming the URL and the cause; every row pending."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nobody listens
    base_url = f"http://127.0.0.1:{port}/api/v1"
    path = sheet(tmp_path / "in.csv", direct_rows(20))
    env = {**os.environ, "CHERT_SIGNING_SECRET": "s3cret-value", "CHERT_BASE_URL": base_url}
    started = time.monotonic()
    done = run_cli(["run", str(path), "--yes", "--concurrency", "1"], env)
    assert time.monotonic() - started < 15
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"could not connect to {base_url} (" in done.stdout
    assert "refused" in done.stdout.lower()
    with (tmp_path / "in.results.csv").open(encoding="utf-8-sig", newline="") as stream:
        assert {row["status"] for row in csv.DictReader(stream)} == {"pending"}
