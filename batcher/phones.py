"""Phone numbers to E.164, repairing the damage spreadsheets do where it is unambiguous.

Repairs: numeric cells (`14155551234.0`), a lost `+` (only for numbers long
enough to carry a country code), `00` and `tel:` prefixes, spaces, dots,
dashes, slashes and brackets. Scientific notation is never repaired: the digits
it dropped are gone, and a "repair" would reach a different person.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
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


# Below this many distinct numbers, a helper process saves too little to be worth
# starting: it takes about 50 ms to start, and a number about 25 µs to normalize.
PARALLEL_FROM = 10_000
# How long the helper may take beyond what our own share took (three times that, plus
# this): enough on a busy machine. Past it, it is presumed stuck and its share done here.
_HELPER_GRACE_S = 10.0
# Run by the helper: take the parent's import path first, so that it runs the same code.
_HELPER_CODE = (
    "import json, sys; sys.path[:] = json.loads(sys.stdin.readline()); "
    "from batcher.phones import _serve_helper; _serve_helper()"
)


def normalize_many(texts: Iterable[str], region: str, *, sender: bool = False) -> dict[str, Phone]:
    """normalize_phone of many cells at once: text → its verdict, each distinct text once.

    Normalizing is most of the time validate takes on a large sheet, and it is the same
    pure function of each text: with many numbers and a second CPU, a helper process
    normalizes half of them meanwhile. If the helper cannot start or fails, its half is
    done here, so the answer is always the same. The verdicts are not kept in
    normalize_phone's cache: the caller keeps them for as long as it needs them.
    """
    distinct = list(set(texts))
    if len(distinct) < PARALLEL_FROM or _usable_cpus() < 2:
        return _normalize_here(distinct, region, sender)
    half = len(distinct) // 2
    return _normalize_with_helper(distinct[:half], distinct[half:], region, sender)


def _normalize_here(texts: list[str], region: str, sender: bool) -> dict[str, Phone]:
    normalize = normalize_phone.__wrapped__  # uncached: see normalize_many
    return {text: normalize(text, region, sender=sender) for text in texts}


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _normalize_with_helper(
    theirs: list[str], ours: list[str], region: str, sender: bool
) -> dict[str, Phone]:
    """Normalize `ours` here while a helper process (a fresh interpreter) does `theirs`."""
    # The request goes through a file, not a pipe: feeding a pipe would take a thread
    # that competes for the GIL with our own share, and would starve the helper.
    path = [entry for entry in sys.path if isinstance(entry, str)]
    with tempfile.TemporaryFile() as request:
        request.write(f"{json.dumps(path)}\n{json.dumps([region, sender, theirs])}\n".encode())
        request.seek(0)
        try:
            helper = subprocess.Popen(
                [sys.executable, "-c", _HELPER_CODE],
                stdin=request,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # a failed helper is made up for below
            )
        except OSError:
            return _normalize_here(theirs + ours, region, sender)
        with helper:
            try:
                started = time.monotonic()
                found = _normalize_here(ours, region, sender)
                patience = _HELPER_GRACE_S + 3 * (time.monotonic() - started)
                phones = _helper_answer(helper, patience)
            finally:
                if helper.poll() is None:
                    helper.kill()
    if helper.returncode == 0 and len(phones) == len(theirs):
        found.update(zip(theirs, phones, strict=True))
    else:
        found.update(_normalize_here(theirs, region, sender))  # the helper failed: its share
    return found


def _helper_answer(helper: subprocess.Popen[bytes], patience: float) -> list[Phone]:
    """The helper's verdicts, or none if it did not answer in time or answered nonsense."""
    try:
        output, _ = helper.communicate(timeout=patience)
        return [Phone(e164, problem) for e164, problem in json.loads(output)]
    except (subprocess.TimeoutExpired, ValueError, TypeError):
        return []


def _serve_helper() -> None:
    """The helper's side: read [region, sender, texts], write their [e164, problem] pairs."""
    region, sender, texts = json.loads(sys.stdin.readline())
    found = _normalize_here(texts, region, sender)
    json.dump([found[text] for text in texts], sys.stdout)  # ASCII: any locale can carry it


def _hint(region: str) -> str:
    return (
        f" Numbers without a country code are read as {region} numbers (--region {region}); "
        "write others with + and the country code, e.g. +44 20 7946 0958."
    )
