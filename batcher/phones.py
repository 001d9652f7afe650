"""Phone numbers to E.164, repairing the damage spreadsheets do where it is unambiguous.

Repairs: numeric cells (`14155551234.0`), a lost `+` (only for numbers long
enough to carry a country code), `00` and `tel:` prefixes, spaces, dots,
dashes, slashes and brackets. Scientific notation is never repaired: the digits
it dropped are gone, and a "repair" would reach a different person.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

import phonenumbers

_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+")
_NUMERIC_CELL = re.compile(r"(\d+)\.0+")
_PUNCTUATION = re.compile(r"[\s().\-/\u00a0\u2010-\u2015]+")
_DIGITS = re.compile(r"\+?\d+")
# A national number never has more than 10 digits in the regions people mean by default;
# 11 or more digits without a "+" is a number that lost it.
_MIN_DIGITS_WITH_COUNTRY_CODE = 11


class Phone(NamedTuple):
    """A normalized number, or the reason it is not one (exactly one of the two is set)."""

    e164: str
    problem: str


RETYPE = "Format the column as Text and type the number again."


def scientific_problem(shown: str) -> str:
    """Why a number written in scientific notation cannot be used, and the fix."""
    return (
        f"{shown} is in scientific notation: the spreadsheet has already rounded away "
        f"digits, so the real number cannot be recovered. {RETYPE}"
    )


@lru_cache(maxsize=1 << 17)
def normalize_phone(raw: str, region: str, *, sender: bool = False) -> Phone:
    """E.164 for a cell's text; recipients must be valid numbers, senders possible ones."""
    text = raw.strip()
    if _SCIENTIFIC.fullmatch(text):
        return Phone("", scientific_problem(text))
    if text[:4].lower() == "tel:":
        text = text[4:]
    text = text.lstrip("'")  # a typed apostrophe forces text in Excel and survives in CSV
    numeric = _NUMERIC_CELL.fullmatch(text)
    if numeric:
        text = numeric.group(1)
    compact = _PUNCTUATION.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not _DIGITS.fullmatch(compact):
        return Phone("", f"{raw.strip()!r} is not a phone number.{_hint(region)}")
    candidates = [compact]
    if not compact.startswith("+") and len(compact) >= _MIN_DIGITS_WITH_COUNTRY_CODE:
        candidates.append("+" + compact)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        usable = (
            phonenumbers.is_possible_number(number)
            if sender
            else phonenumbers.is_valid_number(number)
        )
        if usable:
            return Phone(
                phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), ""
            )
    kind = "a possible phone number" if sender else "a valid phone number"
    hint = " Check its digits." if compact.startswith("+") else _hint(region)
    return Phone("", f"{raw.strip()!r} is not {kind}.{hint}")


def normalize_many(texts: Iterable[str], region: str, *, sender: bool = False) -> dict[str, Phone]:
    """normalize_phone of many cells at once: text → its verdict, each distinct text once."""
    return {text: normalize_phone(text, region, sender=sender) for text in set(texts)}


def _hint(region: str) -> str:
    return (
        f" Numbers without a country code are read as {region} numbers (--region {region}); "
        "write others with + and the country code, e.g. +44 20 7946 0958."
    )
