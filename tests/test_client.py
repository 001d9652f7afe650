"""The HTTP layer's cost per request, over loopback to the sandbox."""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

import anyio
import httpx
import pytest

from batcher.client import Answer, ChertClient, Credentials, Unanswered, encode
from batcher.sandbox import RunningSandbox
from tests.runs import LINE_A, recipient


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
