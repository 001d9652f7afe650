"""The cells of a results CSV: escaped so no spreadsheet runs them, read back exactly.

A spreadsheet evaluates a CSV cell that starts with `=`, `+`, `-`, `@`, a tab or
a CR (OWASP CSV injection), so the results writer puts an apostrophe before
such a cell, unless it is a phone number (`+1 415 555 1234`), which is written
as it is so that the sheet stays usable. Reading a results CSV back removes
that apostrophe again. The two are exact inverses for every text: a cell that
already starts with an apostrophe gets one more, or `'=x` written as it is
would read back as `=x`, a different text with a different idempotency key,
and its recipient would get a second, altered message.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batcher.columns import ColumnMap

# The first characters of every cell escape_csv_cell changes: the writer tests this
# inline, so that the common cell costs no function call.
ESCAPED_START = frozenset("=+-@\t\r'")
_PHONE_LIKE = re.compile(r"\+[\d\s().\-;,|/+]*")


def _needs_escape(value: str) -> bool:
    return value[:1] in ESCAPED_START and not _PHONE_LIKE.fullmatch(value)


def escape_csv_cell(value: str) -> str:
    """The cell as a results CSV holds it: an apostrophe first where one is needed."""
    return "'" + value if _needs_escape(value) else value


def unescape_csv_cell(cell: str) -> str:
    """The text a results CSV cell was written for: `unescape(escape(s)) == s` for every s."""
    # Only what escape_csv_cell makes is undone: an apostrophe before a text it escapes.
    # Any other cell, "'x" or "'+1 415 555 1234" say, cannot come from it and stays.
    return cell[1:] if cell[:1] == "'" and _needs_escape(cell[1:]) else cell


def holds_escaped_cells(kind: str, columns: ColumnMap) -> bool:
    """Whether a sheet's cells are escaped: a results CSV (a CSV with a `status` column).

    XLSX results are never escaped (every cell is a string cell), so a text such as
    `'=x` in an XLSX sheet means just that.
    """
    return kind == "csv" and columns.is_results_sheet
