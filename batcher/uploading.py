"""Uploads: each distinct content once per account, ever (the journal and the send history).

A media part names a file or a URL; before its request is sent, the content is
read (or downloaded), hashed, and looked up in the journal, then in the account's
send history (uploads of other journals). Content never
uploaded is reserved (`POST /attachments`) and its bytes `PUT` where the
reservation says, retried like sends. A hundred rows sharing one image, or a
rerun, cost one upload.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit

import anyio
import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from batcher.answers import Kind, classify, describe
from batcher.caller import Caller
from batcher.client import Answer, Unanswered, encode
from batcher.history import History
from batcher.journal import Journal
from batcher.media import (
    ACCEPTED,
    ACCEPTED_TYPES,
    CONTENT_TYPES,
    MAX_BYTES,
    Media,
    MediaKind,
    MediaProblem,
    check_content,
    check_url,
    why_not_public,
)
from batcher.model import Part

MAX_REDIRECTS = 5


class UploadFailed(Exception):
    """Media that could not be uploaded; `final` when trying again cannot help."""

    def __init__(self, reason: str, *, final: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.final = final


class Uploader:
    """Turns the media refs of a request's parts into attachment ids, uploading as needed."""

    def __init__(
        self,
        caller: Caller,
        journal: Journal,
        catalog: dict[str, Media],
        downloads: httpx.AsyncClient,
        *,
        allow_loopback: bool = False,
        history: History | None = None,
    ) -> None:
        self.caller = caller
        self.journal = journal
        # The account's uploads of every journal: a new journal reuses their ids, so a
        # key sent before keeps its very body (another id would make Chert refuse it).
        self.history = history
        self.catalog = catalog
        self.downloads = downloads
        self.allow_loopback = allow_loopback
        self._locks: dict[str, anyio.Lock] = {}
        self._ids: dict[str, str] = {}
        self._failures: dict[str, UploadFailed] = {}

    async def attachments(self, parts: Iterable[Part]) -> dict[str, str]:
        """Media ref → attachment id for every part that names a file or a URL."""
        found: dict[str, str] = {}
        for part in parts:
            media = self.catalog.get(part.value) if part.type == "media" else None
            if media is not None and media.kind is not MediaKind.ATTACHMENT:
                found[media.ref] = await self._attachment(media)
        return found

    async def _attachment(self, media: Media) -> str:
        lock = self._locks.setdefault(media.ref, anyio.Lock())
        async with lock:  # rows sharing content wait for the one upload
            if media.ref in self._failures:
                raise self._failures[media.ref]
            if media.ref not in self._ids:
                try:
                    self._ids[media.ref] = await self._upload(media)
                except UploadFailed as failed:
                    self._failures[media.ref] = failed
                    raise
            return self._ids[media.ref]

    async def _upload(self, media: Media) -> str:
        if media.kind is MediaKind.FILE:
            data = await anyio.Path(media.location).read_bytes()
            if f"sha256:{hashlib.sha256(data).hexdigest()}" != media.ref:
                raise UploadFailed(
                    f"{Path(media.location).name} changed since it was checked; run again",
                    final=False,
                )
            content_type, name = media.content_type, Path(media.location).name
        else:
            data, content_type = await self._download(media.location)
            name = PurePosixPath(urlsplit(media.location).path).name or "attachment"
        digest = hashlib.sha256(data).hexdigest()
        known = self.journal.upload(digest)
        if known:
            return known
        known = self.history.upload(digest) if self.history is not None else ""
        if known:
            self.journal.uploaded(digest, known)
            return known
        attachment_id = await self._reserve_and_put(data, content_type, name)
        self.journal.uploaded(digest, attachment_id)
        if self.history is not None:
            self.history.uploaded(digest, attachment_id, self.caller.clock.wall())
        return attachment_id

    async def _reserve_and_put(self, data: bytes, content_type: str, name: str) -> str:
        reservation = {"filename": name, "content_type": content_type, "size_bytes": len(data)}
        body = encode(reservation)
        reserved = await self.caller.post("/attachments", body)
        _check(reserved, f"reserving {name}")
        assert isinstance(reserved, Answer)
        attachment_id = str(reserved.payload.get("attachment_id") or "")
        upload_url = str(reserved.payload.get("upload_url") or "")
        extra = reserved.payload.get("required_headers")
        headers = {str(k): str(v) for k, v in extra.items()} if isinstance(extra, dict) else {}
        headers.setdefault("Content-Type", content_type)
        if not attachment_id or not upload_url:
            raise UploadFailed(f"reserving {name}: the answer had no upload URL", final=False)
        put = await self.caller.call(lambda: self.caller.client.upload(upload_url, data, headers))
        _check(put, f"uploading {name}")
        return attachment_id

    async def _download(self, url: str) -> tuple[bytes, str]:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((httpx.TransportError, _Transient)),
            stop=stop_after_attempt(3),
            wait=wait_exponential(multiplier=0.1, max=5.0) + wait_random(0, 1.0),
            sleep=self.caller.clock.sleep,
            reraise=True,
        )
        try:
            found: tuple[bytes, str] = await retrying(self._fetch, url)
        except (httpx.TransportError, _Transient) as exc:
            raise UploadFailed(f"downloading {url} failed ({exc})", final=False) from None
        except MediaProblem as problem:
            raise UploadFailed(str(problem), final=True) from None
        return found

    async def _fetch(self, url: str) -> tuple[bytes, str]:
        for _ in range(MAX_REDIRECTS + 1):
            # Checked before every hop: a public URL may redirect to an internal one.
            await anyio.to_thread.run_sync(
                functools.partial(check_url, url, allow_loopback=self.allow_loopback)
            )
            async with self.downloads.stream("GET", url) as response:
                _check_peer(response, url, self.allow_loopback)
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code >= 500:
                    raise _Transient(f"HTTP {response.status_code}")
                if response.status_code != 200:
                    raise MediaProblem(f"{url} answered HTTP {response.status_code}.")
                content_type = _content_type(response, url)
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_BYTES:
                        raise MediaProblem(f"{url} is over 100 MB; Chert takes at most 100 MB.")
                check_content(url, content_type, bytes(data[:64]))
                return bytes(data), content_type
        raise MediaProblem(f"{url} redirects more than {MAX_REDIRECTS} times.")


class _Transient(Exception):
    """A download that may work if tried again (a 5xx)."""


def _check(result: Answer | Unanswered, doing: str) -> None:
    kind = classify(result).kind
    if kind is not Kind.SENT:
        raise UploadFailed(f"{doing}: {describe(result)}", final=kind is Kind.REFUSED)


def _content_type(response: httpx.Response, url: str) -> str:
    declared = str(response.headers.get("content-type", "")).split(";")[0].strip().lower()
    if declared in ACCEPTED_TYPES:
        return declared
    by_name = CONTENT_TYPES.get(PurePosixPath(urlsplit(url).path).suffix.lower())
    if by_name and declared in {"", "application/octet-stream", "binary/octet-stream"}:
        return by_name
    raise MediaProblem(
        f"{url} serves {declared or 'an unnamed type'}, which Chert does not send. "
        f"Accepted: {ACCEPTED}."
    )


def _check_peer(response: httpx.Response, url: str, allow_loopback: bool) -> None:
    """The address actually connected to must be public too (DNS can change in between)."""
    stream = response.extensions.get("network_stream")
    server = stream.get_extra_info("server_addr") if stream is not None else None
    if not server:
        return
    address = ipaddress.ip_address(str(server[0]))
    if allow_loopback and address.is_loopback:
        return
    if why := why_not_public(address):
        raise MediaProblem(
            f"{url} connected to {address}, {why}. Only media on the public internet is fetched."
        )
