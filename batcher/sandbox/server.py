"""Run the sandbox under uvicorn on loopback: in a background thread, or in the foreground."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn

from batcher.sandbox.app import API_PREFIX, create_app
from batcher.sandbox.config import SandboxConfig
from batcher.sandbox.state import State

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 10.0
# A slow-fault sleep still running at shutdown is cut off after this long.
GRACEFUL_SHUTDOWN_SECONDS = 1
STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox serving in the background: where it is and how to authenticate."""

    root_url: str
    base_url: str
    secret: str
    tenant: str
    config: SandboxConfig
    state: State


def bind_loopback(port: int) -> socket.socket:
    """Bind and listen on 127.0.0.1:``port`` (0 picks a free port); raises OSError if taken."""
    # proto must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto is IPPROTO_TCP, and without it every answer (written as headers,
    # then body) waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def root_url_of(sock: socket.socket) -> str:
    """Return ``http://127.0.0.1:<port>`` for a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


def make_server(config: SandboxConfig, state: State) -> uvicorn.Server:
    """Configure uvicorn for the sandbox: quiet, no lifespan, the h11 protocol."""
    uv_config = uvicorn.Config(
        create_app(config, state),
        log_level="warning",
        access_log=False,
        lifespan="off",
        # Dropping a connection reaches into the protocol's transport; pin
        # the implementation that is known to expose it.
        http="h11",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        # The service does not announce its server software; neither do we.
        server_header=False,
    )
    return uvicorn.Server(uv_config)


def sandbox_state_path(journal: Path) -> Path:
    """Where `run --sandbox` keeps its sandbox's state: `<journal stem>.sandbox.json` beside it.

    `contacts.sandbox.results.journal.sqlite` keeps `contacts.sandbox.results.sandbox.json`.
    """
    stem = journal.name.removesuffix(".sqlite").removesuffix(".journal")
    return journal.with_name(f"{stem}.sandbox.json")


@contextmanager
def running_sandbox(
    config: SandboxConfig | None = None,
    *,
    state: State | None = None,
    save_to: Path | None = None,
    port: int = 0,
) -> Iterator[RunningSandbox]:
    """Serve a sandbox on a loopback port in a background thread for the ``with`` block.

    Pass ``state`` to serve memory another sandbox already holds (its ledger,
    chats and idempotency keys), e.g. to retry against a sandbox without faults.
    ``port`` 0 picks a free one; another restarts a sandbox at the same base URL.
    Pass ``save_to`` to write the state to that file at the end (``State.load`` reads
    it back).
    """
    config = config if config is not None else SandboxConfig()
    state = state if state is not None else State(config)
    sock = bind_loopback(port)
    server = make_server(config, state)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="chert-sandbox", daemon=True
    )
    thread.start()
    try:
        _wait_started(server, thread)
        root = root_url_of(sock)
        yield RunningSandbox(
            root_url=root,
            base_url=root + API_PREFIX,
            secret=config.secret,
            tenant=config.tenant,
            config=config,
            state=state,
        )
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_SECONDS)
        sock.close()
        if save_to is not None:
            state.save(save_to)


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sandbox server did not start")
        time.sleep(0.005)


class Terminated(Exception):
    """SIGTERM arrived: stop serving as Ctrl-C would."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    # uvicorn re-raises a signal it handled once it has shut down; for SIGTERM
    # the default action would kill the process with no clean exit.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(
    config: SandboxConfig,
    port: int,
    *,
    on_ready: Callable[[str], None] | None = None,
    state_file: Path | None = None,
) -> None:
    """Serve on 127.0.0.1:``port`` until Ctrl-C or SIGTERM; ``on_ready`` gets the root URL.

    With ``state_file``, start from what it holds and write the state back on the way
    out. Raises OSError when the port cannot be bound, ValueError for a file that is
    not a sandbox state file.
    """
    state = State(config)
    if state_file is not None:
        state.load(state_file)
    sock = bind_loopback(port)
    try:
        with _sigterm_raises():
            if on_ready is not None:
                on_ready(root_url_of(sock))
            make_server(config, state).run(sockets=[sock])
    except (KeyboardInterrupt, Terminated):
        # uvicorn re-raises the signal it handled once it has shut down cleanly.
        pass
    finally:
        sock.close()
        if state_file is not None:
            state.save(state_file)
