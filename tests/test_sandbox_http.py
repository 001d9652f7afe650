"""The sandbox over real HTTP on loopback, as a client written from chert-api.md sees it."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from batcher.sandbox.server import bind_loopback

SENDER = "+15555550100"
OTHER_SENDER = "+15555550111"
SAM = "+14155551234"
ALEX = "+14155559876"
KIM = "+14155550199"
TRACE_ID = re.compile(r"[0-9a-f]{12}")
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
MESSAGE_ID = re.compile(r"[0-9a-f]{32}")
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
RICH_LINK = {"type": "rich_link", "url": "https://example.com/demo"}
# Built once: every httpx.Client would otherwise spend ~70 ms loading CA certificates.
TLS = ssl.create_default_context()


def http(**settings: Any) -> httpx.Client:
    """A plain client sharing the one TLS context."""
    return httpx.Client(verify=TLS, **{"timeout": 5, **settings})


def request(method: str, url: str, **settings: Any) -> httpx.Response:
    """One request on a short-lived client."""
    with http() as client:
        return client.request(method, url, **settings)


def text(value: str = "Hi Sam - got a minute?") -> dict[str, Any]:
    """A text part."""
    return {"type": "text", "value": value}


def chat_body(
    *to: str,
    parts: list[dict[str, Any]] | None = None,
    key: str | None = None,
    subject: str | None = None,
    sender: str = SENDER,
) -> dict[str, Any]:
    """A POST /chats body."""
    message: dict[str, Any] = {"parts": parts if parts is not None else [text()]}
    if key is not None:
        message["idempotency_key"] = key
    if subject is not None:
        message["subject"] = subject
    return {"from": sender, "to": list(to or (SAM,)), "message": message}


def bearer(sandbox: RunningSandbox) -> dict[str, str]:
    """Bearer auth headers."""
    return {"Authorization": f"Bearer {sandbox.secret}"}


def hmac_headers(secret: str, tenant: str, body: bytes, *, skew: int = 0) -> dict[str, str]:
    """HMAC v1 headers, computed from the docs' recipe rather than the sandbox's code."""
    timestamp = int(time.time()) + skew
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return {"x-chert-tenant": tenant, "x-chert-signature": f"v1,{timestamp},{digest.hexdigest()}"}


def sandbox_get(sandbox: RunningSandbox, what: str) -> Any:
    """Read a /_sandbox view (messages, stats, requests)."""
    return request("GET", f"{sandbox.root_url}/_sandbox/{what}").json()


def ledger(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    """Every delivered message."""
    messages: list[dict[str, Any]] = sandbox_get(sandbox, "messages")["messages"]
    return messages


def assert_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    """Check the documented envelope and trace header; return ``error``."""
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"success", "error", "trace_id"}
    assert payload["success"] is False
    assert TRACE_ID.fullmatch(payload["trace_id"])
    assert response.headers["X-Trace-ID"] == payload["trace_id"]
    error: dict[str, Any] = payload["error"]
    assert error["status"] == status
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert isinstance(error["retryable"], bool)
    return error


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[RunningSandbox]:
    """One sandbox with no limits or faults for the whole module."""
    with running_sandbox(SandboxConfig()) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(shared_sandbox: RunningSandbox) -> RunningSandbox:
    """The shared sandbox, reset."""
    request("POST", f"{shared_sandbox.root_url}/_sandbox/reset").raise_for_status()
    return shared_sandbox


@pytest.fixture
def client(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    """A bearer-authenticated client of the shared sandbox."""
    with http(base_url=sandbox.base_url, headers=bearer(sandbox)) as client:
        yield client


@pytest.fixture
def make_sandbox() -> Iterator[Any]:
    """Start sandboxes with a given config; each stops at the end of the test."""
    stack: list[Any] = []

    def start(**settings: Any) -> RunningSandbox:
        manager = running_sandbox(SandboxConfig(**settings))
        stack.append(manager)
        return manager.__enter__()

    yield start
    for manager in reversed(stack):
        manager.__exit__(None, None, None)


def api(sandbox: RunningSandbox, timeout: float = 5) -> httpx.Client:
    """A bearer client for a dedicated sandbox."""
    return http(base_url=sandbox.base_url, headers=bearer(sandbox), timeout=timeout)


# Shapes -------------------------------------------------------------------


def test_create_dm_answers_the_documented_shape(client: httpx.Client) -> None:
    """POST /chats with one recipient: chat and message objects as in the docs."""
    response = client.post("/chats", json=chat_body(SAM, parts=[text(), RICH_LINK]))
    assert response.status_code == 200
    assert TRACE_ID.fullmatch(response.headers["X-Trace-ID"])
    chat, message = response.json()["chat"], response.json()["message"]
    assert UUID4.fullmatch(chat["id"])
    assert chat["display_name"] == SAM
    assert chat["handles"] == [{"service": "imessage", "address": SAM}]
    assert (chat["is_group"], chat["service"]) == (False, "imessage")
    assert isinstance(chat["health_score"], int)
    assert ISO_Z.fullmatch(chat["created_at"])
    assert MESSAGE_ID.fullmatch(message["id"])
    assert message["chat_id"] == chat["id"]
    assert message["parts"] == [text(), RICH_LINK]
    assert (message["status"], message["direction"], message["service"]) == (
        "sent",
        "outbound",
        "imessage",
    )
    assert ISO_Z.fullmatch(message["created_at"])
    assert (message["delivered_at"], message["read_at"]) == (None, None)


def test_create_group_is_named_by_its_subject(client: httpx.Client) -> None:
    """2-31 recipients make a group whose display name is the subject."""
    response = client.post("/chats", json=chat_body(SAM, ALEX, subject="Launch follow-up"))
    chat = response.json()["chat"]
    assert chat["is_group"] is True
    assert chat["display_name"] == "Launch follow-up"
    assert [handle["address"] for handle in chat["handles"]] == [SAM, ALEX]


def test_follow_up_then_get_message(client: httpx.Client) -> None:
    """A follow-up lands in the chat and GET /messages/{id} returns it."""
    chat_id = client.post("/chats", json=chat_body(SAM, ALEX)).json()["chat"]["id"]
    follow_up = {"message": {"parts": [RICH_LINK, text("and a link")]}}
    response = client.post(f"/chats/{chat_id}/messages", json=follow_up)
    assert response.status_code == 200
    assert set(response.json()) == {"message"}
    message = response.json()["message"]
    assert message["chat_id"] == chat_id
    fetched = client.get(f"/messages/{message['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == {"message": message}


def test_ledger_records_every_delivery(client: httpx.Client, sandbox: RunningSandbox) -> None:
    """The ledger lists deliveries in order, with sender, sorted recipients and key."""
    first = client.post("/chats", json=chat_body(SAM, ALEX, subject="S", key="k1")).json()
    chat_id = first["chat"]["id"]
    client.post(f"/chats/{chat_id}/messages", json={"message": {"parts": [RICH_LINK]}})
    entries = ledger(sandbox)
    assert entries[0] == {
        "id": first["message"]["id"],
        "chat_id": chat_id,
        "from": SENDER,
        "to": sorted([SAM, ALEX]),
        "subject": "S",
        "parts": [text()],
        "idempotency_key": "k1",
        "created_at": first["message"]["created_at"],
        "is_group": True,
        "first_touch": True,
    }
    assert entries[1]["first_touch"] is False
    assert entries[1]["idempotency_key"] is None
    assert entries[1]["parts"] == [RICH_LINK]


def test_creating_an_existing_chat_reuses_it(client: httpx.Client, sandbox: RunningSandbox) -> None:
    """Same sender and recipient set: same chat id, message delivered, not a first touch."""
    first = client.post("/chats", json=chat_body(SAM, ALEX)).json()
    again = client.post("/chats", json=chat_body(ALEX, SAM)).json()
    assert again["chat"]["id"] == first["chat"]["id"]
    assert again["message"]["id"] != first["message"]["id"]
    assert [entry["first_touch"] for entry in ledger(sandbox)] == [True, False]
    other_sender = client.post("/chats", json=chat_body(SAM, ALEX, sender=OTHER_SENDER)).json()
    assert other_sender["chat"]["id"] != first["chat"]["id"]


# Errors -------------------------------------------------------------------

THIRTY_TWO = [f"+1415555{n:04d}" for n in range(1200, 1232)]

ERROR_CASES: list[tuple[str, Any, int, int]] = [
    ("missing from", {"to": [SAM], "message": {"parts": [text()]}}, 400, 1001),
    ("missing to", {"from": SENDER, "message": {"parts": [text()]}}, 400, 1001),
    ("missing parts", {"from": SENDER, "to": [SAM], "message": {}}, 400, 1001),
    ("empty parts", chat_body(SAM, parts=[]), 400, 1001),
    ("recipient not E.164", chat_body("(415) 555-1234"), 400, 1003),
    ("recipient not valid", chat_body("+15555550123"), 400, 1003),
    ("sender not E.164", chat_body(SAM, sender="5555550100"), 400, 1003),
    ("URL in DM text", chat_body(SAM, parts=[text("see https://x.io")]), 400, 1005),
    ("www in DM text", chat_body(SAM, parts=[text("see www.x.io")]), 400, 1005),
    ("legacy link", chat_body(SAM, parts=[{"type": "link", "url": "https://x.io"}]), 400, 1005),
    ("32 recipients", chat_body(*THIRTY_TWO), 422, 1006),
    ("group rich link", chat_body(SAM, ALEX, parts=[text(), RICH_LINK]), 501, 4099),
    ("unknown part", chat_body(SAM, parts=[{"type": "gif", "url": "x"}]), 400, 1002),
    ("part missing field", chat_body(SAM, parts=[{"type": "text"}]), 400, 1002),
    ("never uploaded", chat_body(SAM, parts=[{"type": "media", "attachment_id": "x"}]), 400, 1002),
    ("malformed JSON", b'{"from": ', 400, 1002),
    ("not an object", b"[1, 2]", 400, 1002),
]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_create_chat_errors(
    client: httpx.Client, sandbox: RunningSandbox, body: Any, status: int, code: int
) -> None:
    """Each refused POST /chats answers its code in the envelope and delivers nothing."""
    if isinstance(body, bytes):
        response = client.post("/chats", content=body, headers={"Content-Type": "application/json"})
    else:
        response = client.post("/chats", json=body)
    error = assert_error(response, status, code)
    assert error["retryable"] is False
    assert ledger(sandbox) == []


def test_the_docs_sender_is_accepted(client: httpx.Client) -> None:
    """+15555550100 is not a valid number, but it is a possible one: fine as ``from``."""
    assert client.post("/chats", json=chat_body(SAM)).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/chats/{chat}/messages", {"parts": [text()]}, 400, 1002),
        ("POST", "/chats/{chat}/messages", {"message": {"parts": []}}, 400, 1001),
        ("POST", "/chats/{chat}/messages", {"message": {"parts": [{"type": "x"}]}}, 400, 1002),
        ("POST", "/chats/nope/messages", {"message": {"parts": [text()]}}, 404, 1004),
        ("GET", "/messages/0123456789abcdef0123456789abcdef", None, 404, 1004),
        ("GET", "/chats", None, 404, 1004),
        ("DELETE", "/chats/{chat}", None, 404, 1004),
        ("GET", "/no-such-route", None, 404, 1004),
    ],
)
def test_follow_up_and_route_errors(
    client: httpx.Client, method: str, path: str, body: Any, status: int, code: int
) -> None:
    """Follow-ups need ``{"message": {...}}``; unknown chats, messages and routes are 404."""
    chat_id = client.post("/chats", json=chat_body(SAM)).json()["chat"]["id"]
    response = client.request(method, path.format(chat=chat_id), json=body)
    assert_error(response, status, code)


def test_legacy_link_is_fine_in_a_follow_up(client: httpx.Client) -> None:
    """The 1005 rule is about first messages only."""
    chat_id = client.post("/chats", json=chat_body(SAM)).json()["chat"]["id"]
    legacy = {"message": {"parts": [{"type": "link", "url": "https://x.io"}, text("www.x.io")]}}
    assert client.post(f"/chats/{chat_id}/messages", json=legacy).status_code == 200


def test_unknown_sandbox_route_is_404_in_the_envelope(sandbox: RunningSandbox) -> None:
    """Outside /api/v1 the envelope is the same."""
    assert_error(request("GET", f"{sandbox.root_url}/nothing-here"), 404, 1004)


# Auth ---------------------------------------------------------------------


def post_chat(sandbox: RunningSandbox, headers: dict[str, str], raw: bytes) -> httpx.Response:
    """POST raw bytes to /chats with exactly these auth headers."""
    headers = {**headers, "Content-Type": "application/json"}
    return request("POST", f"{sandbox.base_url}/chats", content=raw, headers=headers)


RAW_CHAT = json.dumps(chat_body(SAM)).encode()


@pytest.mark.parametrize(
    ("make_headers", "status", "code"),
    [
        (lambda s: {"Authorization": f"Bearer {s.secret}"}, 200, None),
        (lambda s: {"Authorization": "Bearer wrong"}, 401, 2004),
        (lambda s: {"Authorization": s.secret}, 401, 2004),
        (lambda s: {}, 401, 2004),
        (lambda s: hmac_headers(s.secret, s.tenant, RAW_CHAT), 200, None),
        (lambda s: hmac_headers("wrong", s.tenant, RAW_CHAT), 401, 2004),
        (lambda s: hmac_headers(s.secret, s.tenant, RAW_CHAT + b" "), 401, 2004),
        (lambda s: hmac_headers(s.secret, "other-tenant", RAW_CHAT), 401, 2004),
        (lambda s: hmac_headers(s.secret, s.tenant, RAW_CHAT, skew=-400), 401, 2013),
        (lambda s: hmac_headers(s.secret, s.tenant, RAW_CHAT, skew=400), 401, 2013),
        (lambda s: hmac_headers(s.secret, s.tenant, RAW_CHAT, skew=-200), 200, None),
    ],
    ids=[
        "bearer",
        "bearer wrong",
        "no Bearer prefix",
        "no credentials",
        "hmac",
        "hmac wrong secret",
        "hmac other body",
        "hmac wrong tenant",
        "hmac 400 s behind",
        "hmac 400 s ahead",
        "hmac 200 s behind",
    ],
)
def test_auth(sandbox: RunningSandbox, make_headers: Any, status: int, code: int | None) -> None:
    """Bearer and HMAC v1 are accepted as documented; anything else is 401."""
    response = post_chat(sandbox, make_headers(sandbox), RAW_CHAT)
    if code is None:
        assert response.status_code == status, response.text
        assert TRACE_ID.fullmatch(response.headers["X-Trace-ID"])
    else:
        assert_error(response, status, code)


def test_hmac_get_signs_an_empty_body(make_sandbox: Any) -> None:
    """GET requests sign ``"<ts>."`` alone."""
    sandbox = make_sandbox(lines=(SENDER,))
    headers = hmac_headers(sandbox.secret, sandbox.tenant, b"")
    response = request("GET", f"{sandbox.base_url}/phone-numbers", headers=headers)
    assert response.status_code == 200


# Attachments --------------------------------------------------------------


def reserve(client: httpx.Client, size: int = 4, content_type: str = "image/png") -> Any:
    """POST /attachments."""
    body = {"filename": "logo.png", "content_type": content_type, "size_bytes": size}
    response = client.post("/attachments", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_upload_flow_makes_media_sendable(client: httpx.Client, sandbox: RunningSandbox) -> None:
    """Reserve, PUT the bytes with bearer auth, then send a media part."""
    reserved = reserve(client)
    assert set(reserved) == {"attachment_id", "upload_url", "required_headers", "expires_at"}
    assert reserved["upload_url"].startswith(f"{sandbox.root_url}/_sandbox/uploads/")
    assert ISO_Z.fullmatch(reserved["expires_at"])
    headers = {**reserved["required_headers"], **bearer(sandbox)}
    uploaded = request("PUT", reserved["upload_url"], content=b"\x89PNG", headers=headers)
    assert uploaded.status_code == 200, uploaded.text
    media = {"type": "media", "attachment_id": reserved["attachment_id"]}
    response = client.post("/chats", json=chat_body(SAM, parts=[media, text("our logo")]))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("auth", "content_type", "payload", "status", "code"),
    [
        ("hmac", "image/png", b"\x89PNG", 401, 2004),
        ("none", "image/png", b"\x89PNG", 401, 2004),
        ("bearer", "image/jpeg", b"\x89PNG", 400, 1002),
        ("bearer", "image/png", b"\x89PNG!", 400, 1002),
    ],
    ids=["signature", "no auth", "other content type", "other length"],
)
def test_upload_is_bearer_only_and_exact(
    client: httpx.Client,
    sandbox: RunningSandbox,
    auth: str,
    content_type: str,
    payload: bytes,
    status: int,
    code: int,
) -> None:
    """The upload PUT refuses signatures, missing auth and a mismatched type or size."""
    reserved = reserve(client)
    headers = {"Content-Type": content_type}
    if auth == "bearer":
        headers |= bearer(sandbox)
    elif auth == "hmac":
        headers |= bearer(sandbox) | hmac_headers(sandbox.secret, sandbox.tenant, payload)
    assert_error(
        request("PUT", reserved["upload_url"], content=payload, headers=headers), status, code
    )
    media = {"type": "media", "attachment_id": reserved["attachment_id"]}
    follow = client.post("/chats", json=chat_body(SAM, parts=[media]))
    assert_error(follow, 400, 1002)


def test_upload_to_an_unknown_attachment_is_404(sandbox: RunningSandbox) -> None:
    """A PUT to an id that was never reserved is 404 / 1004."""
    url = f"{sandbox.root_url}/_sandbox/uploads/nope"
    headers = {"Content-Type": "image/png", **bearer(sandbox)}
    assert_error(request("PUT", url, content=b"x", headers=headers), 404, 1004)


# Phone numbers ------------------------------------------------------------


INACTIVE = "+15555550122"


def listed(number: str, *, active: bool) -> dict[str, Any]:
    """What GET /phone-numbers shows for one line, ids aside."""
    return {
        "phone_number": number,
        "service": "imessage",
        "is_active": active,
        "capabilities": ["imessage", "send", "receive"],
    }


def test_phone_numbers_without_lines_is_404(client: httpx.Client) -> None:
    """A sandbox that accepts any sender has no lines to list: 404 / 1004, even after sends."""
    assert client.post("/chats", json=chat_body(SAM)).status_code == 200
    error = assert_error(client.get("/phone-numbers"), 404, 1004)
    assert "--lines" in error["message"]


def test_phone_numbers_lists_the_lines_in_the_documented_shape(make_sandbox: Any) -> None:
    """Configured lines, active or not, in order, with the documented fields.

    Ids are distinct, and the same for a line in another sandbox (derived from the number).
    """
    sandbox = make_sandbox(lines=(SENDER, OTHER_SENDER), inactive=(INACTIVE,))
    with api(sandbox) as client:
        response = client.get("/phone-numbers")
    assert response.status_code == 200
    assert TRACE_ID.fullmatch(response.headers["X-Trace-ID"])
    lines = response.json()["phone_numbers"]
    assert [{k: v for k, v in line.items() if "id" not in k} for line in lines] == [
        listed(SENDER, active=True),
        listed(OTHER_SENDER, active=True),
        listed(INACTIVE, active=False),
    ]
    assert len({line["id"] for line in lines} | {line["phone_line_id"] for line in lines}) == 6
    again = make_sandbox(lines=(SENDER,))
    with api(again) as client:
        assert client.get("/phone-numbers").json()["phone_numbers"][0]["id"] == lines[0]["id"]


def test_lines_restrict_senders(make_sandbox: Any) -> None:
    """A sender that is not one of the configured lines gets 403 / 2006."""
    sandbox = make_sandbox(lines=(SENDER,))
    with api(sandbox) as client:
        assert client.post("/chats", json=chat_body(SAM)).status_code == 200
        error = assert_error(
            client.post("/chats", json=chat_body(SAM, sender=OTHER_SENDER)), 403, 2006
        )
    assert error["retryable"] is False
    assert len(ledger(sandbox)) == 1


def test_an_inactive_line_cannot_send(make_sandbox: Any) -> None:
    """A listed line that is not active gets 403 / 2006, saying it is not active."""
    sandbox = make_sandbox(inactive=(INACTIVE,))
    with api(sandbox) as client:
        error = assert_error(client.post("/chats", json=chat_body(SAM, sender=INACTIVE)), 403, 2006)
        other = client.post("/chats", json=chat_body(SAM))
    assert error["retryable"] is False
    assert "not active" in error["message"]
    # Inactive lines are the tenant's lines: the list is not empty, so others are refused.
    assert_error(other, 403, 2006)
    assert ledger(sandbox) == []


# Idempotency --------------------------------------------------------------


def test_same_key_same_body_replays(client: httpx.Client, sandbox: RunningSandbox) -> None:
    """The original answer, byte for byte; nothing new delivered; one replay counted."""
    body = chat_body(SAM, key="chat-2026-05-01-001")
    first = client.post("/chats", json=body)
    second = client.post("/chats", json=body)
    assert second.status_code == 200
    assert second.content == first.content
    assert second.headers["X-Trace-ID"] != first.headers["X-Trace-ID"]
    assert len(ledger(sandbox)) == 1
    stats = sandbox_get(sandbox, "stats")
    assert (stats["deliveries"], stats["replays"], stats["first_touches"]) == (1, 1, 1)


def test_follow_up_replays_too(client: httpx.Client, sandbox: RunningSandbox) -> None:
    """The key inside a follow-up's message works the same way."""
    chat_id = client.post("/chats", json=chat_body(SAM)).json()["chat"]["id"]
    body = {"message": {"parts": [RICH_LINK], "idempotency_key": "f1"}}
    first = client.post(f"/chats/{chat_id}/messages", json=body)
    assert client.post(f"/chats/{chat_id}/messages", json=body).content == first.content
    assert len(ledger(sandbox)) == 2


def test_same_key_other_body_is_422(client: httpx.Client, sandbox: RunningSandbox) -> None:
    """Reusing a key with another body is refused, not sent."""
    client.post("/chats", json=chat_body(SAM, key="k"))
    error = assert_error(client.post("/chats", json=chat_body(ALEX, key="k")), 422, 1002)
    assert error["retryable"] is False
    assert "different" in error["message"]
    assert len(ledger(sandbox)) == 1


def test_errors_are_not_stored(client: httpx.Client, sandbox: RunningSandbox) -> None:
    """A refused request with a key can be fixed and sent under the same key."""
    bad = chat_body(SAM, parts=[text("https://x.io")], key="k")
    assert_error(client.post("/chats", json=bad), 400, 1005)
    assert_error(client.post("/chats", json=bad), 400, 1005)
    assert sandbox_get(sandbox, "stats")["replays"] == 0


def test_concurrent_same_key_delivers_once(sandbox: RunningSandbox) -> None:
    """Many identical requests in flight together deliver one message."""
    body = chat_body(SAM, key="race")
    barrier = threading.Barrier(8)
    answers: list[bytes] = []

    def send() -> None:
        with http(headers=bearer(sandbox)) as client:
            barrier.wait()
            answers.append(client.post(f"{sandbox.base_url}/chats", json=body).content)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 8
    assert len(set(answers)) == 1
    assert len(ledger(sandbox)) == 1
    assert sandbox_get(sandbox, "stats")["replays"] == 7


# Limits -------------------------------------------------------------------


def test_rate_limit_answers_1007_with_retry_after(make_sandbox: Any) -> None:
    """Past the rate: 429 / 1007, retryable, retry_after and a Retry-After header."""
    sandbox = make_sandbox(rate=2, lines=(SENDER,))
    with api(sandbox) as client:
        statuses = [client.get("/phone-numbers") for _ in range(6)]
        limited = [r for r in statuses if r.status_code == 429]
        assert [r.status_code for r in statuses[:2]] == [200, 200]
        assert limited
        error = assert_error(limited[0], 429, 1007)
        assert error["retryable"] is True
        assert 0 < error["retry_after"] <= 0.5
        assert int(limited[0].headers["Retry-After"]) >= error["retry_after"]
        time.sleep(error["retry_after"])
        assert client.get("/phone-numbers").status_code == 200
    requests = sandbox_get(sandbox, "requests")["requests"]
    assert [entry["code"] for entry in requests].count(1007) == len(limited)
    assert all(isinstance(entry["t"], float) for entry in requests)


def test_line_gap_answers_4002_for_a_second_first_touch(make_sandbox: Any) -> None:
    """A new chat too soon after the line's last first touch: 4002 with retry_after."""
    sandbox = make_sandbox(line_gap=1.0)
    with api(sandbox) as client:
        assert client.post("/chats", json=chat_body(SAM)).status_code == 200
        error = assert_error(client.post("/chats", json=chat_body(ALEX)), 429, 4002)
        assert error["retryable"] is True
        assert 0 < error["retry_after"] <= 1.0
        # Reusing the chat and other lines are not held back.
        assert client.post("/chats", json=chat_body(SAM)).status_code == 200
        other = chat_body(ALEX, sender=OTHER_SENDER)
        assert client.post("/chats", json=other).status_code == 200
        time.sleep(error["retry_after"])
        assert client.post("/chats", json=chat_body(ALEX)).status_code == 200


def test_4002_says_the_wait_in_fractions_and_the_header_in_whole_seconds(
    make_sandbox: Any,
) -> None:
    """As documented: ``retry_after`` in seconds with fractions, ``Retry-After`` rounded up."""
    sandbox = make_sandbox(line_gap=0.25)
    with api(sandbox) as client:
        assert client.post("/chats", json=chat_body(SAM)).status_code == 200
        refused = client.post("/chats", json=chat_body(ALEX))
    error = assert_error(refused, 429, 4002)
    assert 0 < error["retry_after"] <= 0.25
    assert error["retry_after"] != int(error["retry_after"])
    assert round(error["retry_after"], 3) == error["retry_after"]
    assert refused.headers["Retry-After"] == "1"


def test_daily_cap_answers_4002_until_the_oldest_touch_expires(make_sandbox: Any) -> None:
    """The third first touch of a line with a cap of 2 waits about a day."""
    sandbox = make_sandbox(line_daily=2)
    with api(sandbox) as client:
        for number in (SAM, ALEX):
            assert client.post("/chats", json=chat_body(number)).status_code == 200
        error = assert_error(client.post("/chats", json=chat_body(KIM)), 429, 4002)
    assert 86_000 < error["retry_after"] <= 86_400


def test_replays_spend_no_capacity(make_sandbox: Any) -> None:
    """Replaying a first touch under a daily cap of 1 still answers 200."""
    sandbox = make_sandbox(line_daily=1)
    with api(sandbox) as client:
        body = chat_body(SAM, key="once")
        first = client.post("/chats", json=body)
        assert client.post("/chats", json=body).content == first.content


# Faults -------------------------------------------------------------------


def test_p503_answers_before_doing_anything(make_sandbox: Any) -> None:
    """503 / 3001 is retryable and nothing is delivered."""
    sandbox = make_sandbox(p503=1.0, lines=(SENDER,))
    with api(sandbox) as client:
        error = assert_error(client.post("/chats", json=chat_body(SAM, key="k")), 503, 3001)
        assert client.get("/phone-numbers").status_code == 200
    assert error["retryable"] is True
    assert ledger(sandbox) == []


def test_pdrop_delivers_then_drops_and_a_retry_replays(make_sandbox: Any) -> None:
    """The client sees a protocol error, the ledger the delivery; the retry replays it."""
    dropping = make_sandbox(pdrop=1.0)
    body = chat_body(SAM, key="dropped")
    with api(dropping) as client, pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post("/chats", json=body)
    delivered = ledger(dropping)
    assert [entry["idempotency_key"] for entry in delivered] == ["dropped"]
    # The same memory behind a healthy network: the retry gets the original answer.
    with running_sandbox(replace(dropping.config, pdrop=0.0), state=dropping.state) as healthy:
        with api(healthy) as client:
            retried = client.post("/chats", json=body)
        assert retried.json()["message"]["id"] == delivered[0]["id"]
        assert len(ledger(healthy)) == 1
        assert sandbox_get(healthy, "stats")["replays"] == 1


def test_pslow_delivers_then_outlasts_the_client(make_sandbox: Any) -> None:
    """A client with a short timeout times out; the delivery happened; others are not blocked."""
    sandbox = make_sandbox(pslow=1.0, slow_seconds=5, lines=(SENDER,))
    outcome: list[BaseException] = []

    def slow_request() -> None:
        with api(sandbox, timeout=0.6) as client:
            try:
                client.post("/chats", json=chat_body(SAM))
            except httpx.TimeoutException as error:
                outcome.append(error)

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    with api(sandbox) as client:
        assert client.get("/phone-numbers").status_code == 200
    # A sleep that blocked the loop would hold this request for seconds.
    assert time.monotonic() - started < 1.0
    thread.join()
    assert len(outcome) == 1
    assert [entry["to"] for entry in ledger(sandbox)] == [[SAM]]


def test_pslow_answers_a_patient_client(make_sandbox: Any) -> None:
    """With a timeout longer than slow_seconds, the answer arrives late but whole."""
    sandbox = make_sandbox(pslow=1.0, slow_seconds=0.3)
    started = time.monotonic()
    with api(sandbox) as client:
        assert client.post("/chats", json=chat_body(SAM)).status_code == 200
    assert time.monotonic() - started >= 0.3


def fault_sequence(seed: int) -> list[int]:
    """Statuses of 30 creates against a sandbox with 503s at p=0.5."""
    with running_sandbox(SandboxConfig(seed=seed, p503=0.5)) as sandbox, api(sandbox) as client:
        return [client.post("/chats", json=chat_body(SAM)).status_code for _ in range(30)]


def test_faults_are_seeded() -> None:
    """The same seed gives the same faults; another seed others."""
    first = fault_sequence(11)
    assert first == fault_sequence(11)
    assert set(first) == {200, 503}
    assert first != fault_sequence(12)


# Ledger routes ------------------------------------------------------------


def test_request_log_and_stats(client: httpx.Client, sandbox: RunningSandbox) -> None:
    """Every API request is logged with its arrival time, outcome and key."""
    before = time.time()
    client.post("/chats", json=chat_body(SAM, key="a"))
    client.post("/chats", json=chat_body(SAM, parts=[text("https://x.io")], key="b"))
    requests = sandbox_get(sandbox, "requests")["requests"]
    picked = [
        {name: entry[name] for name in ("method", "path", "status", "code", "idempotency_key")}
        for entry in requests
    ]
    assert picked == [
        {
            "method": "POST",
            "path": "/api/v1/chats",
            "status": 200,
            "code": None,
            "idempotency_key": "a",
        },
        {
            "method": "POST",
            "path": "/api/v1/chats",
            "status": 400,
            "code": 1005,
            "idempotency_key": "b",
        },
    ]
    assert before <= requests[0]["t"] <= requests[1]["t"] <= time.time()
    stats = sandbox_get(sandbox, "stats")
    assert stats["requests"] == 2
    assert stats["by_code"] == {"200": 1, "1005": 1}
    assert stats["by_status"] == {"200": 1, "400": 1}


def test_reset_forgets_everything(client: httpx.Client, sandbox: RunningSandbox) -> None:
    """After reset the ledger, stats, chats and keys are gone."""
    chat_id = client.post("/chats", json=chat_body(SAM, key="k")).json()["chat"]["id"]
    request("POST", f"{sandbox.root_url}/_sandbox/reset").raise_for_status()
    assert ledger(sandbox) == []
    assert sandbox_get(sandbox, "stats")["requests"] == 0
    response = client.post(f"/chats/{chat_id}/messages", json={"message": {"parts": [text()]}})
    assert_error(response, 404, 1004)
    assert client.post("/chats", json=chat_body(ALEX, key="k")).status_code == 200


def test_listening_socket_lets_asyncio_disable_nagle() -> None:
    """The socket says TCP, so asyncio sets TCP_NODELAY on every accepted connection.

    Without it, each answer waits ~40 ms for the client's delayed ACK (Nagle).
    Checked on the socket rather than by timing requests: speed is for bench/.
    """
    sock = bind_loopback(0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
