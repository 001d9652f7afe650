"""Media cells: what they name, and what must never leave the machine."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from pathlib import Path

import pytest

from batcher.media import MediaKind, MediaProblem, check_media, kind_of, why_not_public
from tests.media_files import JPEG_HEAD, PDF, PNG, write


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("att_8f2c1d", MediaKind.ATTACHMENT),
        ("0f2d3c1a-8b4e-4f6a-90d2-1a3b4c5d6e7f", MediaKind.ATTACHMENT),
        ("banner.png", MediaKind.FILE),
        ("images/banner", MediaKind.FILE),
        ("images\\banner.png", MediaKind.FILE),
        ("https://example.com/a.png", MediaKind.URL),
        ("http://example.com/a.png", MediaKind.URL),
        ("file:///etc/passwd", MediaKind.URL),
    ],
)
def test_kind_of(value: str, kind: MediaKind) -> None:
    """An attachment id, a path or a URL, told apart by their shape."""
    assert kind_of(value) is kind


def test_file_inside_the_folder(tmp_path: Path) -> None:
    """A file beside the sheet: its content hash is its reference; type and size known."""
    write(tmp_path / "img" / "banner.png", PNG)
    media = check_media("img/banner.png", tmp_path)
    assert media.ref == f"sha256:{hashlib.sha256(PNG).hexdigest()}"
    assert (media.content_type, media.size) == ("image/png", len(PNG))
    assert check_media("img\\banner.png", tmp_path).ref == media.ref


def test_same_content_same_ref_whatever_the_name(tmp_path: Path) -> None:
    """Two names for the same bytes are one upload."""
    write(tmp_path / "a.png", PNG)
    write(tmp_path / "b.png", PNG)
    assert check_media("a.png", tmp_path).ref == check_media("b.png", tmp_path).ref


@pytest.mark.parametrize(
    ("setup", "value", "message"),
    [
        ("none", "missing.png", "'missing.png' does not exist in"),
        ("dir", "photos.png", "is not a file"),
        ("none", "../secret.png", "leads outside the sheet's folder"),
        ("none", "img/../../secret.png", "leads outside the sheet's folder"),
        ("none", "/etc/passwd.png", "is an absolute path"),
        ("none", "C:\\Users\\me\\id_rsa.png", "is an absolute path"),
        ("none", "~/.ssh/id_rsa.png", "is an absolute path"),
        ("link", "innocent.png", "leads outside the sheet's folder"),
        ("key", "photo.jpg", "does not hold what its name says (image/jpeg)"),
        ("text", "notes.txt", "is a .txt, which Chert does not send. Accepted: JPEG, PNG"),
        ("huge", "film.mp4", "is 105 MB; Chert takes at most 100 MB"),
    ],
)
def test_refusals(tmp_path: Path, setup: str, value: str, message: str) -> None:
    """Every way a media cell could send the wrong thing is refused, saying why."""
    folder = tmp_path / "sheet"
    folder.mkdir()
    secret = write(tmp_path / "secret.png", PNG)
    if setup == "dir":
        (folder / value).mkdir()
    elif setup == "link":
        os.symlink(secret, folder / value)
    elif setup == "key":
        write(folder / value, b"-----BEGIN OPENSSH PRIVATE KEY-----\n")
    elif setup == "text":
        write(folder / value, b"hello")
    elif setup == "huge":
        with (folder / value).open("wb") as stream:
            stream.truncate(105 * 1000 * 1000)
    with pytest.raises(MediaProblem, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_media(value, folder)


HARD_LINK = (
    "'{name}' is a hard link (one of 2 names for the same file): it may be a private file "
    "from outside the sheet's folder ({folder}), linked in. Copy the file into the folder "
    "instead of linking it, or pass --allow-hardlinks."
)


@pytest.mark.parametrize("target", ["../secret.png", "img/original.png"])
def test_hard_links_refused(tmp_path: Path, target: str) -> None:
    """A hard link may be any file on the disk: refused, wherever its other name is."""
    folder = tmp_path / "sheet"
    original = write(folder / target, PNG)
    os.link(original, folder / "photo.png")
    with pytest.raises(MediaProblem) as refused:
        check_media("photo.png", folder)
    assert str(refused.value) == HARD_LINK.format(name="photo.png", folder=folder.resolve())


def test_hard_links_allowed_when_asked(tmp_path: Path) -> None:
    """With allow_hardlinks, a hard link is sent like any other file."""
    folder = tmp_path / "sheet"
    folder.mkdir()
    os.link(write(tmp_path / "secret.png", PNG), folder / "p.png")
    media = check_media("p.png", folder, allow_hardlinks=True)
    assert (media.kind, media.content_type, media.size) == (MediaKind.FILE, "image/png", len(PNG))


def test_symbolic_link_inside_to_a_hard_link(tmp_path: Path) -> None:
    """A symbolic link is judged by the file it leads to."""
    original = write(tmp_path / "sheet" / "img" / "a.png", PNG)
    os.link(original, tmp_path / "sheet" / "b.png")
    (tmp_path / "sheet" / "c.png").symlink_to("img/a.png")
    with pytest.raises(MediaProblem, match=re.escape("'c.png' is a hard link")):
        check_media("c.png", tmp_path / "sheet")


@pytest.mark.parametrize(
    ("name", "data"), [("a.jpg", JPEG_HEAD), ("a.jpeg", JPEG_HEAD), ("doc.pdf", PDF)]
)
def test_accepted_types(tmp_path: Path, name: str, data: bytes) -> None:
    """Real images and documents pass."""
    write(tmp_path / name, data)
    assert check_media(name, tmp_path).kind is MediaKind.FILE


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/a.png", "is not an https:// URL"),
        ("ftp://example.com/a.png", "is not an https:// URL"),
        ("file:///etc/passwd", "is not an https:// URL"),
        ("https://127.0.0.1/a.png", "a loopback address"),
        ("https://[::1]/a.png", "a loopback address"),
        ("https://10.1.2.3/a.png", "a private address"),
        ("https://192.168.1.10/a.png", "a private address"),
        ("https://169.254.169.254/latest/meta-data", "a link-local address"),
        ("https://0.0.0.0/a.png", "address"),
        ("https://localhost/a.png", "a loopback address"),
        (
            "https://[64:ff9b::7f00:1]/a.png",
            "'https://[64:ff9b::7f00:1]/a.png' points to 64:ff9b::7f00:1, a NAT64 address for "
            "127.0.0.1, a loopback address. Only media on the public internet is fetched.",
        ),
        (
            "https://[2002:7f00:1::]/a.png",
            "points to 2002:7f00:1::, a 6to4 address for 127.0.0.1, a loopback address.",
        ),
        (
            "https://192.0.0.8/a.png",
            "points to 192.0.0.8, an address for IETF protocol assignments.",
        ),
        ("https://[::ffff:10.0.0.1]/a.png", "an IPv4-mapped address for 10.0.0.1, a private"),
        ("https://224.0.0.251/a.png", "points to 224.0.0.251, a multicast address."),
    ],
)
def test_url_refusals(url: str, message: str) -> None:
    """Only https to public addresses; no request is made to find out."""
    with pytest.raises(MediaProblem, match=re.escape(message)):
        check_media(url, Path("."))


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("8.8.8.8", ""),
        ("2606:4700:4700::1111", ""),
        ("::ffff:8.8.8.8", ""),  # an IPv4 address written the IPv6 way
        ("64:ff9b::808:808", ""),  # NAT64 to a public address
        ("2002:808:808::1", ""),  # 6to4 from a public address
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("0.1.2.3", "a 'this network' address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("100.64.0.1", "a shared address (carrier-grade NAT)"),
        ("192.0.0.8", "an address for IETF protocol assignments"),
        ("192.0.0.170", "an address for IETF protocol assignments"),
        ("192.0.2.1", "a documentation address"),
        ("198.51.100.1", "a documentation address"),
        ("203.0.113.1", "a documentation address"),
        ("192.88.99.1", "a 6to4 relay anycast address"),
        ("198.18.0.1", "a benchmarking address"),
        ("198.19.255.255", "a benchmarking address"),
        ("224.0.0.1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        ("fe80::1", "a link-local address"),
        ("fc00::1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("fec0::1", "a site-local address"),
        ("ff02::1", "a multicast address"),
        ("ff0e::1", "a multicast address"),
        ("100::1", "a private address"),  # discard-only
        ("2001:db8::1", "a documentation address"),
        ("3fff::1", "a documentation address"),
        ("5f00::1", "a reserved address"),  # SRv6
        ("64:ff9b:1::1", "a local-use NAT64 address"),
        ("2001:2::1", "an address for IETF protocol assignments"),
        ("::ffff:127.0.0.1", "an IPv4-mapped address for 127.0.0.1, a loopback address"),
        (
            "::ffff:192.0.0.8",
            "an IPv4-mapped address for 192.0.0.8, an address for IETF protocol assignments",
        ),
        ("::127.0.0.1", "an IPv4-compatible address for 127.0.0.1, a loopback address"),
        ("::10.0.0.1", "an IPv4-compatible address for 10.0.0.1, a private address"),
        ("64:ff9b::7f00:1", "a NAT64 address for 127.0.0.1, a loopback address"),
        ("64:ff9b::a9fe:a9fe", "a NAT64 address for 169.254.169.254, a link-local address"),
        (
            "64:ff9b::c000:8",
            "a NAT64 address for 192.0.0.8, an address for IETF protocol assignments",
        ),
        ("2002:7f00:1::", "a 6to4 address for 127.0.0.1, a loopback address"),
        ("2002:c0a8:101::1", "a 6to4 address for 192.168.1.1, a private address"),
        ("2002:6440:1::", "a 6to4 address for 100.64.0.1, a shared address (carrier-grade NAT)"),
        # Teredo: server 65.54.227.120, client 192.0.2.45 (RFC 4380's example)
        (
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "a Teredo address for 192.0.2.45, a documentation address",
        ),
        ("2001:0:808:808:0:0:f7f7:f7f7", "an address for IETF protocol assignments"),
    ],
)
def test_why_not_public(address: str, why: str) -> None:
    """Only addresses on the public internet, whatever IPv4 address an IPv6 one carries."""
    assert why_not_public(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://ana:hunter2@example.com/a.png", "https://***@example.com/a.png"),
        ("https://ana@example.com/a.png", "https://***@example.com/a.png"),
        ("https://:hunter2@example.com/a.png", "https://***@example.com/a.png"),
        ("https://@example.com/a.png", "https://***@example.com/a.png"),
        (
            "https://ana:hun@ter2@example.com:8443/a.png?x=@",
            "https://***@example.com:8443/a.png?x=@",
        ),
        ("http://ana:hunter2@example.com/a.png", "http://***@example.com/a.png"),
        ("https://ana:hunter2@[::1/a.png", "https://***@[::1/a.png"),
        ("HTTPS://ana:hunter2@127.0.0.1/a.png", "HTTPS://***@127.0.0.1/a.png"),
    ],
)
def test_credentials_in_a_url(url: str, shown: str) -> None:
    """A URL with a user name or password is refused first, and never shown with them."""
    with pytest.raises(MediaProblem) as refused:
        check_media(url, Path("."))
    assert str(refused.value) == (
        f"{shown!r} holds a user name or password (shown as ***), and media URLs are fetched "
        "without credentials: use a link that needs none, or save the file in the sheet's "
        "folder and name it instead."
    )
    assert refused.value.shown == shown
    assert "hunter2" not in str(refused.value)


def test_credentials_refused_even_where_loopback_is_allowed() -> None:
    """The test-only loopback option lets no credentials through either."""
    with pytest.raises(MediaProblem, match="holds a user name or password"):
        check_media("http://ana:hunter2@127.0.0.1:9/a.png", Path("."), allow_loopback=True)


@pytest.mark.parametrize("url", ["https://8.8.8.8/a@b.png", "https://[2606:4700::1111]/?to=a@b"])
def test_an_at_sign_after_the_host_is_no_credential(url: str) -> None:
    """An @ in a URL's path or query is part of what is fetched, not a user name."""
    assert check_media(url, Path(".")).location == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://127.1/a.png", "points to 127.0.0.1, a loopback address"),
        ("https://2130706433/a.png", "points to 127.0.0.1, a loopback address"),
        ("https://0x7f000001/a.png", "points to 127.0.0.1, a loopback address"),
        ("https://[64:ff9b::7f00:1]/a.png", "a NAT64 address for 127.0.0.1"),
        ("https://10.0.0.1:8443/a.png", "points to 10.0.0.1, a private address"),
        ("https://localhost/a.png", "points to 127.0.0.1, a loopback address"),
        ("https://LOCALHOST./a.png", "points to 127.0.0.1, a loopback address"),
    ],
)
def test_addresses_checked_without_looking_names_up(url: str, message: str) -> None:
    """Addresses written in a URL, in any form the system reads as one, need no DNS."""
    with pytest.raises(MediaProblem, match=re.escape(message)):
        check_media(url, Path("."), resolve_names=False)


def test_host_names_are_left_for_sending() -> None:
    """Without resolve_names, a name is not looked up: one that does not exist passes."""
    url = "https://media.invalid/a.png"  # .invalid never resolves (RFC 6761)
    assert check_media(url, Path("."), resolve_names=False).location == url
    with pytest.raises(
        MediaProblem, match=re.escape("the host 'media.invalid' cannot be looked up")
    ):
        check_media(url, Path("."))


@pytest.mark.parametrize("resolve_names", [True, False])
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://[::1/a.png", "'https://[::1/a.png' is not a well-formed URL (Invalid IPv6 URL)"),
        ("https://example.com:99999/a.png", "is not a well-formed URL (Port out of range"),
        ("https://example.com:https/a.png", "is not a well-formed URL (Port could not be cast"),
        ("https://a..b/a.png", "'a..b' is not a valid host name"),
        (f"https://{'a' * 64}.com/a.png", "is not a valid host name"),
    ],
)
def test_malformed_urls(url: str, message: str, resolve_names: bool) -> None:
    """A URL that cannot be read is a refusal naming it, never a traceback."""
    with pytest.raises(MediaProblem, match=re.escape(message)):
        check_media(url, Path("."), resolve_names=resolve_names)


def test_loopback_allowed_only_when_asked() -> None:
    """The test-only option lets plain http reach this machine, nothing else."""
    media = check_media("http://127.0.0.1:9/a.png", Path("."), allow_loopback=True)
    assert media.kind is MediaKind.URL
    with pytest.raises(MediaProblem, match="private"):
        check_media("https://10.0.0.1/a.png", Path("."), allow_loopback=True)
