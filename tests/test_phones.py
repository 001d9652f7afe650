"""Phone numbers: the repairs product.md promises, and the damage that must be refused."""

from __future__ import annotations

import pytest

from batcher.phones import normalize_phone


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+14155551234", "US", "+14155551234"),
        ("4155551234", "US", "+14155551234"),
        ("(415) 555-1234", "US", "+14155551234"),
        ("415.555.1234", "US", "+14155551234"),
        ("1-415-555-1234", "US", "+14155551234"),
        (" +1 415 555 1234 ", "US", "+14155551234"),
        ("14155551234", "US", "+14155551234"),  # numeric cell
        ("14155551234.0", "US", "+14155551234"),  # numeric cell read as a float
        ("442079460958", "US", "+442079460958"),  # numeric cell that lost its +
        ("0044 20 7946 0958", "US", "+442079460958"),  # 00 prefix
        ("tel:+1-415-555-1234", "US", "+14155551234"),
        ("TEL:4155551234", "US", "+14155551234"),
        ("'+14155551234", "US", "+14155551234"),  # apostrophe typed to force text
        ("020 7946 0958", "GB", "+442079460958"),
        ("14155551234", "GB", "+14155551234"),  # lost + under another region
        ("+34 612 345 678", "US", "+34612345678"),
    ],
)
def test_repairs(raw: str, region: str, e164: str) -> None:
    """Unambiguous damage is repaired to the same E.164 number."""
    assert normalize_phone(raw, region) == (e164, "")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("1.41555E+10", "scientific notation"),
        ("1,41555E+10", "scientific notation"),
        ("415-555-12", "is not a valid phone number"),
        ("+15555550100", "is not a valid phone number. Check its digits."),  # fictional range
        ("Sam", "is not a phone number"),
        ("415555123", "read as US numbers (--region US)"),  # too short: never a lost +
        ("", "is not a phone number"),
    ],
)
def test_refusals(raw: str, reason: str) -> None:
    """What cannot be repaired is refused, saying why."""
    phone = normalize_phone(raw, "US")
    assert phone.e164 == ""
    assert reason in phone.problem


@pytest.mark.parametrize(
    ("raw", "e164"),
    [("+15555550100", "+15555550100"), ("5555550100", "+15555550100")],
)
def test_senders_only_need_to_be_possible(raw: str, e164: str) -> None:
    """The docs' own sender +15555550100 is possible though not valid: senders pass."""
    assert normalize_phone(raw, "US", sender=True) == (e164, "")
    assert normalize_phone(raw, "US").e164 == ""
