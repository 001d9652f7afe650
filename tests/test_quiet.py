"""Quiet hours, the rules: windows, a number's time zones, and when a window opens for all.

Times are given in UTC; the comments say what the clock shows where.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from batcher.quiet import (
    Window,
    WindowError,
    closed,
    next_open,
    night_count,
    parse_window,
    zones_for,
)
from tests.clocks import START_WALL
from tests.quiet_numbers import (
    AU_MOBILE,
    DAY,
    FREEPHONE,
    HOUR,
    LA,
    LA_2,
    LONDON,
    NY,
    TOLL_FREE,
    UK_MOBILE,
    utc,
)

# The window's rules ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("09:00-20:00", Window(540, 1200)),
        ("9:30-17:00", Window(570, 1020)),
        (" 20:00 - 02:00 ", Window(1200, 120)),  # past midnight
        ("22:00-24:00", Window(1320, 0)),
        ("00:00-08:00", Window(0, 480)),
    ],
)
def test_parse_window(text: str, window: Window) -> None:
    """HH:MM-HH:MM, with H:MM, spaces around the dash, and 24:00 as an end."""
    assert parse_window(text) == window


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9-20", "'9-20' is not a window of local time; give it as HH:MM-HH:MM"),
        ("09:00", "'09:00' is not a window of local time"),
        ("25:00-02:00", "'25:00-02:00' has a time that is not on a clock"),
        ("09:60-10:00", "'09:60-10:00' has a time that is not on a clock"),
        ("24:00-08:00", "'24:00-08:00' has a time that is not on a clock"),
        ("09:00-09:00", "'09:00-09:00' opens and closes at the same time"),
        ("00:00-24:00", "'00:00-24:00' opens and closes at the same time"),
    ],
)
def test_parse_window_refuses(text: str, message: str) -> None:
    """Anything else is refused with what to give instead."""
    with pytest.raises(WindowError, match="^" + message.replace("(", r"\(")):
        parse_window(text)


@pytest.mark.parametrize(
    ("window", "local", "inside"),
    [
        (DAY, "09:00", True),
        (DAY, "08:59", False),
        (DAY, "19:59", True),
        (DAY, "20:00", False),  # the end is not in it
        ("20:00-02:00", "23:30", True),
        ("20:00-02:00", "01:59", True),
        ("20:00-02:00", "02:00", False),
        ("20:00-02:00", "12:00", False),
        ("22:00-24:00", "23:59", True),
        ("22:00-24:00", "00:00", False),
    ],
)
def test_window_holds(window: str, local: str, inside: bool) -> None:
    """A time of day is inside from the start up to, not including, the end; wrapping too."""
    hours, minutes = (int(part) for part in local.split(":"))
    assert parse_window(window).holds(hours * HOUR + minutes * 60) is inside


@pytest.mark.parametrize(
    ("number", "zones"),
    [
        (LA, ("America/Los_Angeles",)),
        (NY, ("America/New_York",)),
        (LONDON, ("Europe/London",)),
        (UK_MOBILE, ("Europe/Guernsey", "Europe/Isle_of_Man", "Europe/Jersey", "Europe/London")),
        (FREEPHONE, ()),
        # Not a valid number: phonenumbers says Etc/Unknown, so the country's zones.
        ("+15555550100", zones_for(TOLL_FREE)),
    ],
)
def test_zones_for(number: str, zones: tuple[str, ...]) -> None:
    """A number's zones from phonenumbers; the country's when it names none."""
    assert zones_for(number) == zones


def test_wide_regions_have_many_zones() -> None:
    """A toll-free +1 number may be in any of 42 zones, an Australian mobile in 8."""
    assert len(zones_for(TOLL_FREE)) == 42
    assert {"Pacific/Guam", "Pacific/Pago_Pago", "America/St_Johns"} <= set(zones_for(TOLL_FREE))
    assert len(zones_for(AU_MOBILE)) == 8


@pytest.mark.parametrize(
    ("window", "recipients", "at", "said", "opens"),
    [
        (DAY, [LA], "2027-01-15T17:00", None, None),  # 09:00 in LA
        (
            DAY,
            [LA],
            "2027-01-15T08:00",
            f"outside 09:00-20:00 for {LA} (America/Los_Angeles) until 09:00",
            "2027-01-15T17:00",
        ),
        # Past midnight: 20:00-02:00 is open at LA's midnight, closed at 03:00.
        ("20:00-02:00", [LA], "2027-01-15T08:00", None, None),
        (
            "20:00-02:00",
            [LA],
            "2027-01-15T11:00",
            f"outside 20:00-02:00 for {LA} (America/Los_Angeles) until 20:00",
            "2027-01-16T04:00",
        ),
        # Sydney's 19:00 is inside and so is Cocos' 14:30: all 8 zones are.
        (DAY, [AU_MOBILE], "2027-01-15T08:00", None, None),
        (
            DAY,
            [AU_MOBILE],
            "2027-01-15T10:00",  # Sydney 21:00: closed until Cocos reaches 09:00 (Adelaide 13:00)
            f"outside 09:00-20:00 for {AU_MOBILE} (Australia/Adelaide, one of its 8 time "
            "zones) until 13:00",
            "2027-01-16T02:30",
        ),
        # The 42 zones of +1 meet only from 23:00 (Guam's 09:00) to 23:30 (St John's 20:00).
        (DAY, [TOLL_FREE], "2027-01-15T23:15", None, None),
        (
            DAY,
            [TOLL_FREE],
            "2027-01-15T23:30",
            f"outside 09:00-20:00 for {TOLL_FREE} (America/St_Johns, one of its 42 time "
            "zones) until 19:30",
            "2027-01-16T23:00",
        ),
        (
            "09:00-10:00",
            [TOLL_FREE],
            "2027-01-15T08:00",
            "no moment of 09:00-10:00 is inside every time zone of its recipients at once "
            f"({TOLL_FREE} may be in 42 time zones); widen --window, or send it without "
            "--window",
            None,
        ),
        # A group: LA and London overlap from 17:00 to 20:00 UTC.
        (DAY, [LA, LONDON], "2027-01-15T18:00", None, None),
        (
            DAY,
            [LONDON, LA],
            "2027-01-15T08:00",
            f"outside 09:00-20:00 for {LA} (America/Los_Angeles) until 09:00",
            "2027-01-15T17:00",
        ),
        (
            DAY,
            [LA, LONDON],
            "2027-01-15T20:30",  # LA is inside (12:30); London is not, until LA's next 09:00
            f"outside 09:00-20:00 for {LONDON} (Europe/London) until 17:00",
            "2027-01-16T17:00",
        ),
        (
            DAY,
            [LA, FREEPHONE],
            "2027-01-15T18:00",
            f"the time zone of {FREEPHONE} is unknown, so --window 09:00-20:00 cannot be "
            "checked for it; send it without --window",
            None,
        ),
    ],
    ids=[
        "open",
        "closed",
        "wrap open",
        "wrap closed",
        "8 zones open",
        "8 zones closed",
        "42 zones open",
        "42 zones closed",
        "42 zones never",
        "group open",
        "group closed",
        "group one closed",
        "group unknown zone",
    ],
)
def test_closed(
    window: str, recipients: list[str], at: str, said: str | None, opens: str | None
) -> None:
    """Whether a message to these recipients may go now; if not, who holds it and until when."""
    shut = closed(parse_window(window), recipients, utc(at))
    if said is None:
        assert shut is None
        return
    assert shut is not None
    assert shut.describe() == said
    assert shut.opens == (utc(opens) if opens else None)


def test_next_open_across_a_daylight_saving_jump() -> None:
    """02:30 does not exist in New York on 2027-03-14: the window opens when clocks jump."""
    window = parse_window("02:30-05:00")
    opens = next_open(window, ("America/New_York",), utc("2027-03-14T06:00"))  # 01:00 EST
    assert opens == utc("2027-03-14T07:00")  # 03:00 EDT, the first moment inside


def test_night_count() -> None:
    """Distinct recipients for whom it is 21:00-08:00 in any of their zones."""
    recipients = [LA, LA_2, NY, LONDON, AU_MOBILE, LA]
    assert night_count(recipients, START_WALL) == 3  # LA 00:00, New York 03:00
    assert night_count(recipients, utc("2027-01-15T18:00")) == 1  # Sydney's 05:00
    assert night_count(recipients, utc("2027-01-15T12:00")) == 4  # LA 04:00, NY 07:00, AU 23:00


def test_zones_need_no_system_time_zone_data(tmp_path: Path) -> None:
    """With no tz database on the machine (PYTHONTZPATH empty), tzdata answers."""
    code = "from batcher.quiet import zones_for; print(zones_for('+14155552000'))"
    env = {**os.environ, "PYTHONTZPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.stdout.strip() == "('America/Los_Angeles',)", done.stderr


def test_next_open_asked_again_as_time_passes() -> None:
    """The same zones asked from later moments: the same opening, then the next day's."""
    window, zones = parse_window(DAY), zones_for(TOLL_FREE)
    asked = ["2027-01-15T08:00", "2027-01-15T22:59", "2027-01-15T23:10", "2027-01-15T23:31"]
    opens = [next_open(window, zones, utc(at)) for at in asked]
    assert opens == [
        utc("2027-01-15T23:00"),
        utc("2027-01-15T23:00"),
        utc("2027-01-15T23:10"),  # inside: now
        utc("2027-01-16T23:00"),
    ]
