"""Helpers for tests of replies: simulate them on a sandbox, read its event log back."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from batcher.sandbox import RunningSandbox

# The fake clock's start for tests of the event log: a whole second (its times are whole
# seconds), 2026-11-29.
EVENTS_START = 1_796_000_000.0
LINE = "+15555550100"
# Built once: every httpx call would otherwise spend ~70 ms loading CA certificates.
TLS = ssl.create_default_context()


class HandClock:
    """A wall clock a test moves by hand: `State(config, clock=HandClock(...))`.

    Not tests.clocks.FakeClock, which moves itself when every task sleeps: tests of the
    event log set each reply's time themselves.
    """

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def reply(
    box: RunningSandbox, sender: str, text: str, *, line: str = LINE, chat_id: str | None = None
) -> httpx.Response:
    """`sender` writes `text` to `line` (in `chat_id` if given), through POST /_sandbox/inbound."""
    body: dict[str, Any] = {"from": sender, "line": line, "text": text}
    if chat_id is not None:
        body["chat_id"] = chat_id
    return httpx.post(f"{box.root_url}/_sandbox/inbound", json=body, verify=TLS)


def get_events(box: RunningSandbox, **params: str) -> httpx.Response:
    """GET /api/v1/events with bearer auth and these query parameters."""
    headers = {"Authorization": f"Bearer {box.secret}"}
    return httpx.get(f"{box.base_url}/events", params=params, headers=headers, verify=TLS)


def event_pages(box: RunningSandbox, limit: int) -> list[list[dict[str, Any]]]:
    """Every page of message.received events, following next_cursor to the end."""
    pages: list[list[dict[str, Any]]] = []
    params = {"type": "message.received", "limit": str(limit)}
    while True:
        answer = get_events(box, **params).json()
        pages.append(answer["events"])
        assert answer["count"] == len(answer["events"])
        if answer["next_cursor"] is None:
            return pages
        params["cursor"] = answer["next_cursor"]


def event_requests(box: RunningSandbox) -> int:
    """How many GET /events requests the sandbox has answered."""
    log = httpx.get(f"{box.root_url}/_sandbox/requests", verify=TLS).json()["requests"]
    return sum(1 for record in log if record["path"].endswith("/events"))
