"""`chert-batch validate` as a person meets it: the summary, the JSON and the exit codes."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from batcher.cli import main
from tests.runs import recipient
from tests.sheets import write_csv, write_xlsx

SENDER = "+15555550100"
GOOD = [["From", "To", "Text"], [SENDER, "4155551234", "hi"], [SENDER, "4155552671", "yo"]]
# The same rows with country codes: valid for any --region.
WORLDWIDE = [
    ["From", "To", "Text"],
    [SENDER, "+14155551234", "hi"],
    [SENDER, "+447911123456", "yo"],
]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_all_good_exits_0(tmp_path: Path) -> None:
    """Every row can be sent: exit 0, a count, where the results are, and the next step."""
    path = write_csv(tmp_path / "in.csv", GOOD)
    code, output = invoke("validate", str(path))
    assert code == 0
    assert f"{path}: 2 rows checked. Nothing was sent." in output
    assert "  pending          2  ready to send" in output
    assert f"Results: {tmp_path / 'in.results.csv'}" in output
    assert f"Next: send with: chert-batch run {path}" in output


def test_problems_exit_1_with_row_column_value_and_fix(tmp_path: Path) -> None:
    """Invalid rows: exit 1, counts by code, and each problem with row, column and fix."""
    path = write_csv(tmp_path / "in.csv", [*GOOD, [SENDER, "415-555-12", "hi"]])
    code, output = invoke("validate", str(path))
    assert code == 1
    assert "  1003             1  invalid phone number" in output
    assert (
        "  row 4, column To: '415-555-12' is not a valid phone number. Numbers without a "
        "country code are read as US numbers (--region US)"
    ) in output


def test_json_summary(tmp_path: Path) -> None:
    """--json prints the summary as JSON for scripts."""
    path = write_csv(tmp_path / "in.csv", [*GOOD, [SENDER, "", "hi"]])
    code, output = invoke("validate", str(path), "--json")
    summary = json.loads(output)
    assert code == 1
    assert summary["by_status"] == {
        "sent": 0,
        "invalid": 1,
        "failed": 0,
        "pending": 2,
        "duplicate": 0,
        "skipped": 0,
        "suppressed": 0,
    }
    assert summary["problems"][0]["row"] == 4
    assert summary["problems"][0]["code"] == 1001


def test_options_reach_the_plan(tmp_path: Path) -> None:
    """--from, --region, --out and --sheet-less CSV work together."""
    path = write_csv(tmp_path / "in.csv", [["To", "Text"], ["020 7946 0958", "hi"]])
    out = tmp_path / "out.csv"
    code, _ = invoke("validate", str(path), "--from", SENDER, "--region", "gb", "--out", str(out))
    assert code == 0
    assert out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--region", "XX"], "'XX' is not a region code"),
        (["--from", "nope"], "'nope' is not a phone number"),
        (["--sheet", "Leads"], "--sheet 'Leads' was given, but"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    """Wrong options are usage errors: exit 2 and a message saying what is wrong."""
    path = write_csv(tmp_path / "in.csv", GOOD)
    code, output = invoke("validate", str(path), *args)
    assert code == 2
    assert message in output


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([["From", "Text"], [SENDER, "hi"]], "no recipients column"),
        ([[SENDER, "4155551234", "hi"]], "the first row holds data"),
    ],
)
def test_unusable_sheet_exits_2(tmp_path: Path, rows: list[list[str]], message: str) -> None:
    """A sheet that cannot be used at all: exit 2, one message, no traceback."""
    path = write_csv(tmp_path / "in.csv", rows)
    code, output = invoke("validate", str(path))
    assert code == 2
    assert message in output
    assert "Traceback" not in output


def test_missing_file_exits_2(tmp_path: Path) -> None:
    """A file that is not there is a usage error."""
    code, output = invoke("validate", str(tmp_path / "nope.xlsx"))
    assert code == 2
    assert "does not exist" in output


def next_line(output: str) -> str:
    """The summary's last line: the command to send what was checked."""
    last = output.strip().splitlines()[-1]
    assert last.startswith("Next: send with: "), output
    return last.removeprefix("Next: send with: ")


@pytest.mark.parametrize(
    ("args", "repeated"),
    [
        ([], []),
        (["--json"], None),  # no summary to repeat them in
        (["--region", "gb"], ["--region", "GB"]),
        (["--from", "(555) 555-0100"], ["--from", SENDER]),
        (["--campaign", "spring launch"], ["--campaign", "spring launch"]),
        (["--allow-duplicates", "--region", "DE"], ["--region", "DE", "--allow-duplicates"]),
    ],
)
def test_next_repeats_what_changes_the_plan(
    tmp_path: Path, args: list[str], repeated: list[str] | None
) -> None:
    """The pasted command sends exactly what validate checked: same options, shell-quoted."""
    path = write_csv(tmp_path / "in put.csv", WORLDWIDE)
    code, output = invoke("validate", str(path), *args)
    assert code == 0
    if repeated is None:
        assert "Next:" not in output
    else:
        assert next_line(output) == shlex.join(["chert-batch", "run", str(path), *repeated])


# A value for each option validate and run share; a new shared option must be added here.
SHARED_VALUES: dict[str, list[str]] = {
    "--out": ["{tmp}/checked.xlsx"],
    "--region": ["GB"],
    "--from": [SENDER],
    "--sheet": ["Leads"],
    "--include-hidden": [],
    "--campaign": ["spring"],
    "--allow-duplicates": [],
    "--allow-hardlinks": [],
    "--journal": ["{tmp}/checked.journal.sqlite"],
    "--allow-loopback-media": [],
    "--line-gap": ["300"],
    "--line-daily": ["20"],
    "--template": ["{tmp}/message.txt"],
    "--template-replaces": ["Text"],
    "--suppress": ["{tmp}/dnc.txt"],
}


def test_every_shared_option_is_carried_to_run(tmp_path: Path) -> None:
    """Each option validate shares with run (but --json, --preview) reaches the Next command."""
    validate, run = main.commands["validate"], main.commands["run"]
    shared = {
        param.opts[0]
        for param in validate.params
        if isinstance(param, click.Option) and param.name in {p.name for p in run.params}
    }
    assert shared - {"--json", "--preview"} == set(SHARED_VALUES)
    path = write_xlsx(tmp_path / "in.xlsx", WORLDWIDE, sheet="Leads")
    (tmp_path / "message.txt").write_text("Hello", encoding="utf-8")
    (tmp_path / "dnc.txt").write_text("+14155559999\n", encoding="utf-8")
    given = {
        option: [value.format(tmp=tmp_path) for value in values]
        for option, values in SHARED_VALUES.items()
    }
    code, output = invoke("validate", str(path), *[a for o, v in given.items() for a in (o, *v)])
    assert code == 0, output
    command = shlex.split(next_line(output))
    for option, values in given.items():
        at = command.index(option)
        assert command[at + 1 : at + 1 + len(values)] == values


OTHER = "+15555550101"


def campaign_sheet(path: Path) -> Path:
    """65 new chats and 2 follow-ups from one line, 1 new chat from another, 1 bad row."""
    rows = [[SENDER, recipient(n), f"Hello #{n}"] for n in range(65)]
    rows += [[SENDER, recipient(0), "And again"], [SENDER, recipient(1), "And again"]]
    rows += [[OTHER, recipient(100), "Hi"], [OTHER, "415-555-12", "Hi"]]
    return write_csv(path, [["From", "To", "Text"], *rows])


def test_validate_shows_the_plan_per_line_at_chert_documented_pace(tmp_path: Path) -> None:
    """Each line's new chats and follow-ups, and when its last new chat can go."""
    code, output = invoke("validate", str(campaign_sheet(tmp_path / "in.csv")))
    assert code == 1
    lines = output.splitlines()
    at = lines.index("Per line (if Chert refuses nothing):")
    assert lines[at + 1 : at + 4] == [
        f"  line {SENDER}: 65 new chats, 2 follow-ups; about 2 days 0 h 40 min at 30 a day, "
        "10 min apart",
        f"  line {OTHER}: 1 new chat, no follow-ups; right away",
        "  (Chert's documented pace for a line: 30 new chats a day, 10 min apart; "
        "--line-daily and --line-gap set yours.)",
    ]


@pytest.mark.parametrize(
    ("args", "said", "note"),
    [
        (
            ["--line-gap", "0.25", "--line-daily", "100"],
            "about 16 s at 100 a day, 0.25 s apart",
            None,
        ),
        (
            ["--line-gap", "3600"],
            "about 2 days 16 h 0 min at 30 a day, 1 h apart",
            "  (Chert's documented cap for a line: 30 new chats a day; --line-daily sets yours.)",
        ),
        (
            ["--line-daily", "1"],
            "about 64 days 0 h 0 min at 1 a day, 10 min apart",
            "  (Chert's documented gap for a line: 10 min apart; --line-gap sets yours.)",
        ),
    ],
)
def test_validate_plans_at_the_pace_given(
    tmp_path: Path, args: list[str], said: str, note: str | None
) -> None:
    """--line-gap / --line-daily set the pace; only what is not given is Chert's, and said so."""
    code, output = invoke("validate", str(campaign_sheet(tmp_path / "in.csv")), *args)
    assert code == 1  # the bad row
    lines = output.splitlines()
    at = lines.index("Per line (if Chert refuses nothing):")
    assert lines[at + 1] == f"  line {SENDER}: 65 new chats, 2 follow-ups; {said}"
    assert lines[at + 3] == (note if note is not None else "")
    assert lines[-1].endswith(shlex.join(args))  # and run plans the same


def test_validate_json_has_the_plan_per_line(tmp_path: Path) -> None:
    """--json: "lines" with each line's counts and estimate, and the pace it assumed."""
    path = campaign_sheet(tmp_path / "in.csv")
    code, output = invoke("validate", str(path), "--json", "--line-gap", "60")
    assert code == 1
    summary = json.loads(output)
    assert summary["lines"] == [
        {
            "line": SENDER,
            "first_touches": 65,
            "follow_ups": 2,
            "estimate_seconds": 2 * 86_400 + 240,
        },
        {"line": OTHER, "first_touches": 1, "follow_ups": 0, "estimate_seconds": 0},
    ]
    assert summary["line_pace"] == {"gap_seconds": 60, "daily": 30, "assumed": ["daily"]}


def test_validate_leaves_rows_a_journal_has_sent_out_of_the_plan(tmp_path: Path) -> None:
    """With a journal of a run that sent the first rows, only what is left is planned."""
    from batcher.client import Credentials
    from batcher.pipeline import JobOptions
    from batcher.running import RunOptions, Target, run_file
    from batcher.sandbox import SandboxConfig, running_sandbox
    from batcher.sending import SendConfig

    first = write_csv(
        tmp_path / "in.csv",
        [["From", "To", "Text"], *[[SENDER, recipient(n), "Hi"] for n in range(3)]],
    )
    with running_sandbox(SandboxConfig()) as box:
        options = RunOptions(job=JobOptions(path=first), send=SendConfig(rate=0))
        run_file(options, Target(box.base_url, Credentials(box.secret), "sandbox"))
    rows = [[SENDER, recipient(n), "Hi"] for n in range(5)] + [[SENDER, recipient(0), "More"]]
    write_csv(first, [["From", "To", "Text"], *rows])
    code, output = invoke("validate", str(first), "--json")
    assert code == 0
    assert json.loads(output)["lines"] == [
        {"line": SENDER, "first_touches": 2, "follow_ups": 1, "estimate_seconds": 600},
    ]
