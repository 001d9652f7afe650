"""What `status` reads from the sandbox: delivery and reads on its clock, histories, state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from batcher.sandbox import RunningSandbox, SandboxConfig, State, running_sandbox
from batcher.sandbox.state import delivery, iso_z, read_draw

LINE = "+15555550100"
SAM = "+14155551234"
ALEX = "+14155559876"
START = 1_800_000_000.0


class Hands:
    """A wall clock a test moves by hand."""

    def __init__(self) -> None:
        self.time = START

    def __call__(self) -> float:
        return self.time


def config(read_share: float = 1.0) -> SandboxConfig:
    """Delivered 10 s after sending, read 20 s after that, by `read_share` of the messages."""
    return SandboxConfig(deliver_after=10, read_after=20, read_share=read_share)


@pytest.fixture
def hands() -> Hands:
    """The sandbox's clock."""
    return Hands()


@pytest.fixture
def timed(hands: Hands) -> Iterator[RunningSandbox]:
    """A sandbox on the hand-moved clock, every message read."""
    settings = config()
    with running_sandbox(settings, state=State(settings, clock=hands)) as running:
        yield running


def api(box: RunningSandbox, method: str, path: str, body: Any = None) -> httpx.Response:
    """One authenticated API request."""
    headers = {"Authorization": f"Bearer {box.secret}"}
    return httpx.request(method, box.base_url + path, json=body, headers=headers)


def send(box: RunningSandbox, to: str = SAM, text: str = "Hi", key: str | None = None) -> Any:
    """POST /chats; the answer's JSON."""
    message: dict[str, Any] = {"parts": [{"type": "text", "value": text}]}
    if key is not None:
        message["idempotency_key"] = key
    answer = api(box, "POST", "/chats", {"from": LINE, "to": [to], "message": message})
    answer.raise_for_status()
    return answer.json()


def reply(box: RunningSandbox, text: str, sender: str = SAM) -> None:
    """A reply from `sender` to the line."""
    body = {"from": sender, "line": LINE, "text": text}
    httpx.post(f"{box.root_url}/_sandbox/inbound", json=body).raise_for_status()


@pytest.mark.parametrize(
    ("after", "share", "status", "delivered", "read"),
    [
        (0, 1.0, "sent", False, False),
        (9.9, 1.0, "sent", False, False),
        (10, 1.0, "delivered", True, False),
        (29.9, 1.0, "delivered", True, False),
        (30, 1.0, "read", True, True),
        (30, 0.0, "delivered", True, False),
        (1e6, 0.0, "delivered", True, False),
    ],
)
def test_delivery_moves_on_the_clock(
    after: float, share: float, status: str, delivered: bool, read: bool
) -> None:
    """Sent, then delivered after deliver_after, then read after read_after for the share."""
    message = {"id": "m1", "direction": "outbound", "status": "sent", "delivered_at": None}
    shown = delivery({**message, "read_at": None}, START, START + after, config(share))
    assert shown["status"] == status
    assert shown["delivered_at"] == (iso_z(START + 10) if delivered else None)
    assert shown["read_at"] == (iso_z(START + 30) if read else None)


def test_an_inbound_message_stays_received() -> None:
    """Delivery is about what the line sent; a reply is shown as it came."""
    message = {"id": "m1", "direction": "inbound", "status": "received"}
    assert delivery(message, START, START + 1e6, config())["status"] == "received"


def test_the_read_share_is_fixed_by_message_id() -> None:
    """The same id is always read or not; about the share of ids are."""
    draws = [read_draw(f"message-{n}") for n in range(2000)]
    assert draws == [read_draw(f"message-{n}") for n in range(2000)]
    assert 0.27 < sum(draw < 0.3 for draw in draws) / len(draws) < 0.33


def test_a_message_shows_its_delivery(timed: RunningSandbox, hands: Hands) -> None:
    """GET /messages/{id} shows the message as it stands on the sandbox's clock."""
    message = send(timed)["message"]
    assert api(timed, "GET", f"/messages/{message['id']}").json()["message"] == message
    hands.time += 30
    shown = api(timed, "GET", f"/messages/{message['id']}").json()["message"]
    assert (shown["status"], shown["delivered_at"], shown["read_at"]) == (
        "read",
        iso_z(START + 10),
        iso_z(START + 30),
    )


def test_a_chat_history_holds_messages_and_replies_oldest_first(
    timed: RunningSandbox, hands: Hands
) -> None:
    """GET /chats/{id}/messages: outbound with status, inbound replies with their sender."""
    first = send(timed, text="one")
    chat_id = first["chat"]["id"]
    hands.time += 15
    reply(timed, "Who is this?")
    answer = api(timed, "GET", f"/chats/{chat_id}/messages").json()
    assert answer["has_more"] is False
    outbound, inbound = answer["messages"]
    assert (outbound["id"], outbound["status"], outbound["direction"]) == (
        first["message"]["id"],
        "delivered",
        "outbound",
    )
    assert (inbound["direction"], inbound["parts"]) == (
        "inbound",
        [{"type": "text", "value": "Who is this?"}],
    )
    assert inbound["sender_handle"] == {"handle": SAM}
    assert inbound["created_at"] == iso_z(START + 15)


def test_a_long_history_pages_back(timed: RunningSandbox) -> None:
    """limit gives the most recent messages and has_more; before pages back to older ones."""
    ids = [send(timed, text=f"#{n}")["message"]["id"] for n in range(5)]
    chat_id = api(timed, "GET", f"/messages/{ids[0]}").json()["message"]["chat_id"]
    last = api(timed, "GET", f"/chats/{chat_id}/messages?limit=2").json()
    assert ([m["id"] for m in last["messages"]], last["has_more"]) == (ids[3:], True)
    older = api(timed, "GET", f"/chats/{chat_id}/messages?limit=3&before={ids[3]}").json()
    assert ([m["id"] for m in older["messages"]], older["has_more"]) == (ids[:3], False)


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/chats/no-such-chat/messages", 404, 1004),
        ("/chats/{chat}/messages?limit=0", 400, 1002),
        ("/chats/{chat}/messages?limit=201", 400, 1002),
        ("/chats/{chat}/messages?before=nope", 400, 1002),
    ],
)
def test_history_refusals(timed: RunningSandbox, path: str, status: int, code: int) -> None:
    """An unknown chat is 404; a limit or a before that cannot be used is 400 / 1002."""
    chat_id = send(timed)["chat"]["id"]
    answer = api(timed, "GET", path.format(chat=chat_id))
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)


def test_a_saved_state_is_the_same_sandbox_in_another_process(tmp_path: Path, hands: Hands) -> None:
    """A state file keeps chats, messages, replies and keys: a replay, not a second send."""
    kept = tmp_path / "box.sandbox.json"
    settings = config()
    with running_sandbox(settings, state=State(settings, clock=hands), save_to=kept) as box:
        first = send(box, key="k1")
        reply(box, "STOP")
    assert kept.exists()
    again = State(settings, clock=hands)
    again.load(kept)
    hands.time += 60
    with running_sandbox(settings, state=again) as box:
        assert send(box, key="k1") == first
        history = api(box, "GET", f"/chats/{first['chat']['id']}/messages").json()["messages"]
        stats = httpx.get(f"{box.root_url}/_sandbox/stats").json()
        events = api(box, "GET", "/events").json()["events"]
    assert [m["status"] for m in history] == ["read", "received"]
    assert (stats["deliveries"], stats["replays"]) == (1, 1)
    assert [e["payload"]["data"]["message"]["parts"][0]["value"] for e in events] == ["STOP"]


def test_a_file_that_is_not_a_state_is_refused(tmp_path: Path) -> None:
    """Loading anything else is a ValueError naming the file; a missing file is a fresh start."""
    bad = tmp_path / "notes.json"
    bad.write_text('{"hello": 1}')
    state = State(config())
    with pytest.raises(ValueError, match=r"notes\.json is not a sandbox state file"):
        state.load(bad)
    state.load(tmp_path / "absent.json")
    assert state.ledger() == {"messages": []}
