"""Media cells: what they name, and what must never leave the machine."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from batcher.media import MediaKind, MediaProblem, check_media, kind_of
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
    ],
)
def test_url_refusals(url: str, message: str) -> None:
    """Only https to public addresses; no request is made to find out."""
    with pytest.raises(MediaProblem, match=message):
        check_media(url, Path("."))


def test_loopback_allowed_only_when_asked() -> None:
    """The test-only option lets plain http reach this machine, nothing else."""
    media = check_media("http://127.0.0.1:9/a.png", Path("."), allow_loopback=True)
    assert media.kind is MediaKind.URL
    with pytest.raises(MediaProblem, match="private"):
        check_media("https://10.0.0.1/a.png", Path("."), allow_loopback=True)
