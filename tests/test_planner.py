"""Planning a row at a time gives the same plan as planning the sheet at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from batcher.columns import map_columns
from batcher.loading import load_sheet
from batcher.planning import _URL_IN_TEXT, Planner, _has_web_address, plan_rows
from batcher.validation import Rules, validate_row
from tests.sheets import write_csv

SENDER = "+15555550100"


def test_planner_row_by_row(tmp_path: Path) -> None:
    """Chats, splits, duplicates, invalid rows and keys: row by row as at once."""
    rows = [
        ["From", "To", "Subject", "Text", "Link"],
        [SENDER, "4155551234", "", "hi", ""],
        [SENDER, "4155551234; 4155552671", "Crew", "hi all", "https://x.io"],
        [SENDER, "4155551234", "", "hi", ""],
        [SENDER, "415-555-12", "", "bad", ""],
        [SENDER, "4155552671; 4155551234", "", "again", "https://y.io"],
        [SENDER, "4155557788", "", "see https://x.io", ""],
    ]
    sheet = load_sheet(write_csv(tmp_path / "in.csv", rows))
    columns = map_columns(sheet.headers, where="in.csv", has_default_sender=False)
    checked = [validate_row(row, columns, Rules()) for row in sheet.rows]
    for duplicates in (False, True):
        at_once = plan_rows(checked, campaign="c", allow_duplicates=duplicates)
        planner = Planner(campaign="c", allow_duplicates=duplicates)
        plans = [planner.plan(row) for row in checked]
        assert plans == list(at_once.rows)
        assert planner.finish(plans) == at_once
        assert [str(plan.status) for plan in plans][:4] == [
            "pending",
            "pending",
            "pending" if duplicates else "duplicate",
            "invalid",
        ]


@pytest.mark.parametrize(
    "text",
    [
        "see https://x.io",
        "see HTTP://x.io",
        "WwW.x.io",
        "go to www.x.io now",
        "http\u017f://x.io",  # a long s matches s when case is ignored
        "https:// x.io",
        "www. x",
        "ftp://x.io",
        "a.b.c, no address",
        "Grüße ☕ İstanbul",
        "",
    ],
)
def test_web_address_shortcut(text: str) -> None:
    """The substring shortcut before the search never changes its answer."""
    assert _has_web_address(text) == (_URL_IN_TEXT.search(text) is not None)
