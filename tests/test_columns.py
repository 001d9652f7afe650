"""Header aliases, repeated part columns and the sheets that cannot be used."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from batcher.columns import map_columns
from batcher.errors import InputError
from tests.runs import run_cli
from tests.sheets import write_csv


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
        (
            ("From", "from", "To", "Text"),
            False,
            "'From' (column A) and 'from' (column B) both mean",
        ),
        (("Line", "From", "Sender", "To", "Text"), False, "'Line', 'From' and 'Sender' all mean"),
    ],
)
def test_unusable_headers(headers: tuple[str, ...], sender: bool, message: str) -> None:
    """A sheet without what every row needs is refused once, with the fix."""
    with pytest.raises(InputError, match=re.escape(message)):
        map_columns(headers, where="x", has_default_sender=sender)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (("From", "to", "Text", "to"), "columns 'to' (column B) and 'to' (column D) both mean"),
        (("From", "Phone", "phone", "Text"), "columns 'Phone' (column B) and 'phone' (column C)"),
        (("From", "To 1", "to_1", "Text"), "columns 'To 1' (column B) and 'to_1' (column C)"),
        (("From", "To", "Phone", "Text"), "columns 'To' and 'Phone' both mean the recipients"),
        (("Phone", "Mobile", "Number", "Text"), "'Phone', 'Mobile' and 'Number' all mean the"),
    ],
)
def test_recipient_columns_that_clash(headers: tuple[str, ...], message: str) -> None:
    """Recipients columns named alike, or several without numbers, are refused, not merged."""
    with pytest.raises(InputError, match=re.escape(message)) as refused:
        map_columns(headers, where="x", has_default_sender=True)
    assert refused.value.hint == (
        "To send to several people in one chat, name the columns To 1, To 2, ...; "
        "otherwise rename or delete all but one of them."
    )
    assert refused.value.exit_code == 2


def test_clashing_recipient_columns_exit_2(tmp_path: Path) -> None:
    """validate names both columns and the fix, exits 2, and writes no results."""
    path = write_csv(
        tmp_path / "in.csv",
        [["From", "to", "Text", "to"], ["+15555550100", "4155551234", "hi", "4155552671"]],
    )
    done = run_cli(["validate", str(path)], dict(os.environ))
    assert done.returncode == 2
    assert done.stderr == (
        f"Error: {path}: columns 'to' (column B) and 'to' (column D) both mean the "
        "recipients.\nTo send to several people in one chat, name the columns To 1, To 2, "
        "...; otherwise rename or delete all but one of them.\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.mark.parametrize(
    ("headers", "recipients"),
    [
        (("To 1", "To 2", "To 3", "Text"), (0, 1, 2)),
        (("Phone 1", "phone_2", "Text"), (0, 1)),
        (("To", "To 2", "Text"), (0, 1)),  # one without a number, the others numbered
        (("To 1", "Phone 2", "Text"), (0, 1)),
    ],
)
def test_numbered_recipient_columns_merge(
    headers: tuple[str, ...], recipients: tuple[int, ...]
) -> None:
    """Numbered recipients columns are the way to put several people in one chat."""
    columns = map_columns(headers, where="x", has_default_sender=True)
    assert columns.recipients == recipients


def test_from_option_replaces_the_sender_column() -> None:
    """With --from, a sheet needs no sender column."""
    assert map_columns(("To", "Text"), where="x", has_default_sender=True).sender is None
