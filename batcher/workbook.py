"""Reading an XLSX workbook: one sheet's cells as text, and which numbers show as scientific.

The cells are read with fastexcel (calamine), every column as text: polars' type
inference silently corrupts phone columns. calamine cannot see number formats,
so the few cells a spreadsheet shows in scientific notation (which has already
dropped digits) are found from the workbook's own XML.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path, PurePosixPath
from typing import NamedTuple
from xml.etree import ElementTree

import fastexcel

from batcher.errors import InputError

_MAIN_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
# Built-in number formats 11 (0.00E+00) and 48 (##0.0E+0) are scientific.
_SCIENTIFIC_BUILTIN = frozenset({11, 48})


class WorkbookSheet(NamedTuple):
    """One sheet as read: its name, its rows of text from row 1 on, and its scientific cells."""

    name: str
    # records[i] is sheet row i + 1; "" for an empty cell.
    records: list[tuple[str, ...]]
    # (row number, column index) of numeric cells displayed in scientific notation.
    scientific: frozenset[tuple[int, int]]


def read_sheet(path: Path, sheet: str | None) -> WorkbookSheet:
    """One sheet (the first, or the one named) of an XLSX file; InputError if it is unusable."""
    name, index, column_offset, records = _read_workbook(path, sheet)
    scientific = _scientific_cells(path, index, column_offset)
    if scientific:
        _as_shown(records, scientific)
    return WorkbookSheet(name, records, scientific)


def _as_shown(records: list[tuple[str, ...]], scientific: frozenset[tuple[int, int]]) -> None:
    """Scientific cells as the spreadsheet shows them (1.41555E+10), not as rounded digits.

    The digits calamine reads (14155500000) look like a real number, and a results
    sheet that wrote them back would turn a refused row into a sendable one, to a
    different person. Written as shown, the damage stays visible and refused.
    """
    for number, column in scientific:
        if number > len(records):
            continue
        cells = records[number - 1]
        if column < len(cells) and _is_number(cells[column]):
            shown = list(cells)
            shown[column] = f"{float(cells[column]):.5E}"
            records[number - 1] = tuple(shown)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_workbook(path: Path, sheet: str | None) -> tuple[str, int, int, list[tuple[str, ...]]]:
    """The sheet's name, index and first column, and its rows of text ("" for empty cells).

    A function of its own so that the workbook and the data frame are freed on return,
    while the rows are numbered and checked.
    """
    try:
        reader = fastexcel.read_excel(path)
        names = list(reader.sheet_names)
    except Exception as exc:  # fastexcel raises its own tree; all of them mean "unreadable"
        raise InputError(
            f"{path} could not be read as an Excel workbook ({_first_line(exc)}).",
            hint="Open it in Excel or LibreOffice and save it again as .xlsx.",
        ) from None
    index = _sheet_index(path, names, sheet)
    try:
        loaded = reader.load_sheet(index, header_row=None, skip_rows=0, dtypes="string")
        frame = loaded.to_polars()
        column_offset = loaded.available_columns()[0].absolute_index if loaded.width else 0
    except Exception as exc:
        raise InputError(
            f"{path}, sheet {names[index]!r}, could not be read ({_first_line(exc)}).",
            hint="Open it in Excel or LibreOffice and save it again as .xlsx.",
        ) from None
    # rows() builds every row's tuple in one call, far faster than zipping Python columns.
    records: list[tuple[str, ...]] = frame.fill_null("").rows()
    return names[index], index, column_offset, records


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _sheet_index(path: Path, names: list[str], wanted: str | None) -> int:
    if not names:
        raise InputError(f"{path} has no sheets.")
    if wanted is None:
        return 0
    for index, name in enumerate(names):
        if name.casefold() == wanted.strip().casefold():
            return index
    listed = ", ".join(repr(name) for name in names)
    raise InputError(f"{path} has no sheet named {wanted!r}.", hint=f"Its sheets are: {listed}.")


def _scientific_cells(
    path: Path, sheet_index: int, column_offset: int
) -> frozenset[tuple[int, int]]:
    """Numeric cells whose number format is scientific, as (row number, column index)."""
    try:
        with zipfile.ZipFile(path) as archive:
            styles = _scientific_styles(archive.read("xl/styles.xml"))
            if not styles:
                return frozenset()
            xml = archive.read(_sheet_member(archive, sheet_index))
    except (KeyError, zipfile.BadZipFile, ElementTree.ParseError):
        return frozenset()  # a workbook fastexcel read but without standard parts: no styles
    style_ids = "|".join(str(style) for style in sorted(styles))
    cell_tag = re.compile(rb'<c\s[^>]*\bs="(?:' + style_ids.encode() + rb')"[^>]*>')
    found: set[tuple[int, int]] = set()
    for match in cell_tag.finditer(xml):
        tag = match.group()
        kind = re.search(rb'\bt="(\w+)"', tag)
        ref = re.search(rb'\br="([A-Z]+)(\d+)"', tag)
        if ref and (kind is None or kind.group(1) == b"n"):
            column = _column_number(ref.group(1).decode()) - column_offset
            found.add((int(ref.group(2)), column))
    return frozenset(found)


def _scientific_styles(styles_xml: bytes) -> set[int]:
    """Indexes of the cell formats (cellXfs) that display numbers in scientific notation."""
    root = ElementTree.fromstring(styles_xml)
    custom = {
        int(fmt.get("numFmtId", "-1")): fmt.get("formatCode", "")
        for fmt in root.iter(f"{_MAIN_NS}numFmt")
    }
    scientific = {number for number, code in custom.items() if _is_scientific(code)}
    scientific |= _SCIENTIFIC_BUILTIN
    cell_xfs = root.find(f"{_MAIN_NS}cellXfs")
    if cell_xfs is None:
        return set()
    return {
        index
        for index, xf in enumerate(cell_xfs.iter(f"{_MAIN_NS}xf"))
        if int(xf.get("numFmtId", "0")) in scientific
    }


def _is_scientific(format_code: str) -> bool:
    unquoted = re.sub(r'"[^"]*"|\\.', "", format_code)
    return re.search(r"[eE][+-]", unquoted) is not None


def _sheet_member(archive: zipfile.ZipFile, sheet_index: int) -> str:
    """The zip member holding the n-th sheet, resolved through the workbook's relationships."""
    workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    sheets = list(workbook.iter(f"{_MAIN_NS}sheet"))
    relation_id = sheets[sheet_index].get(f"{_REL_NS}id", "")
    rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    for rel in rels.iter(f"{_PKG_REL_NS}Relationship"):
        if rel.get("Id") == relation_id:
            target = rel.get("Target", "")
            if target.startswith("/"):
                return target.lstrip("/")
            return str(PurePosixPath("xl") / target)
    raise KeyError(relation_id)


def _column_number(letters: str) -> int:
    """0-based column index of Excel column letters: A → 0, Z → 25, AA → 26."""
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - ord("A") + 1
    return number - 1
