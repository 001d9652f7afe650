"""Values shared by every stage: statuses, message parts and row problems."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal, NamedTuple


class Status(StrEnum):
    """The final word on a row, as written in the results sheet's `status` column."""

    SENT = "sent"
    INVALID = "invalid"
    FAILED = "failed"
    PENDING = "pending"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"  # left out on purpose (hidden in the sheet, contacted recently)
    SUPPRESSED = "suppressed"  # the recipient opted out or is on a suppression list


# The statuses that need nothing more: a sheet whose every row is one of them exits 0.
# Every exit-code computation reads this one set.
SETTLED: frozenset[Status] = frozenset(
    {Status.SENT, Status.DUPLICATE, Status.SKIPPED, Status.SUPPRESSED}
)
# A results sheet fed back in keeps these statuses: its rows are not planned again.
KEPT_FROM_RESULTS: frozenset[Status] = frozenset({Status.SENT, Status.SKIPPED, Status.SUPPRESSED})


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


ProblemSource = Literal["local", "api"]


class Problem(NamedTuple):
    """Why a row cannot be sent (or was refused), with the API's code and what to do about it.

    `source` is "local" for what chert-batch found, "api" for what Chert answered; an
    API problem names no column, and its message is the API's, made safe by api_text.
    """

    row: int
    column: str
    value: str
    code: int
    message: str
    source: ProblemSource = "local"

    def describe(self) -> str:
        """One line a person can act on: where, what, and the fix."""
        if self.source == "api":
            meaning = CODE_MEANINGS.get(self.code)
            code = f"{self.code}, {meaning}" if meaning else str(self.code or "no code")
            return f"row {self.row}: Chert refused it ({code}): {self.message}"
        if not self.column:
            return f"row {self.row}: {self.message}"
        # A column without a header is already named by its letter: "column D"; the
        # --template text by its option.
        named = self.column.startswith(("column ", "--template"))
        column = self.column if named else f"column {self.column}"
        return f"row {self.row}, {column}: {self.message}"


# What each code means to a person, for summaries: the API's documented codes, those that
# third-party copies of its table list, and the sandbox's choices (see chert-api.md).
CODE_MEANINGS: dict[int, str] = {
    1001: "missing sender, recipient or message",
    1002: "invalid field",
    1003: "invalid phone number",
    1004: "no such chat or message",
    1005: "web address in a direct chat's first text",
    1006: "more than 31 recipients",
    1007: "rate limited",
    1008: "two text parts next to each other",
    1009: "text too long",
    1011: "conflicting attachment reference",
    2002: "chat not found",
    2004: "bad signature or token",
    2006: "sender line not on this account",
    2013: "clock skew",
    3000: "server error",
    3001: "service unavailable",
    4001: "downstream delivery failed",
    4002: "sender line out of capacity",
    4099: "media or link in a group's first message",
}

API_TEXT_LIMIT = 300
# Controls that only move the text (tab, new line, ...) become spaces; the others, and the
# Unicode marks that reorder or hide what a terminal shows, are dropped.
_SPACING = re.compile(r"[\t\n\v\f\r\x1c-\x1f\x85\u2028\u2029 ]+")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_FORMULA_START = ("=", "+", "-", "@")


def api_text(message: str) -> str:
    """What an outside source said, made one short line that no terminal or sheet obeys.

    Control characters are removed (so no escape sequence reaches a terminal), runs of
    white space become one space, the text is capped at API_TEXT_LIMIT characters, and
    a start a spreadsheet would evaluate as a formula gets a leading apostrophe.
    """
    text = _CONTROLS.sub("", _SPACING.sub(" ", message)).strip()
    if len(text) > API_TEXT_LIMIT:
        text = text[: API_TEXT_LIMIT - 1] + "…"
    return "'" + text if text.startswith(_FORMULA_START) else text


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
