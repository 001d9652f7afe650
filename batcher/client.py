"""The HTTP layer: one Chert API call, authenticated, answered or classified as unknown.

It takes injected `httpx.AsyncClient`s and never retries by itself: the
caller decides, from an `Answer`, whether a retry is safe and useful. A request
that never got an answer (connection error, timeout, dropped connection) is an
`Unanswered`: its outcome is unknown, and only a resend with the same key may
settle it.

Connections: one `httpx.AsyncClient` holding a single connection per worker
(`single_connection_clients`), each lent to one request at a time. httpcore's
pool scans every connection it holds on every request (a readability poll of
each socket), so one shared pool of 16 connections sends half as fast as one
of 8; a pool of one has nothing to scan, whatever the concurrency. Unless a
proxy is configured, a worker's requests go straight to the client's transport
(`Connection`): the client's own layers (building the request from its
defaults, cookies, auth flows, redirects, event hooks), none of which a Chert
call uses, cost a fifth of the client's CPU per request.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit
from urllib.request import getproxies

import anyio
import httpx

from batcher.errors import UsageError
from batcher.signing import signature_header

DEFAULT_BASE_URL = "https://console.trychert.com/api/v1"
AuthMode = Literal["bearer", "hmac"]
# Codes after which nothing else can succeed: stop the whole run.
FATAL_CODES = frozenset({2004, 2013})
RATE_LIMITED = 1007
CAPACITY = 4002
_HTTPX_LOG = logging.getLogger("httpx")
# How an Unanswered says that no connection could be made at all.
CONNECT_FAILED = "could not connect"


@dataclass(frozen=True)
class Credentials:
    """How to authenticate: the secret never appears in repr, logs or files."""

    secret: str
    mode: AuthMode = "bearer"
    tenant: str = ""

    def __repr__(self) -> str:
        return f"Credentials(mode={self.mode!r}, tenant={self.tenant!r}, secret=<hidden>)"

    def headers(self, body: bytes, now: float | None = None) -> dict[str, str]:
        """Auth headers for one attempt; HMAC signs afresh with the current time."""
        if self.mode == "bearer":
            return {"Authorization": f"Bearer {self.secret}"}
        timestamp = int(time.time() if now is None else now)
        return {
            "x-chert-tenant": self.tenant,
            "x-chert-signature": signature_header(self.secret, timestamp, body),
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """What the API said: success with its JSON, or an error from the envelope."""

    status: int
    payload: dict[str, Any]
    trace_id: str = ""
    code: int = 0
    message: str = ""
    retryable: bool = False
    retry_after: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the API accepted the request."""
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class Unanswered:
    """No answer arrived: the request may or may not have taken effect."""

    reason: str


def check_base_url(url: str) -> str:
    """The base URL without a trailing slash; plain http only to a loopback host."""
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise UsageError(
            f"--base-url {url!r} is not an http(s) URL.",
            hint=f"The public API is {DEFAULT_BASE_URL}.",
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(
            f"--base-url {url!r} uses plain http:// to a host that is not this machine.",
            hint="Use https://; plain http:// is only allowed to loopback (the sandbox).",
        )
    return url.rstrip("/")


def is_loopback(host: str) -> bool:
    """Whether a host name or address is this machine (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def encode(body: dict[str, Any]) -> bytes:
    """Serialize a body once: these exact bytes are signed and sent on every attempt."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class Connection:
    """A client, and the transport its requests go straight to (None: through the client).

    Closed with its client, which owns the transport. Sent straight, a request carries
    the headers the client would have given it (its defaults, then the call's own) and
    the client's timeouts; nothing else the client does applies to a Chert call.
    """

    def __init__(
        self, client: httpx.AsyncClient, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.client = client
        self.transport = transport
        self.defaults = dict(client.headers)
        self.extensions = {"timeout": client.timeout.as_dict()}

    async def __aenter__(self) -> Connection:
        await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.client.__aexit__(*exc_info)

    async def request(
        self, method: str, url: str | httpx.URL, content: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        """The response, read whole; httpx's exceptions for no answer, as the client raises."""
        if self.transport is None:
            return await self.client.request(method, url, content=content, headers=headers)
        request = httpx.Request(
            method,
            url,
            content=content,
            headers={**self.defaults, **headers},
            extensions=self.extensions,
        )
        response = await self.transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        # The line httpx's client logs for each request (never its headers), as it logs it.
        _HTTPX_LOG.info(
            'HTTP Request: %s %s "%s %d %s"',
            request.method,
            request.url,
            response.http_version,
            response.status_code,
            response.reason_phrase,
        )
        return response


def single_connection_clients(count: int, timeout: float, *, trust_env: bool) -> list[Connection]:
    """`count` clients of one connection each, for `ChertClient`: one per worker.

    They share one SSL context: building one loads the CA bundle (tens of ms each).
    `trust_env` also lets SSL_CERT_FILE / SSL_CERT_DIR choose the CA bundle, as httpx does,
    and a proxy from the environment (HTTPS_PROXY, say) carry the requests: then they go
    through the client, which routes them, rather than straight to its transport.
    """
    context: ssl.SSLContext = httpx.create_ssl_context(trust_env=trust_env)
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    straight = not (trust_env and proxied())
    connections = []
    for _ in range(count):
        transport = (
            httpx.AsyncHTTPTransport(verify=context, limits=one, trust_env=trust_env)
            if straight
            else None
        )
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=one,
            verify=context,
            trust_env=trust_env,
            follow_redirects=False,
            transport=transport,
        )
        connections.append(Connection(client, transport))
    return connections


def proxied() -> bool:
    """Whether the environment names a proxy, where httpx looks for one (getproxies)."""
    return any(scheme != "no" for scheme in getproxies())


class _Lender:
    """Lends each connection to one request at a time; a caller waits while all are lent."""

    def __init__(self, connections: Sequence[Connection]) -> None:
        if not connections:
            raise ValueError("ChertClient needs at least one httpx.AsyncClient")
        self.free = list(connections)
        self._returned: anyio.Event | None = None  # made when first needed: it needs a loop

    async def borrow(self) -> Connection:
        while not self.free:
            if self._returned is None:
                self._returned = anyio.Event()
            await self._returned.wait()
        return self.free.pop()  # the most recently used: its connection is the warmest

    def give_back(self, http: Connection) -> None:
        self.free.append(http)
        if self._returned is not None:
            self._returned.set()
            self._returned = None


class ChertClient:
    """Sends one request and reads the answer; retries are the caller's business.

    Given one `httpx.AsyncClient`, every request shares it (and its pool); given a
    list, each request borrows a client (or `Connection`) of its own for its duration,
    so a list of `single_connection_clients`, one per worker, sends without any pool scan.
    """

    def __init__(
        self,
        http: httpx.AsyncClient | Sequence[httpx.AsyncClient | Connection],
        base_url: str,
        credentials: Credentials,
    ) -> None:
        given = [http] if isinstance(http, httpx.AsyncClient) else list(http)
        connections = [c if isinstance(c, Connection) else Connection(c) for c in given]
        self.http = connections[0]
        self._lender = _Lender(connections) if len(connections) > 1 else None
        self.base_url = base_url
        self.credentials = credentials

    async def _send(
        self, method: str, url: str | httpx.URL, content: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        if self._lender is None:
            return await self.http.request(method, url, content, headers)
        http = await self._lender.borrow()
        try:
            return await http.request(method, url, content, headers)
        finally:
            self._lender.give_back(http)

    async def post(self, path: str, body: bytes) -> Answer | Unanswered:
        """POST a JSON body; an Answer for any HTTP response, Unanswered for none."""
        headers = {"Content-Type": "application/json", **self.credentials.headers(body)}
        try:
            response = await self._send("POST", _api_url(self.base_url + path), body, headers)
        except httpx.TimeoutException:
            return Unanswered("no answer before the timeout")
        except httpx.ConnectError as exc:
            # Refused, DNS or TLS: the message names the cause (never a header value).
            return Unanswered(f"{CONNECT_FAILED} ({_cause(exc)})")
        except httpx.TransportError as exc:
            return Unanswered(f"connection failed ({type(exc).__name__})")
        return read_answer(response)

    async def get(self, path: str) -> Answer | Unanswered:
        """GET a route (signed over an empty body); an Answer for any response, else Unanswered."""
        headers = self.credentials.headers(b"")
        try:
            response = await self._send("GET", self.base_url + path, b"", headers)
        except httpx.TimeoutException:
            return Unanswered("no answer before the timeout")
        except httpx.ConnectError as exc:
            return Unanswered(f"{CONNECT_FAILED} ({_cause(exc)})")
        except httpx.TransportError as exc:
            return Unanswered(f"connection failed ({type(exc).__name__})")
        return read_answer(response)

    async def upload(self, url: str, data: bytes, headers: dict[str, str]) -> Answer | Unanswered:
        """PUT an attachment's bytes where its reservation said: bearer auth only, as documented."""
        parts = urlsplit(url)
        if parts.scheme != "https" and not (
            parts.scheme == "http" and is_loopback(parts.hostname or "")
        ):
            # The bearer token goes with the bytes: never over plain http to another machine.
            return Answer(0, {}, message=f"the upload URL {url!r} is not https", retryable=False)
        sent = {
            **headers,
            "Authorization": f"Bearer {self.credentials.secret}",
            "Content-Length": str(len(data)),
        }
        try:
            response = await self._send("PUT", url, data, sent)
        except httpx.TimeoutException:
            return Unanswered("no answer to the upload before the timeout")
        except httpx.TransportError as exc:
            return Unanswered(f"upload connection failed ({type(exc).__name__})")
        return read_answer(response)


@lru_cache(maxsize=1024)
def _api_url(url: str) -> httpx.URL:
    """An API URL parsed once: every first touch goes to the same `/chats`, and httpx would
    parse it (host, port, IP address) afresh for each request, some 4 % of the client's CPU."""
    return httpx.URL(url)


def read_answer(response: httpx.Response) -> Answer:
    """An Answer from any response: the documented envelope, or what can be told without it."""
    trace_id = response.headers.get("X-Trace-ID", "")
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        payload = {}
    trace_id = str(payload.get("trace_id") or trace_id)
    if response.is_success:
        return Answer(response.status_code, payload, trace_id)
    error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
    assert isinstance(error, dict)
    code = _int(error.get("code"))
    retryable = error.get("retryable")
    if not isinstance(retryable, bool):
        # Without the envelope: 5xx and 429 are worth another try, the rest are not.
        retryable = response.status_code >= 500 or response.status_code == 429
    # The body's value is exact (fractions included); the header, whole seconds, only
    # stands in for it when the body names none.
    retry_after = _seconds(error.get("retry_after")) or _seconds(
        response.headers.get("Retry-After")
    )
    message = str(error.get("message") or response.reason_phrase or f"HTTP {response.status_code}")
    return Answer(
        response.status_code,
        payload,
        trace_id,
        code=code,
        message=message,
        retryable=retryable,
        retry_after=retry_after,
    )


def _cause(exc: httpx.ConnectError) -> str:
    """Why a connection failed, in words: refused, a DNS lookup, TLS, or what the OS said."""
    cause: BaseException = exc
    while (inner := cause.__cause__ or cause.__context__) is not None:
        cause = inner
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused: nothing listens there"
    if isinstance(cause, socket.gaierror):
        return f"the host name could not be looked up: {cause.strerror or cause}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS failed: {cause.reason or cause}"
    text = str(cause) or str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return 0


def _seconds(value: object) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0
