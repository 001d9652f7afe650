"""The sandbox's event log over loopback: simulated replies, and GET /events in pages."""

from __future__ import annotations

import httpx
import pytest

from batcher.sandbox import RunningSandbox
from tests.replies import LINE, TLS, HandClock, event_pages, get_events, reply
from tests.runs import recipient

SAM = "+14155551234"


def test_a_reply_is_an_event_in_the_documented_shape(box: RunningSandbox) -> None:
    """POST /_sandbox/inbound: a message.received event, and an inbound message of the chat."""
    answer = reply(box, SAM, "STOP")
    assert answer.status_code == 200, answer.text
    page = get_events(box, type="message.received").json()
    assert page["count"] == 1
    assert page["next_cursor"] is None
    (event,) = page["events"]
    assert event["type"] == "message.received"
    assert event["status"] == "delivered"
    payload = event["payload"]
    assert payload["event"] == "message.received"
    assert payload["event_id"] == event["id"]
    assert payload["timestamp"] == event["created_at"]
    assert payload["api_version"] == "v1"
    data = payload["data"]
    assert data["chat"]["id"] == event["lead_id"]
    assert data["chat"]["owner_handle"] == {"handle": LINE}
    assert data["chat"]["is_group"] is False
    assert data["message"]["parts"] == [{"type": "text", "value": "STOP"}]
    assert data["message"]["sender_handle"] == {"handle": SAM}
    headers = {"Authorization": f"Bearer {box.secret}"}
    url = f"{box.base_url}/messages/{data['message']['id']}"
    message = httpx.get(url, headers=headers, verify=TLS).json()["message"]
    assert message["direction"] == "inbound"
    assert message["chat_id"] == event["lead_id"]


def test_a_reply_goes_into_the_chat_the_line_has_with_its_sender(box: RunningSandbox) -> None:
    """A reply lands in the chat a POST /chats opened, found by members or named by id."""
    headers = {"Authorization": f"Bearer {box.secret}"}
    body = {"from": LINE, "to": [SAM], "message": {"parts": [{"type": "text", "value": "Hi"}]}}
    chat = httpx.post(f"{box.base_url}/chats", json=body, headers=headers, verify=TLS).json()
    chat_id = chat["chat"]["id"]
    reply(box, SAM, "Who is this?").raise_for_status()
    reply(box, SAM, "stop", chat_id=chat_id).raise_for_status()
    events = get_events(box).json()["events"]
    assert [event["lead_id"] for event in events] == [chat_id, chat_id]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"line": LINE, "text": "STOP"}, 400, 1001),
        ({"from": SAM, "line": LINE}, 400, 1001),
        ({"from": "4155551234", "line": LINE, "text": "STOP"}, 400, 1002),
        ({"from": SAM, "line": "nobody", "text": "STOP"}, 400, 1002),
        ({"from": SAM, "line": LINE, "text": 7}, 400, 1002),
        ({"from": SAM, "line": LINE, "text": "STOP", "chat_id": "nope"}, 404, 1004),
    ],
)
def test_a_bad_reply_is_refused_in_the_envelope(
    box: RunningSandbox, body: dict[str, object], status: int, code: int
) -> None:
    """A reply without a sender, line or text, or with a bad one, is an API error."""
    answer = httpx.post(f"{box.root_url}/_sandbox/inbound", json=body, verify=TLS)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert get_events(box).json()["events"] == []


@pytest.mark.parametrize(("replies", "sizes"), [(450, [200, 200, 50]), (200, [200]), (0, [0])])
def test_pages_of_200_end_with_a_null_cursor(
    box: RunningSandbox, replies: int, sizes: list[int]
) -> None:
    """Every event comes once, in order, in pages of the limit; the last page says so."""
    for n in range(replies):
        reply(box, recipient(n), f"reply {n}").raise_for_status()
    pages = event_pages(box, limit=200)
    assert [len(page) for page in pages] == sizes
    texts = [e["payload"]["data"]["message"]["parts"][0]["value"] for p in pages for e in p]
    assert texts == [f"reply {n}" for n in range(replies)]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "ten"},
        {"limit": "-5"},
        {"cursor": "not-a-cursor"},
        {"since": "yesterday"},
        {"since": "2026-11-30T12:00:00"},
    ],
)
def test_a_bad_query_is_400_1002(box: RunningSandbox, params: dict[str, str]) -> None:
    """A limit outside 1-200, a cursor never handed out, a since that is no zoned time."""
    answer = get_events(box, **params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == 1002


def test_events_need_credentials(box: RunningSandbox) -> None:
    """The event log is an API route: without credentials, 401 / 2004."""
    answer = httpx.get(f"{box.base_url}/events", verify=TLS)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == 2004


def test_since_is_inclusive_and_type_filters(timed_box: RunningSandbox, clock: HandClock) -> None:
    """since keeps events at or after it; another type lists none of the replies."""
    reply(timed_box, SAM, "first").raise_for_status()
    clock.now += 60
    reply(timed_box, SAM, "second").raise_for_status()
    later = get_events(timed_box).json()["events"][1]["created_at"]
    found = get_events(timed_box, since=later).json()["events"]
    assert [e["payload"]["data"]["message"]["parts"][0]["value"] for e in found] == ["second"]
    assert get_events(timed_box, type="message.sent").json()["events"] == []
