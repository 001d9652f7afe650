"""What each API answer means: the one table every sender, uploader and retry obeys."""

from __future__ import annotations

import httpx
import pytest

from batcher.answers import Kind, Verdict, classify
from batcher.client import Answer, Unanswered, read_answer


def envelope(
    status: int, code: int, *, retryable: bool, retry_after: float | None = None
) -> dict[str, object]:
    """The documented error envelope."""
    error: dict[str, object] = {"status": status, "code": code, "message": "m"}
    error["retryable"] = retryable
    if retry_after is not None:
        error["retry_after"] = retry_after
    return {"success": False, "error": error, "trace_id": "t"}


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (Unanswered("no answer before the timeout"), Verdict(Kind.RETRY)),
        (Unanswered("connection failed (ConnectError)"), Verdict(Kind.RETRY)),
        (Answer(200, {}), Verdict(Kind.SENT)),
        (Answer(401, {}, code=2004, retryable=False), Verdict(Kind.STOP)),
        (Answer(401, {}, code=2013, retryable=False), Verdict(Kind.STOP)),
        (
            Answer(429, {}, code=1007, retryable=True, retry_after=0.25),
            Verdict(Kind.RETRY, 0.25, rate_limited=True),
        ),
        # The envelope is authoritative: a 429 or a 5xx it calls not retryable is refused.
        (Answer(429, {}, code=1007, retryable=False, retry_after=2), Verdict(Kind.REFUSED)),
        (Answer(503, {}, code=3001, retryable=False), Verdict(Kind.REFUSED)),
        (Answer(503, {}, code=3001, retryable=True), Verdict(Kind.RETRY)),
        (
            Answer(429, {}, code=4002, retryable=True, retry_after=0.25),
            Verdict(Kind.CAPACITY, 0.25),
        ),
        (Answer(502, {}, code=4001, retryable=True, retry_after=3), Verdict(Kind.RETRY, 3)),
        (Answer(502, {}, code=4001, retryable=False), Verdict(Kind.REFUSED)),
        (Answer(403, {}, code=2006, retryable=False), Verdict(Kind.REFUSED)),
        (Answer(409, {}, code=1011, retryable=False), Verdict(Kind.REFUSED)),
        (Answer(0, {}, message="the upload URL is not https"), Verdict(Kind.REFUSED)),
    ],
)
def test_classify(result: Answer | Unanswered, expected: Verdict) -> None:
    """Each answer gets the verdict the API's docs give it."""
    assert classify(result) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, Verdict(Kind.RETRY)),
        (503, Verdict(Kind.RETRY)),
        (429, Verdict(Kind.RETRY, rate_limited=True)),
        (404, Verdict(Kind.REFUSED)),
    ],
)
def test_without_an_envelope_5xx_and_429_are_worth_another_try(
    status: int, expected: Verdict
) -> None:
    """A bare status (a proxy's error page) is judged by its status alone."""
    assert classify(read_answer(httpx.Response(status, text="<html>busy</html>"))) == expected


@pytest.mark.parametrize(
    ("body", "header", "expected"),
    [
        (0.25, "1", 0.25),  # the body's fraction wins over the whole-second header
        (1.5, "2", 1.5),
        (None, "3", 3.0),  # the header alone is used when the body names nothing
        (0.001, None, 0.001),
    ],
)
def test_retry_after_the_body_wins(body: float | None, header: str | None, expected: float) -> None:
    """retry_after is taken exactly from the envelope; the header only stands in for it."""
    headers = {"Retry-After": header} if header else {}
    response = httpx.Response(
        429, json=envelope(429, 4002, retryable=True, retry_after=body), headers=headers
    )
    assert classify(read_answer(response)) == Verdict(Kind.CAPACITY, expected)
