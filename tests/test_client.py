"""The HTTP layer's cost per request, over loopback to the sandbox."""

from __future__ import annotations

import importlib.abc
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from contextlib import AsyncExitStack
from importlib.machinery import ModuleSpec
from types import ModuleType

import anyio
import httpx
import pytest

from batcher.client import (
    Answer,
    ChertClient,
    Credentials,
    Unanswered,
    encode,
    single_connection_clients,
)
from batcher.sandbox import RunningSandbox
from tests.runs import LINE_A, assert_exactly_once, recipient


class _Lookups(importlib.abc.MetaPathFinder):
    """Records every module name an import statement had to look for (not in sys.modules)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        self.names.append(fullname)
        return None


def _chat(n: int) -> bytes:
    """A first touch to the n-th recipient, with a key of its own."""
    message = {"parts": [{"type": "text", "value": f"Hi #{n}"}], "idempotency_key": f"k-{n}"}
    return encode({"from": LINE_A, "to": [recipient(n)], "message": message})


async def _post_all(client: ChertClient, count: int, callers: int) -> list[Answer | Unanswered]:
    """Post `count` first touches from `callers` concurrent tasks."""
    answers: list[Answer | Unanswered] = []
    todo = iter(range(count))

    async def caller() -> None:
        for n in todo:
            answers.append(await client.post("/chats", _chat(n)))

    async with anyio.create_task_group() as group:
        for _ in range(callers):
            group.start_soon(caller)
    return answers


def _credentials(box: RunningSandbox) -> Credentials:
    return Credentials(box.secret)


def test_no_import_is_retried_per_request(
    box: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpcore imports sniffio on every request: installed, it is looked up once at most."""
    lookups = _Lookups()
    monkeypatch.setattr(sys, "meta_path", [lookups, *sys.meta_path])

    async def go() -> list[Answer | Unanswered]:
        async with httpx.AsyncClient(trust_env=False) as http:
            return await _post_all(ChertClient(http, box.base_url, _credentials(box)), 20, 2)

    answers = anyio.run(go)
    assert all(isinstance(a, Answer) and a.ok for a in answers)
    assert lookups.names.count("sniffio") <= 1


def test_each_client_carries_one_request_at_a_time(box: RunningSandbox) -> None:
    """Clients of one connection each: each lent to one request at a time, all used, kept."""
    clients = single_connection_clients(3, 10.0, trust_env=False)
    in_flight: Counter[int] = Counter()
    most: Counter[int] = Counter()
    ports: defaultdict[int, set[int]] = defaultdict(set)
    for index, http in enumerate(clients):

        async def started(request: httpx.Request, index: int = index) -> None:
            in_flight[index] += 1
            most[index] = max(most[index], in_flight[index])

        async def answered(response: httpx.Response, index: int = index) -> None:
            in_flight[index] -= 1
            stream = response.extensions["network_stream"]
            ports[index].add(stream.get_extra_info("client_addr")[1])

        http.event_hooks = {"request": [started], "response": [answered]}

    async def go() -> list[Answer | Unanswered]:
        async with AsyncExitStack() as stack:
            for http in clients:
                await stack.enter_async_context(http)
            client = ChertClient(clients, box.base_url, _credentials(box))
            return await _post_all(client, 60, callers=6)  # more callers than clients

    answers = anyio.run(go)
    assert all(isinstance(a, Answer) and a.ok for a in answers)
    assert_exactly_once(box, 60)
    assert dict(most) == {0: 1, 1: 1, 2: 1}
    assert [len(ports[index]) for index in range(3)] == [1, 1, 1]  # one connection each, kept


def test_single_connection_clients_share_one_ssl_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CA bundle is loaded once for all the workers' clients, not once each."""
    import certifi

    loads: list[str] = []
    where = certifi.where

    def counted() -> str:
        loads.append(where())
        return loads[-1]

    monkeypatch.setattr(certifi, "where", counted)
    clients = single_connection_clients(4, 10.0, trust_env=False)
    assert len(clients) == 4
    assert len(loads) == 1
