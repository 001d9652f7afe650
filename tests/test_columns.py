"""Header aliases, repeated part columns and the sheets that cannot be used."""

from __future__ import annotations

import pytest

from batcher.columns import map_columns
from batcher.errors import InputError


@pytest.mark.parametrize(
    "header",
    [
        "to",
        "To",
        "TO",
        "recipients",
        "Recipient",
        "phone",
        "Phone Number",
        "phone-number",
        "mobile",
        "number",
        "to_1",
        "To 2",
    ],
)
def test_recipient_aliases(header: str) -> None:
    """Every documented recipients header is recognized, however it is written."""
    columns = map_columns(("From", header, "Text"), where="x", has_default_sender=False)
    assert columns.recipients == (1,)


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("from", "sender"),
        ("Sender", "sender"),
        ("from_number", "sender"),
        ("Sender Number", "sender"),
        ("line", "sender"),
        ("subject", "subject"),
        ("Group Name", "subject"),
        ("group_subject", "subject"),
        ("chat_id", "chat_id"),
        ("Chat ID", "chat_id"),
        ("idempotency_key", "idempotency_key"),
        ("Idempotency-Key", "idempotency_key"),
    ],
)
def test_single_field_aliases(header: str, field: str) -> None:
    """Sender, subject, chat id and key columns under each of their names."""
    columns = map_columns(("To", "Text", header), where="x", has_default_sender=True)
    assert getattr(columns, field) == 2


def test_parts_in_column_order_and_to_columns_merged() -> None:
    """Parts keep their left-to-right order; to_1, to_2 ... are all recipients."""
    headers = ("From", "to_1", "Image", "Message", "to_2", "URL", "text_2", "Notes", "link 2")
    columns = map_columns(headers, where="x", has_default_sender=False)
    assert columns.recipients == (1, 4)
    assert columns.parts == (
        ("media", 2),
        ("text", 3),
        ("rich_link", 5),
        ("text", 6),
        ("rich_link", 8),
    )


def test_results_columns_recognized() -> None:
    """A results sheet's own columns are found, so they are updated rather than repeated."""
    headers = ("To", "Text", "status", "Chat ID", "message_id", "idempotency_key")
    columns = map_columns(headers, where="x", has_default_sender=True)
    assert columns.is_results_sheet
    assert columns.results == {"status": 2, "chat_id": 3, "message_id": 4, "idempotency_key": 5}


@pytest.mark.parametrize(
    ("headers", "sender", "message"),
    [
        (("From", "Text"), False, "no recipients column. The header row has 'From', 'Text'"),
        (("+15555550100", "4155551234", "hello"), False, "the first row holds data"),
        (("From", "To"), False, "no message column"),
        (("To", "Text"), False, "no sender column"),
        (("From", "Sender", "To", "Text"), False, "columns 'From' and 'Sender' both mean"),
    ],
)
def test_unusable_headers(headers: tuple[str, ...], sender: bool, message: str) -> None:
    """A sheet without what every row needs is refused once, with the fix."""
    with pytest.raises(InputError, match=message):
        map_columns(headers, where="x", has_default_sender=sender)


def test_from_option_replaces_the_sender_column() -> None:
    """With --from, a sheet needs no sender column."""
    assert map_columns(("To", "Text"), where="x", has_default_sender=True).sender is None
