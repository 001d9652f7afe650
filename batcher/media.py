"""Media parts: what a media cell names, and whether it may leave this machine.

A media cell holds an attachment id (sent as is), a path to a file relative to
the sheet's folder, or an https:// URL (downloaded, then uploaded). Refused
before any request: missing files; paths that resolve outside the sheet's
folder (`..`, absolute paths, symbolic links out) and hard links (which may be
a file from anywhere on the disk, linked in), because a handoff file must never
make the tool send a private file such as a key to a stranger's phone; files
over 100 MB; content Chert does not send (checked by extension and by the
file's first bytes); URLs that are not https, that carry a user name or
password, or that lead to an address that is not on the public internet
(loopback, private, link-local, special-purpose, or an IPv6 form of one).

Planning checks a URL without looking its host name up (validate sends nothing,
so it asks no DNS server); an address written in the URL is checked all the
same. `run` checks each hop again, resolving it, right before downloading, and
the address it actually connected to as well (see batcher.uploading).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PureWindowsPath
from urllib.parse import SplitResult, urlsplit

from batcher.client import is_loopback

MAX_BYTES = 100 * 1024 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

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
    """Why a media cell cannot be sent, with the fix.

    `shown` is the cell as it may be shown back, when the cell itself may not be (a URL
    whose password is replaced by `***`); empty when the cell may be shown as it is.
    """

    def __init__(self, message: str, *, shown: str = "") -> None:
        super().__init__(message)
        self.shown = shown


def kind_of(value: str) -> MediaKind:
    """A URL, a file path (a separator, an extension), or else an attachment id."""
    if value.lower().startswith(("https://", "http://", "ftp://", "file:")):
        return MediaKind.URL
    if "/" in value or "\\" in value or _EXTENSION.search(value):
        return MediaKind.FILE
    return MediaKind.ATTACHMENT


def check_media(
    value: str,
    folder: Path,
    *,
    allow_loopback: bool = False,
    allow_hardlinks: bool = False,
    resolve_names: bool = True,
) -> Media:
    """Check a media cell without uploading anything; raise MediaProblem if it must not go.

    Without `resolve_names`, a URL's host name is not looked up (see check_url).
    """
    kind = kind_of(value)
    if kind is MediaKind.URL:
        check_url(value, allow_loopback=allow_loopback, resolve_names=resolve_names)
        return Media(MediaKind.URL, value, location=value)
    if kind is MediaKind.FILE:
        return check_file(value, folder, allow_hardlinks=allow_hardlinks)
    if any(character.isspace() for character in value):
        raise MediaProblem(
            f"{value!r} is neither an attachment id (it has spaces) nor a file name "
            "(it has no extension such as .png)."
        )
    return Media(MediaKind.ATTACHMENT, value)


def check_file(value: str, folder: Path, *, allow_hardlinks: bool = False) -> Media:
    """A file inside the sheet's folder, of a type Chert sends, at most 100 MB.

    Not a hard link, unless allowed: a second name for a file can sit in the folder
    while the file is someone's private one from anywhere else on the disk, and nothing
    tells which of its names is the original.
    """
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
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        status = os.fstat(stream.fileno())  # the file read, not whatever the name is now
        if status.st_nlink > 1 and not allow_hardlinks:
            raise MediaProblem(
                f"{value!r} is a hard link (one of {status.st_nlink} names for the same file): "
                f"it may be a private file from outside the sheet's folder ({root}), linked "
                "in. Copy the file into the folder instead of linking it, or pass "
                "--allow-hardlinks."
            )
        size = status.st_size
        if size > MAX_BYTES:
            raise MediaProblem(f"{value!r} is {size / 1e6:.0f} MB; Chert takes at most 100 MB.")
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


def check_url(url: str, *, allow_loopback: bool = False, resolve_names: bool = True) -> None:
    """https to a public address only (plain http and loopback only when allowed, for tests).

    A URL naming its host by address is checked as it is; a host name is looked up and
    every address it has is checked, unless `resolve_names` is off: then the name is
    left for the download to check (only `localhost`, this machine by definition, is
    refused without a lookup).
    """
    if (shown := _userinfo_hidden(url)) != url:
        raise MediaProblem(
            f"{shown!r} holds a user name or password (shown as ***), and media URLs are "
            "fetched without credentials: use a link that needs none, or save the file in "
            "the sheet's folder and name it instead.",
            shown=shown,
        )
    parts = _split(url)
    host = parts.hostname or ""
    loopback_http = allow_loopback and parts.scheme == "http" and is_loopback(host)
    if parts.scheme != "https" and not loopback_http:
        raise MediaProblem(f"{url!r} is not an https:// URL. Only https:// media is fetched.")
    if not host:
        raise MediaProblem(f"{url!r} has no host name.")
    for address in resolve(host, parts.port or 443, names=resolve_names):
        if allow_loopback and address.is_loopback:
            continue
        if why := why_not_public(address):
            raise MediaProblem(
                f"{url!r} points to {address}, {why}. Only media on the public internet is fetched."
            )


def _userinfo_hidden(url: str) -> str:
    """The URL with whatever its authority holds before an `@` ("user:pass") as `***`.

    Read from the text itself, not from urlsplit: it must be found (and hidden) in a URL
    that is malformed too, and in every form a client may take for credentials, such as
    `https://user@host`, `https://:pass@host` or `https://@host`.
    """
    before, slashes, rest = url.partition("//")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if not slashes or "@" not in authority:
        return url
    return f"{before}//***@{rest[authority.rindex('@') + 1 :]}"


def _split(url: str) -> SplitResult:
    """The URL's parts, its port read already: a malformed URL is a MediaProblem."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError as error:
        raise MediaProblem(f"{url!r} is not a well-formed URL ({error}). Check it.") from None
    return parts


def resolve(host: str, port: int, *, names: bool = True) -> list[IPAddress]:
    """Every address a host name resolves to (an address literal resolves to itself).

    With `names` off, only what the system reads as an address without asking DNS
    (`127.0.0.1`, `[::1]`, but also `127.1` or `2130706433`); a host name gives none,
    except `localhost`.
    """
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    if not names and is_loopback(host):
        return [ipaddress.IPv4Address("127.0.0.1")]
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=0 if names else socket.AI_NUMERICHOST
        )
    except socket.gaierror as exc:
        if not names:
            return []  # a name, not an address: checked when it is looked up to download
        raise MediaProblem(
            f"the host {host!r} cannot be looked up ({exc.strerror}). Check the URL."
        ) from None
    except (OSError, UnicodeError) as exc:  # a name IDNA cannot encode, such as a..b
        raise MediaProblem(f"{host!r} is not a valid host name ({exc}). Check the URL.") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _special(*specs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(network), kind) for network, kind in specs)


# Special-purpose ranges (IANA's IPv4 and IPv6 special-purpose address registries) that
# Python's is_global takes for public on some versions (3.11 among them), or that deserve a
# better name than "private": no media is fetched from them.
_SPECIAL = {
    4: _special(
        ("0.0.0.0/8", "a 'this network' address"),
        ("100.64.0.0/10", "a shared address (carrier-grade NAT)"),
        ("192.0.0.0/24", "an address for IETF protocol assignments"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a 6to4 relay anycast address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("240.0.0.0/4", "a reserved address"),
    ),
    6: _special(
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("2001::/23", "an address for IETF protocol assignments"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("fec0::/10", "a site-local address"),
    ),
}
# The well-known NAT64 prefix: 64:ff9b::a.b.c.d reaches the IPv4 address a.b.c.d.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def why_not_public(address: IPAddress) -> str:
    """Why no media is fetched from an address ("a loopback address"); "" if it may be.

    The one rule for media addresses, applied to what a URL names and to the address a
    download actually connected to. An IPv6 address that carries an IPv4 address is
    judged by that address: IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible
    (`::a.b.c.d`) addresses, NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`) addresses
    reach it, and Teredo (`2001::/32`) addresses carry it (and are refused anyway).
    """
    if isinstance(address, ipaddress.IPv6Address):
        value = int(address)
        carried = address.ipv4_mapped
        if carried is None and ((value >> 32 == 0 and value > 1) or address in _NAT64):
            carried = ipaddress.IPv4Address(value & 0xFFFFFFFF)  # ::a.b.c.d, 64:ff9b::a.b.c.d
        if carried is not None:  # the IPv6 form of an IPv4 address: that address decides
            return _carrying(address, carried)
        for embedded in (address.sixtofour, *(address.teredo or ())):
            if embedded is not None and (why := _carrying(address, embedded)):
                return why
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    for network, kind in _SPECIAL[address.version]:
        if address in network:
            return kind
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    return "" if address.is_global else "a non-public address"


def _carrying(address: ipaddress.IPv6Address, embedded: ipaddress.IPv4Address) -> str:
    """Why an IPv6 address that carries an IPv4 one is refused for it, or ""."""
    why = why_not_public(embedded)
    return f"{_ipv6_form(address)} for {embedded}, {why}" if why else ""


def _ipv6_form(address: ipaddress.IPv6Address) -> str:
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped address"
    if address in _NAT64:
        return "a NAT64 address"
    if address.sixtofour is not None:
        return "a 6to4 address"
    if address.teredo is not None:
        return "a Teredo address"
    return "an IPv4-compatible address"
