"""Benchmark the send history's cost per sent request, next to the journal's in the same run.

Every request Chert accepts is written twice: to the journal (intent, then outcome, which
waits for the next intent's commit) and to the per-user send history (one row, shared in
batches of batcher.sending.SHARE_BATCH as run does, and one at a time for comparison).
Both are timed here for --requests requests on real SQLite files in a temporary folder,
one connection each as a run holds them, and then the history's lookup of that many keys
(what a copy of a sent sheet costs before it sends nothing).
Goal: the history's write costs at most 60 µs per request, 5 % of the client
CPU one request over HTTP costs (about 1.2 ms with httpx: /work/shared/measurements.md,
and bench/send.py (a) for the whole run); the journal's writes, needed anyway, are the
baseline printed beside it.

Run: python bench/history.py [--requests 3000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from batcher.history import History
from batcher.journal import Journal
from batcher.model import Part
from batcher.planning import Request
from batcher.sending import SHARE_BATCH

GOAL_MICROSECONDS = 60.0


def requests(count: int) -> list[Request]:
    """`count` first touches to distinct recipients, keyed as the planner would name them."""
    return [
        Request(
            f"cb1-{n:060d}",
            n + 2,
            0,
            f"chat-{n}",
            True,
            "+15555550100",
            (f"+1415555{2000 + n % 8000:04d}",),
            "",
            (Part("text", f"Hello #{n}"),),
        )
        for n in range(count)
    ]


def journal_seconds(folder: Path, todo: list[Request]) -> float:
    journal = Journal(folder / "bench.journal.sqlite")
    try:
        start = time.perf_counter()
        for request in todo:
            journal.intend(request.key, "", request.row, request.step, request.chat)
            journal.sent(request.key, chat_id=request.chat, message_id="m", trace_id="t")
        return time.perf_counter() - start
    finally:
        journal.close()


def history_seconds(folder: Path, todo: list[Request]) -> tuple[float, float, float]:
    history = History(folder, "http://127.0.0.1/api/v1 tenant=bench", "bench")
    try:
        start = time.perf_counter()
        for request in todo:
            entry = history.entry(
                request, chat_id=request.chat, message_id="m", trace_id="t", wall=1.0
            )
            history.share([entry])
        alone = time.perf_counter() - start
        start = time.perf_counter()
        batch = []
        for request in todo:
            entry = history.entry(
                request, chat_id=request.chat, message_id="m", trace_id="t", wall=2.0
            )
            batch.append(entry)
            if len(batch) == SHARE_BATCH:
                history.share(batch)
                batch = []
        history.share(batch)
        written = time.perf_counter() - start
        start = time.perf_counter()
        found = history.sent(request.key for request in todo)
        looked = time.perf_counter() - start
        assert len(found) == len(todo)
        return written, looked, alone
    finally:
        history.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests (default 3000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs, best kept (default 5)")
    args = parser.parse_args()
    todo = requests(args.requests)
    journal_best = history_best = lookup_best = alone_best = float("inf")
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            journal_best = min(journal_best, journal_seconds(Path(folder), todo))
            written, looked, alone = history_seconds(Path(folder), todo)
            history_best, lookup_best = min(history_best, written), min(lookup_best, looked)
            alone_best = min(alone_best, alone)
    per = 1e6 / args.requests
    ratio = history_best / journal_best
    print(f"{args.requests:,} sent requests, best of {args.repeat}:")
    print(f"  journal (baseline): intent + outcome  {journal_best * per:7.1f} µs per request")
    cost = history_best * per
    verdict = "PASS" if cost <= GOAL_MICROSECONDS else "FAIL"
    print(
        f"  send history: batches of {SHARE_BATCH}         {cost:7.1f} µs per request   "
        f"{ratio:.2f}x the journal   goal <= {GOAL_MICROSECONDS:g} µs: {verdict}"
    )
    print(f"  send history: one row at a time     {alone_best * per:7.1f} µs per request")
    print(f"  send history: look up every key     {lookup_best * per:7.1f} µs per key")


if __name__ == "__main__":
    main()
