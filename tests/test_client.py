"""The HTTP layer's cost per request, over loopback to the sandbox."""

from __future__ import annotations

import importlib.abc
import sys
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


class _Watched(httpx.AsyncBaseTransport):
    """A connection's transport, counting its requests in flight and the ports it used."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.in_flight = 0
        self.most = 0
        self.ports: set[int] = set()
        self.seen: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        self.seen.append(request)
        try:
            response = await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1
        self.ports.add(response.extensions["network_stream"].get_extra_info("client_addr")[1])
        return response


def test_each_client_carries_one_request_at_a_time(box: RunningSandbox) -> None:
    """Clients of one connection each: each lent to one request at a time, all used, kept."""
    connections = single_connection_clients(3, 10.0, trust_env=False)
    watched = []
    for connection in connections:
        assert connection.transport is not None  # no proxy: straight to the transport
        connection.transport = _Watched(connection.transport)
        watched.append(connection.transport)

    async def go() -> list[Answer | Unanswered]:
        async with AsyncExitStack() as stack:
            for connection in connections:
                await stack.enter_async_context(connection)
            client = ChertClient(connections, box.base_url, _credentials(box))
            return await _post_all(client, 60, callers=6)  # more callers than clients

    answers = anyio.run(go)
    assert all(isinstance(a, Answer) and a.ok for a in answers)
    assert_exactly_once(box, 60)
    assert [w.most for w in watched] == [1, 1, 1]
    assert [len(w.ports) for w in watched] == [1, 1, 1]  # one connection each, kept
    # Sent straight, a request has the headers the client would have given it.
    defaults = httpx.AsyncClient().headers
    for request in watched[0].seen:
        for name, value in defaults.items():
            assert request.headers[name] == value


def test_a_proxy_from_the_environment_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a proxy in the environment, requests go through the client, which routes them."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert all(c.transport is None for c in single_connection_clients(2, 10.0, trust_env=True))
    assert all(c.transport for c in single_connection_clients(2, 10.0, trust_env=False))
    monkeypatch.delenv("HTTPS_PROXY")
    for name in ("HTTP_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert all(c.transport for c in single_connection_clients(2, 10.0, trust_env=True))


def test_both_ways_give_the_same_answers(box: RunningSandbox) -> None:
    """Straight to the transport or through the client: the same Answer, and Unanswered
    for a server that is not there."""

    async def go(straight: bool) -> list[Answer | Unanswered]:
        (connection,) = single_connection_clients(1, 2.0, trust_env=False)
        if not straight:
            connection.transport = None
        async with connection:
            client = ChertClient([connection], box.base_url, _credentials(box))
            bad = ChertClient([connection], box.base_url, Credentials("wrong"))
            gone = ChertClient([connection], "http://127.0.0.1:9/api/v1", _credentials(box))
            return [
                await client.post("/chats", _chat(1 if straight else 2)),
                await bad.post("/chats", _chat(3)),
                await client.get("/phone-numbers"),
                await gone.post("/chats", _chat(4)),
            ]

    straight, through = anyio.run(go, True), anyio.run(go, False)
    assert [type(a) for a in straight] == [type(a) for a in through]
    for one, other in zip(straight, through, strict=True):
        if isinstance(one, Answer) and isinstance(other, Answer):
            assert (one.status, one.code, one.ok) == (other.status, other.code, other.ok)
        else:
            assert one == other


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
