"""Media parts: what a media cell names, and whether it may leave this machine.

A media cell holds an attachment id (sent as is), a path to a file relative to
the sheet's folder, or an https:// URL (downloaded, then uploaded). Refused
before any request: missing files; paths that resolve outside the sheet's
folder (`..`, absolute paths, symbolic links out), because a handoff file must
never make the tool send a private file such as a key to a stranger's phone;
files over 100 MB; content Chert does not send (checked by extension and by
the file's first bytes); URLs that are not https or that resolve to loopback,
private, link-local or otherwise non-public addresses.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PureWindowsPath
from urllib.parse import urlsplit

from batcher.client import is_loopback

MAX_BYTES = 100 * 1024 * 1024

# What Chert sends, by extension. The first bytes must agree (see _MAGIC).
CONTENT_TYPES: dict[str, str] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".pdf": "application/pdf",
    ".vcf": "text/vcard",
}
ACCEPTED_TYPES = frozenset(CONTENT_TYPES.values())
ACCEPTED = "JPEG, PNG, GIF, WebP or HEIC images, MP4 or MOV video, M4A or MP3 audio, PDF, vCard"

_ISO_MEDIA = re.compile(rb"^....ftyp", re.DOTALL)
_MAGIC: dict[str, re.Pattern[bytes]] = {
    "image/jpeg": re.compile(rb"^\xff\xd8\xff"),
    "image/png": re.compile(rb"^\x89PNG\r\n\x1a\n"),
    "image/gif": re.compile(rb"^GIF8[79]a"),
    "image/webp": re.compile(rb"^RIFF....WEBP", re.DOTALL),
    "image/heic": _ISO_MEDIA,
    "video/mp4": _ISO_MEDIA,
    "video/quicktime": re.compile(rb"^....(?:ftyp|moov|mdat|wide|free)", re.DOTALL),
    "audio/mp4": _ISO_MEDIA,
    "audio/mpeg": re.compile(rb"^(?:ID3|\xff[\xe0-\xff])"),
    "application/pdf": re.compile(rb"^%PDF-"),
    "text/vcard": re.compile(rb"^(?:\xef\xbb\xbf)?\s*BEGIN:VCARD", re.IGNORECASE),
}
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")


class MediaKind(StrEnum):
    """What a media cell names."""

    ATTACHMENT = "attachment"
    FILE = "file"
    URL = "url"


@dataclass(frozen=True, slots=True)
class Media:
    """A media cell checked and ready: `ref` is what keys and parts carry until upload.

    For a file, `ref` is its content hash (`sha256:...`), so the key follows the
    content, not the name; for a URL, the URL; for an attachment id, the id.
    """

    kind: MediaKind
    ref: str
    location: str = ""  # the resolved path, or the URL
    content_type: str = ""
    size: int = 0


class MediaProblem(ValueError):
    """Why a media cell cannot be sent, with the fix."""


def kind_of(value: str) -> MediaKind:
    """A URL, a file path (a separator, an extension), or else an attachment id."""
    if value.lower().startswith(("https://", "http://", "ftp://", "file:")):
        return MediaKind.URL
    if "/" in value or "\\" in value or _EXTENSION.search(value):
        return MediaKind.FILE
    return MediaKind.ATTACHMENT


def check_media(value: str, folder: Path, *, allow_loopback: bool = False) -> Media:
    """Check a media cell without uploading anything; raise MediaProblem if it must not go."""
    kind = kind_of(value)
    if kind is MediaKind.URL:
        check_url(value, allow_loopback=allow_loopback)
        return Media(MediaKind.URL, value, location=value)
    if kind is MediaKind.FILE:
        return check_file(value, folder)
    if any(character.isspace() for character in value):
        raise MediaProblem(
            f"{value!r} is neither an attachment id (it has spaces) nor a file name "
            "(it has no extension such as .png)."
        )
    return Media(MediaKind.ATTACHMENT, value)


def check_file(value: str, folder: Path) -> Media:
    """A file inside the sheet's folder, of a type Chert sends, at most 100 MB."""
    if Path(value).is_absolute() or PureWindowsPath(value).is_absolute() or value.startswith("~"):
        raise MediaProblem(
            f"{value!r} is an absolute path. Put the file in the sheet's folder ({folder}) "
            "and write its name relative to it."
        )
    root = folder.resolve()
    path = (root / value.replace("\\", "/")).resolve()
    if not path.is_relative_to(root):
        raise MediaProblem(
            f"{value!r} leads outside the sheet's folder ({root}). A handoff file may only "
            "send files from its own folder: copy the file there."
        )
    if not path.is_file():
        missing = "is not a file" if path.exists() else "does not exist"
        raise MediaProblem(f"{value!r} {missing} in {root}. Check the name and the folder.")
    content_type = CONTENT_TYPES.get(path.suffix.lower())
    if content_type is None:
        raise MediaProblem(
            f"{value!r} is a {path.suffix or 'file without extension'}, which Chert does not "
            f"send. Accepted: {ACCEPTED}."
        )
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise MediaProblem(f"{value!r} is {size / 1e6:.0f} MB; Chert takes at most 100 MB.")
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        head = stream.read(64)
        digest.update(head)
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    check_content(value, content_type, head)
    return Media(MediaKind.FILE, f"sha256:{digest.hexdigest()}", str(path), content_type, size)


def check_content(name: str, content_type: str, head: bytes) -> None:
    """The first bytes must be what the name says: a key renamed photo.jpg is not a photo."""
    if not _MAGIC[content_type].match(head):
        raise MediaProblem(
            f"{name!r} does not hold what its name says ({content_type}). Only real "
            f"{ACCEPTED} files are sent."
        )


def check_url(url: str, *, allow_loopback: bool = False) -> None:
    """https to a public address only (plain http and loopback only when allowed, for tests)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    loopback_http = allow_loopback and parts.scheme == "http" and is_loopback(host)
    if parts.scheme != "https" and not loopback_http:
        raise MediaProblem(f"{url!r} is not an https:// URL. Only https:// media is fetched.")
    if not host:
        raise MediaProblem(f"{url!r} has no host name.")
    for address in resolve(host, parts.port or 443):
        if not address.is_global and not (allow_loopback and address.is_loopback):
            raise MediaProblem(
                f"{url!r} points to {address}, a {_network_kind(address)} address. Only "
                "media on the public internet is fetched."
            )


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address a host name resolves to (an address literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise MediaProblem(f"the host {host!r} cannot be looked up ({exc.strerror}).") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _network_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    for kind in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return "non-public"
