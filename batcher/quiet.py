"""Quiet hours: a daily window of local time, checked in each recipient's time zones.

A number's zones come from phonenumbers' time zone data (`time_zones_for_number`).
Some numbers map to several zones: a toll-free or non-geographic +1 number to
every zone of the +1 countries, a UK mobile to London and the Crown
dependencies. A message may go only when it is inside the window in every zone
of every recipient, so nobody gets it at night wherever the number may be.
When phonenumbers names no zone ("Etc/Unknown": a prefix its data lacks), the
country's zones are used (the longest prefix it knows, at worst the calling
code's). A number with no zone even so (the non-geographic +800, +881, ...
codes) is never inside a window: it cannot be checked.

Pure functions of values: the wall time is passed in (the run's clock's).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone

DAY_MINUTES = 24 * 60
# How far ahead the next opening is looked for: a window opens every local day,
# so two days cover any zones whose windows meet at all.
LOOK_AHEAD = timedelta(days=2)
# When no zone's own opening is a moment inside all of them (a daylight-saving
# jump over the opening time), the next opening is searched in steps this long.
SCAN_STEP = 15 * 60.0

_WINDOW = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


class WindowError(ValueError):
    """A --window value that is not HH:MM-HH:MM of two different times of day."""


@dataclass(frozen=True)
class Window:
    """A daily span of local time, in minutes after midnight; `end < start` wraps past it."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"

    def holds(self, seconds: float) -> bool:
        """Whether a local time of day (seconds after midnight) is inside the window."""
        start, end = self.start * 60, self.end * 60
        if start < end:
            return start <= seconds < end
        return seconds >= start or seconds < end


NIGHT = Window(21 * 60, 8 * 60)
"""The hours the confirmation counts as night, in the recipient's time."""


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_window(text: str) -> Window:
    """`09:00-20:00` (or `20:00-02:00`, past midnight) as a Window; WindowError if not one."""
    found = _WINDOW.fullmatch(text)
    if found is None:
        raise WindowError(
            f"{text!r} is not a window of local time; give it as HH:MM-HH:MM, "
            "such as 09:00-20:00 (or 20:00-02:00 past midnight)."
        )
    hours_from, minutes_from, hours_to, minutes_to = (int(part) for part in found.groups())
    start, end = hours_from * 60 + minutes_from, hours_to * 60 + minutes_to
    if minutes_from > 59 or minutes_to > 59 or start >= DAY_MINUTES or end > DAY_MINUTES:
        raise WindowError(
            f"{text!r} has a time that is not on a clock; hours go from 00 to 23 "
            "(24:00 only as the end), minutes from 00 to 59."
        )
    if start == end % DAY_MINUTES:
        raise WindowError(
            f"{text!r} opens and closes at the same time; give a window such as 09:00-20:00, "
            "or leave --window out to send at any hour."
        )
    return Window(start, end % DAY_MINUTES)


@lru_cache(maxsize=65_536)
def zones_for(number: str) -> tuple[str, ...]:
    """The time zones an E.164 number may be in; () when not even its country's are known."""
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return ()
    zones = timezone.time_zones_for_number(parsed)
    if zones == (timezone.UNKNOWN_TIMEZONE,):
        # The longest prefix phonenumbers knows, at worst the calling code: the country's zones.
        zones = timezone.time_zones_for_geographical_number(parsed)
    return tuple(zone for zone in zones if _known(zone))


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _known(name: str) -> bool:
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def local_seconds(wall: float, zone: str) -> float:
    """The local time of day in `zone` at `wall` (epoch seconds), in seconds after midnight."""
    moment = datetime.fromtimestamp(wall, _zone(zone))
    return moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6


def inside(window: Window, zones: Iterable[str], wall: float) -> bool:
    """Whether `wall` is inside the window in every one of `zones` (never, for no zone)."""
    checked = False
    for zone in zones:
        if not window.holds(local_seconds(wall, zone)):
            return False
        checked = True
    return checked


def next_open(window: Window, zones: Sequence[str], wall: float) -> float | None:
    """The first moment from `wall` on that is inside the window in all `zones`; None: never.

    Where the zones' windows meet, they meet first when the last of them opens: so the
    candidates are each zone's own openings over the next days, in time order.
    """
    if not zones:
        return None
    if inside(window, zones, wall):
        return wall
    key = (window, tuple(zones))
    known = _NEXT_OPEN.get(key)
    if known is not None and known[0] <= wall <= (known[1] if known[1] is not None else wall):
        # Nothing between the moment it was looked for and the opening found is inside:
        # from any moment in between, the next opening is the same one.
        return known[1]
    opens = _next_open(window, zones, wall)
    if len(_NEXT_OPEN) >= 4096:
        _NEXT_OPEN.clear()
    _NEXT_OPEN[key] = (wall, opens)
    return opens


# The last opening found per window and zones, and from when: a run checks the same
# zones again and again while it waits, and wide zone lists cost a millisecond or more.
_NEXT_OPEN: dict[tuple[Window, tuple[str, ...]], tuple[float, float | None]] = {}


def _next_open(window: Window, zones: Sequence[str], wall: float) -> float | None:
    candidates = sorted(
        opening
        for zone in zones
        for opening in _openings(window, zone, wall)
        if wall <= opening <= wall + LOOK_AHEAD.total_seconds()
    )
    for opening in candidates:
        if inside(window, zones, opening):
            return opening
    steps = math.ceil(LOOK_AHEAD.total_seconds() / SCAN_STEP)
    return next(
        (
            wall + step * SCAN_STEP
            for step in range(1, steps + 1)
            if inside(window, zones, wall + step * SCAN_STEP)
        ),
        None,
    )


def _openings(window: Window, zone: str, wall: float) -> list[float]:
    """When the window opens in `zone` on the local days around `wall`, as epoch seconds."""
    today = datetime.fromtimestamp(wall, _zone(zone)).date()
    opens = time(window.start // 60, window.start % 60)
    return [
        _first_moment(datetime.combine(today + timedelta(days=days), opens, tzinfo=_zone(zone)))
        for days in range(-1, 3)
    ]


def _first_moment(local: datetime) -> float:
    """The first moment the clocks show `local` or later: in a daylight-saving gap, its end."""
    after = local.timestamp()  # in a gap, fold=0 reads it with the offset before the jump
    if datetime.fromtimestamp(after, local.tzinfo).replace(tzinfo=None) == local.replace(
        tzinfo=None
    ):
        return after
    before = local.replace(fold=1).timestamp()
    # The clocks jump somewhere between: the first whole second at or past `local`.
    low, high = math.floor(before), math.ceil(after)
    wanted = local.replace(tzinfo=None)
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, local.tzinfo).replace(tzinfo=None) >= wanted:
            high = middle
        else:
            low = middle
    return float(high)


@dataclass(frozen=True)
class Closed:
    """Why a message cannot go now: whose time it is outside the window, and until when.

    `zone` is the recipient's zone that opens last (the local time `opens` is read in);
    `opens` is None when no moment is inside the window for every recipient at once.
    """

    window: Window
    recipient: str
    zone: str
    zones: int  # how many zones the recipient's number may be in
    opens: float | None

    def describe(self, *, with_zone: bool = True) -> str:
        """'outside 09:00-20:00 for +1415... (America/Los_Angeles) until 09:00'."""
        if not self.zone:
            return (
                f"the time zone of {self.recipient} is unknown, so --window {self.window} "
                "cannot be checked for it; send it without --window"
            )
        if self.opens is None:
            return (
                f"no moment of {self.window} is inside every time zone of its recipients at "
                f"once ({self.recipient} may be in {self.zones} time zones); widen --window, "
                "or send it without --window"
            )
        until = datetime.fromtimestamp(self.opens, _zone(self.zone)).strftime("%H:%M")
        where = ""
        if with_zone:
            where = (
                f" ({self.zone})"
                if self.zones == 1
                else f" ({self.zone}, one of its {self.zones} time zones)"
            )
        return f"outside {self.window} for {self.recipient}{where} until {until}"


def closed(window: Window, recipients: Sequence[str], wall: float) -> Closed | None:
    """None when a message to `recipients` may go at `wall`; else who holds it, and until when."""
    by_recipient = {recipient: zones_for(recipient) for recipient in recipients}
    for recipient, zones in by_recipient.items():
        if not zones:
            return Closed(window, recipient, "", 0, None)
    every = tuple(dict.fromkeys(zone for zones in by_recipient.values() for zone in zones))
    if not every or inside(window, every, wall):
        return None
    opens = next_open(window, every, wall)
    recipient, zone = _holding(window, by_recipient, wall, opens)
    return Closed(window, recipient, zone, len(by_recipient[recipient]), opens)


def _holding(
    window: Window, by_recipient: dict[str, tuple[str, ...]], wall: float, opens: float | None
) -> tuple[str, str]:
    """The recipient and zone to name: one outside now, preferably the last to open."""
    outside = [
        (recipient, zone)
        for recipient, zones in by_recipient.items()
        for zone in zones
        if not window.holds(local_seconds(wall, zone))
    ]
    if opens is not None:
        for recipient, zone in outside:
            if abs(local_seconds(opens, zone) - window.start * 60) < 1:
                return recipient, zone
    return outside[0]


def night_count(recipients: Iterable[str], wall: float) -> int:
    """How many of these recipients it is night for now (21:00-08:00) in any of their zones."""
    night: dict[str, bool] = {}
    count = 0
    for recipient in set(recipients):
        zones = zones_for(recipient)
        for zone in zones:
            if zone not in night:
                night[zone] = NIGHT.holds(local_seconds(wall, zone))
        count += any(night[zone] for zone in zones)
    return count
