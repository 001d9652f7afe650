"""Helpers for `run` tests: handoff files to send, a sandbox to send them to, ledger checks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from batcher.sandbox import RunningSandbox
from tests.sheets import write_csv

LINE_A = "+15555550100"
LINE_B = "+15555550101"
HEADERS = ["From", "To", "Text"]


def recipient(n: int) -> str:
    """A distinct valid US number for each n < 10,000 (the 555 exchange outside 01xx)."""
    return f"+1415555{2000 + n:04d}"


def direct_rows(count: int, lines: Sequence[str] = (LINE_A, LINE_B)) -> list[list[str]]:
    """`count` direct messages to distinct recipients, spread over the lines."""
    return [[lines[n % len(lines)], recipient(n), f"Hello #{n}"] for n in range(count)]


def sheet(path: Path, rows: list[list[str]], headers: Sequence[str] = HEADERS) -> Path:
    """A CSV handoff file with these rows."""
    return write_csv(path, [list(headers), *rows])


def ledger(box: RunningSandbox) -> list[dict[str, Any]]:
    """Every message the sandbox delivered, read over HTTP."""
    messages = httpx.get(f"{box.root_url}/_sandbox/messages").json()["messages"]
    assert isinstance(messages, list)
    return messages


def stats(box: RunningSandbox) -> dict[str, Any]:
    """The sandbox's counters, read over HTTP."""
    counters = httpx.get(f"{box.root_url}/_sandbox/stats").json()
    assert isinstance(counters, dict)
    return counters


def posts(box: RunningSandbox) -> int:
    """How many POSTs (sends, chat creations, uploads reserved) the sandbox was asked."""
    logged = httpx.get(f"{box.root_url}/_sandbox/requests").json()["requests"]
    return sum(entry["method"] == "POST" for entry in logged)


def assert_exactly_once(box: RunningSandbox, expected: int) -> None:
    """The ledger holds `expected` deliveries and no key twice."""
    keys = Counter(message["idempotency_key"] for message in ledger(box))
    assert sum(keys.values()) == expected
    assert max(keys.values(), default=1) == 1


def wait_for_deliveries(box: RunningSandbox, count: int, timeout: float = 30) -> None:
    """Wait until the sandbox has delivered at least `count` messages (a run is under way)."""
    deadline = time.monotonic() + timeout
    while len(ledger(box)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} deliveries in {timeout} s"
        time.sleep(0.05)


def cli_env(box: RunningSandbox, **extra: str) -> dict[str, str]:
    """Environment pointing `chert-batch run` at a sandbox."""
    return {
        **os.environ,
        "CHERT_SIGNING_SECRET": box.secret,
        "CHERT_BASE_URL": box.base_url,
        "CHERT_TENANT": box.tenant,
        **extra,
    }


def run_cli(
    args: Sequence[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`chert-batch ARGS` in a subprocess, as a person's shell would start it."""
    return subprocess.run(
        [sys.executable, "-m", "batcher", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(args: Sequence[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """`chert-batch ARGS` started in the background, to be signalled or killed."""
    return subprocess.Popen(
        [sys.executable, "-m", "batcher", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
