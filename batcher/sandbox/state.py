"""The sandbox's memory and rules: chats, messages, idempotency, attachments, limits, ledger.

Pure logic, no HTTP: every operation takes parsed values and the current time
and returns an ``Answer`` (status and exact JSON bytes) or raises ``ApiError``.
A lock makes each operation atomic, so an idempotency check and the record
of its answer can never interleave with a concurrent request for the same key
(the server also runs every operation on one event loop with no await inside).

Choices where the docs are silent:
- idempotency keys are kept until reset; the fingerprint is canonical JSON of
  the route path and the parsed body; the same key with another body (or on
  another route) is 422 / 1002, not retryable; only successes are stored.
- a POST /chats for a (from, set(to)) that already has a chat reuses it:
  same chat id, a new message, no first touch, no capacity used. The
  first-message rules (1005, 4099) still apply, since they are about the call.
- capacity (4002) is answered with HTTP 429 and ``retry_after`` (seconds, to the
  millisecond; the app adds the whole-second ``Retry-After`` header).
- ``GET /phone-numbers`` lists the configured lines (``lines`` and ``inactive``);
  a sandbox that accepts any sender has no list, and answers 404 / 1004. Ids are
  derived from the number, so a line keeps its id across restarts.
- a new chat from an inactive line is 403 / 2006, as the docs say for a line
  that is not the tenant's: they name no code of its own for it. (Lines are
  fixed at start-up, so no chat of an inactive line exists to follow up in.)
- a group created without a subject is named by its recipients, comma-separated.
- a reply (``POST /_sandbox/inbound``) goes into the chat it names, else the line's
  direct chat with its sender, opened for it if there is none (not a first touch);
  it is kept as an inbound message of that chat and a ``message.received`` event.
  An inbound message also names its sender (``sender_handle``), as the event does.
- delivery: an outbound message is ``sent``, then ``delivered`` ``deliver_after``
  seconds after it was sent, then ``read`` ``read_after`` seconds later if its id
  hashes into the ``read_share`` (see ``delivery``); worked out on the state's clock
  whenever a message is shown, so no timer runs.
- ``GET /chats/{id}/messages`` shows the chat's most recent ``limit`` (default and
  at most 200) messages oldest first, with ``has_more`` when older ones exist;
  ``before=<message id>`` pages back to the messages older than that one.
- ``save``/``load`` keep chats, messages, idempotency answers, the ledger and the
  event log in a JSON file, so that another process sees the same messages; the
  request log, the counters of requests and the limiters start afresh.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batcher.media import ACCEPTED, ACCEPTED_TYPES
from batcher.sandbox.config import SandboxConfig
from batcher.sandbox.errors import (
    CAPACITY,
    INVALID_FIELD,
    LINE_NOT_OWNED,
    RATE_LIMITED,
    ApiError,
    invalid,
    missing,
    not_found,
)
from batcher.sandbox.events import EventLog, EventQuery, Inbound, received_event
from batcher.sandbox.limits import FirstTouchLimiter, RateLimiter
from batcher.sandbox.rules import (
    CreateChat,
    Message,
    canonical_json,
    idempotency_key_of,
    parse_create_chat,
    parse_follow_up,
)

SERVICE = "imessage"
HISTORY_LIMIT = 200
STATE_VERSION = 1
CAPABILITIES = ("imessage", "send", "receive")
Json = dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """A response to send: HTTP status and body bytes; ``replay`` marks an idempotent replay."""

    status: int
    body: bytes
    replay: bool = False


@dataclass(frozen=True)
class Faults:
    """Which injected faults hit one request."""

    unavailable: bool = False
    drop: bool = False
    slow: bool = False


@dataclass(frozen=True)
class Chat:
    """A chat and the JSON object the API shows for it."""

    id: str
    sender: str
    recipients: tuple[str, ...]
    is_group: bool
    payload: Json


@dataclass
class Attachment:
    """A reserved upload; ``uploaded`` turns true once its PUT completes."""

    id: str
    content_type: str
    size_bytes: int
    expires_at: float
    uploaded: bool = False


@dataclass(frozen=True)
class _Stored:
    fingerprint: str
    answer: Answer


@dataclass
class _Memory:
    """Everything reset clears."""

    chats: dict[str, Chat] = field(default_factory=dict)
    chat_by_members: dict[tuple[str, frozenset[str]], str] = field(default_factory=dict)
    messages: dict[str, Json] = field(default_factory=dict)
    # When each message was sent or received (unix), and each chat's messages in order.
    times: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[str]] = field(default_factory=dict)
    answers: dict[tuple[str, str], _Stored] = field(default_factory=dict)
    attachments: dict[str, Attachment] = field(default_factory=dict)
    ledger: list[Json] = field(default_factory=list)
    requests: list[Json] = field(default_factory=list)
    events: EventLog = field(default_factory=EventLog)
    counts: Counter[str] = field(default_factory=Counter)
    by_code: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)


def iso_z(unix: float) -> str:
    """Format a unix time as the API does: ``2026-05-01T12:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


def encode(payload: Json) -> bytes:
    """Serialize a response body compactly."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def ceil_ms(seconds: float) -> float:
    """Round a wait up to the millisecond, so a client that honours it is never early."""
    return math.ceil(seconds * 1000) / 1000


def phone_number(number: str, *, active: bool) -> Json:
    """One line as ``GET /phone-numbers`` shows it, with ids derived from the number."""
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"chert-sandbox:phone-number:{number}")),
        "phone_line_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"chert-sandbox:line:{number}")),
        "phone_number": number,
        "service": SERVICE,
        "is_active": active,
        "capabilities": list(CAPABILITIES),
    }


def read_draw(message_id: str) -> float:
    """A number in [0, 1) fixed by a message id: the message is read if it is below the share."""
    digest = hashlib.sha256(message_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def delivery(message: Json, sent: float, now: float, config: SandboxConfig) -> Json:
    """An outbound message as it stands at `now`: sent, delivered or read, with the times."""
    if message.get("direction") != "outbound":
        return message
    delivered = sent + config.deliver_after
    if now < delivered:
        return message
    shown = {**message, "status": "delivered", "delivered_at": iso_z(delivered)}
    read = delivered + config.read_after
    if now >= read and read_draw(message["id"]) < config.read_share:
        shown.update(status="read", read_at=iso_z(read))
    return shown


def _line_handles(recipients: tuple[str, ...]) -> list[Json]:
    return [{"service": SERVICE, "address": number} for number in recipients]


class State:
    """All sandbox state for one tenant; operations are atomic under one lock."""

    def __init__(self, config: SandboxConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything and restart limiters and the fault generator from the seed."""
        with self._lock:
            self._memory = _Memory()
            self._rate = RateLimiter(self.config.rate) if self.config.rate else None
            self._touches = FirstTouchLimiter(self.config.line_gap, self.config.line_daily)
            # One generator for all faults, so a seed fixes the whole fault sequence.
            self._random = random.Random(self.config.seed)

    # Admission -----------------------------------------------------------

    def admit(self, now: float) -> None:
        """Count one authenticated API request against the tenant's rate, or raise 1007."""
        if self._rate is None:
            return
        with self._lock:
            wait = self._rate.acquire(now)
        if wait > 0:
            raise ApiError(
                429,
                RATE_LIMITED,
                f"rate limit of {self.config.rate:g} requests per second exceeded",
                retryable=True,
                retry_after=ceil_ms(wait),
            )

    def draw_faults(self, p503: float, pdrop: float, pslow: float) -> Faults:
        """Draw this request's faults; three draws every time keep the sequence aligned."""
        if not (p503 or pdrop or pslow):
            return Faults()
        with self._lock:
            draws = [self._random.random() for _ in range(3)]
        return Faults(draws[0] < p503, draws[1] < pdrop, draws[2] < pslow)

    # API operations ------------------------------------------------------

    def create_chat(self, body: Json, *, path: str, now: float) -> Answer:
        """``POST /chats``: create or reuse a chat and deliver its message."""
        with self._lock:
            return self._idempotent(body, path, lambda: self._create_chat(body, now))

    def follow_up(self, chat_id: str, body: Json, *, path: str, now: float) -> Answer:
        """``POST /chats/{id}/messages``: deliver a message into an existing chat."""
        with self._lock:
            return self._idempotent(body, path, lambda: self._follow_up(chat_id, body, now))

    def get_message(self, message_id: str, now: float) -> Answer:
        """``GET /messages/{id}``: the message as it stands now."""
        with self._lock:
            message = self._memory.messages.get(message_id)
            if message is None:
                raise not_found(f"no message {message_id}")
            shown = self._shown(message_id, now)
        return Answer(200, encode({"message": shown}))

    def chat_messages(
        self, chat_id: str, *, now: float, limit: int = HISTORY_LIMIT, before: str | None = None
    ) -> Answer:
        """``GET /chats/{id}/messages``: the most recent messages (before one), oldest first."""
        with self._lock:
            ids = self._memory.history.get(chat_id)
            if ids is None:
                raise not_found(f"no chat {chat_id}")
            end = len(ids)
            if before is not None:
                if before not in ids:
                    raise invalid(f"before: {before} is no message of chat {chat_id}")
                end = ids.index(before)
            start = max(0, end - limit)
            page = [self._shown(message_id, now) for message_id in ids[start:end]]
        return Answer(200, encode({"messages": page, "has_more": start > 0}))

    def phone_numbers(self) -> Answer:
        """``GET /phone-numbers``: the configured lines in the documented shape; else 404."""
        listed = self.config.listed
        if not listed:
            raise not_found(
                "this sandbox accepts any sender line, so it has none to list "
                "(start it with --lines to have some)"
            )
        inactive = set(self.config.inactive)
        lines = [phone_number(number, active=number not in inactive) for number in listed]
        return Answer(200, encode({"phone_numbers": lines}))

    def reserve_attachment(
        self, body: Json, *, upload_url: Callable[[str], str], now: float
    ) -> Answer:
        """``POST /attachments``: reserve an id and hand out where to PUT the bytes."""
        content_type, size = self._check_reservation(body)
        attachment = Attachment(
            id=str(uuid.uuid4()),
            content_type=content_type,
            size_bytes=size,
            expires_at=now + self.config.upload_ttl_seconds,
        )
        with self._lock:
            self._memory.attachments[attachment.id] = attachment
        payload = {
            "attachment_id": attachment.id,
            "upload_url": upload_url(attachment.id),
            "required_headers": {"Content-Type": content_type},
            "expires_at": iso_z(attachment.expires_at),
        }
        return Answer(200, encode(payload))

    def check_upload(
        self, attachment_id: str, content_type: str | None, length: int | None, now: float
    ) -> Attachment:
        """Check an upload's headers before its bytes are read."""
        with self._lock:
            attachment = self._memory.attachments.get(attachment_id)
        if attachment is None:
            raise not_found(f"no attachment {attachment_id}")
        if now > attachment.expires_at:
            raise invalid("this upload URL has expired; reserve a new attachment")
        if content_type != attachment.content_type:
            raise invalid(f"Content-Type must be {attachment.content_type}, as reserved")
        if length is None:
            raise missing("Content-Length is required")
        if length != attachment.size_bytes:
            raise invalid(f"Content-Length must be {attachment.size_bytes}, as reserved")
        return attachment

    def finish_upload(self, attachment: Attachment, received: int) -> Answer:
        """Mark an upload complete once exactly the reserved number of bytes arrived."""
        if received != attachment.size_bytes:
            raise invalid(f"received {received} bytes; reserved {attachment.size_bytes}")
        with self._lock:
            attachment.uploaded = True
            self._memory.counts["uploads"] += 1
        payload = {"attachment_id": attachment.id, "size_bytes": received, "uploaded": True}
        return Answer(200, encode(payload))

    def is_uploaded(self, attachment_id: str) -> bool:
        """True once the attachment's bytes have been PUT."""
        attachment = self._memory.attachments.get(attachment_id)
        return attachment is not None and attachment.uploaded

    # Replies and the event log -------------------------------------------

    def receive(self, inbound: Inbound, now: float) -> Json:
        """A reply to a line: an inbound message in its chat, and a message.received event."""
        with self._lock:
            chat = self._reply_chat(inbound, now)
            created_at = iso_z(now)
            message: Json = {
                "id": uuid.uuid4().hex,
                "chat_id": chat.id,
                "parts": [{"type": "text", "value": inbound.text}],
                "status": "received",
                "direction": "inbound",
                "created_at": created_at,
                "delivered_at": None,
                "read_at": None,
                "service": SERVICE,
                "sender_handle": {"handle": inbound.sender},
            }
            self._keep(chat.id, message, now)
            event = received_event(
                inbound,
                chat=chat.payload,
                message=message,
                tenant=self.config.tenant,
                created_at=created_at,
            )
            self._memory.events.append(event, int(now))
        return {"event": event, "message": message}

    def events(self, query: EventQuery) -> Answer:
        """``GET /events``: one page of the event log."""
        with self._lock:
            page = self._memory.events.page(query)
        return Answer(200, encode(page))

    def _reply_chat(self, inbound: Inbound, now: float) -> Chat:
        if self.config.lines and inbound.line not in self.config.lines:
            raise invalid(f"line: {inbound.line} is not this tenant's line")
        if inbound.chat_id is not None:
            chat = self._memory.chats.get(inbound.chat_id)
            if chat is None:
                raise not_found(f"no chat {inbound.chat_id}")
            if inbound.line != chat.sender or inbound.sender not in chat.recipients:
                raise invalid(
                    f"chat {chat.id} is between {chat.sender} and {', '.join(chat.recipients)}"
                )
            return chat
        chat_id = self._memory.chat_by_members.get((inbound.line, frozenset({inbound.sender})))
        if chat_id is not None:
            return self._memory.chats[chat_id]
        chat = self._chat(str(uuid.uuid4()), inbound.line, (inbound.sender,), inbound.sender, now)
        self._memory.chats[chat.id] = chat
        self._memory.chat_by_members[(inbound.line, frozenset({inbound.sender}))] = chat.id
        self._memory.history[chat.id] = []
        return chat

    # Bookkeeping ---------------------------------------------------------

    def log_request(self, record: Json, status: int, code: int | None) -> None:
        """Append one API request to the request log and the counters."""
        with self._lock:
            memory = self._memory
            memory.requests.append(record)
            memory.counts["requests"] += 1
            memory.by_code[str(code if code is not None else status)] += 1
            memory.by_status[str(status)] += 1

    def ledger(self) -> Json:
        """Every delivered message, in delivery order."""
        with self._lock:
            return {"messages": list(self._memory.ledger)}

    def requests(self) -> Json:
        """Every API request seen, in arrival order."""
        with self._lock:
            return {"requests": list(self._memory.requests)}

    def stats(self) -> Json:
        """Counters of requests, deliveries, replays, first touches and answers."""
        with self._lock:
            memory = self._memory
            return {
                "requests": memory.counts["requests"],
                "deliveries": len(memory.ledger),
                "replays": memory.counts["replays"],
                "first_touches": memory.counts["first_touches"],
                "uploads": memory.counts["uploads"],
                "by_code": dict(memory.by_code),
                "by_status": dict(memory.by_status),
            }

    # Keeping the state in a file --------------------------------------------

    def save(self, path: Path) -> None:
        """Write what another process needs to see the same messages, atomically."""
        with self._lock:
            memory = self._memory
            kept: Json = {
                "version": STATE_VERSION,
                "chats": [
                    {
                        "id": chat.id,
                        "sender": chat.sender,
                        "recipients": list(chat.recipients),
                        "payload": chat.payload,
                    }
                    for chat in memory.chats.values()
                ],
                "messages": memory.messages,
                "times": memory.times,
                "history": memory.history,
                "answers": [
                    [
                        tenant,
                        key,
                        stored.fingerprint,
                        stored.answer.status,
                        stored.answer.body.decode(),
                    ]
                    for (tenant, key), stored in memory.answers.items()
                ],
                "ledger": memory.ledger,
                "events": memory.events.items(),
                "first_touches": memory.counts["first_touches"],
            }
            data = encode(kept)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_bytes(data)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    def load(self, path: Path) -> None:
        """Take back what `save` wrote (nothing when the file does not exist yet).

        Raises ValueError when the file is not one `save` wrote.
        """
        if not path.exists():
            return
        try:
            kept = json.loads(path.read_bytes())
            if kept.get("version") != STATE_VERSION:
                raise ValueError(f"version {kept.get('version')!r}")
            memory = _Memory()
            for chat in kept["chats"]:
                recipients = tuple(chat["recipients"])
                memory.chats[chat["id"]] = Chat(
                    chat["id"], chat["sender"], recipients, len(recipients) > 1, chat["payload"]
                )
                memory.chat_by_members[(chat["sender"], frozenset(recipients))] = chat["id"]
            memory.messages = dict(kept["messages"])
            memory.times = {key: float(value) for key, value in kept["times"].items()}
            memory.history = {key: list(value) for key, value in kept["history"].items()}
            for tenant, key, fingerprint, status, body in kept["answers"]:
                memory.answers[(tenant, key)] = _Stored(fingerprint, Answer(status, body.encode()))
            memory.ledger = list(kept["ledger"])
            for second, event in kept["events"]:
                memory.events.append(event, int(second))
            memory.counts["first_touches"] = int(kept["first_touches"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{path} is not a sandbox state file ({error})") from None
        with self._lock:
            self._memory = memory

    # Internals (called with the lock held) -------------------------------

    def _keep(self, chat_id: str, message: Json, now: float) -> None:
        """Remember a message, when it came, and its place in its chat."""
        memory = self._memory
        memory.messages[message["id"]] = message
        memory.times[message["id"]] = now
        memory.history.setdefault(chat_id, []).append(message["id"])

    def _shown(self, message_id: str, now: float) -> Json:
        """A message as the API shows it at `now`."""
        memory = self._memory
        return delivery(memory.messages[message_id], memory.times[message_id], now, self.config)

    def _idempotent(self, body: Json, path: str, work: Callable[[], Answer]) -> Answer:
        key = idempotency_key_of(body)
        if key is None:
            return work()
        slot = (self.config.tenant, key)
        fingerprint = canonical_json({"path": path, "body": body})
        stored = self._memory.answers.get(slot)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise ApiError(
                    422,
                    INVALID_FIELD,
                    "idempotency_key was already used with a different request body",
                    retryable=False,
                )
            self._memory.counts["replays"] += 1
            return Answer(stored.answer.status, stored.answer.body, replay=True)
        answer = work()
        self._memory.answers[slot] = _Stored(fingerprint, answer)
        return answer

    def _check_line(self, sender: str) -> None:
        """Refuse a send from a line the tenant does not have, or has but not active."""
        listed = self.config.listed
        if listed and sender not in listed:
            raise ApiError(403, LINE_NOT_OWNED, f"from: {sender} is not this tenant's line")
        if sender in self.config.inactive:
            raise ApiError(403, LINE_NOT_OWNED, f"from: the line {sender} is not active")

    def _create_chat(self, body: Json, now: float) -> Answer:
        request = parse_create_chat(body, self.is_uploaded)
        self._check_line(request.sender)
        members = (request.sender, frozenset(request.recipients))
        chat_id = self._memory.chat_by_members.get(members)
        first_touch = chat_id is None
        chat = self._new_chat(request, now) if chat_id is None else self._memory.chats[chat_id]
        message = self._deliver(chat, request.message, now, first_touch=first_touch)
        return Answer(200, encode({"chat": chat.payload, "message": message}))

    def _new_chat(self, request: CreateChat, now: float) -> Chat:
        wait = self._touches.wait(request.sender, now)
        if wait > 0:
            raise ApiError(
                429,
                CAPACITY,
                f"line {request.sender} has no first-touch capacity now; retry later",
                retryable=True,
                retry_after=ceil_ms(wait),
            )
        self._touches.record(request.sender, now)
        self._memory.counts["first_touches"] += 1
        chat_id = str(uuid.uuid4())
        if request.is_group:
            display_name = request.message.subject or ", ".join(request.recipients)
        else:
            display_name = request.recipients[0]
        chat = self._chat(chat_id, request.sender, request.recipients, display_name, now)
        self._memory.chats[chat_id] = chat
        self._memory.chat_by_members[(request.sender, frozenset(request.recipients))] = chat_id
        self._memory.history[chat_id] = []
        return chat

    def _chat(
        self, chat_id: str, sender: str, recipients: tuple[str, ...], display_name: str, now: float
    ) -> Chat:
        """A chat and the JSON object the API shows for it (not yet in memory)."""
        is_group = len(recipients) > 1
        payload: Json = {
            "id": chat_id,
            "display_name": display_name,
            "handles": _line_handles(recipients),
            "is_group": is_group,
            "service": SERVICE,
            "health_score": self.config.health_score,
            "created_at": iso_z(now),
        }
        return Chat(chat_id, sender, recipients, is_group, payload)

    def _follow_up(self, chat_id: str, body: Json, now: float) -> Answer:
        chat = self._memory.chats.get(chat_id)
        if chat is None:
            raise not_found(f"no chat {chat_id}")
        message = self._deliver(chat, parse_follow_up(body, self.is_uploaded), now)
        return Answer(200, encode({"message": message}))

    def _deliver(
        self, chat: Chat, message: Message, now: float, *, first_touch: bool = False
    ) -> Json:
        created_at = iso_z(now)
        payload: Json = {
            "id": uuid.uuid4().hex,
            "chat_id": chat.id,
            "parts": message.parts,
            "status": "sent",
            "direction": "outbound",
            "created_at": created_at,
            "delivered_at": None,
            "read_at": None,
            "service": SERVICE,
        }
        self._keep(chat.id, payload, now)
        self._memory.ledger.append(
            {
                "id": payload["id"],
                "chat_id": chat.id,
                "from": chat.sender,
                "to": sorted(chat.recipients),
                "subject": message.subject,
                "parts": message.parts,
                "idempotency_key": message.idempotency_key,
                "created_at": created_at,
                "is_group": chat.is_group,
                "first_touch": first_touch,
            }
        )
        return payload

    def _check_reservation(self, body: Json) -> tuple[str, int]:
        for name in ("filename", "content_type", "size_bytes"):
            if body.get(name) in (None, ""):
                raise missing(f"{name} is required")
        if not isinstance(body["filename"], str):
            raise invalid("filename must be a string")
        content_type = body["content_type"]
        if not isinstance(content_type, str) or "/" not in content_type:
            raise invalid("content_type must be a MIME type such as image/png")
        if content_type.lower() not in ACCEPTED_TYPES:
            raise invalid(f"content_type {content_type} is not sent; accepted: {ACCEPTED}")
        size = body["size_bytes"]
        limit = self.config.max_upload_bytes
        # bool is an int subclass; true is not a size.
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= limit:
            raise invalid(f"size_bytes must be an integer from 1 to {limit}")
        return content_type, size
