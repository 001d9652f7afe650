"""Benchmark per-line pacing: makespan against the ideal, and the 4002s it cost.

Each scenario runs `chert-batch run` as a subprocess against an in-process sandbox
with a per-line first-touch gap; times come from the sandbox's arrival times
(`/_sandbox/requests`): the makespan is first to last accepted `POST /chats`, the
ideal is (touches per line - 1) x gap, and refusals are the 4002 answers, per line
from the plan's idempotency keys.

(a) 3 lines x 12 first touches, sandbox --line-gap 0.25, nothing told to `run`:
    the gap is learned. Goal: <= 1.2x ideal, at most 2 refusals per line after its first.
(b) the same with `run --line-gap 0.25`: goal 0 refusals.
(c) 2 lines x 6, sandbox --line-gap 1, `run --max-wait 0.3 --wait`: all sent, <= 1.2x ideal.

Run: python bench/lines.py [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from batcher.pipeline import JobOptions, prepare
from batcher.sandbox import SandboxConfig, running_sandbox

MAKESPAN_GOAL = 1.2
LINES = ("+15555550100", "+15555550101", "+15555550102")


@dataclass(frozen=True)
class Scenario:
    """One measurement: lines x touches at the sandbox's gap, and what `run` is told."""

    name: str
    lines: int
    touches: int
    gap: float
    run_args: tuple[str, ...]
    refusal_goal: int | None  # per line after its first; None: not a goal here

    @property
    def ideal(self) -> float:
        """The line's own limit: (touches - 1) gaps."""
        return (self.touches - 1) * self.gap


SCENARIOS = (
    Scenario("(a) learned", 3, 12, 0.25, (), 2),
    Scenario("(b) --line-gap 0.25", 3, 12, 0.25, ("--line-gap", "0.25"), 0),
    Scenario("(c) --max-wait 0.3 --wait", 2, 6, 1.0, ("--max-wait", "0.3", "--wait"), None),
)


def handoff(folder: Path, scenario: Scenario) -> Path:
    """A CSV of first touches: each line to its own recipients."""
    path = folder / "lines.csv"
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(("From", "To", "Message"))
        for touch in range(scenario.touches):
            for index, line in enumerate(LINES[: scenario.lines]):
                writer.writerow((line, f"+1415555{2000 + index * 100 + touch:04d}", f"Hi {touch}"))
    return path


def measure(scenario: Scenario) -> dict[str, Any]:
    """Run one scenario in a fresh folder and sandbox; its figures."""
    with (
        tempfile.TemporaryDirectory() as folder,
        running_sandbox(SandboxConfig(line_gap=scenario.gap)) as box,
    ):
        path = handoff(Path(folder), scenario)
        line_of = {r.key: r.sender for r in prepare(JobOptions(path=path)).plan.requests}
        env = {
            **os.environ,
            "CHERT_SIGNING_SECRET": box.secret,
            "CHERT_BASE_URL": box.base_url,
            # A home of its own: the bench never reads or fills the user's send history.
            "CHERT_BATCH_HOME": str(Path(folder) / "home"),
        }
        command = [sys.executable, "-m", "batcher", "run", str(path), "--yes", "--rate", "0"]
        done = subprocess.run(
            [*command, *scenario.run_args], env=env, capture_output=True, text=True, check=False
        )
        log = httpx.get(f"{box.root_url}/_sandbox/requests").json()["requests"]
    chats = [r for r in log if r["path"].endswith("/chats") and r["method"] == "POST"]
    accepted = sorted(r["t"] for r in chats if r["status"] == 200)
    refused = Counter(line_of.get(r["idempotency_key"], "?") for r in chats if r["code"] == 4002)
    makespan = accepted[-1] - accepted[0] if accepted else 0.0
    after_first = max((count - 1 for count in refused.values()), default=0)
    ratio = makespan / scenario.ideal
    goals = [ratio <= MAKESPAN_GOAL, len(accepted) == scenario.lines * scenario.touches]
    if scenario.refusal_goal is not None:
        goals.append(
            after_first <= scenario.refusal_goal
            if scenario.refusal_goal
            else sum(refused.values()) == 0
        )
    return {
        "scenario": scenario.name,
        "exit": done.returncode,
        "sent": len(accepted),
        "of": scenario.lines * scenario.touches,
        "makespan_s": round(makespan, 3),
        "ideal_s": scenario.ideal,
        "ratio": round(ratio, 3),
        "refusals": sum(refused.values()),
        "most_refusals_per_line_after_first": after_first,
        "goal_met": all(goals),
    }


def main() -> None:
    """Measure every scenario and print the figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = [measure(scenario) for scenario in SCENARIOS]
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"{'scenario':28} {'sent':>7} {'makespan':>9} {'ideal':>6} {'ratio':>6} "
        f"{'4002s':>6} {'/line>1st':>9}  goal"
    )
    for f in figures:
        print(
            f"{f['scenario']:28} {f['sent']:>3}/{f['of']:<3} {f['makespan_s']:>8.2f}s "
            f"{f['ideal_s']:>5.2f}s {f['ratio']:>5.2f}x {f['refusals']:>6} "
            f"{f['most_refusals_per_line_after_first']:>9}  {'met' if f['goal_met'] else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
