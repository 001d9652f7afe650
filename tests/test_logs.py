"""The -v / -vv log cannot carry the signing secret or an auth header, whatever logs it."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import httpx
import pytest

from batcher.client import Credentials
from batcher.logs import Redactor, logging_to
from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from tests.runs import cli_env, direct_rows, run_cli, sheet

S = "Zq7s3cr3tVal"  # the secret in the table below
SIGNATURE = "v1,1700000000," + "ab12" * 16


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"token {S} here", "token [hidden] here"),
        (f"{S}{S}", "[hidden][hidden]"),
        ("Bearer another-token-value", "Bearer [hidden]"),
        ("invalid bearer token", "invalid bearer token"),  # an API message stays readable
        ("{'Authorization': 'Bearer xyz', 'x': '1'}", "{'Authorization': '[hidden]', 'x': '1'}"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: [hidden]"),
        (f"(b'x-chert-signature', b'{SIGNATURE}')", "(b'x-chert-signature', b'[hidden]')"),
        (f"signed {SIGNATURE} at last", "signed v1,[hidden] at last"),
        ("Authorization failed for row 2", "Authorization failed for row 2"),
    ],
)
def test_redacted_text(text: str, shown: str) -> None:
    """The secret, bearer tokens and auth header values become [hidden]; the rest stays."""
    assert Redactor([S]).redact(text) == shown


@pytest.mark.parametrize(
    ("secret", "logged"),
    [
        (S + "\n", S + "\n"),
        (S + "\n", repr(S + "\n")),
        (S + "\n", repr(repr((S + "\n").encode()))),  # a repr of a repr: \\n
        (S + "\n", S),  # stripped by whoever logged it
        (" " + S, f"%20{S}"),  # percent-encoded
        (S[:4] + "\t" + S[4:], repr(S[:4] + "\t" + S[4:])),
        (S + "é", repr((S + "é").encode())),  # \xc3\xa9
        (S + "é", '"' + S + '\\u00e9"'),  # JSON-escaped
    ],
)
def test_every_form_of_the_secret_is_hidden(secret: str, logged: str) -> None:
    """The secret as is, escaped any number of times, as UTF-8 bytes or percent-encoded."""
    shown = Redactor([secret]).redact(f"before {logged} after")
    assert S[:5] not in shown
    assert shown.startswith("before ")
    assert shown.endswith(" after")


@pytest.fixture
def log() -> io.StringIO:
    """Where the log under test is written."""
    return io.StringIO()


@pytest.mark.parametrize(
    "secret",
    [S + "\n", S + " ", S + "\t", S + "\r\n", S[:6] + "\r" + S[6:], S[:6] + "\x00" + S[6:]],
)
def test_a_header_httpcore_refuses_is_not_logged(
    box: RunningSandbox, log: io.StringIO, secret: str
) -> None:
    """httpcore's -vv log of a refused header value, and the exception, show no secret.

    Such a secret is refused at start (batcher.secret); here it goes around that rule
    and straight to a real request, as some later command might send it.
    """
    with logging_to(log, verbose=2, secrets=[secret]), httpx.Client() as client:
        try:
            client.post(f"{box.base_url}/chats", headers=Credentials(secret).headers(b""))
        except httpx.LocalProtocolError:
            logging.getLogger("batcher.test").exception("the request was refused")
        else:
            pytest.fail("httpcore sent a header it should refuse")
    text = log.getvalue()
    assert "send_request_headers.failed" in text  # httpcore did log the refused value
    assert "Traceback" in text
    assert "the request was refused" in text
    assert S[:6] not in text
    assert S[6:] not in text


def test_signature_headers_are_not_logged(log: io.StringIO) -> None:
    """A logged request's headers show neither the bearer token nor the HMAC signature."""
    hmac = Credentials(S, "hmac", "acme").headers(b"{}")
    request = httpx.Request("POST", "https://example.invalid/chats", headers=hmac)
    with logging_to(log, verbose=2):
        logging.getLogger("batcher.test").debug("headers %r", request.headers.raw)
    assert hmac["x-chert-signature"].split(",")[2] not in log.getvalue()
    assert "x-chert-signature', b'[hidden]'" in log.getvalue()


def test_library_handlers_are_routed_through_the_filter(log: io.StringIO) -> None:
    """A library that set up its own handler logs through the filter, not around it."""
    library = logging.getLogger("some.library")
    own = io.StringIO()
    library.addHandler(logging.StreamHandler(own))
    library.propagate = False
    with logging_to(log, verbose=1, secrets=[S]):
        library.warning("connecting with %s", S)
    assert own.getvalue() == ""
    assert "some.library: connecting with [hidden]" in log.getvalue()


def test_a_malformed_log_call_does_not_break_the_command(log: io.StringIO) -> None:
    """A record whose arguments do not fit its message is written, not raised."""
    with logging_to(log, verbose=1, secrets=[S]):
        logging.getLogger("batcher.test").warning("two %s %s", S)
    assert "two [hidden] [hidden]" not in log.getvalue()
    assert "(its arguments could not be formatted)" in log.getvalue()
    assert S not in log.getvalue()


@pytest.mark.parametrize("auth", ["bearer", "hmac"])
def test_a_verbose_run_writes_the_secret_nowhere(tmp_path: Path, auth: str) -> None:
    """A real -vv run: the secret is in no output and no file it writes."""
    secret = "sk_Zq7/s3cr3t+Val=ue"
    with running_sandbox(SandboxConfig(secret=secret, tenant="acme", p503=0.3, seed=4)) as box:
        path = sheet(tmp_path / "in.csv", direct_rows(6))
        args = ["run", str(path), "--yes", "-vv", "--auth", auth, "--rate", "0"]
        done = run_cli(args, cli_env(box))
    assert done.returncode == 0, done.stderr
    assert "HTTP Request: POST" in done.stderr
    assert '503 Service Unavailable"' in done.stderr  # faults were answered, and retried
    assert secret not in done.stdout + done.stderr
    for written in tmp_path.iterdir():
        assert secret.encode() not in written.read_bytes(), written
