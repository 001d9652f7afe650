"""Results and journal that cannot be written are found before the first request, not after."""

from __future__ import annotations

import csv
import os
import shlex
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from tests.runs import (
    assert_exactly_once,
    cli_env,
    direct_rows,
    ledger,
    run_cli,
    sheet,
    start_cli,
    wait_for_deliveries,
)

AS_ROOT = os.geteuid() == 0
needs_permissions = pytest.mark.skipif(AS_ROOT, reason="root writes through any permission")


@pytest.fixture
def box() -> Iterator[RunningSandbox]:
    """A plain sandbox: no limits, no faults."""
    with running_sandbox(SandboxConfig()) as running:
        yield running


def statuses(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return [row["status"] for row in csv.DictReader(stream)]


def folder_at(path: Path) -> None:
    path.mkdir()


def file_at(path: Path) -> None:
    path.write_text("notes\n", encoding="utf-8")


def read_only_folder(path: Path) -> None:
    path.mkdir()
    path.chmod(0o555)


def read_only_file(path: Path) -> None:
    path.write_text("status\n", encoding="utf-8")
    path.chmod(0o444)


Block = Callable[[Path], None]
BLOCKED: list[tuple[str, str, Block, str, str]] = [
    # option ("" for the default path), its value under tmp_path, what is put where, the error
    ("", "in.results.csv", folder_at, "in.results.csv", "the results sheet {p} is a folder."),
    (
        "",
        "in.results.journal.sqlite",
        folder_at,
        "in.results.journal.sqlite",
        "the journal {p} is a folder.",
    ),
    (
        "--out",
        "notes.txt/r.csv",
        file_at,
        "notes.txt",
        "the results sheet {p} cannot be written: {t}/notes.txt is a file, not a folder.",
    ),
    (
        "--out",
        "missing/r.csv",
        lambda path: None,
        "missing",
        "the results sheet {p} cannot be written: the folder {t}/missing does not exist.",
    ),
    (
        "--journal",
        "notes.txt/j.sqlite",
        file_at,
        "notes.txt",
        "the journal {p} cannot be written: {t}/notes.txt is a file, not a folder.",
    ),
]
PERMISSIONS: list[tuple[str, str, Block, str, str]] = [
    (
        "--out",
        "ro/r.csv",
        read_only_folder,
        "ro",
        "the results sheet {p} cannot be written: the folder {t}/ro is read-only",
    ),
    (
        "--out",
        "r.csv",
        read_only_file,
        "r.csv",
        "the results sheet {p} cannot be replaced: the file is read-only.",
    ),
    (
        "--journal",
        "ro/j.sqlite",
        read_only_folder,
        "ro",
        "the journal {p} cannot be written: the folder {t}/ro is read-only",
    ),
]


@pytest.mark.parametrize(
    ("option", "value", "block", "blocked", "message"),
    [
        *BLOCKED,
        *(pytest.param(*case, marks=needs_permissions) for case in PERMISSIONS),
    ],
)
def test_blocked_output_is_refused_before_sending(
    box: RunningSandbox,
    tmp_path: Path,
    option: str,
    value: str,
    block: Block,
    blocked: str,
    message: str,
) -> None:
    """Exit 2 naming what is in the way; nothing sent, no journal made."""
    path = sheet(tmp_path / "in.csv", direct_rows(3))
    block(tmp_path / blocked)
    target = tmp_path / value
    chosen = [option, str(target)] if option else []
    done = run_cli(["run", str(path), "--yes", *chosen], cli_env(box))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Error: " + message.format(p=target, t=tmp_path) in done.stderr
    assert "Traceback" not in done.stderr
    assert ledger(box) == []
    assert not [p for p in tmp_path.rglob("*.journal.sqlite") if p.is_file()]


def test_results_unwritable_after_sending_exit_3_and_say_how_to_get_them(
    box: RunningSandbox, tmp_path: Path
) -> None:
    """Blocked mid-run: how many went out, that the journal has them, a command for the sheet."""
    path = sheet(tmp_path / "in.csv", direct_rows(40))
    results = tmp_path / "in.results.csv"
    journal = tmp_path / "in.results.journal.sqlite"
    process = start_cli(["run", str(path), "--yes", "--rate", "20"], cli_env(box))
    wait_for_deliveries(box, 2)
    results.mkdir()  # another program puts a folder where the results go
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 3, stdout + stderr
    assert "Traceback" not in stderr
    assert f"Error: could not write the results to {results} (" in stderr
    assert f"40 messages went out in this run; the journal {journal} has them" in stderr
    elsewhere = tmp_path / "in.results-2.csv"
    command = f"chert-batch validate {path} --journal {journal} --out {elsewhere}"
    assert f"Get the results sheet elsewhere without sending anything: {command}" in stderr
    done = run_cli(shlex.split(command)[1:], cli_env(box))
    assert done.returncode == 0, done.stdout + done.stderr
    assert statuses(elsewhere) == ["sent"] * 40
    assert_exactly_once(box, 40)


def as_unprivileged(check: Callable[[], str]) -> str:
    """Run `check` as an ordinary user: in a forked child that drops root, when root."""
    if not AS_ROOT:
        return check()
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.close(reader)
        try:
            os.setgid(65534)
            os.setuid(65534)  # nobody: permissions now apply
            said = check()
        except BaseException as error:
            said = f"child failed: {error!r}"
        os.write(writer, said.encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as stream:
        said = stream.read().decode()
    os.waitpid(child, 0)
    return said


@pytest.mark.parametrize(
    ("block", "name", "message"),
    [
        (read_only_folder, "ro/r.csv", "the results sheet {p} cannot be written: the folder "),
        (
            read_only_file,
            "r.csv",
            "the results sheet {p} cannot be replaced: the file is read-only.",
        ),
    ],
)
def test_permissions_are_checked(block: Block, name: str, message: str) -> None:
    """A read-only folder or results file is named, also when the tests run as root."""
    from batcher.errors import OutputError
    from batcher.results import check_writable

    # Outside pytest's own folder, which only its owner may enter.
    folder = Path(tempfile.mkdtemp(prefix="chert-batch-permissions-"))
    folder.chmod(0o777)
    target = folder / name
    block(target if name == "r.csv" else target.parent)

    def check() -> str:
        try:
            check_writable(target, "results sheet", "--out")
        except OutputError as error:
            return error.message
        return "writable"

    try:
        assert as_unprivileged(check).startswith(message.format(p=target))
    finally:
        for path in (folder / "ro", target):
            if path.exists():
                path.chmod(0o755)
        shutil.rmtree(folder)
