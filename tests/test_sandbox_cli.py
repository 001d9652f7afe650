"""``chert-batch sandbox`` as a user runs it: a real process, real HTTP, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from batcher.cli import main
from batcher.sandbox.server import bind_loopback

REPO = Path(__file__).resolve().parents[1]
SECRET = "cli-test-secret"
BASE_URL = re.compile(r"listening on (http://127\.0\.0\.1:\d+/api/v1)")
CHAT = {
    "from": "+15555550100",
    "to": ["+14155551234"],
    "message": {"parts": [{"type": "text", "value": "hi"}]},
}


def start(*args: str, secret: str | None = SECRET) -> subprocess.Popen[str]:
    """Start ``chert-batch sandbox ARGS`` with the repo importable."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("CHERT_SIGNING_SECRET", None)
    env.pop("CHERT_TENANT", None)
    if secret is not None:
        env["CHERT_SIGNING_SECRET"] = secret
    command = [sys.executable, "-c", "from batcher.cli import main; main()", "sandbox", *args]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def process() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes started by the test; any still running at the end are killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def read_announcement(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Read what the sandbox prints on start; return (base URL, the whole text)."""
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("Press Ctrl-C"):
        line = proc.stdout.readline()
        assert line, "the sandbox exited before announcing itself"
        lines.append(line)
    text = "".join(lines)
    match = BASE_URL.search(text)
    assert match, text
    return match.group(1), text


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> tuple[int, str, str]:
    """Send a signal, wait, and return (exit code, rest of stdout, stderr)."""
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=15)
    return proc.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sandbox_serves_then_stops_cleanly(process: list[subprocess.Popen[str]], sig: int) -> None:
    """It answers on the port it announced and exits 0 without a traceback on a signal."""
    proc = start("--port", "0", "--p503", "0")
    process.append(proc)
    base_url, announcement = read_announcement(proc)
    response = httpx.post(
        f"{base_url}/chats", json=CHAT, headers={"Authorization": f"Bearer {SECRET}"}
    )
    assert response.status_code == 200, response.text
    code, out, err = stop(proc, sig)
    assert code == 0
    assert "Traceback" not in err
    assert "Sandbox stopped." in out
    assert f"CHERT_BASE_URL={base_url} chert-batch run FILE" in announcement
    assert SECRET not in announcement + out + err


def test_sandbox_without_a_secret_prints_a_throwaway_one(
    process: list[subprocess.Popen[str]],
) -> None:
    """Without CHERT_SIGNING_SECRET it makes one up and says how to export it."""
    proc = start("--port", "0", secret=None)
    process.append(proc)
    base_url, announcement = read_announcement(proc)
    match = re.search(r"export CHERT_SIGNING_SECRET=(\S+)", announcement)
    assert match
    headers = {"Authorization": f"Bearer {match.group(1)}"}
    assert httpx.post(f"{base_url}/chats", json=CHAT, headers=headers).status_code == 200
    assert stop(proc)[0] == 0


def test_sandbox_lists_its_lines_and_the_inactive_ones(
    process: list[subprocess.Popen[str]],
) -> None:
    """--lines (repeated or comma-separated) and --inactive make GET /phone-numbers' list."""
    proc = start(
        "--port", "0", "--lines", "+15555550100,+15555550101", "--inactive", "+15555550102"
    )
    process.append(proc)
    base_url, _ = read_announcement(proc)
    headers = {"Authorization": f"Bearer {SECRET}"}
    lines = httpx.get(f"{base_url}/phone-numbers", headers=headers).json()["phone_numbers"]
    inactive = {**CHAT, "from": "+15555550102"}
    refused = httpx.post(f"{base_url}/chats", json=inactive, headers=headers)
    assert stop(proc)[0] == 0
    assert [(line["phone_number"], line["is_active"]) for line in lines] == [
        ("+15555550100", True),
        ("+15555550101", True),
        ("+15555550102", False),
    ]
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, 2006)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--p503", "1.5"], "1.5 is not in the range 0.0<=x<=1.0"),
        (["--pdrop", "-0.1"], "not in the range 0.0<=x<=1.0"),
        (["--rate", "0"], "not in the range x>0"),
        (["--line-daily", "0"], "not in the range x>=1"),
        (["--lines", "+15555550100,nope"], "'nope' is not an E.164 number"),
        (["--inactive", "nope"], "'nope' is not an E.164 number"),
        (["--port", "70000"], "not in the range 0<=x<=65535"),
    ],
)
def test_sandbox_refuses_bad_options(args: list[str], message: str) -> None:
    """Out-of-range options are usage errors (exit 2) before anything starts."""
    result = CliRunner().invoke(main, ["sandbox", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_sandbox_on_a_busy_port_says_what_to_do() -> None:
    """A port in use is exit 1 with a hint, not a traceback."""
    busy = bind_loopback(0)
    try:
        port = str(busy.getsockname()[1])
        result = CliRunner().invoke(
            main, ["sandbox", "--port", port], env={"CHERT_SIGNING_SECRET": "x"}
        )
    finally:
        busy.close()
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "--port 0" in result.output


def test_sandbox_state_outlives_the_process(
    process: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    """--state FILE: saved on Ctrl-C, and the next sandbox on it has the same messages."""
    kept = tmp_path / "box.sandbox.json"
    headers = {"Authorization": f"Bearer {SECRET}"}
    first = start("--port", "0", "--state", str(kept))
    process.append(first)
    base_url, _ = read_announcement(first)
    sent = httpx.post(f"{base_url}/chats", json=CHAT, headers=headers).json()["message"]
    assert stop(first)[0] == 0
    second = start("--port", "0", "--state", str(kept))
    process.append(second)
    base_url, _ = read_announcement(second)
    shown = httpx.get(f"{base_url}/messages/{sent['id']}", headers=headers)
    assert shown.status_code == 200
    assert shown.json()["message"]["chat_id"] == sent["chat_id"]
    assert stop(second)[0] == 0


def test_sandbox_refuses_a_state_file_it_did_not_write(tmp_path: Path) -> None:
    """A --state file that is not one: a message and exit 1, not a traceback."""
    bad = tmp_path / "notes.json"
    bad.write_text("[1, 2]")
    result = CliRunner().invoke(main, ["sandbox", "--port", "0", "--state", str(bad)])
    assert result.exit_code == 1
    assert "is not a sandbox state file" in result.output
    assert "delete this one to start afresh" in result.output
