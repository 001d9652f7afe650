"""The sandbox's pure logic, without HTTP: limiters, auth, request rules and state."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batcher.sandbox.auth import Credentials, authenticate
from batcher.sandbox.config import SandboxConfig
from batcher.sandbox.errors import ApiError
from batcher.sandbox.limits import DAY_SECONDS, FirstTouchLimiter, RateLimiter
from batcher.sandbox.rules import is_possible_sender, is_valid_recipient, parse_create_chat
from batcher.sandbox.state import State
from batcher.signing import sign, signature_header

SENDER = "+15555550100"
SAM = "+14155551234"
ALEX = "+14155559876"
SECRET = "s3cret"
TENANT = "acme"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def text(value: str) -> dict[str, Any]:
    """A text part."""
    return {"type": "text", "value": value}


def chat_body(*to: str, parts: list[dict[str, Any]] | None = None, key: str | None = None) -> Any:
    """A POST /chats body from SENDER."""
    message: dict[str, Any] = {"parts": parts if parts is not None else [text("hi")]}
    if key is not None:
        message["idempotency_key"] = key
    return {"from": SENDER, "to": list(to), "message": message}


def code_of(error: pytest.ExceptionInfo[ApiError]) -> tuple[int, int]:
    """The (status, code) of a raised ApiError."""
    return error.value.status, error.value.code


# Rate limiter -------------------------------------------------------------


def test_rate_limiter_admits_a_burst_of_rate_then_spaces_requests() -> None:
    """At 5/s a burst of 5 passes, the 6th waits 0.2 s."""
    limiter = RateLimiter(5)
    assert [limiter.acquire(100.0) for _ in range(5)] == [0.0] * 5
    assert limiter.acquire(100.0) == pytest.approx(0.2)
    assert limiter.acquire(100.2) == 0.0


def test_rate_limiter_below_one_per_second_has_burst_one() -> None:
    """At 0.5/s the second request waits two seconds."""
    limiter = RateLimiter(0.5)
    assert limiter.acquire(0.0) == 0.0
    assert limiter.acquire(0.5) == pytest.approx(1.5)
    assert limiter.acquire(2.0) == 0.0


def test_refused_requests_cost_no_capacity() -> None:
    """Hammering while limited does not push the next slot further away."""
    limiter = RateLimiter(1)
    limiter.acquire(0.0)
    for _ in range(10):
        assert limiter.acquire(0.5) == pytest.approx(0.5)
    assert limiter.acquire(1.0) == 0.0


# First-touch capacity -----------------------------------------------------


def test_line_gap_spaces_first_touches_per_line() -> None:
    """A second touch of the same line waits out the gap; another line does not."""
    limiter = FirstTouchLimiter(gap=600, daily=None)
    limiter.record(SENDER, 0.0)
    assert limiter.wait(SENDER, 100.0) == pytest.approx(500.0)
    assert limiter.wait("+15555550101", 100.0) == 0.0
    assert limiter.wait(SENDER, 600.0) == 0.0


def test_daily_cap_waits_until_the_oldest_touch_leaves_the_window() -> None:
    """With 2 a day, the third waits until 24 h after the first."""
    limiter = FirstTouchLimiter(gap=None, daily=2)
    limiter.record(SENDER, 0.0)
    limiter.record(SENDER, 1000.0)
    assert limiter.wait(SENDER, 5000.0) == pytest.approx(DAY_SECONDS - 5000.0)
    assert limiter.wait(SENDER, DAY_SECONDS + 1) == 0.0


# Auth ---------------------------------------------------------------------


def test_signature_matches_the_documented_recipe() -> None:
    """hex = HMAC-SHA256(secret, "<ts>." + body), lowercase."""
    import hashlib
    import hmac

    expected = hmac.new(b"s3cret", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign(SECRET, 1_700_000_000, b"{}") == expected
    assert signature_header(SECRET, 1_700_000_000, b"{}") == f"v1,1700000000,{expected}"


NOW = 1_700_000_000


@pytest.mark.parametrize(
    ("creds", "body", "expected"),
    [
        (Credentials(authorization=f"Bearer {SECRET}"), b"", None),
        (Credentials(authorization="Bearer nope"), b"", (401, 2004)),
        (Credentials(authorization=SECRET), b"", (401, 2004)),
        (Credentials(), b"", (401, 2004)),
        (Credentials(tenant=TENANT, signature=signature_header(SECRET, NOW, b"{}")), b"{}", None),
        (
            Credentials(tenant=TENANT, signature=signature_header(SECRET, NOW, b"{}")),
            b"{ }",
            (401, 2004),
        ),
        (
            Credentials(tenant="other", signature=signature_header(SECRET, NOW, b"")),
            b"",
            (401, 2004),
        ),
        (Credentials(signature=signature_header(SECRET, NOW, b"")), b"", (401, 2004)),
        (Credentials(tenant=TENANT, signature=signature_header("x", NOW, b"")), b"", (401, 2004)),
        (Credentials(tenant=TENANT, signature=f"v2,{NOW},abc"), b"", (401, 2004)),
        (Credentials(tenant=TENANT, signature="v1,soon,abc"), b"", (401, 2004)),
        (
            Credentials(tenant=TENANT, signature=signature_header(SECRET, NOW - 301, b"")),
            b"",
            (401, 2013),
        ),
        (Credentials(tenant=TENANT, signature=signature_header(SECRET, NOW + 299, b"")), b"", None),
    ],
)
def test_authenticate(creds: Credentials, body: bytes, expected: tuple[int, int] | None) -> None:
    """Bearer and HMAC v1 credentials are accepted or refused as documented."""
    if expected is None:
        authenticate(SECRET, TENANT, creds, body, now=NOW, max_skew=300)
        return
    with pytest.raises(ApiError) as error:
        authenticate(SECRET, TENANT, creds, body, now=NOW, max_skew=300)
    assert code_of(error) == expected


# Request rules ------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "recipient", "sender"),
    [
        (SAM, True, True),
        (SENDER, False, True),
        ("14155551234", False, False),
        ("+1 415 555 1234", False, False),
        ("+1415555", False, False),
    ],
)
def test_phone_rules(number: str, recipient: bool, sender: bool) -> None:
    """Recipients must be valid E.164, senders only possible E.164."""
    assert is_valid_recipient(number) is recipient
    assert is_possible_sender(number) is sender


def always(_: str) -> bool:
    """Pretend every attachment was uploaded."""
    return True


def never(_: str) -> bool:
    """Pretend no attachment was uploaded."""
    return False


LINK = {"type": "rich_link", "url": "https://example.com"}
MEDIA = {"type": "media", "attachment_id": "a1"}
LEGACY = {"type": "link", "url": "https://example.com"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"to": [SAM], "message": {"parts": [text("hi")]}}, (400, 1001)),
        ({"from": SENDER, "message": {"parts": [text("hi")]}}, (400, 1001)),
        ({"from": SENDER, "to": [SAM]}, (400, 1001)),
        (chat_body(SAM, parts=[]), (400, 1001)),
        ({"from": SENDER, "to": [SAM], "message": "hi"}, (400, 1002)),
        ({"from": SENDER, "to": SAM, "message": {"parts": [text("hi")]}}, (400, 1002)),
        (chat_body("14155551234"), (400, 1003)),
        (chat_body("+15555550100"), (400, 1003)),
        ({**chat_body(SAM), "from": "15555550100"}, (400, 1003)),
        (chat_body(*[f"+1415555{n:04d}" for n in range(1200, 1232)]), (422, 1006)),
        (chat_body(SAM, parts=[{"type": "sticker"}]), (400, 1002)),
        (chat_body(SAM, parts=[{"type": "text"}]), (400, 1002)),
        (chat_body(SAM, parts=[{"type": "rich_link", "url": "ftp://x"}]), (400, 1002)),
        (chat_body(SAM, parts=[text("see https://x.io")]), (400, 1005)),
        (chat_body(SAM, parts=[text("see www.x.io")]), (400, 1005)),
        (chat_body(SAM, ALEX, parts=[LEGACY]), (400, 1005)),
        (chat_body(SAM, ALEX, parts=[text("hi"), LINK]), (501, 4099)),
        (chat_body(SAM, ALEX, parts=[MEDIA]), (501, 4099)),
    ],
)
def test_create_chat_rules(body: Any, expected: tuple[int, int]) -> None:
    """Each malformed POST /chats body gets the documented code."""
    with pytest.raises(ApiError) as error:
        parse_create_chat(body, always)
    assert code_of(error) == expected


@pytest.mark.parametrize(
    "body",
    [
        chat_body(SAM, parts=[text("hi"), LINK, MEDIA]),
        chat_body(SAM, ALEX, parts=[text("group text with https://x.io is fine")]),
        chat_body(*[f"+1415555{n:04d}" for n in range(1200, 1231)]),
        chat_body(SAM, SAM),
    ],
)
def test_create_chat_accepts(body: Any) -> None:
    """DMs may carry rich links and media; groups text with URLs; 31 recipients pass."""
    parse_create_chat(body, always)


def test_media_must_be_uploaded() -> None:
    """A media part naming an attachment that was never uploaded is 1002."""
    with pytest.raises(ApiError) as error:
        parse_create_chat(chat_body(SAM, parts=[MEDIA]), never)
    assert code_of(error) == (400, 1002)


# State --------------------------------------------------------------------


def answer_json(body: bytes) -> Any:
    """Decode an answer body."""
    return json.loads(body)


def test_a_second_create_for_the_same_members_reuses_the_chat() -> None:
    """Same sender and recipient set (in any order): same chat, one first touch."""
    state = State(SandboxConfig(secret=SECRET), clock=FakeClock())
    first = answer_json(state.create_chat(chat_body(SAM, ALEX), path="/c", now=0).body)
    again = answer_json(state.create_chat(chat_body(ALEX, SAM), path="/c", now=1).body)
    assert again["chat"]["id"] == first["chat"]["id"]
    assert again["message"]["id"] != first["message"]["id"]
    assert [entry["first_touch"] for entry in state.ledger()["messages"]] == [True, False]
    assert state.stats()["first_touches"] == 1


def test_same_key_on_another_route_is_a_different_body() -> None:
    """The fingerprint includes the route path."""
    state = State(SandboxConfig(secret=SECRET))
    body = chat_body(SAM, key="k")
    state.create_chat(body, path="/api/v1/chats", now=0)
    with pytest.raises(ApiError) as error:
        state.create_chat(body, path="/api/v1/chats/x/messages", now=0)
    assert code_of(error) == (422, 1002)
    assert error.value.retryable is False


def test_capacity_is_only_spent_by_new_chats() -> None:
    """Reusing a chat needs no capacity; a new chat within the gap gets 4002."""
    clock = FakeClock(0.0)
    state = State(SandboxConfig(secret=SECRET, line_gap=600), clock=clock)
    state.create_chat(chat_body(SAM), path="/c", now=0)
    state.create_chat(chat_body(SAM), path="/c", now=10)
    with pytest.raises(ApiError) as error:
        state.create_chat(chat_body(ALEX), path="/c", now=100)
    assert code_of(error) == (429, 4002)
    assert error.value.retryable is True
    assert error.value.retry_after == pytest.approx(500)


def test_an_upload_url_expires() -> None:
    """A PUT after expires_at is refused with 1002."""
    state = State(SandboxConfig(secret=SECRET, upload_ttl_seconds=60))
    reserved = state.reserve_attachment(
        {"filename": "a.png", "content_type": "image/png", "size_bytes": 3},
        upload_url=lambda attachment_id: attachment_id,
        now=0,
    )
    attachment_id = answer_json(reserved.body)["attachment_id"]
    state.check_upload(attachment_id, "image/png", 3, now=59)
    with pytest.raises(ApiError) as error:
        state.check_upload(attachment_id, "image/png", 3, now=61)
    assert code_of(error) == (400, 1002)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"content_type": "image/png", "size_bytes": 3}, (400, 1001)),
        ({"filename": "a", "content_type": "png", "size_bytes": 3}, (400, 1002)),
        ({"filename": "a", "content_type": "image/png", "size_bytes": 0}, (400, 1002)),
        ({"filename": "a", "content_type": "image/png", "size_bytes": True}, (400, 1002)),
        ({"filename": "a", "content_type": "image/png", "size_bytes": 101 * 2**20}, (400, 1002)),
    ],
)
def test_attachment_reservation_rules(body: dict[str, Any], expected: tuple[int, int]) -> None:
    """A reservation needs a filename, a MIME type and a size up to 100 MB."""
    state = State(SandboxConfig(secret=SECRET))
    with pytest.raises(ApiError) as error:
        state.reserve_attachment(body, upload_url=str, now=0)
    assert code_of(error) == expected


def test_faults_follow_the_seed_and_restart_on_reset() -> None:
    """The same seed draws the same faults; reset starts the sequence again."""
    config = SandboxConfig(secret=SECRET, seed=7)
    first, second = State(config), State(config)
    draws = [first.draw_faults(0.3, 0.3, 0.3) for _ in range(50)]
    assert draws == [second.draw_faults(0.3, 0.3, 0.3) for _ in range(50)]
    assert any(fault.unavailable for fault in draws)
    assert not all(fault.unavailable for fault in draws)
    first.reset()
    assert [first.draw_faults(0.3, 0.3, 0.3) for _ in range(50)] == draws


@pytest.mark.parametrize(
    "changes",
    [
        {"secret": ""},
        {"rate": 0},
        {"line_daily": 0},
        {"line_gap": -1},
        {"p503": 1.5},
        {"pdrop": -0.1},
        {"slow_seconds": -1},
    ],
)
def test_config_refuses_nonsense(changes: dict[str, Any]) -> None:
    """Out-of-range settings fail at construction, not mid-request."""
    with pytest.raises(ValueError, match="invalid sandbox config"):
        SandboxConfig(**changes)


def test_config_repr_hides_the_secret() -> None:
    """The secret never reaches a log line through repr."""
    assert "s3cret" not in repr(SandboxConfig(secret="s3cret"))
