"""Fixtures every test shares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batcher.sandbox import RunningSandbox, SandboxConfig, State, running_sandbox
from tests.replies import EVENTS_START, HandClock


@pytest.fixture(autouse=True)
def batch_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh CHERT_BATCH_HOME for every test, inherited by the subprocesses it starts.

    Runs share claims (and later a send history) through the per-user home: no test may
    see another's, nor the home of whoever runs the tests.
    """
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("CHERT_BATCH_HOME", str(home))
    return home


@pytest.fixture
def box() -> Iterator[RunningSandbox]:
    """A plain sandbox on loopback: no limits, no faults."""
    with running_sandbox(SandboxConfig()) as running:
        yield running


@pytest.fixture
def clock() -> HandClock:
    """A clock moved by hand: every reply comes in the same second unless it is moved."""
    return HandClock(EVENTS_START)


@pytest.fixture
def timed_box(clock: HandClock) -> Iterator[RunningSandbox]:
    """A sandbox whose replies and events are stamped with the hand-moved clock's time."""
    config = SandboxConfig()
    with running_sandbox(config, state=State(config, clock=clock)) as running:
        yield running
