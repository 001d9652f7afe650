"""The sandbox's event log: replies kept as `message.received` events, read back in pages.

Pure logic, no HTTP and no lock (the state holds the log under its own lock):
what a simulated reply must say, the event the API keeps for it, and the
query of ``GET /events`` (``type``, ``status``, ``since``, ``limit``, ``cursor``).

Choices where the docs are silent:
- events are listed oldest first, in the order they were received;
- ``since`` is inclusive: events whose ``created_at`` (whole seconds) is at or
  after it; it takes ISO 8601 with a zone (``2026-05-01T12:00:00Z``); unparsable
  or without a zone: 400 / 1002;
- ``limit`` defaults to 50; not a whole number from 1 to 200: 400 / 1002;
- the cursor is opaque, the position after the last event of a page; one this
  sandbox never handed out: 400 / 1002. ``next_cursor`` is null on the last page
  (a full page with nothing after it included);
- an event's ``status`` is its webhook delivery's: always ``delivered`` here.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from batcher.sandbox.errors import invalid, missing
from batcher.sandbox.rules import is_possible_sender, is_valid_recipient

Json = dict[str, Any]
RECEIVED = "message.received"
DELIVERED = "delivered"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_CURSOR_PREFIX = "v1:"


@dataclass(frozen=True)
class Inbound:
    """A simulated reply: who wrote (`sender`), to which line, what, in which chat if given."""

    sender: str
    line: str
    text: str
    chat_id: str | None = None


@dataclass(frozen=True)
class EventQuery:
    """What one ``GET /events`` asks for; `start` is the position its cursor points at."""

    type: str | None = None
    status: str | None = None
    since: float | None = None
    limit: int = DEFAULT_LIMIT
    start: int = 0


def parse_inbound(body: Json) -> Inbound:
    """The body of ``POST /_sandbox/inbound``, or the ApiError it deserves."""
    for name in ("from", "line", "text"):
        if body.get(name) in (None, ""):
            raise missing(f"{name} is required")
    sender, line, text, chat_id = (body.get(name) for name in ("from", "line", "text", "chat_id"))
    if not isinstance(sender, str) or not is_valid_recipient(sender):
        raise invalid(f"from: {sender!r} is not a valid E.164 number")
    if not isinstance(line, str) or not is_possible_sender(line):
        raise invalid(f"line: {line!r} is not an E.164 number")
    if not isinstance(text, str):
        raise invalid("text must be a string")
    if chat_id is not None and (not isinstance(chat_id, str) or not chat_id):
        raise invalid("chat_id must be a non-empty string")
    return Inbound(sender, line, text, chat_id)


def parse_query(params: Mapping[str, str]) -> EventQuery:
    """The query string of ``GET /events``, or 400 / 1002 naming the parameter."""
    limit_text = params.get("limit")
    limit = DEFAULT_LIMIT
    if limit_text is not None:
        if not limit_text.strip().isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            raise invalid(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(limit_text)
    since_text = params.get("since")
    since = None if since_text is None else _parse_since(since_text)
    cursor = params.get("cursor")
    start = 0 if cursor in (None, "") else decode_cursor(cursor)
    return EventQuery(
        type=params.get("type") or None,
        status=params.get("status") or None,
        since=since,
        limit=limit,
        start=start,
    )


def _parse_since(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise invalid(f"since: {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise invalid(f"since: {text!r} has no time zone; end it with Z")
    return moment.timestamp()


def encode_cursor(position: int) -> str:
    """An opaque cursor for the position after a page."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The position a cursor points at, or 400 / 1002 for one never handed out."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    number = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not number.isdigit():
        raise invalid("cursor is not one this API handed out; start again without it")
    return int(number)


def received_event(
    inbound: Inbound, *, chat: Json, message: Json, tenant: str, created_at: str
) -> Json:
    """The ``message.received`` event the API keeps for a reply, in the documented shape."""
    event_id = f"evt_{uuid.uuid4().hex}"
    data = {
        "chat": {
            "id": chat["id"],
            "is_group": chat["is_group"],
            "owner_handle": {"handle": inbound.line},
        },
        "message": {
            "id": message["id"],
            "parts": message["parts"],
            "sender_handle": {"handle": inbound.sender},
        },
    }
    return {
        "id": event_id,
        "type": RECEIVED,
        "created_at": created_at,
        "status": DELIVERED,
        "lead_id": chat["id"],
        "payload": {
            "event": RECEIVED,
            "event_id": event_id,
            "timestamp": created_at,
            "api_version": "v1",
            "partner_id": tenant,
            "data": data,
        },
    }


class EventLog:
    """Every event, oldest first, with the whole second each was received at."""

    def __init__(self) -> None:
        self._events: list[tuple[int, Json]] = []

    def append(self, event: Json, second: int) -> None:
        """Keep one event, received at `second` (unix time)."""
        self._events.append((second, event))

    def items(self) -> list[tuple[int, Json]]:
        """Every event with its second, oldest first (what a saved state keeps)."""
        return list(self._events)

    def page(self, query: EventQuery) -> Json:
        """One page of the events the query matches, from its cursor on."""
        if query.start > len(self._events):
            raise invalid("cursor is not one this API handed out; start again without it")
        found: list[Json] = []
        position = query.start
        more = False
        for index in range(query.start, len(self._events)):
            second, event = self._events[index]
            if not self._matches(query, second, event):
                continue
            if len(found) == query.limit:
                more = True
                break
            found.append(event)
            position = index + 1
        return {
            "events": found,
            "next_cursor": encode_cursor(position) if more else None,
            "count": len(found),
        }

    @staticmethod
    def _matches(query: EventQuery, second: int, event: Json) -> bool:
        return (
            (query.type is None or event["type"] == query.type)
            and (query.status is None or event["status"] == query.status)
            and (query.since is None or second >= query.since)
        )
