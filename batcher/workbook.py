"""Reading an XLSX workbook: one sheet's cells as text, which numbers show as scientific,
and which rows, columns and sheets are hidden.

The cells are read with fastexcel (calamine), every column as text: polars' type
inference silently corrupts phone columns. calamine cannot see number formats,
so the few cells a spreadsheet shows in scientific notation (which has already
dropped digits) are found from the workbook's own XML; so are hidden rows and
columns (the same pass over the sheet's XML) and hidden sheets (workbook.xml).
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import NamedTuple
from xml.etree import ElementTree

import fastexcel

from batcher.columns import column_letter
from batcher.errors import InputError
from batcher.limits import MAX_CELLS, MAX_COLUMNS, MAX_INFLATED, MAX_ROWS

_MAIN_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
# Built-in number formats 11 (0.00E+00) and 48 (##0.0E+0) are scientific.
_SCIENTIFIC_BUILTIN = frozenset({11, 48})
_SAVE_AGAIN = "Open it in Excel or LibreOffice and save it again as .xlsx."
_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_LOCAL_HEADER = 30  # bytes of a zip local file header before its name and extra field
_CHUNK = 4 * 1024 * 1024
# Longer references are off any grid (XFD1048576 is the last cell); shorter ones are
# converted and compared with the limits.
_ROW_DIGITS = 9
_COLUMN_LETTERS = 3


class WorkbookSheet(NamedTuple):
    """One sheet as read: its name, its rows of text from row 1 on, and what the XML tells."""

    name: str
    # records[i] is sheet row i + 1; "" for an empty cell.
    records: list[tuple[str, ...]]
    # (row number, column index) of numeric cells displayed in scientific notation, or of
    # every numeric cell when the number formats could not be read (`formats_problem`).
    scientific: frozenset[tuple[int, int]]
    formats_problem: str = ""
    # Row numbers hidden in the sheet (by hand, by a filter, or in a collapsed outline).
    hidden_rows: frozenset[int] = frozenset()
    # Indexes (into each record) of columns hidden in the sheet.
    hidden_columns: frozenset[int] = frozenset()
    # The sheet's own state: "visible", "hidden" or "veryHidden".
    state: str = "visible"
    # Hidden sheets before it that the default passed over (no --sheet given).
    passed_over: tuple[str, ...] = ()


def read_sheet(path: Path, sheet: str | None) -> WorkbookSheet:
    """One sheet (the first visible, or the one named) of an XLSX file; InputError if unusable.

    Everything the reader would hold is measured first, by inflating the parts with a
    cap (see batcher.limits): calamine allocates a sheet's whole used range at once.
    """
    with _package(path) as package:
        reader, names = _open_reader(path)
        states = package.sheet_states(len(names))
        index = _sheet_index(path, names, states, sheet)
        scan = package.scan(index, names[index])
    name, column_offset, records = _read_records(path, reader, index, names[index])
    scientific = frozenset((row, column - column_offset) for row, column in scan.suspect)
    if scientific and not package.formats_problem:
        _as_shown(records, scientific)
    hidden_columns = frozenset(
        column - column_offset for column in scan.hidden_columns if column >= column_offset
    )
    passed_over = tuple(names[:index]) if sheet is None else ()
    return WorkbookSheet(
        name,
        records,
        scientific,
        package.formats_problem,
        hidden_rows=scan.hidden_rows,
        hidden_columns=hidden_columns,
        state=states[index],
        passed_over=passed_over,
    )


def other_sheets(
    path: Path, sheet: str, wanted: Callable[[list[tuple[str, ...]]], bool]
) -> list[tuple[str, bool]]:
    """The workbook's sheets, other than `sheet`, whose rows are `wanted`: (name, hidden)."""
    found = []
    with _package(path) as package:
        reader, names = _open_reader(path)
        states = package.sheet_states(len(names))
        for index, name in enumerate(names):
            if name != sheet:
                package.scan(index, name)  # the same limits before each sheet is read
                if wanted(_read_records(path, reader, index, name)[2]):
                    found.append((name, states[index] != _VISIBLE))
    return found


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
        if 0 <= column < len(cells) and _is_number(cells[column]):
            shown = list(cells)
            shown[column] = f"{float(cells[column]):.5E}"
            records[number - 1] = tuple(shown)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _open_reader(path: Path) -> tuple[fastexcel.ExcelReader, list[str]]:
    try:
        reader = fastexcel.read_excel(path)
        names = list(reader.sheet_names)
    except Exception as exc:  # fastexcel raises its own tree; all of them mean "unreadable"
        raise InputError(
            f"{path} could not be read as an Excel workbook ({_first_line(exc)}).",
            hint=_SAVE_AGAIN,
        ) from None
    return reader, names


def _read_records(
    path: Path, reader: fastexcel.ExcelReader, index: int, name: str
) -> tuple[str, int, list[tuple[str, ...]]]:
    """The sheet's name and first column, and its rows of text ("" for empty cells).

    A function of its own so that the sheet and the data frame are freed on return,
    while the rows are numbered and checked. Columns right of the data that hold
    nothing (a header padded with empty cells) are left out.
    """
    try:
        loaded = reader.load_sheet(index, header_row=None, skip_rows=0, dtypes="string")
        frame = loaded.to_polars()
        column_offset = loaded.available_columns()[0].absolute_index if loaded.width else 0
    except Exception as exc:
        raise InputError(
            f"{path}, sheet {name!r}, could not be read ({_first_line(exc)}).",
            hint=_SAVE_AGAIN,
        ) from None
    frame = frame.fill_null("")
    used = frame.width
    while used and not (frame.get_column(frame.columns[used - 1]) != "").any():
        used -= 1
    if used < frame.width:
        frame = frame.select(frame.columns[:used])
    # rows() builds every row's tuple in one call, far faster than zipping Python columns.
    records: list[tuple[str, ...]] = frame.rows()
    return name, column_offset, records


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


_VISIBLE = "visible"


def _sheet_index(path: Path, names: list[str], states: list[str], wanted: str | None) -> int:
    """The sheet named (any state), or the first visible one: hidden sheets are never the default.

    A person hides a sheet to keep it out of the way (old lists, lookups); the sheet
    they see first is the one they mean.
    """
    if not names:
        raise InputError(f"{path} has no sheets.")
    if wanted is None:
        visible = [index for index, state in enumerate(states) if state == _VISIBLE]
        if not visible:
            listed = ", ".join(repr(name) for name in names)
            raise InputError(
                f"{path} has no visible sheet: every sheet is hidden, so none is read by default.",
                hint=f"Pass --sheet NAME to read a hidden one. Its sheets are: {listed}.",
            )
        return visible[0]
    for index, name in enumerate(names):
        if name.casefold() == wanted.strip().casefold():
            return index
    listed = ", ".join(repr(name) for name in names)
    raise InputError(f"{path} has no sheet named {wanted!r}.", hint=f"Its sheets are: {listed}.")


# --- Measuring the package before it is read ---------------------------------------------------


class _Scan(NamedTuple):
    """What a streaming pass over a sheet's XML found."""

    rows: int  # the last row a cell or row claims (1-based)
    columns: int  # the last column a cell claims (1-based)
    declared: str  # the <dimension ref>, as written
    # Absolute (row, column) of numeric cells shown in scientific notation (or all numeric
    # cells, when the number formats could not be read).
    suspect: frozenset[tuple[int, int]]
    hidden_rows: frozenset[int] = frozenset()  # row numbers (1-based)
    hidden_columns: frozenset[int] = frozenset()  # absolute column indexes (0-based)


class _Damaged(Exception):
    """A part is not what the zip directory says it is."""


@contextmanager
def _package(path: Path) -> Iterator[_Package]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(
            f"{path} could not be read as an Excel workbook ({_first_line(exc)}).",
            hint=_SAVE_AGAIN,
        ) from None
    with archive:
        package = _Package(path, archive)
        package.check()
        yield package


class _Package:
    """An XLSX file's zip parts, measured and checked before calamine reads any of them."""

    def __init__(self, path: Path, archive: zipfile.ZipFile) -> None:
        self.path = path
        self.archive = archive
        self.formats: frozenset[int] = frozenset()
        self.formats_problem = ""
        self._workbook: ElementTree.Element | None = None

    def check(self) -> None:
        """Refuse what is not an XLSX workbook, or would inflate beyond the limits."""
        infos = self.archive.infolist()
        names = {info.filename for info in infos}
        _check_kind(self.path, self.archive, names)
        declared = sum(info.file_size for info in infos)
        if declared > MAX_INFLATED:
            raise self._too_large(f"its parts inflate to {_size(declared)}")
        for info in infos:
            if info.flag_bits & 0x1 or info.compress_type not in _METHODS:
                raise InputError(
                    f"{self.path} stores its part {info.filename} in a way spreadsheet apps "
                    "do not (encrypted or unusually compressed).",
                    hint=_SAVE_AGAIN,
                )
        # What calamine reads whole when it opens the workbook (shared strings, styles,
        # the workbook and its relationships) is inflated here first: the sizes the zip
        # directory declares are checked above, and are not trusted alone.
        for info in infos:
            if not info.filename.startswith("xl/worksheets/") and info.filename.endswith(
                (".xml", ".rels")
            ):
                for _ in self._inflated(info):
                    pass
        self.formats, self.formats_problem = self._number_formats()

    def scan(self, index: int, name: str) -> _Scan:
        """Measure the sheet's used range from its XML; refuse it beyond the limits."""
        where = f"{self.path}, sheet {name!r},"
        member = self._sheet_member(index)
        try:
            info = self.archive.getinfo(member)
        except KeyError:
            raise InputError(f"{where} has no part {member}.", hint=_SAVE_AGAIN) from None
        scan = _scan_sheet(self._inflated(info), self.formats, bool(self.formats_problem))
        _check_range(where, scan)
        return scan

    def read(self, name: str) -> bytes:
        """A small part, inflated and checked against the size it declares."""
        return b"".join(self._inflated(self.archive.getinfo(name)))

    def _inflated(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        try:
            yield from _inflate(self.path, info)
        except (_Damaged, zlib.error, OSError) as exc:
            raise InputError(
                f"{self.path} is damaged: its part {info.filename} is not what the file "
                f"says it is ({_first_line(exc)}).",
                hint=_SAVE_AGAIN,
            ) from None

    def _too_large(self, what: str) -> InputError:
        return InputError(
            f"{self.path} is too large to read safely: {what}, and chert-batch reads at "
            f"most {_size(MAX_INFLATED)}.",
            hint="Save only the sheet of messages (delete the other sheets, pictures and "
            "unused rows), or save it as CSV UTF-8, and try again.",
        )

    def _number_formats(self) -> tuple[frozenset[int], str]:
        """The scientific cell formats, or why the number formats could not be read."""
        try:
            styles = self.read("xl/styles.xml")
        except KeyError:
            return frozenset(), ""  # no styles at all: every number is shown as General
        try:
            return frozenset(_scientific_styles(styles)), ""
        except (ElementTree.ParseError, ValueError) as exc:
            return frozenset(), f"its number formats (xl/styles.xml) cannot be read: {exc}"

    def sheet_states(self, count: int) -> list[str]:
        """Each of the `count` sheets' state: "visible", "hidden" or "veryHidden".

        A sheet workbook.xml does not list (calamine and it disagreeing) counts as
        visible: it is then measured, or refused, as `_sheet_member` says.
        """
        try:
            sheets = list(self._workbook_xml().iter(f"{_MAIN_NS}sheet"))
        except (KeyError, ElementTree.ParseError):
            sheets = []
        states = [sheet.get("state", _VISIBLE).strip() or _VISIBLE for sheet in sheets]
        return (states + [_VISIBLE] * count)[:count]

    def _workbook_xml(self) -> ElementTree.Element:
        if self._workbook is None:
            self._workbook = ElementTree.fromstring(self.read("xl/workbook.xml"))
        return self._workbook

    def _sheet_member(self, index: int) -> str:
        """The zip member holding the n-th sheet, resolved through the workbook's relationships.

        Without it the sheet cannot be measured, so a workbook whose parts cannot be
        followed is refused rather than read unmeasured.
        """
        try:
            sheets = list(self._workbook_xml().iter(f"{_MAIN_NS}sheet"))
            relation_id = sheets[index].get(f"{_REL_NS}id", "")
            rels = ElementTree.fromstring(self.read("xl/_rels/workbook.xml.rels"))
        except (KeyError, IndexError, ElementTree.ParseError) as exc:
            raise InputError(
                f"{self.path}: the list of its sheets cannot be read ({_first_line(exc)}).",
                hint=_SAVE_AGAIN,
            ) from None
        for rel in rels.iter(f"{_PKG_REL_NS}Relationship"):
            if rel.get("Id") == relation_id:
                target = rel.get("Target", "")
                if target.startswith("/"):
                    return target.lstrip("/")
                return str(PurePosixPath("xl") / target)
        raise InputError(
            f"{self.path}: sheet {index + 1} points at no part of the file.", hint=_SAVE_AGAIN
        )


def _check_kind(path: Path, archive: zipfile.ZipFile, names: set[str]) -> None:
    """Refuse zip files that are other formats: OpenDocument, binary workbooks, anything else."""
    if "mimetype" in names and b"opendocument" in archive.read("mimetype")[:200]:
        raise InputError(
            f"{path} is an OpenDocument spreadsheet (.ods), which chert-batch does not read: "
            "it could not tell numbers shown in scientific notation, which have lost digits.",
            hint="Open it in LibreOffice and save it as .xlsx (File > Save As, Excel "
            "2007-365) or as CSV UTF-8.",
        )
    if "xl/workbook.bin" in names:
        raise InputError(
            f"{path} is a binary Excel workbook (.xlsb), which chert-batch does not read.",
            hint="Open it in Excel and save it as .xlsx (Excel Workbook) or as CSV UTF-8.",
        )
    if "xl/workbook.xml" not in names:
        raise InputError(
            f"{path} is a zip file, but not an Excel workbook.",
            hint="Give chert-batch a .csv or .xlsx handoff file.",
        )


# Read ahead (batcher.phones): the text of a cell, shared or inline string or number, when
# it is made of nothing but what phone numbers are written with (no entity: no '&'). Tags
# with a namespace prefix are not looked for: such a sheet's numbers are worked out as
# they are looked up, the search for prefixes doubling the cost of every other sheet's.
_NUMBERS_TEXT = re.compile(rb"<[tv](?:\s[^>]*)?>((?:tel:)?[0-9\s+().\-/;,|']{7,})</")
_DIGITS = b"0123456789"
_FEWEST_DIGITS = 7  # fewer cannot be a phone number with its area code
_LONGEST_CARRIED = 64 * 1024


def likely_numbers(path: Path) -> Iterator[str]:
    """Cell texts of an XLSX file that look like phone numbers, in the order it holds them.

    A guess, made from the XML alone and without the limits read_sheet checks first (each
    part is inflated a chunk at a time, up to the size it declares, and any part larger
    than MAX_INFLATED is passed over): batcher.phones reads a large workbook's numbers
    ahead with it in a helper process, while this one still reads the sheet. What it
    finds only saves work; what it misses is worked out when its row is validated.
    Shared strings come first, then each sheet's cells, row by row.
    """
    with zipfile.ZipFile(path) as archive:
        parts = [
            info
            for info in archive.infolist()
            if info.filename == "xl/sharedStrings.xml"
            or (info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml"))
        ]
    parts.sort(key=lambda info: info.filename != "xl/sharedStrings.xml")
    for info in parts:
        if info.file_size > MAX_INFLATED or info.compress_type not in _METHODS:
            continue
        carried = b""
        try:
            for piece in _inflate(path, info):
                block = carried + piece
                cut = block.rfind(b"<")
                if cut < 0:  # text only: the middle of a cell far too long to be numbers
                    carried = b""
                    continue
                block, carried = block[:cut], block[cut:]
                if len(carried) > _LONGEST_CARRIED:
                    carried = b""  # the same
                for text in _NUMBERS_TEXT.findall(block):
                    if len(text) - len(text.translate(None, _DIGITS)) >= _FEWEST_DIGITS:
                        yield text.decode("ascii")
        except (_Damaged, zlib.error, OSError):
            continue


def _inflate(path: Path, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """A part's bytes, inflated a chunk at a time from its raw data, up to the size declared.

    zipfile would stop at the size the zip directory declares, and the declared sizes
    are what the limit is checked on; inflating the raw data tells whether the part
    holds more, which is what another reader would allocate: such a part is refused.
    """
    with path.open("rb") as stream:
        stream.seek(info.header_offset)
        header = stream.read(_LOCAL_HEADER)
        if len(header) < _LOCAL_HEADER or header[:4] != b"PK\x03\x04":
            raise _Damaged("no local header")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        stream.seek(info.header_offset + _LOCAL_HEADER + name_length + extra_length)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        deflated = info.compress_type == zipfile.ZIP_DEFLATED
        produced = 0
        left = info.compress_size
        while left > 0:
            data = stream.read(min(left, _CHUNK))
            if not data:
                raise _Damaged("cut short")
            left -= len(data)
            while data:
                if deflated:
                    piece = inflater.decompress(data, _CHUNK)
                    data = inflater.unconsumed_tail
                else:
                    piece, data = data, b""
                produced += len(piece)
                if produced > info.file_size:
                    raise _Damaged(f"more than the {info.file_size:,} bytes it declares")
                if piece:
                    yield piece


# Attributes up to a tag's end, where a '>' may stand inside a quoted value (a '<' may
# not). ("normal* (special normal*)*", unrolled: much faster than an alternation.)
_ATTRS = rb"""[^>"']*?(?:(?:"[^"]*"|'[^']*')[^>"']*?)*?"""
# A reference as a reader takes it: r="B7", either quote, spaces around "=", never
# inside another attribute's value.
_R = rb"""\sr\s*=\s*["']\$?([A-Za-z]*)\$?([0-9]*)["']"""
# Every cell and row tag, with or without a namespace prefix, and its reference if it has
# one: (b"c", b"B", b"7"), (b"row", b"", b"7"); a reference missing gives b"" for both.
_TAG = re.compile(rb"<(?:\w+:)?(c|row)(?=[\s/>])(?:" + _ATTRS + _R + rb")?")
_REF = re.compile(_R)
_DIMENSION = re.compile(rb"""<(?:\w+:)?dimension\b[^>]*?\sref\s*=\s*["']([^"']*)""")
_CELL_TAG = re.compile(rb"<(?:\w+:)?c\s" + _ATTRS + rb">")
_KIND = re.compile(rb"""\st\s*=\s*["'](\w+)""")
_STYLE = re.compile(rb"""\ss\s*=\s*["']([0-9]+)""")
_UNREFERENCED_ROW = (b"row", b"", b"")
# How spreadsheet apps write cells and rows (see _plain_references), and any other way.
_PLAIN = re.compile(rb'<(?:c|row) r="([A-Za-z]*)([0-9]*)"')
_UNUSUAL_TAG = re.compile(rb"<(?:\w+:(?:c|row)[\s/>]|(?:c|row)[/>\t\n\r])")
# Hidden rows and columns: <row r="7" hidden="1">, <col min="2" max="3" hidden="true"/>.
# Each pattern starts at the tag, so nothing inside an attribute's value is read as one.
_ROW_START = rb"<(?:\w+:)?row(?=[\s/>])"
_COL_START = rb"<(?:\w+:)?col(?=[\s/>])"
_TRUE = rb"""\s*=\s*(?:"\s*(?:1|true)\s*"|'\s*(?:1|true)\s*')"""
_HIDDEN_ROW = re.compile(_ROW_START + _ATTRS + rb"\shidden" + _TRUE)
# The same in a block of plain references (see _plain_references), led by a literal: faster.
_PLAIN_HIDDEN_ROW = re.compile(rb'<row r="([0-9]*)"' + _ATTRS + rb"\shidden" + _TRUE)
_ROW_TAG = re.compile(_ROW_START + _ATTRS + rb">")
_ROW_REF = re.compile(_ROW_START + _ATTRS + _R)
_HIDDEN_COL = re.compile(_COL_START + _ATTRS + rb"\shidden" + _TRUE)
_COL_TAG = re.compile(_COL_START + _ATTRS + rb">")
_COL_MIN = re.compile(_COL_START + _ATTRS + rb"""\smin\s*=\s*["']\s*([0-9]{1,9})\s*["']""")
_COL_MAX = re.compile(_COL_START + _ATTRS + rb"""\smax\s*=\s*["']\s*([0-9]{1,9})\s*["']""")


def _scan_sheet(
    pieces: Iterator[bytes], scientific_styles: frozenset[int], all_numbers: bool
) -> _Scan:
    """One streaming pass over a sheet's XML: its used range and its suspect numeric cells.

    Regular expressions over blocks of whole tags (see _whole_tags). References are
    compared as calamine places cells: a cell or row without one takes the place after
    the one before, so once one is met every tag is followed in order (_walk).
    """
    rows = columns = 0
    letters: set[bytes] = set()
    declared = ""
    suspect: set[tuple[int, int]] = set()
    walking = False
    position = (0, 0)
    carried: list[bytes] = []
    in_data = False
    hidden_rows: set[int] = set()
    hidden_columns: set[int] = set()
    for piece in pieces:
        block, carried = _whole_tags(carried, piece)
        if not block:
            continue
        # One substring test keeps the common sheet, with nothing hidden, at its cost.
        hides = b"hidden" in block
        if not in_data:  # the dimension and the columns come before the sheet's data
            if dimension := _DIMENSION.search(block):
                declared = dimension.group(1).decode("ascii", "replace")
            if hides:
                hidden_columns.update(_hidden_columns(block))
            in_data = b"sheetData" in block
        plain = None if walking else _plain_references(block)
        if hides:
            hidden_rows.update(_hidden_rows(block, position[0] if walking else rows, plain))
        if plain is not None:
            found = {column for column, _ in plain}
            digits = [row for _, row in plain]
        else:
            tags: list[tuple[bytes, bytes, bytes]] = _TAG.findall(block)
            found = {column for kind, column, _ in tags if kind == b"c"}
            digits = [row for _, _, row in tags]
        if not digits:
            continue
        if max(map(len, digits)) > _ROW_DIGITS:
            return _Scan(MAX_ROWS + 1, MAX_COLUMNS + 1, declared, frozenset())
        rows = max(rows, *map(int, [row or b"0" for row in digits] if b"" in digits else digits))
        letters |= found
        if plain is None and (walking or b"" in found or _UNREFERENCED_ROW in tags):
            walking = True
            position, (last_row, last_column) = _walk(tags, position)
            rows, columns = max(rows, last_row), max(columns, last_column)
        if all_numbers or scientific_styles:
            suspect.update(_suspect_cells(block, scientific_styles, all_numbers))
    letters.discard(b"")
    if letters:
        columns = max(columns, *map(_grid_column, letters))
    return _Scan(
        rows,
        columns,
        declared,
        frozenset(suspect),
        frozenset(hidden_rows),
        frozenset(hidden_columns),
    )


def _hidden_rows(block: bytes, previous: int, plain: object) -> list[int]:
    """The numbers of the rows a block hides; `previous` is the row before the block.

    Rows are hidden by hand, by a filter (the rows it filters out are written hidden)
    or by a collapsed outline. In a block of plain references (`plain` not None) one
    literal-led pattern finds them. A row tag without a reference is the row after the
    one before (as calamine places it), so then every row tag of the block is followed.
    """
    if plain is not None:
        digits: list[bytes] = _PLAIN_HIDDEN_ROW.findall(block)
        if b"" not in digits:
            return [_grid_row(number) for number in digits]
    found = []
    for match in _HIDDEN_ROW.finditer(block):
        ref = _ROW_REF.match(block, match.start())
        if ref is None or not ref.group(2):
            return _hidden_rows_followed(block, previous)
        found.append(_grid_row(ref.group(2)))
    return found


def _hidden_rows_followed(block: bytes, previous: int) -> list[int]:
    """Every row tag of a block in order, numbered as a reader places it: the hidden ones."""
    found = []
    row = previous
    for match in _ROW_TAG.finditer(block):
        tag = match.group()
        ref = _ROW_REF.match(tag)
        row = _grid_row(ref.group(2)) if ref is not None and ref.group(2) else row + 1
        if _HIDDEN_ROW.match(tag):
            found.append(row)
    return found


def _hidden_columns(block: bytes) -> Iterator[int]:
    """The absolute indexes (0-based) of the columns a block's <col> tags hide.

    A range may run to the last column (a sheet hides everything right of its data):
    it is cut at the grid's end.
    """
    for match in _COL_TAG.finditer(block):
        tag = match.group()
        first = _COL_MIN.match(tag)
        if first is None or not _HIDDEN_COL.match(tag):
            continue
        last = _COL_MAX.match(tag)
        start = int(first.group(1))
        end = min(int(last.group(1)) if last else start, MAX_COLUMNS)
        yield from range(max(start, 1) - 1, end)


def _plain_references(block: bytes) -> list[tuple[bytes, bytes]] | None:
    """The references of a block as spreadsheet apps write them, or None for any other.

    Excel, LibreOffice and openpyxl write every cell and row as <c r="B7" ...> and
    <row r="7" ...>: the reference first, double quotes, no prefix. When every cell and
    row tag of the block starts so (the plain pattern is a case of the tags counted,
    so nothing elsewhere, in a comment say, can make up for a tag that does not), one
    literal-led pattern reads them, at a fraction of the cost of _TAG.
    """
    if _UNUSUAL_TAG.search(block):
        return None
    plain: list[tuple[bytes, bytes]] = _PLAIN.findall(block)
    if len(plain) != block.count(b"<c ") + block.count(b"<row "):
        return None
    return plain


def _whole_tags(carried: list[bytes], piece: bytes) -> tuple[bytes, list[bytes]]:
    """The next block of whole tags, and what to carry into the next piece.

    A block is cut before its last '<' (a '<' always starts markup: it may not stand in
    text or in an attribute's value), so no tag is split. Text after a tag holds no
    '<', so a long run of it is dropped rather than carried.
    """
    cut = piece.rfind(b"<")
    if cut >= 0:
        return b"".join([*carried, piece[:cut]]), [piece[cut:]]
    if not carried:
        return b"", []  # text only
    # Only a tag still open is carried on with more pieces: one carried piece with a
    # '>' is a whole tag and text, and this piece more text.
    if len(carried) == 1 and b">" in carried[0]:
        return carried[0], []
    if b">" in piece:
        return b"".join([*carried, piece]), []
    return b"", [*carried, piece]


def _walk(
    tags: list[tuple[bytes, bytes, bytes]], position: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Follow rows and cells in order, as a reader places those without a reference.

    Returns the position after the tags and the furthest row and column reached.
    """
    row, column = position
    last_row = last_column = 0
    for kind, letters, digits in tags:
        if kind == b"row":
            row = _grid_row(digits) if digits else row + 1
            column = 0
        else:
            column = _grid_column(letters) if letters else column + 1
        last_row, last_column = max(last_row, row), max(last_column, column)
    return (row, column), (last_row, last_column)


def _grid_row(digits: bytes) -> int:
    """A reference's row number (1-based); past the grid for more digits than it has."""
    return int(digits) if len(digits) <= _ROW_DIGITS else MAX_ROWS + 1


def _grid_column(letters: bytes) -> int:
    """A reference's column number (1-based); past the grid for more letters than it has."""
    if len(letters) > _COLUMN_LETTERS:
        return MAX_COLUMNS + 1
    return _column_number(letters.decode().upper()) + 1


def _suspect_cells(
    block: bytes, scientific_styles: frozenset[int], all_numbers: bool
) -> Iterator[tuple[int, int]]:
    """Numeric cells in a scientific format (or every numeric cell), as absolute (row, column)."""
    for match in _CELL_TAG.finditer(block):
        tag = match.group()
        kind = _KIND.search(tag)
        if kind is not None and kind.group(1) != b"n":
            continue
        if not all_numbers:
            style = _STYLE.search(tag)
            if style is None or int(style.group(1)) not in scientific_styles:
                continue
        ref = _REF.search(tag)
        if ref and ref.group(1) and ref.group(2):
            yield _grid_row(ref.group(2)), _grid_column(ref.group(1)) - 1


def _check_range(where: str, scan: _Scan) -> None:
    """Refuse a sheet whose used range or declared dimension is beyond the limits."""
    declared_rows, declared_columns = _dimension_end(scan.declared)
    if max(scan.rows, declared_rows) > MAX_ROWS or max(scan.columns, declared_columns) > (
        MAX_COLUMNS
    ):
        raise InputError(
            f"{where} has cells beyond the last row ({MAX_ROWS:,}) or column (XFD) a "
            "spreadsheet holds: it was not written by a spreadsheet app.",
            hint=_SAVE_AGAIN,
        )
    cells = scan.rows * scan.columns
    if cells > MAX_CELLS:
        raise InputError(
            f"{where} reaches row {scan.rows:,} and column {column_letter(scan.columns - 1)}: "
            f"{cells:,} cells from A1, more than the {MAX_CELLS:,} chert-batch reads.",
            hint="Something far below or right of the data makes the sheet this large: "
            "delete the rows below it and the columns right of it (or copy the data into a "
            "new sheet), save, and try again.",
        )


def _dimension_end(declared: str) -> tuple[int, int]:
    """The last row and column (1-based) of a <dimension ref> such as A1:H100 (0, 0: none)."""
    match = re.fullmatch(r"\$?([A-Za-z]+)\$?([0-9]+)", declared.rpartition(":")[2])
    if match is None:
        return 0, 0
    letters, digits = match.groups()
    if len(letters) > 3 or len(digits) > 9:
        return MAX_ROWS + 1, MAX_COLUMNS + 1
    return int(digits), _column_number(letters.upper()) + 1


def _size(count: int) -> str:
    """Bytes for a person: 1.5 GiB, 512 MiB."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} bytes"


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


def _column_number(letters: str) -> int:
    """0-based column index of Excel column letters: A → 0, Z → 25, AA → 26."""
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - ord("A") + 1
    return number - 1


# Names of the streams an encrypted OOXML package keeps inside its OLE container
# (MS-OFFCRYPTO), as the container's directory writes them: UTF-16 little-endian.
_ENCRYPTED_STREAMS = tuple(
    name.encode("utf-16-le") for name in ("EncryptionInfo", "EncryptedPackage")
)


def is_encrypted(path: Path) -> bool:
    """Whether an OLE file (d0cf11e0) is a password-protected workbook, not an old .xls.

    Excel encrypts an .xlsx into an OLE container holding these two streams; the
    directory that names them may be anywhere in the file, so the file is searched in
    chunks (overlapping by a name's length).
    """
    missing = set(_ENCRYPTED_STREAMS)
    overlap = max(map(len, _ENCRYPTED_STREAMS))
    tail = b""
    with path.open("rb") as stream:
        while missing and (chunk := stream.read(_CHUNK)):
            window = tail + chunk
            missing = {name for name in missing if name not in window}
            tail = window[-overlap:]
    return not missing
