"""Benchmark quiet hours: what the night count and the window check cost per number.

The confirmation of a run without --window counts whom it is night for: one
time zone lookup per distinct recipient (a phonenumbers parse and number type).
The baseline, measured in the same run on the same numbers, is what validation
already pays per number (`normalize_phone`, uncached). The window check before
each request is timed for a one-zone number and for a toll-free +1 number
(42 zones), outside the window, when it also looks for the next opening.

Run: python bench/quiet.py [--count N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from batcher.phones import normalize_phone
from batcher.quiet import closed, night_count, parse_window, zones_for

WALL = 1_800_000_000.0  # 2027-01-15 08:00 UTC: night in the Americas


def numbers(count: int) -> list[str]:
    """`count` distinct valid numbers in London and six US cities (at most 52,000)."""
    areas = ("415", "212", "312", "617", "303", "206")
    found = [f"+44207946{n:04d}" for n in range(4000)]
    found += [f"+1{area}555{n:04d}" for n in range(2000, 10_000) for area in areas]
    return found[:count]


def timed(work: Callable[[], object]) -> float:
    """Seconds one call of `work` takes."""
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    """Print each figure beside its baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30_000)
    count = parser.parse_args().count
    given = numbers(count)
    assert len(set(given)) == count
    baseline = timed(lambda: [normalize_phone.__wrapped__(n, "US") for n in given])
    night = timed(lambda: night_count(given, WALL))
    print(f"night count, {count} distinct recipients: {night:.2f} s")
    print(f"  baseline (validation's own parse of them): {baseline:.2f} s: {night / baseline:.2f}x")
    window = parse_window("09:00-20:00")
    zones_for("+18005551234")
    rounds = 2000
    for number in ("+14155552000", "+18005551234"):
        started = time.perf_counter()
        for _ in range(rounds):
            closed(window, [number], WALL)
        took = time.perf_counter() - started
        zones = len(zones_for(number))
        print(f"window check, outside, {number} ({zones} zones): {took / rounds * 1e6:.0f} us")


if __name__ == "__main__":
    main()
