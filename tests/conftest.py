"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox


@pytest.fixture
def box() -> Iterator[RunningSandbox]:
    """A plain sandbox on loopback: no limits, no faults."""
    with running_sandbox(SandboxConfig()) as running:
        yield running
