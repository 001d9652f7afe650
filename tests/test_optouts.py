"""The opt-out rule, the home's opt-out list, and pulling replies from an event log."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from batcher.client import ChertClient, Credentials
from batcher.errors import OutputError, PullFailed
from batcher.home import account_id
from batcher.optouts import OPTOUTS, OptOut, OptOuts, Position, PullReport, is_opt_out, pull
from batcher.sandbox import RunningSandbox
from tests.replies import EVENTS_START, LINE, HandClock, event_requests, reply
from tests.runs import recipient

SAM = "+14155551234"


@pytest.mark.parametrize(
    ("text", "opts_out"),
    [
        ("STOP", True),
        ("stop", True),
        ("  Stop \n", True),
        ("Stop.", True),
        ("STOP!", True),
        ("stop!!!", True),
        ('"STOP"', True),
        ("¡Stop!", True),
        ("Stop?", True),
        ("\uff33\uff34\uff2f\uff30", True),  # full-width STOP, as a Japanese keyboard types it
        ("\u200bSTOP", True),  # a zero width space copied along
        ("STOPALL", True),
        ("Unsubscribe", True),
        ("cancel", True),
        ("END", True),
        ("Quit", True),
        ("OPTOUT", True),
        ("opt out", True),
        ("Opt  Out", True),
        ("opt-out", True),
        ("REVOKE", True),
        ("stop by tomorrow", False),
        ("don't stop", False),
        ("Please stop", False),
        ("STOP STOP", False),
        ("stop 🙏", False),
        ("S.T.O.P", False),
        ("stopp", False),
        ("stop all", False),
        ("ending", False),
        ("", False),
        ("!!!", False),
    ],
)
def test_is_opt_out(text: str, opts_out: bool) -> None:
    """The whole reply, trimmed of spaces and punctuation and case-folded, is one word."""
    assert is_opt_out(text) is opts_out


def entry(number: str, at: str = "2026-11-30T12:00:00Z", source: str = "added by hand") -> OptOut:
    """An entry for the list."""
    return OptOut(number, at, source)


def test_the_list_adds_removes_and_keeps_the_first_opt_out(batch_home: Path) -> None:
    """Added once, with its earliest time and source; removed; found by number."""
    with OptOuts() as store:
        assert store.add([entry(SAM), entry("+14155552001")]) == [
            entry(SAM),
            entry("+14155552001"),
        ]
        later = entry(SAM, "2026-12-01T00:00:00Z", "imported from dnc.csv")
        earlier = entry("+14155552001", "2026-11-01T00:00:00Z", "reply to +15555550100 via x")
        assert store.add([later, earlier]) == []
        assert store.entries() == [entry(SAM), earlier]
        assert store.find([SAM, "+14155559999"]) == {SAM: entry(SAM)}
        assert store.remove([SAM, "+14155559999"]) == [SAM]
        assert store.entries() == [earlier]
    assert (batch_home / OPTOUTS).is_file()


def test_a_position_never_moves_back(batch_home: Path) -> None:
    """Two pulls at once: the later time wins, and ids at one time are merged."""
    one = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    two = datetime(2026, 11, 30, 12, 5, tzinfo=UTC)
    with OptOuts() as store:
        assert store.position("acct") == Position()
        store.advance("acct", Position(two, frozenset({"b"})))
        store.advance("acct", Position(one, frozenset({"a"})))
        assert store.position("acct") == Position(two, frozenset({"b"}))
        store.advance("acct", Position(two, frozenset({"c"})))
        assert store.position("acct") == Position(two, frozenset({"b", "c"}))
        assert store.position("other") == Position()


def test_a_full_disk_is_an_output_error_and_adds_nothing(batch_home: Path) -> None:
    """A write SQLite cannot finish (the file may not grow) is the list's error, rolled back."""
    with OptOuts() as store:
        (pages,) = store.db.execute("PRAGMA page_count").fetchone()
        store.db.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(OutputError) as failed:
            store.add(entry(recipient(n)) for n in range(3000))
        assert f"the opt-out list {batch_home / OPTOUTS} cannot be used" in str(failed.value)
        assert store.entries() == []


def test_find_sees_other_processes_changes_and_its_own_at_once(batch_home: Path) -> None:
    """find answers from a copy of the list, yet sees every change as soon as it is made."""
    with OptOuts() as mine, OptOuts() as other:  # two connections, as two processes hold it
        assert mine.find([SAM]) == {}
        other.add([entry(SAM)])
        assert mine.find([SAM]) == {SAM: entry(SAM)}
        mine.remove([SAM])
        assert mine.find([SAM]) == {}
        mine.add([entry(SAM)])
        assert mine.find([SAM]) == {SAM: entry(SAM)}
        other.remove([SAM])
        assert mine.find([SAM, "+14155559999"]) == {}
        subprocess.run(
            [sys.executable, "-m", "batcher", "optouts", "add", SAM], check=True, timeout=60
        )
        assert list(mine.find([SAM])) == [SAM]


def test_a_glance_answers_from_the_last_find(batch_home: Path) -> None:
    """glance spares the check of another process's changes until the next find; its
    own writes, it sees at once."""
    with OptOuts() as mine, OptOuts() as other:
        assert mine.glance([SAM]) == {}  # no copy yet: read now
        other.add([entry(SAM)])
        assert mine.glance([SAM]) == {}  # as the last read had it
        assert mine.find([SAM]) == {SAM: entry(SAM)}
        assert mine.glance([SAM]) == {SAM: entry(SAM)}
        mine.remove([SAM])
        assert mine.glance([SAM]) == {}


_ADDER = """
import sys
from batcher.optouts import OptOut, OptOuts
first = int(sys.argv[1])
with OptOuts() as store:
    for n in range(first, first + 150):
        store.add([OptOut(f"+1415555{2000 + n:04d}", "2026-11-30T12:00:00Z", "added by hand")])
"""


def test_two_processes_add_at_once(batch_home: Path) -> None:
    """Two processes writing the list at the same time lose nothing and fail nothing."""
    adders = [
        subprocess.Popen([sys.executable, "-c", _ADDER, str(first)], stderr=subprocess.PIPE)
        for first in (0, 150)
    ]
    for adder in adders:
        _, errors = adder.communicate(timeout=120)
        assert adder.returncode == 0, errors.decode()
    with OptOuts() as store:
        assert [e.number for e in store.entries()] == [recipient(n) for n in range(300)]


# --- pull over loopback -------------------------------------------------------------------------


def pull_from(box: RunningSandbox, store: OptOuts) -> PullReport:
    """`pull` against a sandbox, with bearer auth."""
    credentials = Credentials(box.secret)
    account = account_id(box.base_url, "", box.secret)

    async def pulling() -> PullReport:
        async with httpx.AsyncClient(timeout=10) as http:
            return await pull(ChertClient(http, box.base_url, credentials), account, store)

    return anyio.run(pulling)


def test_a_stop_reply_is_pulled_and_stop_by_tomorrow_is_not(box: RunningSandbox) -> None:
    """Only the sender whose whole reply is an opt-out goes on the list, with its source."""
    reply(box, SAM, "Stop!").raise_for_status()
    reply(box, recipient(1), "stop by tomorrow").raise_for_status()
    reply(box, recipient(2), "Thanks!", line="+15555550101").raise_for_status()
    with OptOuts() as store:
        report = pull_from(box, store)
        account = account_id(box.base_url, "", box.secret)
        assert (report.replies, report.opt_outs, report.pages) == (3, 1, 1)
        (added,) = report.added
        assert added.number == SAM
        assert added.source == f"reply to {LINE} via {account}"
        assert "bearer=" in account
        assert box.secret not in added.source
        assert store.entries() == [added]


def test_pages_past_200_are_all_read(box: RunningSandbox) -> None:
    """450 replies: three pages of at most 200, every opt-out among them recorded."""
    for n in range(450):
        reply(box, recipient(n), "STOP" if n % 3 == 0 else f"hello {n}").raise_for_status()
    with OptOuts() as store:
        report = pull_from(box, store)
        assert (report.replies, report.pages) == (450, 3)
        assert [e.number for e in store.entries()] == [recipient(n) for n in range(0, 450, 3)]


def test_a_second_pull_reads_only_new_events_even_in_the_same_second(
    timed_box: RunningSandbox, clock: HandClock
) -> None:
    """Replies in the second a pull ended are read by the next one; none twice."""
    reply(timed_box, recipient(1), "STOP").raise_for_status()
    reply(timed_box, recipient(2), "hi").raise_for_status()
    with OptOuts() as store:
        assert pull_from(timed_box, store).replies == 2
        reply(timed_box, recipient(3), "unsubscribe").raise_for_status()  # the same second
        second = pull_from(timed_box, store)
        assert (second.replies, [e.number for e in second.added]) == (1, [recipient(3)])
        clock.now += 3600
        reply(timed_box, recipient(4), "quit").raise_for_status()
        third = pull_from(timed_box, store)
        assert (third.replies, [e.number for e in third.added]) == (1, [recipient(4)])
        assert pull_from(timed_box, store) == PullReport(pages=1)
        assert event_requests(timed_box) == 4


def test_an_opt_out_keeps_the_time_of_its_reply(
    timed_box: RunningSandbox, clock: HandClock
) -> None:
    """The list says when the person replied, not when the pull ran."""
    reply(timed_box, SAM, "STOP").raise_for_status()
    with OptOuts() as store:
        pull_from(timed_box, store)
        (found,) = store.entries()
    assert found.at == datetime.fromtimestamp(EVENTS_START, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_bad_credentials_fail_the_pull_with_the_code(box: RunningSandbox) -> None:
    """A refused pull is a PullFailed with the API's code; nothing moves."""
    wrong = RunningSandbox(
        box.root_url, box.base_url, "not-the-secret", box.tenant, box.config, box.state
    )
    reply(box, SAM, "STOP").raise_for_status()
    with OptOuts() as store, pytest.raises(PullFailed) as failed:
        pull_from(wrong, store)
    assert failed.value.code == 2004
    assert "Check CHERT_SIGNING_SECRET" in str(failed.value)
    assert "not-the-secret" not in str(failed.value)


# --- what a server cannot produce on demand: httpx.MockTransport ------------------------------


def event(n: int, text: str, at: str = "2026-11-30T12:00:00Z") -> dict[str, Any]:
    """A message.received event in the documented shape."""
    data = {
        "chat": {"id": f"chat{n}", "is_group": False, "owner_handle": {"handle": LINE}},
        "message": {
            "id": f"m{n}",
            "parts": [{"type": "text", "value": text}],
            "sender_handle": {"handle": recipient(n)},
        },
    }
    return {
        "id": f"evt{n}",
        "type": "message.received",
        "created_at": at,
        "status": "delivered",
        "payload": {"event": "message.received", "event_id": f"evt{n}", "data": data},
    }


def page(events: list[dict[str, Any]], cursor: str | None) -> httpx.Response:
    """An answer of the event log."""
    body = {"events": events, "next_cursor": cursor, "count": len(events)}
    return httpx.Response(200, json=body)


def api_error(status: int, code: int, retryable: bool, retry_after: float = 0) -> httpx.Response:
    """An answer in the error envelope."""
    error = {"status": status, "code": code, "message": "no", "retryable": retryable}
    if retry_after:
        error["retry_after"] = retry_after
    return httpx.Response(status, json={"success": False, "error": error, "trace_id": "t1"})


Answers = Callable[[httpx.Request], httpx.Response]


def pull_mocked(answers: Answers, store: OptOuts, waits: list[float]) -> PullReport:
    """`pull` against a MockTransport, waiting on a fake sleep that notes each wait."""

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def pulling() -> PullReport:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answers)) as http:
            client = ChertClient(http, "https://api.test/api/v1", Credentials("s3cret"))
            return await pull(client, "acct", store, sleep=sleep)

    return anyio.run(pulling)


def test_busy_answers_are_retried_on_the_fake_clock(batch_home: Path) -> None:
    """503 and 1007 are asked again after backoff or retry_after; then the pull goes on."""
    script = iter(
        [
            api_error(503, 3001, True),
            api_error(429, 1007, True, retry_after=7),
            page([event(1, "STOP")], None),
        ]
    )
    waits: list[float] = []
    with OptOuts() as store:
        report = pull_mocked(lambda request: next(script), store, waits)
        assert [e.number for e in report.added] == [recipient(1)]
    assert waits == [1.0, 7.0]


def test_a_pull_that_fails_half_way_keeps_what_it_found(batch_home: Path) -> None:
    """Page 2 refused: page 1's opt-outs stay, the position does not move, a retry reads all."""
    seen: list[str | None] = []

    def failing(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params.get("cursor"))
        if request.url.params.get("cursor") == "p2":
            return api_error(400, 1002, False)
        return page([event(1, "STOP"), event(2, "hi")], "p2")

    with OptOuts() as store:
        with pytest.raises(PullFailed) as failed:
            pull_mocked(failing, store, [])
        assert failed.value.code == 1002
        assert [e.number for e in store.entries()] == [recipient(1)]
        assert store.position("acct") == Position()
        script = iter(
            [page([event(1, "STOP"), event(2, "hi")], "p2"), page([event(3, "END")], None)]
        )
        report = pull_mocked(lambda request: next(script), store, [])
        assert report.replies == 3
        assert [e.number for e in report.added] == [recipient(3)]
    assert seen == [None, "p2"]


@pytest.mark.parametrize(
    ("answer", "code", "says"),
    [
        (httpx.Response(200, json={"chats": []}), 0, "not in the documented shape"),
        (page([], "same"), 0, "lead back to a page already read"),
        (api_error(401, 2013, False), 2013, "Check this machine's clock"),
        (api_error(429, 1007, True, retry_after=600), 1007, "Pull again later"),
    ],
)
def test_answers_that_end_a_pull(
    batch_home: Path, answer: httpx.Response, code: int, says: str
) -> None:
    """A wrong shape, a cursor loop, clock skew, a wait too long: PullFailed, and what to do."""
    with OptOuts() as store, pytest.raises(PullFailed) as failed:
        pull_mocked(lambda request: answer, store, [])
    assert failed.value.code == code
    assert says in str(failed.value)


def test_events_without_a_reply_in_them_are_counted_not_fatal(batch_home: Path) -> None:
    """An event with no sender or time is skipped and counted; an email sender is named."""
    broken = event(1, "STOP")
    del broken["payload"]["data"]["message"]["sender_handle"]
    email = event(2, "STOP")
    email["payload"]["data"]["message"]["sender_handle"]["handle"] = "sam@example.com"
    moved = event(3, "STOP")
    moved["data"] = moved.pop("payload")["data"]  # data at the top, as an API version may put it
    with OptOuts() as store:
        report = pull_mocked(lambda request: page([broken, email, moved], None), store, [])
    assert report.unreadable == 1
    assert report.not_numbers == ("sam@example.com",)
    assert [e.number for e in report.added] == [recipient(3)]
    assert json.dumps(report.to_json())
