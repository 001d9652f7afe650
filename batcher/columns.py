"""Which column means what: header aliases, repeated part columns and result columns."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from batcher.errors import InputError
from batcher.model import PartType

RESULT_COLUMNS = (
    "status",
    "chat_id",
    "message_id",
    "error_code",
    "error_message",
    "idempotency_key",
    "attempts",
    "sent_at",
    "trace_id",
    # What `status` reads back after the send (batcher.status); empty until it runs.
    "delivery",
    "delivered_at",
    "read_at",
    "replied_at",
    "reply",
)

# Matched against the header with case, spaces, dashes and underscores removed.
_SINGLE_FIELDS: dict[str, re.Pattern[str]] = {
    "sender": re.compile(r"from|sender|fromnumber|sendernumber|line"),
    "subject": re.compile(r"subject|groupname|groupsubject"),
    "chat_id": re.compile(r"chatid"),
    "idempotency_key": re.compile(r"idempotencykey"),
}
_RECIPIENTS = re.compile(r"(?:to|recipients?|phone|phonenumber|mobile|number)\d*")
_PARTS: dict[PartType, re.Pattern[str]] = {
    "text": re.compile(r"(?:text|message|body)\d*"),
    "rich_link": re.compile(r"(?:link|url|richlink)\d*"),
    "media": re.compile(r"(?:media|attachment|attachmentid|image)\d*"),
}
_HEADER_NOISE = re.compile(r"[\s_\-]+")

ACCEPTED_RECIPIENT_HEADERS = "To, Recipients, Recipient, Phone, Phone Number, Mobile, Number"


def header_key(header: str) -> str:
    """A header as it is matched: lower case, without spaces, dashes and underscores.

    Leading apostrophes do not count either: a results CSV escapes a header such as
    "-To-" as "'-To-" (see batcher.cells), and it must still name the same column.
    """
    return _HEADER_NOISE.sub("", header.lstrip("'")).lower()


def names_recipients(cells: Iterable[str]) -> bool:
    """Whether a row names a recipients column (or a chat_id one): how a header row is known.

    Loading looks for the header with it (a title row may come first), with the same
    patterns map_columns reads the header by.
    """
    return any(
        _RECIPIENTS.fullmatch(key) or _SINGLE_FIELDS["chat_id"].fullmatch(key)
        for key in map(header_key, cells)
    )


def column_name(headers: tuple[str, ...], index: int) -> str:
    """How to name a column to a person: its header, or its letter when it has none."""
    return headers[index] if headers[index] else f"column {column_letter(index)}"


def column_letter(index: int) -> str:
    """Excel column letters of a 0-based index: 0 → A, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Column indexes of each field; `parts` in left-to-right order."""

    headers: tuple[str, ...]
    sender: int | None
    recipients: tuple[int, ...]
    subject: int | None
    parts: tuple[tuple[PartType, int], ...]
    chat_id: int | None
    idempotency_key: int | None
    results: dict[str, int]

    @property
    def is_results_sheet(self) -> bool:
        """Whether the input is itself a results sheet (it has a `status` column)."""
        return "status" in self.results

    def name(self, index: int | None) -> str:
        """The column's name for messages; `index` None means a column the sheet lacks."""
        return "(none)" if index is None else column_name(self.headers, index)


def map_columns(
    headers: tuple[str, ...], *, where: str, has_default_sender: bool, has_template: bool = False
) -> ColumnMap:
    """Recognize the columns of a header row; raise InputError if the sheet cannot be used.

    `has_template`: --template gives every row's text, so the sheet needs no message column.
    """
    singles: dict[str, list[int]] = {name: [] for name in _SINGLE_FIELDS}
    recipients: list[int] = []
    parts: list[tuple[PartType, int]] = []
    results: dict[str, int] = {}
    for index, header in enumerate(headers):
        key = header_key(header)
        if not key:
            continue
        for result in RESULT_COLUMNS:
            if key == header_key(result):
                results.setdefault(result, index)
        if _RECIPIENTS.fullmatch(key):
            recipients.append(index)
            continue
        part = next((kind for kind, rx in _PARTS.items() if rx.fullmatch(key)), None)
        if part is not None:
            parts.append((part, index))
            continue
        for name, pattern in _SINGLE_FIELDS.items():
            if pattern.fullmatch(key):
                singles[name].append(index)
    for name, indexes in singles.items():
        if len(indexes) > 1:
            raise InputError(
                f"{where}: columns {_several(headers, indexes)} mean the {name.replace('_', ' ')}.",
                hint="Rename or delete all but one of them.",
            )
    _check_recipient_columns(headers, recipients, where)
    columns = ColumnMap(
        headers=headers,
        sender=next(iter(singles["sender"]), None),
        recipients=tuple(recipients),
        subject=next(iter(singles["subject"]), None),
        parts=tuple(parts),
        chat_id=next(iter(singles["chat_id"]), None),
        idempotency_key=next(iter(singles["idempotency_key"]), None),
        results=results,
    )
    _check_usable(
        columns, where=where, has_default_sender=has_default_sender, has_template=has_template
    )
    return columns


def _check_recipient_columns(headers: tuple[str, ...], indexes: list[int], where: str) -> None:
    """Several recipients columns must be numbered (To 1, To 2, ...), each number once.

    Two columns named alike (To and to), or two without a number (Phone and Mobile),
    would otherwise merge every row's numbers into a group: a contact sheet's Phone and
    Mobile are more likely one person's two numbers than two people for one chat.
    """
    by_key: dict[str, list[int]] = {}
    for index in indexes:
        by_key.setdefault(header_key(headers[index]), []).append(index)
    clash = next((same for same in by_key.values() if len(same) > 1), None)
    if clash is None:
        clash = [index for index in indexes if not header_key(headers[index])[-1].isdigit()]
    if len(clash) > 1:
        raise InputError(
            f"{where}: columns {_several(headers, clash)} mean the recipients.",
            hint="To send to several people in one chat, name the columns To 1, To 2, ...; "
            "otherwise rename or delete all but one of them.",
        )


def _several(headers: tuple[str, ...], indexes: list[int]) -> str:
    """Columns named for a message ("'From' and 'Sender' both"), told apart by letter
    where their names alone would not."""
    keys = [header_key(headers[index]) for index in indexes]
    names = [
        f"{column_name(headers, index)!r}"
        + (f" (column {column_letter(index)})" if keys.count(key) > 1 else "")
        for index, key in zip(indexes, keys, strict=True)
    ]
    listed = f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{listed} {'both' if len(names) == 2 else 'all'}"


def _check_usable(
    columns: ColumnMap, *, where: str, has_default_sender: bool, has_template: bool
) -> None:
    found = ", ".join(repr(h) for h in columns.headers if h) or "nothing"
    if not columns.recipients and columns.chat_id is None:
        if _looks_like_data(columns.headers):
            raise InputError(
                f"{where}: the first row holds data ({found}), not column names.",
                hint="Insert a header row first, e.g. From, To, Text.",
            )
        raise InputError(
            f"{where}: no recipients column. The header row has {found}.",
            hint=f"Name the recipients column one of: {ACCEPTED_RECIPIENT_HEADERS}.",
        )
    if not columns.parts and not has_template:
        raise InputError(
            f"{where}: no message column. The header row has {found}.",
            hint="Name the message column Text (or Message, Body); links go in Link, "
            "attachments in Media. Or give every row's text with --template FILE.",
        )
    if columns.sender is None and columns.chat_id is None and not has_default_sender:
        raise InputError(
            f"{where}: no sender column. The header row has {found}.",
            hint="Add a From column with the sending line, or pass --from +1XXXXXXXXXX.",
        )


def _looks_like_data(headers: tuple[str, ...]) -> bool:
    """A header row that is really a data row: some cell is mostly digits, like a phone number."""
    return any(sum(ch.isdigit() for ch in header) >= 7 for header in headers)


def is_recipients_header(header: str) -> bool:
    """Whether a header names a recipients column (To, Phone, Mobile, To 2, ...), as map_columns
    reads it: suppression files find their phone columns with it."""
    return _RECIPIENTS.fullmatch(header_key(header)) is not None


def looks_like_data(headers: tuple[str, ...]) -> bool:
    """Whether a header row is really a row of data, such as a phone number: no header at all."""
    return _looks_like_data(headers)
