"""A local Chert-compatible API with switchable, seeded faults and limits: tests and demos."""

from __future__ import annotations

from batcher.sandbox.app import create_app
from batcher.sandbox.config import SandboxConfig
from batcher.sandbox.server import RunningSandbox, running_sandbox, sandbox_state_path, serve
from batcher.sandbox.state import State

__all__ = [
    "RunningSandbox",
    "SandboxConfig",
    "State",
    "create_app",
    "running_sandbox",
    "sandbox_state_path",
    "serve",
]
