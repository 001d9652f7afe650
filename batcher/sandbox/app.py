"""The sandbox's HTTP face: a Starlette app that speaks the documented Chert API subset.

Routes (``/api/v1`` needs bearer or HMAC v1 auth; ``/_sandbox`` needs none and
is only ever bound to loopback):

- ``POST /api/v1/chats``, ``POST /api/v1/chats/{id}/messages``,
  ``GET /api/v1/chats/{id}/messages`` (the chat's history, ``?limit=&before=``),
  ``GET /api/v1/messages/{id}``, ``POST /api/v1/attachments``,
  ``GET /api/v1/phone-numbers``, ``GET /api/v1/events`` (the event log, see
  ``batcher.sandbox.events``);
- ``PUT /_sandbox/uploads/{attachment_id}``: the upload URL that
  ``POST /attachments`` hands out (bearer only, as documented);
- ``GET /_sandbox/messages`` (the delivery ledger), ``GET /_sandbox/stats``,
  ``GET /_sandbox/requests`` (every API request with its arrival time),
  ``POST /_sandbox/reset``, ``POST /_sandbox/inbound`` (a reply: ``{"from":
  recipient, "line": sender, "text", "chat_id"?}``).

Choices where the docs are silent:

- unknown chat, message, attachment or route: 404 with code 1004;
- malformed JSON or a body that is not an object: 400 / 1002; top-level
  ``parts`` on a follow-up: 400 / 1002; an unexpected server bug: 500 / 3000;
- ``GET /phone-numbers`` answers the documented shape for the configured lines,
  and 404 / 1004 when none are configured (see ``State.phone_numbers``);
- 4002 and 1007 carry ``retry_after`` in the body in seconds with fractions and
  the ``Retry-After`` header in whole seconds, rounded up;
- the upload PUT answers ``{"attachment_id", "size_bytes", "uploaded": true}``;
- faults (503, dropped connection, slow answer) hit only the message routes
  (both POSTs and both GETs) and ``POST /attachments``, after authentication, the rate limit and
  JSON parsing (so the request log still shows a 503'd request's key);
  a drop closes the TCP connection after the work is done and recorded, so
  the client sees a protocol error while the ledger shows the delivery.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from batcher.sandbox.auth import Credentials, authenticate
from batcher.sandbox.config import SandboxConfig
from batcher.sandbox.errors import UNAVAILABLE, ApiError, invalid, not_found
from batcher.sandbox.events import parse_inbound, parse_query
from batcher.sandbox.rules import parse_json_object
from batcher.sandbox.state import HISTORY_LIMIT, Answer, Faults, Json, State, encode

API_PREFIX = "/api/v1"
UPLOAD_PREFIX = "/_sandbox/uploads"
JSON_TYPE = "application/json"
TRACE_HEADER = "X-Trace-ID"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# Where the app keeps the server's own receive/send, which Starlette wraps:
# dropping a connection needs the real send's transport.
RAW_ASGI = "chert_sandbox.raw_asgi"
# Long enough for uvicorn to notice a closed transport; it is usually instant.
DISCONNECT_GRACE_SECONDS = 1.0
INTERNAL_ERROR = 3000

logger = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class Exchange:
    """One API request in flight: what the request log will say about it."""

    arrival: float
    trace_id: str
    idempotency_key: str | None = None
    faults: Faults = field(default_factory=Faults)


Handler = Callable[[Request, Json, Exchange], Answer]


def new_trace_id() -> str:
    """Return a fresh 12-hex trace id."""
    return secrets.token_hex(6)


def error_response(error: ApiError, trace_id: str) -> Response:
    """Render an ApiError in the envelope, with Retry-After when it has a wait."""
    headers = {TRACE_HEADER: trace_id}
    if error.retry_after is not None:
        # The header takes whole seconds; rounding up keeps it honest.
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return Response(encode(error.envelope(trace_id)), error.status, headers, JSON_TYPE)


def json_response(answer: Answer, trace_id: str) -> Response:
    """Render a successful answer with its trace header."""
    return Response(answer.body, answer.status, {TRACE_HEADER: trace_id}, JSON_TYPE)


def credentials(request: Request) -> Credentials:
    """Pick the auth headers out of a request."""
    headers = request.headers
    return Credentials(
        authorization=headers.get("authorization"),
        tenant=headers.get("x-chert-tenant"),
        signature=headers.get("x-chert-signature"),
    )


def key_for_log(payload: Json) -> str | None:
    """Return the body's idempotency key for the request log, whatever its validity."""
    message = payload.get("message")
    key = message.get("idempotency_key") if isinstance(message, dict) else None
    return key if isinstance(key, str) else None


def fault_name(faults: Faults) -> str | None:
    """Name the fault that shapes the answer, if any (503 wins, then drop, then slow)."""
    if faults.unavailable:
        return "503"
    if faults.drop:
        return "drop"
    if faults.slow:
        return "slow"
    return None


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has gone; the request body must already be consumed."""
    while (await receive())["type"] != "http.disconnect":
        pass


class DroppedConnection(Response):
    """A 'response' that closes the TCP connection without sending a byte of HTTP."""

    def __init__(self) -> None:
        super().__init__(status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_receive, raw_send = scope[RAW_ASGI]
        # uvicorn's h11 and httptools protocols pass a bound method of their
        # request cycle as `send`; the cycle owns the connection's transport.
        transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
        if transport is None:
            raise RuntimeError("dropping a connection needs uvicorn's h11 or httptools protocol")
        transport.close()
        # Let uvicorn mark the cycle disconnected before the app returns, or it
        # logs "ASGI callable returned without starting response".
        with anyio.move_on_after(DISCONNECT_GRACE_SECONDS):
            await wait_for_disconnect(raw_receive)


class SandboxApp(Starlette):
    """Starlette, plus a note of the server's raw receive/send in each HTTP scope."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_ASGI] = (receive, send)
        await super().__call__(scope, receive, send)


class Sandbox:
    """The endpoints, bound to one config and one state."""

    def __init__(self, config: SandboxConfig, state: State) -> None:
        self.config = config
        self.state = state

    # The /api/v1 pipeline ------------------------------------------------

    def api(self, handler: Handler, *, body: bool = False, faulty: bool = False) -> Endpoint:
        """Wrap a handler in auth, rate limit, faults, the envelope and the request log."""

        async def endpoint(request: Request) -> Response:
            return await self.serve_api(request, handler, body=body, faulty=faulty)

        return endpoint

    async def serve_api(
        self, request: Request, handler: Handler, *, body: bool, faulty: bool
    ) -> Response:
        """Answer one authenticated API request."""
        exchange = Exchange(arrival=self.state.clock(), trace_id=new_trace_id())
        try:
            raw = await request.body()
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it
        try:
            answer = self.answer(request, handler, raw, exchange, body=body, faulty=faulty)
            response = json_response(answer, exchange.trace_id)
            self.log(request, exchange, answer.status, None, replay=answer.replay)
        except ApiError as error:
            response = error_response(error, exchange.trace_id)
            self.log(request, exchange, error.status, error.code)
        faults = exchange.faults
        if faults.drop and not faults.unavailable:
            return DroppedConnection()
        if faults.slow and not faults.unavailable:
            with anyio.move_on_after(self.config.slow_seconds):
                # A client that gave up needs no answer; stop sleeping for it.
                await wait_for_disconnect(request.scope[RAW_ASGI][0])
        return response

    def answer(
        self,
        request: Request,
        handler: Handler,
        raw: bytes,
        exchange: Exchange,
        *,
        body: bool,
        faulty: bool,
    ) -> Answer:
        """Run the checks in the service's order, then the handler (synchronously)."""
        authenticate(
            self.config.secret,
            self.config.tenant,
            credentials(request),
            raw,
            now=exchange.arrival,
            max_skew=self.config.max_skew_seconds,
        )
        self.state.admit(exchange.arrival)
        payload = parse_json_object(raw) if body else {}
        exchange.idempotency_key = key_for_log(payload)
        if faulty:
            config = self.config
            exchange.faults = self.state.draw_faults(config.p503, config.pdrop, config.pslow)
            if exchange.faults.unavailable:
                raise ApiError(503, UNAVAILABLE, "temporarily unavailable; retry with the same key")
        try:
            return handler(request, payload, exchange)
        except ApiError:
            raise
        except Exception:
            logger.exception("sandbox bug answering %s %s", request.method, request.url.path)
            raise ApiError(500, INTERNAL_ERROR, "internal error") from None

    def log(
        self,
        request: Request,
        exchange: Exchange,
        status: int,
        code: int | None,
        *,
        replay: bool = False,
    ) -> None:
        """Record one API request for ``/_sandbox/requests`` and the stats."""
        record: Json = {
            "t": exchange.arrival,
            "method": request.method,
            "path": request.scope["path"],
            "status": status,
            "code": code,
            "idempotency_key": exchange.idempotency_key,
            "trace_id": exchange.trace_id,
            "fault": fault_name(exchange.faults),
            "replay": replay,
        }
        self.state.log_request(record, status, code)

    # API handlers (synchronous, so no other request runs in between) -------

    def create_chat(self, request: Request, payload: Json, exchange: Exchange) -> Answer:
        """POST /chats."""
        return self.state.create_chat(payload, path=request.scope["path"], now=exchange.arrival)

    def follow_up(self, request: Request, payload: Json, exchange: Exchange) -> Answer:
        """POST /chats/{chat_id}/messages."""
        chat_id = request.path_params["chat_id"]
        path = request.scope["path"]
        return self.state.follow_up(chat_id, payload, path=path, now=exchange.arrival)

    def get_message(self, request: Request, payload: Json, exchange: Exchange) -> Answer:
        """GET /messages/{message_id}."""
        return self.state.get_message(request.path_params["message_id"], exchange.arrival)

    def chat_messages(self, request: Request, payload: Json, exchange: Exchange) -> Answer:
        """GET /chats/{chat_id}/messages: one page of the chat's history."""
        params = request.query_params
        limit_text = params.get("limit", str(HISTORY_LIMIT))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= HISTORY_LIMIT:
            raise invalid(f"limit must be a whole number from 1 to {HISTORY_LIMIT}")
        return self.state.chat_messages(
            request.path_params["chat_id"],
            now=exchange.arrival,
            limit=int(limit_text),
            before=params.get("before") or None,
        )

    def phone_numbers(self, request: Request, payload: Json, exchange: Exchange) -> Answer:
        """GET /phone-numbers."""
        return self.state.phone_numbers()

    def events(self, request: Request, payload: Json, exchange: Exchange) -> Answer:
        """GET /events."""
        return self.state.events(parse_query(request.query_params))

    def reserve_attachment(self, request: Request, payload: Json, exchange: Exchange) -> Answer:
        """POST /attachments."""
        base = str(request.base_url).rstrip("/")

        def upload_url(attachment_id: str) -> str:
            return f"{base}{UPLOAD_PREFIX}/{attachment_id}"

        return self.state.reserve_attachment(payload, upload_url=upload_url, now=exchange.arrival)

    async def api_not_found(self, request: Request) -> Response:
        """Any other /api/v1 route: 404 in the envelope."""
        exchange = Exchange(arrival=self.state.clock(), trace_id=new_trace_id())
        error = not_found(f"no route {request.method} {request.url.path}")
        self.log(request, exchange, error.status, error.code)
        return error_response(error, exchange.trace_id)

    # Uploads and the ledger --------------------------------------------------

    async def upload(self, request: Request) -> Response:
        """PUT an attachment's bytes: bearer only, the reserved type and exact length."""
        trace_id = new_trace_id()
        now = self.state.clock()
        try:
            authenticate(
                self.config.secret,
                self.config.tenant,
                credentials(request),
                b"",
                now=now,
                max_skew=self.config.max_skew_seconds,
                allow_hmac=False,
            )
            attachment = self.state.check_upload(
                request.path_params["attachment_id"],
                request.headers.get("content-type"),
                content_length(request),
                now,
            )
            received = 0
            async for chunk in request.stream():
                received += len(chunk)
                if received > attachment.size_bytes:
                    raise invalid(f"more than the reserved {attachment.size_bytes} bytes")
            return json_response(self.state.finish_upload(attachment, received), trace_id)
        except ApiError as error:
            return error_response(error, trace_id)
        except ClientDisconnect:
            return Response(status_code=400)

    async def ledger(self, request: Request) -> Response:
        """GET /_sandbox/messages."""
        return self.plain(self.state.ledger())

    async def stats(self, request: Request) -> Response:
        """GET /_sandbox/stats."""
        return self.plain(self.state.stats())

    async def requests(self, request: Request) -> Response:
        """GET /_sandbox/requests."""
        return self.plain(self.state.requests())

    async def inbound(self, request: Request) -> Response:
        """POST /_sandbox/inbound: simulate a reply from a recipient to a line."""
        try:
            inbound = parse_inbound(parse_json_object(await request.body()))
            return self.plain(self.state.receive(inbound, self.state.clock()))
        except ApiError as error:
            return error_response(error, new_trace_id())

    async def reset(self, request: Request) -> Response:
        """POST /_sandbox/reset."""
        self.state.reset()
        return self.plain({"reset": True})

    async def not_found(self, request: Request) -> Response:
        """Anything else: 404 in the envelope."""
        error = not_found(f"no route {request.method} {request.url.path}")
        return error_response(error, new_trace_id())

    @staticmethod
    def plain(payload: Any) -> Response:
        """A JSON answer from a /_sandbox route."""
        return Response(encode(payload), 200, {TRACE_HEADER: new_trace_id()}, JSON_TYPE)

    def routes(self) -> list[Route]:
        """The route table."""
        api = self.api
        return [
            Route(
                f"{API_PREFIX}/chats",
                api(self.create_chat, body=True, faulty=True),
                methods=["POST"],
            ),
            Route(
                f"{API_PREFIX}/chats/{{chat_id}}/messages",
                api(self.follow_up, body=True, faulty=True),
                methods=["POST"],
            ),
            Route(
                f"{API_PREFIX}/attachments",
                api(self.reserve_attachment, body=True, faulty=True),
                methods=["POST"],
            ),
            Route(
                f"{API_PREFIX}/chats/{{chat_id}}/messages",
                api(self.chat_messages, faulty=True),
                methods=["GET"],
            ),
            Route(
                f"{API_PREFIX}/messages/{{message_id}}",
                api(self.get_message, faulty=True),
                methods=["GET"],
            ),
            Route(f"{API_PREFIX}/phone-numbers", api(self.phone_numbers), methods=["GET"]),
            Route(f"{API_PREFIX}/events", api(self.events), methods=["GET"]),
            Route(f"{API_PREFIX}/{{rest:path}}", self.api_not_found, methods=ALL_METHODS),
            Route(f"{UPLOAD_PREFIX}/{{attachment_id}}", self.upload, methods=["PUT"]),
            Route("/_sandbox/messages", self.ledger, methods=["GET"]),
            Route("/_sandbox/stats", self.stats, methods=["GET"]),
            Route("/_sandbox/requests", self.requests, methods=["GET"]),
            Route("/_sandbox/reset", self.reset, methods=["POST"]),
            Route("/_sandbox/inbound", self.inbound, methods=["POST"]),
            Route("/{rest:path}", self.not_found, methods=ALL_METHODS),
        ]


def content_length(request: Request) -> int | None:
    """Return the Content-Length header as an int, None when absent, 1002 when garbled."""
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise invalid("Content-Length must be an integer") from None


def create_app(config: SandboxConfig, state: State | None = None) -> Starlette:
    """Build the sandbox app; pass ``state`` to share memory between apps (e.g. in tests)."""
    sandbox = Sandbox(config, state if state is not None else State(config))
    app = SandboxApp(routes=sandbox.routes())
    app.state.sandbox = sandbox
    return app
