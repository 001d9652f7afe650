"""Media over loopback: each content uploaded once, reruns upload nothing, refusals never sent."""

from __future__ import annotations

import csv
import http.server
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from batcher.client import Credentials
from batcher.media import MediaProblem
from batcher.pipeline import JobOptions, validate_file
from batcher.running import RunOptions, RunReport, Target, run_file
from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from batcher.sending import RetryPolicy, SendConfig
from batcher.uploading import _check_peer
from tests.media_files import PNG, write
from tests.runs import LINE_A, ledger, recipient, run_cli, stats
from tests.sheets import write_csv

REDIRECTS = {
    "/redirect": "https://10.0.0.1/banner.png",
    "/redirect-nat64": "https://[64:ff9b::7f00:1]/banner.png",
    "/redirect-credentials": "http://ana:hunter2@{host}/banner.png",
}
QUICK = RetryPolicy(attempts=6, total_seconds=30, wait_initial=0.02, wait_max=0.2, wait_jitter=0.02)
HEADERS = ["From", "To", "Text", "Link", "Image"]


@pytest.fixture
def box() -> Iterator[RunningSandbox]:
    """A plain sandbox."""
    with running_sandbox(SandboxConfig()) as running:
        yield running


@pytest.fixture
def files() -> Iterator[str]:
    """A real HTTP server on loopback serving the tests' media, as a website would."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/banner.png":
                body, kind = PNG, "image/png"
            elif self.path in REDIRECTS:
                self.send_response(302)
                self.send_header("Location", REDIRECTS[self.path].format(host=self.headers["Host"]))
                self.end_headers()
                return
            else:
                body, kind = b"<html>not an image</html>", "text/html"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def send(box: RunningSandbox, path: Path, **job: object) -> RunReport:
    """Run a handoff file in-process against the sandbox, at full speed."""
    options = RunOptions(
        job=JobOptions(path=path, **job),  # type: ignore[arg-type]
        send=SendConfig(rate=0, retry=QUICK),
    )
    return run_file(options, Target(box.base_url, Credentials(box.secret), "sandbox"))


def results(report: RunReport) -> list[dict[str, str]]:
    with report.output.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


def media_ids(box: RunningSandbox) -> list[str]:
    return [
        part["attachment_id"]
        for message in ledger(box)
        for part in message["parts"]
        if part["type"] == "media"
    ]


def test_shared_image_uploaded_once_and_never_again(box: RunningSandbox, tmp_path: Path) -> None:
    """Thirty rows sharing one image cost one upload; a rerun with more rows, none."""
    write(tmp_path / "img" / "banner.png", PNG)
    write(tmp_path / "same-bytes.png", PNG)
    rows = [[LINE_A, recipient(n), f"hi {n}", "", "img/banner.png"] for n in range(30)]
    path = write_csv(tmp_path / "in.csv", [HEADERS, *rows])
    report = send(box, path)
    assert [row["status"] for row in results(report)] == ["sent"] * 30
    assert stats(box)["uploads"] == 1
    ids = media_ids(box)
    assert len(ids) == 30
    assert len(set(ids)) == 1
    journal = sqlite3.connect(tmp_path / "in.results.journal.sqlite")
    assert journal.execute("SELECT count(*) FROM uploads").fetchone() == (1,)
    journal.close()
    more = rows + [[LINE_A, recipient(n), f"hi {n}", "", "same-bytes.png"] for n in range(30, 35)]
    write_csv(tmp_path / "in.csv", [HEADERS, *more])
    again = send(box, path)
    assert again.sent_now == 5
    assert stats(box)["uploads"] == 1
    assert set(media_ids(box)) == set(ids)


def test_group_with_an_image_sends_it_after_the_text(box: RunningSandbox, tmp_path: Path) -> None:
    """A group's first message is text only; the image follows in the same chat."""
    write(tmp_path / "banner.png", PNG)
    group = f"{recipient(1)};{recipient(2)}"
    path = write_csv(tmp_path / "in.csv", [HEADERS, [LINE_A, group, "Kickoff!", "", "banner.png"]])
    report = send(box, path)
    (row,) = results(report)
    assert row["status"] == "sent"
    first, second = ledger(box)
    assert [part["type"] for part in first["parts"]] == ["text"]
    assert [part["type"] for part in second["parts"]] == ["media"]
    assert first["chat_id"] == second["chat_id"] == row["chat_id"]
    assert row["message_id"] == f"{first['id']} {second['id']}"


def test_review_request_shape_in_a_direct_chat(box: RunningSandbox, tmp_path: Path) -> None:
    """Media, text and a rich link go together in a direct chat's first message."""
    write(tmp_path / "photo.png", PNG)
    headers = ["From", "To", "Image", "Text", "Link"]
    rows = [[LINE_A, recipient(3), "photo.png", "How did we do?", "https://example.com/review"]]
    send(box, write_csv(tmp_path / "in.csv", [headers, *rows]))
    (message,) = ledger(box)
    assert [part["type"] for part in message["parts"]] == ["media", "text", "rich_link"]


def test_media_url_downloaded_then_uploaded_once(
    box: RunningSandbox, tmp_path: Path, files: str
) -> None:
    """A URL's content is fetched, uploaded once, and shared by every row naming it."""
    rows = [[LINE_A, recipient(n), "hi", "", f"{files}/banner.png"] for n in range(5)]
    report = send(box, write_csv(tmp_path / "in.csv", [HEADERS, *rows]), allow_loopback_media=True)
    assert [row["status"] for row in results(report)] == ["sent"] * 5
    assert stats(box)["uploads"] == 1


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/not-an-image", "serves text/html, which Chert does not send"),
        ("/redirect", "points to 10.0.0.1, a private address"),
        ("/redirect-nat64", "a NAT64 address for 127.0.0.1, a loopback address"),
        (
            "/redirect-credentials",
            "'http://***@{host}/banner.png' holds a user name or password (shown as ***)",
        ),
    ],
)
def test_bad_media_url_fails_its_row(
    box: RunningSandbox, tmp_path: Path, files: str, path: str, message: str
) -> None:
    """What a URL turns out to serve is checked too; the row fails with the reason."""
    rows = [[LINE_A, recipient(1), "hi", "", f"{files}{path}"]]
    report = send(box, write_csv(tmp_path / "in.csv", [HEADERS, *rows]), allow_loopback_media=True)
    (row,) = results(report)
    assert row["status"] == "failed"
    assert message.format(host=files.removeprefix("http://")) in row["error_message"]
    assert "hunter2" not in row["error_message"]
    assert ledger(box) == []
    assert stats(box)["uploads"] == 0


def test_refusals_are_invalid_and_nothing_is_uploaded(box: RunningSandbox, tmp_path: Path) -> None:
    """Every refusal happens before any request; validate checks the same without uploading."""
    folder = tmp_path / "sheet"
    write(folder / "notes.txt", b"hello")
    write(tmp_path / "secret.png", PNG)
    (folder / "link.png").symlink_to(tmp_path / "secret.png")
    os.link(tmp_path / "secret.png", folder / "hard.png")
    refused = [
        "missing.png",
        "../secret.png",
        "/etc/passwd.png",
        "link.png",
        "hard.png",
        "notes.txt",
        "http://example.com/a.png",
        "https://192.168.0.10/a.png",
        "https://[::ffff:192.168.0.10]/a.png",
        "https://192.0.0.8/a.png",
        "https://ana:hunter2@example.com/a.png",
    ]
    rows = [[LINE_A, recipient(n), "hi", "", value] for n, value in enumerate(refused)]
    path = write_csv(folder / "in.csv", [HEADERS, *rows])
    checked = validate_file(JobOptions(path=path, out=folder / "checked.csv"))
    assert checked.by_code == {1002: len(refused)}
    report = send(box, path)
    assert [row["status"] for row in results(report)] == ["invalid"] * len(refused)
    assert all(row["error_message"].startswith("Image: ") for row in results(report))
    assert stats(box)["requests"] == 0
    assert stats(box)["uploads"] == 0


def test_unknown_attachment_id_is_refused_by_the_api(box: RunningSandbox, tmp_path: Path) -> None:
    """An attachment id is sent as is; one never uploaded fails with the API's 1002."""
    rows = [[LINE_A, recipient(1), "hi", "", "att_never_uploaded"]]
    (row,) = results(send(box, write_csv(tmp_path / "in.csv", [HEADERS, *rows])))
    assert (row["status"], row["error_code"]) == ("failed", "1002")


NOT_LOOKED_UP = (
    "Media URLs (1) are checked when sending: validate does not look up their hosts or "
    "download them."
)


def test_media_host_is_looked_up_only_when_sending(box: RunningSandbox, tmp_path: Path) -> None:
    """validate asks no DNS server and says so; run looks the host up and fails the row."""
    url = "https://media.invalid/banner.png"  # .invalid never resolves (RFC 6761)
    path = write_csv(tmp_path / "in.csv", [HEADERS, [LINE_A, recipient(1), "hi", "", url]])
    checked = run_cli(["validate", str(path)], dict(os.environ))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert NOT_LOOKED_UP in checked.stdout.splitlines()
    report = send(box, path)
    (row,) = results(report)
    assert row["status"] == "failed"
    assert row["error_message"].startswith("the host 'media.invalid' cannot be looked up (")
    assert report.exit_code == 1
    assert stats(box)["requests"] == 2  # the pull of opt-outs, the look at the lines, no send
    assert ledger(box) == []


def test_credentials_never_shown_back(tmp_path: Path) -> None:
    """A URL's password appears in no summary, no --json and no error message."""
    url = "https://ana:hunter2@example.com/a.png"
    path = write_csv(tmp_path / "in.csv", [HEADERS, [LINE_A, recipient(1), "hi", "", url]])
    checked = run_cli(["validate", str(path), "--json"], dict(os.environ))
    assert checked.returncode == 1
    (problem,) = json.loads(checked.stdout)["problems"]
    assert problem["value"] == "https://***@example.com/a.png"
    assert "hunter2" not in checked.stdout + checked.stderr
    summary = run_cli(["validate", str(path)], dict(os.environ)).stdout
    assert "row 2, column Image: 'https://***@example.com/a.png' holds a user name" in summary
    assert "hunter2" not in summary
    with (tmp_path / "in.results.csv").open(encoding="utf-8-sig", newline="") as stream:
        (row,) = csv.DictReader(stream)
    assert row["Image"] == url  # the input's own cell, kept as the user wrote it
    assert "hunter2" not in row["error_message"]


@pytest.mark.parametrize(
    "command", [["validate"], ["run", "--sandbox", "--yes", "--out", "{tmp}/sent.csv"]]
)
def test_allow_hardlinks_option(tmp_path: Path, command: list[str]) -> None:
    """Both commands refuse a hard-linked image unless --allow-hardlinks is given."""
    folder = tmp_path / "sheet"
    folder.mkdir()
    os.link(write(tmp_path / "elsewhere.png", PNG), folder / "p.png")
    path = write_csv(folder / "in.csv", [HEADERS, [LINE_A, recipient(1), "hi", "", "p.png"]])
    args = [part.format(tmp=tmp_path) for part in command] + [str(path)]
    refused = run_cli(args, dict(os.environ))
    assert refused.returncode == 1, refused.stderr
    assert "row 2, column Image: 'p.png' is a hard link (one of 2 names" in refused.stdout
    assert NOT_LOOKED_UP not in refused.stdout
    allowed = run_cli([*args, "--allow-hardlinks"], dict(os.environ))
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "hard link" not in allowed.stdout


def test_connected_address_is_checked_by_the_same_rule(files: str) -> None:
    """The address a download actually reached is judged like the URL's own."""
    with httpx.stream("GET", f"{files}/banner.png") as response:
        _check_peer(response, f"{files}/banner.png", allow_loopback=True)
        with pytest.raises(MediaProblem) as refused:
            _check_peer(response, f"{files}/banner.png", allow_loopback=False)
    assert str(refused.value) == (
        f"{files}/banner.png connected to 127.0.0.1, a loopback address. Only media on the "
        "public internet is fetched."
    )
