"""Planning: rows become chats and requests, each with a deterministic idempotency key.

Rows with the same sender and recipient set form one chat: the first creates it
(`POST /chats`), later ones follow up in sheet order. A group's first message
must be text only, so a group row that also carries links or media becomes two
requests: the text-only creation, then a follow-up with the rest.

A key is a hash of canonical JSON of the request's content and its step within
the row (campaign, sender, sorted recipients, subject, chat id, parts, step and
occurrence, as a JSON array in that order), behind a version prefix: the same
content gives the same key on any machine, in any row order, under any file
name. No clock, no randomness, no row number. Identical rows sent on purpose
(`--allow-duplicates`) differ by their occurrence count among identical rows.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from batcher.model import Part, Problem, Status
from batcher.validation import Message

KEY_PREFIX = "cb1-"
# `run --proof`: keys of messages to the person's own phone. Another prefix and another
# material, so a proof's key is never a real row's (see proof_key).
PROOF_KEY_PREFIX = "cb1proof-"
# Built once: json.dumps() with options builds a new encoder on every call. The key
# material is made fresh for each key, so it cannot hold a cycle worth checking for.
_CANONICAL = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)
# How _CANONICAL writes a string (ensure_ascii=False): derive_key writes its array by hand.
_QUOTE: Callable[[str], str] = json.encoder.encode_basestring
_URL_IN_TEXT = re.compile(r"(?:https?://|www\.)\S", re.IGNORECASE)

ContentId = tuple[str, tuple[str, ...], str, tuple[Part, ...], str]


# Request, SettledRow and RowPlan exist once or more per row: NamedTuples are immutable,
# hashable and much cheaper to build than frozen dataclasses.


class Request(NamedTuple):
    """One API call: a chat creation or a follow-up, with the key it is sent under."""

    key: str
    row: int
    step: int
    chat: str
    creates_chat: bool
    sender: str
    recipients: tuple[str, ...]
    subject: str
    parts: tuple[Part, ...]
    chat_id: str = ""

    def path(self, chat_id: str = "") -> str:
        """The route, relative to the API base; a follow-up needs its chat's id."""
        if self.creates_chat:
            return "/chats"
        return f"/chats/{chat_id or self.chat_id}/messages"

    def body(self, attachments: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The JSON body, exactly as it is sent (and re-sent) under this key.

        `attachments` maps a media part's reference (a file's content hash, a
        URL) to the attachment id its upload got.
        """
        parts = [part.to_api() for part in self.parts]
        if attachments:
            for part in parts:
                if part["type"] == "media" and part["attachment_id"] in attachments:
                    part["attachment_id"] = attachments[part["attachment_id"]]
        message: dict[str, Any] = {"parts": parts, "idempotency_key": self.key}
        if not self.creates_chat:
            return {"message": message}
        if self.subject and len(self.recipients) > 1:
            message["subject"] = self.subject
        return {"from": self.sender, "to": list(self.recipients), "message": message}


class SettledRow(NamedTuple):
    """A row an earlier run already sent, read back from a results sheet.

    `message` is None when the row no longer validates: it stays sent, but
    cannot anchor its chat or catch repeats.
    """

    row: int
    message: Message | None
    # What the results sheet says of it: sent, or skipped / suppressed (nothing was sent).
    status: Status = Status.SENT


class RowPlan(NamedTuple):
    """What will happen to one row: its requests, or why it will not be sent."""

    row: int
    status: Status
    requests: tuple[Request, ...] = ()
    problem: Problem | None = None
    duplicate_of: int = 0


@dataclass(frozen=True)
class Plan:
    """Every row's plan, and the requests grouped by chat in the order they must go."""

    rows: tuple[RowPlan, ...]
    chats: dict[str, tuple[Request, ...]] = field(default_factory=dict)

    @property
    def requests(self) -> Iterable[Request]:
        """Every request to send, chat by chat."""
        for requests in self.chats.values():
            yield from requests


def content_id(message: Message) -> ContentId:
    """What makes two rows "the same message": sender, recipients, subject, parts, chat."""
    return (message.sender, message.recipients, message.subject, message.parts, message.chat_id)


def derive_key(
    *,
    campaign: str,
    message: Message,
    parts: Sequence[Part],
    step: int,
    occurrence: int,
) -> str:
    """The idempotency key of one request: a hash of its content, never of where it sits.

    The material is a JSON array with a fixed place for each field: canonical without
    sorting keys, and cheaper to encode than an object (there is one key per request).
    """
    # The JSON array [campaign, sender, recipients (sorted by validation), subject, chat id,
    # [[type, value], ...], step, occurrence], written out here exactly as _CANONICAL
    # encodes it (its own string encoder, the same separators; a test holds the two
    # together): one f-string, at a fraction of the encoder's cost for every request.
    quote = _QUOTE
    canonical = (
        f"[{quote(campaign)},{quote(message.sender)},"
        f"[{','.join(map(quote, message.recipients))}],"
        f"{quote(message.subject)},{quote(message.chat_id)},"
        f"[{','.join([f'[{quote(part.type)},{quote(part.value)}]' for part in parts])}],"
        f"{step},{occurrence}]"
    )
    return _digest(KEY_PREFIX, canonical)


def proof_key(*, campaign: str, sender: str, number: str, parts: Sequence[Part]) -> str:
    """The key of a proof: `parts` sent from `sender` to `number`, a direct chat of its own.

    The same proof gets the same key (a rerun sends nothing twice); new text, a new key.
    Its material has five fields where a real key's has eight, and the prefix differs:
    a proof's key can never be a row's, whatever the sheet holds.
    """
    material = ["proof", campaign, sender, number, [[part.type, part.value] for part in parts]]
    return _hashed(PROOF_KEY_PREFIX, material)


def _hashed(prefix: str, material: list[Any]) -> str:
    """The one key format: a prefix, then 32 hex digits of sha256 over canonical JSON."""
    return _digest(prefix, _CANONICAL.encode(material))


def _digest(prefix: str, canonical: str) -> str:
    return prefix + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def chat_ref(sender: str, recipients: tuple[str, ...], chat_id: str) -> str:
    """The chat a row belongs to: an existing chat id, or a sender and recipient set."""
    return f"id:{chat_id}" if chat_id else f"new:{sender}>{','.join(recipients)}"


class Planner:
    """Plans rows one at a time, in sheet order, tracking chats, repeats and keys used.

    `plan_rows` plans a whole sheet at once; a Planner lets each row's plan be used as
    soon as it is made (validate writes it out meanwhile).
    """

    def __init__(self, *, campaign: str = "", allow_duplicates: bool = False) -> None:
        self.campaign = campaign
        self.allow_duplicates = allow_duplicates
        # Content → (the first row with it, how many rows so far have it).
        self.seen: dict[ContentId, tuple[int, int]] = {}
        self.chats: dict[str, list[Request]] = {}
        self.known_chat_ids: dict[str, str] = {}
        self.key_owner: dict[str, int] = {}  # key → the row that uses it

    def plan(self, row: Message | Problem | SettledRow) -> RowPlan:
        """The next row's plan; rows must come in sheet order."""
        if isinstance(row, Problem):
            return RowPlan(row.row, Status.INVALID, problem=row)
        if isinstance(row, SettledRow):
            return self.settled(row)
        return self.message(row)

    def finish(self, plans: Iterable[RowPlan]) -> Plan:
        """The whole plan, from every row's plan as `plan` made them."""
        chats = {ref: tuple(requests) for ref, requests in self.chats.items()}
        return Plan(tuple(plans), chats)

    def settled(self, row: SettledRow) -> RowPlan:
        if row.status is not Status.SENT:
            return RowPlan(row.row, row.status)  # nothing was sent: it anchors nothing
        message = row.message
        if message is not None:
            # Its chat_id cell holds the chat the earlier run created or wrote into; the
            # content it was sent as had no chat id when the row names its recipients.
            sent_chat = "" if message.recipients else message.chat_id
            self._count(content_id(message._replace(chat_id=sent_chat)), row.row)
            if message.chat_id and message.recipients:
                ref = chat_ref(message.sender, message.recipients, "")
                self.known_chat_ids.setdefault(ref, message.chat_id)
        return RowPlan(row.row, Status.SENT)

    def still_as_sent(self, message: Message, keys: Sequence[str]) -> bool:
        """Whether a row marked sent still holds what was sent under `keys` (its key cell).

        Call it before `plan`ning the row. Its content must give those keys, as the
        creation of its chat or as a follow-up. Explicit keys (or none in the cell) leave
        nothing to compare: the row is taken as sent.
        """
        if message.keys or not keys:
            return True
        sent = message._replace(chat_id="" if message.recipients else message.chat_id)
        _, occurrence = self.seen.get(content_id(sent), (0, 0))
        for creates in (True, False):
            steps = _steps(sent, creates)
            if isinstance(steps, Problem):
                continue
            derived = [
                derive_key(
                    campaign=self.campaign,
                    message=sent,
                    parts=parts,
                    step=step,
                    occurrence=occurrence,
                )
                for step, parts in enumerate(steps, start=1)
            ]
            if derived == list(keys):
                return True
        return False

    def _count(self, content: ContentId, row: int) -> None:
        first, occurrences = self.seen.get(content, (row, 0))
        self.seen[content] = (first, occurrences + 1)

    def message(self, message: Message) -> RowPlan:
        content = content_id(message)
        earlier, occurrence = self.seen.get(content, (0, 0))
        if earlier and not self.allow_duplicates:
            return RowPlan(message.row, Status.DUPLICATE, duplicate_of=earlier)
        ref = chat_ref(message.sender, message.recipients, message.chat_id)
        existing = message.chat_id or self.known_chat_ids.get(ref, "")
        creates = not existing and ref not in self.chats
        steps = _steps(message, creates)
        if isinstance(steps, Problem):
            return RowPlan(message.row, Status.INVALID, problem=steps)
        keys = self._keys(message, occurrence, steps)
        if isinstance(keys, Problem):
            return RowPlan(message.row, Status.INVALID, problem=keys)
        self._count(content, message.row)
        requests = tuple(
            # Positionally, in Request's field order (one or two per row: it adds up).
            Request(
                key,
                message.row,
                step,
                ref,
                creates and step == 1,
                message.sender,
                message.recipients,
                message.subject,
                parts,
                existing,
            )
            for step, (key, parts) in enumerate(zip(keys, steps, strict=True), start=1)
        )
        self.chats.setdefault(ref, []).extend(requests)
        for key in keys:
            self.key_owner[key] = message.row
        return RowPlan(message.row, Status.PENDING, requests)

    def _keys(
        self, message: Message, occurrence: int, steps: list[tuple[Part, ...]]
    ) -> list[str] | Problem:
        if not message.keys:
            return [
                derive_key(
                    campaign=self.campaign,
                    message=message,
                    parts=parts,
                    step=step,
                    occurrence=occurrence,
                )
                for step, parts in enumerate(steps, start=1)
            ]
        if len(message.keys) == len(steps):
            keys = list(message.keys)
        elif len(message.keys) == 1:
            keys = [message.keys[0]] + [f"{message.keys[0]}.{n}" for n in range(2, len(steps) + 1)]
        else:
            return _key_problem(
                message,
                f"holds {len(message.keys)} keys but the row makes {len(steps)} "
                "request(s). Give one key, or one per request separated by spaces.",
            )
        for key in keys:
            owner = self.key_owner.get(key)
            if owner is not None:
                return _key_problem(
                    message,
                    f"the key {key!r} is already used by row {owner}. The API would take "
                    "this row for a retry of that one and not send it: give each row its "
                    "own key, or leave the cell empty.",
                )
        return keys


def plan_rows(
    rows: Iterable[Message | Problem | SettledRow],
    *,
    campaign: str = "",
    allow_duplicates: bool = False,
) -> Plan:
    """Plan every row in sheet order: chats, splits, duplicates and keys."""
    planner = Planner(campaign=campaign, allow_duplicates=allow_duplicates)
    return planner.finish([planner.plan(row) for row in rows])


def _steps(message: Message, creates: bool) -> list[tuple[Part, ...]] | Problem:
    """The parts of each request a row makes, checking the first-message rules."""
    if not creates:
        return [message.parts]
    if not message.is_group:
        for part, column in zip(message.parts, message.part_columns, strict=True):
            if part.type == "text" and _has_web_address(part.value):
                return Problem(
                    message.row,
                    column,
                    part.value,
                    1005,
                    "the first message of a direct chat may not carry a web address in "
                    "its text. Move the address to a Link column (it is sent as a rich link).",
                )
        return [message.parts]
    text = tuple(part for part in message.parts if part.type == "text")
    rest = tuple(part for part in message.parts if part.type != "text")
    if not text:
        return Problem(
            message.row,
            message.text_column,
            "",
            1001,
            "a group chat must start with a text message; links and media can only follow. "
            "Add a Text cell to this row.",
        )
    return [text, rest] if rest else [text]


def url_in_text(parts: Iterable[Part]) -> Part | None:
    """The first text part holding a web address, which a direct chat's first message
    may not carry (1005); None when there is none."""
    return next((p for p in parts if p.type == "text" and _has_web_address(p.value)), None)


def _has_web_address(text: str) -> bool:
    """Whether a text holds a web address, as _URL_IN_TEXT finds them."""
    # A match needs "://" or "www." (in any case, and only W matches w): most texts have
    # neither, and two substring tests cost far less than the search.
    return ("://" in text or "www." in text.lower()) and _URL_IN_TEXT.search(text) is not None


def _key_problem(message: Message, detail: str) -> Problem:
    return Problem(message.row, message.key_column, " ".join(message.keys), 1002, detail)
