"""`chert-batch optouts` as a person types it, against a real sandbox on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from batcher.cli import main
from batcher.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from tests.replies import event_requests, reply
from tests.runs import cli_env, recipient, run_cli
from tests.sheets import write_csv, write_xlsx
from tests.test_docs import README

SAM = "+14155551234"


def optouts(*args: str, env: dict[str, str] | None = None) -> Result:
    """`chert-batch optouts ARGS` in this process, with its output and exit code."""
    return CliRunner().invoke(main, ["optouts", *args], env=env, catch_exceptions=False)


def listed() -> list[str]:
    """The opt-out list as `optouts list` prints it."""
    result = optouts("list")
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_a_pulled_stop_is_listed_and_stop_by_tomorrow_is_not(box: RunningSandbox) -> None:
    """Pull, in a subprocess as a shell starts it: the STOP sender is listed, and only they."""
    reply(box, SAM, "STOP").raise_for_status()
    reply(box, recipient(1), "stop by tomorrow").raise_for_status()
    done = run_cli(["optouts", "pull"], cli_env(box))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "1 new opt-out from 2 replies.\n"
    assert listed() == [SAM]


def test_pages_past_200_and_a_second_pull_reads_only_new_events(box: RunningSandbox) -> None:
    """201 replies take two pages; the next pull counts just the two replies sent since."""
    for n in range(201):
        reply(box, recipient(n), "Unsubscribe" if n in (0, 200) else "ok").raise_for_status()
    env = cli_env(box)
    first = optouts("pull", env=env)
    assert first.exit_code == 0, first.output
    assert first.output == "2 new opt-outs from 201 replies.\n"
    assert event_requests(box) == 2
    reply(box, recipient(7), "quit").raise_for_status()
    reply(box, recipient(0), "STOP").raise_for_status()
    second = optouts("pull", env=env)
    assert second.output == (
        "1 new opt-out from 2 replies.\n1 opt-out from numbers already on the list.\n"
    )
    assert listed() == [recipient(0), recipient(7), recipient(200)]


def test_pull_signs_with_hmac(tmp_path: Path) -> None:
    """`--auth hmac` with the tenant reads the event log as run sends: signed GETs."""
    with running_sandbox(SandboxConfig(tenant="acme")) as box:
        reply(box, SAM, "end").raise_for_status()
        result = optouts("pull", "--auth", "hmac", "--json", env=cli_env(box))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [entry["number"] for entry in report["added"]] == [SAM]
    assert report["added"][0]["source"] == f"reply to +15555550100 via {box.base_url} tenant=acme"
    assert report["replies"] == 1


def test_a_refused_pull_exits_1_with_the_code_and_no_secret(box: RunningSandbox) -> None:
    """A wrong secret: the API's code and what to do, no traceback, no secret."""
    done = run_cli(["optouts", "pull"], cli_env(box, CHERT_SIGNING_SECRET="wrong-" + box.secret))
    assert done.returncode == 1
    assert done.stderr.startswith("Error: the event log could not be read: HTTP 401 / 2004")
    assert "Check CHERT_SIGNING_SECRET, --auth and --tenant." in done.stderr
    assert "Traceback" not in done.stderr
    assert box.secret not in done.stdout + done.stderr


def test_pull_with_the_sandbox_needs_no_account() -> None:
    """`pull --sandbox` reads a sandbox of its own: nothing there, nothing added."""
    result = optouts("pull", "--sandbox", env={"CHERT_SIGNING_SECRET": ""})
    assert (result.exit_code, result.output) == (0, "0 new opt-outs from 0 replies.\n")


def test_add_remove_and_list_json() -> None:
    """Numbers typed every which way are stored E.164, listed, and taken off again."""
    assert optouts("add", "(415) 555-1234", "+1 415 555 2671").output == (
        "Added 2 numbers to the opt-out list.\n"
    )
    assert optouts("add", "415.555.1234").output == (
        "Added 0 numbers to the opt-out list; 1 was on it already.\n"
    )
    entries = json.loads(optouts("list", "--json").output)
    assert [entry["number"] for entry in entries] == [SAM, "+14155552671"]
    assert {entry["source"] for entry in entries} == {"added by hand"}
    assert all(len(entry["at"]) == len("2026-11-30T12:00:00Z") for entry in entries)
    assert optouts("remove", "4155551234", "+14155559999").output == (
        "Removed 1 number from the opt-out list; not on it: +14155559999.\n"
    )
    assert listed() == ["+14155552671"]


def test_add_national_numbers_for_a_region() -> None:
    """--region reads numbers without a country code."""
    assert optouts("add", "--region", "GB", "07911 123456").exit_code == 0
    assert listed() == ["+447911123456"]


@pytest.mark.parametrize("command", ["add", "remove"])
def test_a_bad_number_is_named_and_changes_nothing(command: str) -> None:
    """Exit 2, the value named, nothing added or removed."""
    optouts("add", SAM)
    result = optouts(command, "+14155552671", "12345")
    assert result.exit_code == 2
    assert "Error: '12345' is not a " in result.output
    assert "Nothing was changed." in result.output
    assert listed() == [SAM]


def test_import_a_csv_and_a_one_number_a_line_file(tmp_path: Path) -> None:
    """A CSV's phone column and a file of bare numbers both land on the list, with a source."""
    csv = write_csv(
        tmp_path / "dnc.csv", [["Name", "Phone"], ["Sam", "(415) 555-1234"], ["Ana", SAM]]
    )
    result = optouts("import", str(csv))
    assert result.output == "Imported 1 number from dnc.csv: 1 new, 0 on the list already.\n"
    bare = tmp_path / "numbers.txt"
    bare.write_text(f"{SAM}\n+1 415 555 2671\n\n415-555-7788\n", encoding="utf-8")
    result = optouts("import", str(bare))
    assert result.output == "Imported 3 numbers from numbers.txt: 2 new, 1 on the list already.\n"
    entries = json.loads(optouts("list", "--json").output)
    assert [(e["number"], e["source"]) for e in entries] == [
        (SAM, "imported from dnc.csv"),
        ("+14155552671", "imported from numbers.txt"),
        ("+14155557788", "imported from numbers.txt"),
    ]


def test_import_an_xlsx_for_a_region(tmp_path: Path) -> None:
    """An XLSX Mobile column, numeric cells included, read for --region."""
    path = write_xlsx(tmp_path / "dnc.xlsx", [["Mobile"], ["07911 123456"], [442079460958]])
    assert optouts("import", str(path), "--region", "GB").exit_code == 0
    assert listed() == ["+442079460958", "+447911123456"]


def test_import_with_bad_lines_imports_nothing(tmp_path: Path) -> None:
    """Bad numbers: exit 2, each named with its line and value; the list is untouched."""
    bare = tmp_path / "numbers.txt"
    bare.write_text(f"{SAM}\n12345\n+1 415 555 2671\nsam@example.com\n", encoding="utf-8")
    result = optouts("import", str(bare))
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0] == f"Error: {bare}: 2 numbers cannot be used, so nothing was imported:"
    assert lines[1].startswith("  line 2: '12345' is not a valid phone number.")
    assert lines[2].startswith("  line 4: 'sam@example.com' is not a phone number. It is an email")
    assert lines[3] == "Fix them (or delete those lines) and import again."
    assert "Traceback" not in result.output
    assert listed() == []


def test_import_without_a_phone_column_says_what_to_name_it(tmp_path: Path) -> None:
    """A file with no phone column and no bare numbers: exit 2 and the fix."""
    path = write_csv(tmp_path / "list.csv", [["Name", "Email"], ["Sam", "sam@example.com"]])
    result = optouts("import", str(path))
    assert result.exit_code == 2
    assert "no phone column. The header row has 'Name', 'Email'." in result.output


def test_every_optouts_command_and_option_is_documented() -> None:
    """Each `optouts` subcommand and its long options are named in the README."""
    group = main.commands["optouts"]
    assert isinstance(group, click.Group)
    for name, command in group.commands.items():
        assert f"`chert-batch optouts {name}" in README
        for param in command.params:
            for option in param.opts if isinstance(param, click.Option) else ():
                if option.startswith("--") and option != "--help":
                    assert f"`{option}" in README, f"optouts {name} {option}"


def test_an_unusable_home_is_an_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CHERT_BATCH_HOME naming a file, or a list file that is not SQLite: exit 2, the fix."""
    not_a_folder = tmp_path / "home"
    not_a_folder.write_text("", encoding="utf-8")
    monkeypatch.setenv("CHERT_BATCH_HOME", str(not_a_folder))
    result = optouts("list")
    assert result.exit_code == 2
    assert f"Error: the chert-batch home {not_a_folder} cannot be used" in result.output
    assert "Set CHERT_BATCH_HOME to a folder you can write to." in result.output
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "optouts.sqlite").write_text("not a database", encoding="utf-8")
    monkeypatch.setenv("CHERT_BATCH_HOME", str(folder))
    result = optouts("add", SAM)
    assert result.exit_code == 2
    assert "cannot be used (file is not a database)" in result.output


def test_the_optouts_module_may_be_imported_first() -> None:
    """Importing batcher.cli_optouts before batcher.cli still gives the whole command line."""
    code = "import batcher.cli_optouts; from batcher.cli import main; print(sorted(main.commands))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "'optouts'" in done.stdout
