"""`chert-batch run` as a person starts it: refusals at start, closed streams, odd secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from tests.runs import assert_exactly_once, cli_env, direct_rows, ledger, run_cli, sheet

SECRET = "Zq7xK2mP9vL4nR8tW3yB6cF1"


@pytest.mark.parametrize(
    ("secret", "auth", "fault"),
    [
        (SECRET + "\n", "bearer", "ends with a newline: copy it again without it."),
        (SECRET + " ", "hmac", "ends with a space: copy it again without it."),
        (" " + SECRET, "bearer", "starts with a space: copy it again without it."),
        (SECRET[:10] + "\r" + SECRET[10:], "hmac", "holds a carriage return at position 11"),
        (SECRET + "é", "bearer", "holds a character that is not ASCII at position 25"),
    ],
)
def test_a_mangled_secret_is_refused_before_anything_is_read(
    box: RunningSandbox, tmp_path: Path, secret: str, auth: str, fault: str
) -> None:
    """A secret pasted with a stray character: exit 2 at once, where it is, never the secret."""
    path = sheet(tmp_path / "in.csv", direct_rows(5))
    env = cli_env(box, CHERT_SIGNING_SECRET=secret)
    done = run_cli(["run", str(path), "--yes", "--auth", auth, "-vv"], env, timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"Error: CHERT_SIGNING_SECRET {fault}" in done.stderr
    assert "Traceback" not in done.stderr
    assert SECRET[:8] not in done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # nothing read or written
    assert ledger(box) == []


def test_hmac_signs_with_a_non_ascii_secret(tmp_path: Path) -> None:
    """HMAC keys with the secret's UTF-8 bytes: a non-ASCII secret is fine there."""
    with running_sandbox(SandboxConfig(secret="clé-" + SECRET, tenant="acme")) as box:
        path = sheet(tmp_path / "in.csv", direct_rows(3))
        done = run_cli(["run", str(path), "--yes", "--auth", "hmac", "--rate", "0"], cli_env(box))
        assert done.returncode == 0, done.stdout + done.stderr
        assert_exactly_once(box, 3)


def run_in_shell(redirect: str, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """`chert-batch ARGS REDIRECT` typed in a shell, e.g. `<&-`; the exit code and stderr."""
    command = [sys.executable, "-m", "batcher", *args]
    done = subprocess.run(
        ["sh", "-c", f'"$@" {redirect}', "sh", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stderr


@pytest.mark.parametrize(
    ("redirect", "yes", "code", "said"),
    [
        ("<&-", True, 0, ""),
        ("<&-", False, 2, "Error: there is no terminal to confirm on.\nPass --yes to send."),
        (">&-", True, 0, ""),
        ("2>&-", True, 0, ""),
        ("<&- >&- 2>&-", True, 0, ""),
    ],
)
def test_closed_standard_streams(
    box: RunningSandbox, tmp_path: Path, redirect: str, yes: bool, code: int, said: str
) -> None:
    """stdin, stdout or stderr closed: the run works with --yes, or says why not."""
    path = sheet(tmp_path / "in.csv", direct_rows(3))
    args = ["run", str(path), *(["--yes"] if yes else [])]
    returncode, stderr = run_in_shell(redirect, args, cli_env(box))
    assert returncode == code, stderr
    assert said in stderr
    assert "Traceback" not in stderr
    assert_exactly_once(box, 3 if yes else 0)


def test_sandbox_with_base_url_typed_is_a_usage_error(tmp_path: Path) -> None:
    """--sandbox and --base-url on one command line: exit 2, nothing read or sent."""
    path = sheet(tmp_path / "in.csv", direct_rows(2))
    args = ["run", str(path), "--yes", "--sandbox", "--base-url", "https://api.example/v1"]
    done = run_cli(args, {**os.environ, "CHERT_SIGNING_SECRET": SECRET})
    assert done.returncode == 2, done.stderr
    assert (
        "Error: --sandbox and --base-url cannot be used together: --sandbox sends to a "
        "sandbox it starts on this machine.\n"
        "Drop --base-url to try the sandbox, or --sandbox to send to that URL."
    ) in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_sandbox_says_it_ignores_chert_base_url(box: RunningSandbox, tmp_path: Path) -> None:
    """CHERT_BASE_URL in the environment gives way to --sandbox, which says so."""
    path = sheet(tmp_path / "in.csv", direct_rows(2))
    done = run_cli(["run", str(path), "--yes", "--sandbox"], cli_env(box))
    assert done.returncode == 0, done.stderr
    assert (
        f"--sandbox: ignoring CHERT_BASE_URL={box.base_url}; sending to a local sandbox.\n"
    ) in done.stderr
    assert ledger(box) == []  # not sent to the URL in the environment
    assert (tmp_path / "in.sandbox.results.csv").exists()
