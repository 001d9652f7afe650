"""`run` and the account's lines: the per-line plan it sets out with, and the lines check."""

from __future__ import annotations

import json
from pathlib import Path

from batcher.sandbox import RunningSandbox
from tests.runs import LINE_A, LINE_B, cli_env, direct_rows, recipient, run_cli, sheet


def test_run_json_has_the_plan_it_set_out_with(box: RunningSandbox, tmp_path: Path) -> None:
    """run --json: "lines" counts what this run was to send, at the pace given."""
    rows = [*direct_rows(5), [LINE_A, recipient(0), "again"]]
    path = sheet(tmp_path / "in.csv", rows)
    args = ["run", str(path), "--yes", "--json", "--rate", "0", "--line-daily", "2"]
    done = run_cli(args, cli_env(box))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["lines"] == [
        {"line": LINE_A, "first_touches": 3, "follow_ups": 1, "estimate_seconds": 86_400},
        {"line": LINE_B, "first_touches": 2, "follow_ups": 0, "estimate_seconds": 600},
    ]
    assert summary["line_pace"] == {"gap_seconds": 600, "daily": 2, "assumed": ["gap"]}
    again = json.loads(run_cli(args, cli_env(box)).stdout)
    assert again["lines"] == []  # nothing left to send
