"""Phone numbers: the repairs product.md promises, and the damage that must be refused."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from batcher import phones
from batcher.phones import normalize_many, normalize_phone


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


# Enough texts for normalize_many to use its helper once PARALLEL_FROM is lowered to 10:
# good, bad and non-ASCII ones, so that every kind of verdict crosses the process boundary.
MANY = [
    *(f"+1 415 555 {n:04d}" for n in range(1200, 1230)),
    "415-555-12",
    "Grüße ☕",
    "1.41555E+10",
    "+44 20 7946 0958",
    "",
]


def alone(texts: list[str], sender: bool = False) -> dict[str, object]:
    return {text: normalize_phone(text, "US", sender=sender) for text in texts}


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """normalize_many starts its helper for a few texts, as if there were two CPUs."""
    monkeypatch.setattr(phones, "PARALLEL_FROM", 10)
    monkeypatch.setattr(phones, "_usable_cpus", lambda: 2)


@pytest.mark.usefixtures("parallel")
@pytest.mark.parametrize("sender", [False, True])
def test_many_with_a_helper_process(monkeypatch: pytest.MonkeyPatch, sender: bool) -> None:
    """Half the texts are normalized by a helper process, with the very same verdicts."""
    here: list[str] = []
    normalize_here = phones._normalize_here

    def spy(texts: list[str], region: str, sender: bool) -> dict[str, phones.Phone]:
        here.extend(texts)
        return normalize_here(texts, region, sender)

    monkeypatch.setattr(phones, "_normalize_here", spy)
    assert normalize_many([*MANY, *MANY], "US", sender=sender) == alone(MANY, sender)
    assert len(here) == len(MANY) - len(MANY) // 2  # the rest came from the helper


@pytest.mark.usefixtures("parallel")
@pytest.mark.parametrize(
    "code",
    [
        "import sys; sys.exit(3)",  # fails
        "print('not json')",  # answers nonsense
        "print('[]')",  # answers too little
        "print('[' + ','.join(['[\"\", \"\"]'] * 100) + ']')",  # answers too much
    ],
)
def test_many_when_the_helper_fails(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """Whatever goes wrong with the helper, its share is done here: same verdicts."""
    monkeypatch.setattr(phones, "_HELPER_CODE", code)
    assert normalize_many(MANY, "US") == alone(MANY)


@pytest.mark.usefixtures("parallel")
def test_many_when_no_helper_can_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """No interpreter to start (an embedded Python, say): everything is done here."""
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    assert normalize_many(MANY, "US") == alone(MANY)


@pytest.mark.usefixtures("parallel")
def test_many_when_the_helper_is_stuck(monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper that never answers is stopped once our share took long enough."""
    monkeypatch.setattr(phones, "_HELPER_CODE", "import time; time.sleep(60)")
    monkeypatch.setattr(phones, "_HELPER_GRACE_S", 0.5)
    started = time.monotonic()
    assert normalize_many(MANY, "US") == alone(MANY)
    assert time.monotonic() - started < 30


def test_few_texts_stay_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below PARALLEL_FROM, or with one CPU, no process is started."""

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("a helper process was started")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    assert normalize_many(MANY, "US") == alone(MANY)
    monkeypatch.setattr(phones, "PARALLEL_FROM", 10)
    monkeypatch.setattr(phones, "_usable_cpus", lambda: 1)
    assert normalize_many(MANY, "US") == alone(MANY)
