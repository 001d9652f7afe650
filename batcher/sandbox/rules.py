"""Pure request validation: what the API accepts in a chat creation and a follow-up.

Each function takes the parsed JSON body and either returns a typed request
or raises the ApiError the service would answer with. Checks run in the
order the service is assumed to use: shape (1001/1002), recipient count
(1006), numbers (1003), parts (1002), first-message rules (1005/4099).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import phonenumbers

from batcher.sandbox.errors import (
    GROUP_FIRST_MESSAGE_MEDIA,
    INVALID_PHONE,
    TOO_MANY_RECIPIENTS,
    URL_IN_FIRST_MESSAGE,
    ApiError,
    invalid,
    missing,
)

MAX_RECIPIENTS = 31
MAX_IDEMPOTENCY_KEY_LENGTH = 255
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
# What the service treats as "a URL in a text part": a scheme or a bare www.
URL_IN_TEXT = re.compile(r"https?://|www\.", re.IGNORECASE)
RICH_LINK_OPTIONAL = ("title", "summary", "image_url", "icon_url")
GROUP_FIRST_FORBIDDEN = frozenset({"media", "rich_link"})

IsUploaded = Callable[[str], bool]


@dataclass(frozen=True)
class Message:
    """A validated ``message`` object: its parts, subject and idempotency key."""

    parts: list[dict[str, Any]]
    subject: str | None
    idempotency_key: str | None


@dataclass(frozen=True)
class CreateChat:
    """A validated ``POST /chats`` body; recipients de-duplicated, in request order."""

    sender: str
    recipients: tuple[str, ...]
    message: Message

    @property
    def is_group(self) -> bool:
        """True for 2-31 recipients."""
        return len(self.recipients) > 1


def canonical_json(value: object) -> str:
    """Serialize so that equal JSON values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object (else 400 / 1002)."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid("request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise invalid("request body must be a JSON object")
    return value


@lru_cache(maxsize=65_536)
def _parse_e164(number: str) -> phonenumbers.PhoneNumber | None:
    if not E164.fullmatch(number):
        return None
    try:
        return phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None


@lru_cache(maxsize=65_536)
def is_valid_recipient(number: str) -> bool:
    """True for an E.164 string that phonenumbers calls a valid number."""
    parsed = _parse_e164(number)
    return parsed is not None and bool(phonenumbers.is_valid_number(parsed))


@lru_cache(maxsize=65_536)
def is_possible_sender(number: str) -> bool:
    """True for an E.164 string that is a *possible* number (docs use +15555550100)."""
    parsed = _parse_e164(number)
    return parsed is not None and bool(phonenumbers.is_possible_number(parsed))


def _present(value: object) -> bool:
    return value is not None and value != "" and value != []


def _message_object(body: dict[str, Any]) -> dict[str, Any]:
    message = body.get("message")
    if not _present(message):
        raise missing("message.parts is required")
    if not isinstance(message, dict):
        raise invalid("message must be an object")
    if not _present(message.get("parts")):
        raise missing("message.parts is required and must not be empty")
    return message


def idempotency_key_of(body: object) -> str | None:
    """Return ``message.idempotency_key`` if the body carries one, checking its type."""
    if not isinstance(body, dict):
        return None
    message = body.get("message")
    if not isinstance(message, dict) or message.get("idempotency_key") is None:
        return None
    key = message["idempotency_key"]
    if not isinstance(key, str) or not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise invalid(
            f"message.idempotency_key must be a string of 1-{MAX_IDEMPOTENCY_KEY_LENGTH} characters"
        )
    return key


def _optional_str(container: dict[str, Any], name: str, where: str) -> str | None:
    value = container.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{where}.{name} must be a string")
    return value


def _require_str(part: dict[str, Any], name: str, where: str) -> str:
    value = part.get(name)
    if not isinstance(value, str) or not value:
        raise invalid(f"{where} needs a non-empty string {name!r}")
    return value


def _check_url(url: str, where: str) -> None:
    if not url.lower().startswith(("http://", "https://")):
        raise invalid(f"{where}.url must be an http:// or https:// URL")


def check_part(part: object, where: str, is_uploaded: IsUploaded) -> dict[str, Any]:
    """Validate one part (text, rich_link, media or legacy link) or raise 1002."""
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise invalid(f"{where} must be an object with a string 'type'")
    kind = part["type"]
    if kind == "text":
        _require_str(part, "value", where)
    elif kind in ("rich_link", "link"):
        _check_url(_require_str(part, "url", where), where)
        for name in RICH_LINK_OPTIONAL:
            _optional_str(part, name, where)
    elif kind == "media":
        attachment_id = _require_str(part, "attachment_id", where)
        if not is_uploaded(attachment_id):
            raise invalid(f"{where}.attachment_id {attachment_id!r} has not been uploaded")
    else:
        raise invalid(f"{where}.type {kind!r} is not one of text, rich_link, media, link")
    return part


def parse_message(message: dict[str, Any], is_uploaded: IsUploaded) -> Message:
    """Validate a ``message`` object that is known to carry non-empty parts."""
    parts = message["parts"]
    if not isinstance(parts, list):
        raise invalid("message.parts must be an array")
    checked = [
        check_part(part, f"message.parts[{index}]", is_uploaded) for index, part in enumerate(parts)
    ]
    return Message(
        parts=checked,
        subject=_optional_str(message, "subject", "message"),
        idempotency_key=idempotency_key_of({"message": message}),
    )


def _recipients(to: object) -> tuple[str, ...]:
    if not isinstance(to, list):
        raise invalid("to must be an array of E.164 numbers")
    # A repeated number is one recipient; dict.fromkeys keeps request order.
    unique = tuple(
        dict.fromkeys(number if isinstance(number, str) else repr(number) for number in to)
    )
    if len(unique) > MAX_RECIPIENTS:
        raise ApiError(
            422, TOO_MANY_RECIPIENTS, f"{len(unique)} recipients; at most {MAX_RECIPIENTS}"
        )
    for number in unique:
        if not is_valid_recipient(number):
            raise ApiError(400, INVALID_PHONE, f"to: {number} is not a valid E.164 phone number")
    return unique


def parse_create_chat(body: dict[str, Any], is_uploaded: IsUploaded) -> CreateChat:
    """Validate a ``POST /chats`` body, including its first-message rules."""
    for name in ("from", "to"):
        if not _present(body.get(name)):
            raise missing(f"{name} is required")
    message = _message_object(body)
    recipients = _recipients(body["to"])
    sender = body["from"]
    if not isinstance(sender, str) or not is_possible_sender(sender):
        raise ApiError(400, INVALID_PHONE, f"from: {sender} is not an E.164 phone number")
    request = CreateChat(sender, recipients, parse_message(message, is_uploaded))
    check_first_message(request)
    return request


def check_first_message(request: CreateChat) -> None:
    """Refuse legacy links and DM text URLs (1005) and group media/rich links (4099)."""
    for index, part in enumerate(request.message.parts):
        where = f"message.parts[{index}]"
        if part["type"] == "link":
            raise ApiError(
                400,
                URL_IN_FIRST_MESSAGE,
                f"{where}: legacy link parts are not allowed in a "
                "first message; use a rich_link part",
            )
        if not request.is_group and part["type"] == "text" and URL_IN_TEXT.search(part["value"]):
            raise ApiError(
                400,
                URL_IN_FIRST_MESSAGE,
                f"{where}: a DM's first message must not carry a URL "
                "in a text part; use a rich_link part",
            )
    if request.is_group:
        for index, part in enumerate(request.message.parts):
            if part["type"] in GROUP_FIRST_FORBIDDEN:
                raise ApiError(
                    501,
                    GROUP_FIRST_MESSAGE_MEDIA,
                    f"message.parts[{index}]: a group's first message must be text only; "
                    "send media and rich links in a follow-up",
                    # Retrying the same body can never succeed, 5xx or not.
                    retryable=False,
                )


def parse_follow_up(body: dict[str, Any], is_uploaded: IsUploaded) -> Message:
    """Validate a ``POST /chats/{id}/messages`` body, which must wrap parts in ``message``."""
    if "parts" in body:
        raise invalid('parts must be inside message: send {"message": {"parts": [...]}}')
    return parse_message(_message_object(body), is_uploaded)
