"""Values shared by every stage: statuses, message parts and row problems."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, NamedTuple


class Status(StrEnum):
    """The final word on a row, as written in the results sheet's `status` column."""

    SENT = "sent"
    INVALID = "invalid"
    FAILED = "failed"
    PENDING = "pending"
    DUPLICATE = "duplicate"


PartType = Literal["text", "rich_link", "media"]

_PART_FIELD: dict[str, str] = {"text": "value", "rich_link": "url", "media": "attachment_id"}


# The records below exist once or more per row of a sheet of up to ~100,000 rows: they are
# NamedTuples because those are immutable, hashable and several times cheaper to build
# than frozen dataclasses (whose __init__ goes through object.__setattr__ per field).


class Part(NamedTuple):
    """One message part, already normalized: a text, a rich link or a media attachment."""

    type: PartType
    value: str

    def to_api(self) -> dict[str, str]:
        """The part as the Chert API expects it in `message.parts`."""
        return {"type": self.type, _PART_FIELD[self.type]: self.value}


class Problem(NamedTuple):
    """Why a row cannot be sent, with the API's own error code and what to do about it."""

    row: int
    column: str
    value: str
    code: int
    message: str

    def describe(self) -> str:
        """One line a person can act on: where, what, and the fix."""
        return f"row {self.row}, column {self.column}: {self.message}"


# What each code means to a person, for summaries (the API's own codes).
CODE_MEANINGS: dict[int, str] = {
    1001: "missing sender, recipient or message",
    1002: "invalid field",
    1003: "invalid phone number",
    1005: "web address in a direct chat's first text",
    1006: "more than 31 recipients",
    1007: "rate limited",
    1011: "conflicting attachment reference",
    2004: "bad signature or token",
    2006: "sender line not on this account",
    2013: "clock skew",
    4001: "downstream delivery failed",
    4002: "sender line out of capacity",
    4099: "media or link in a group's first message",
}


class RowOutcome(NamedTuple):
    """The result columns of one row, as written to the results sheet.

    The fields are in the order of `batcher.columns.RESULT_COLUMNS`.
    """

    status: Status
    chat_id: str = ""
    message_id: str = ""
    error_code: str = ""
    error_message: str = ""
    idempotency_key: str = ""
    attempts: str = ""
    sent_at: str = ""
    trace_id: str = ""

    def cells(self) -> dict[str, str]:
        """Result column name → cell text."""
        return {
            "status": str(self.status),
            "chat_id": self.chat_id,
            "message_id": self.message_id,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "idempotency_key": self.idempotency_key,
            "attempts": self.attempts,
            "sent_at": self.sent_at,
            "trace_id": self.trace_id,
        }
