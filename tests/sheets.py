"""Real handoff files for tests: CSV and XLSX written from a table of cells."""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Sequence
from pathlib import Path

from openpyxl import Workbook

Cell = str | int | float | None
Table = Sequence[Sequence[Cell]]


def write_csv(
    path: Path,
    rows: Table,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
) -> Path:
    """Write `rows` as a CSV file in the given encoding (`utf-8-sig` adds a BOM)."""
    with path.open("w", encoding=encoding, newline="") as stream:
        writer = csv.writer(stream, delimiter=delimiter)
        writer.writerows(["" if cell is None else str(cell) for cell in row] for row in rows)
    return path


def write_xlsx(
    path: Path,
    rows: Table,
    *,
    sheet: str = "Sheet1",
    formats: dict[tuple[int, int], str] | None = None,
    first_cell: tuple[int, int] = (1, 1),
    extra_sheets: Sequence[str] = (),
) -> Path:
    """Write `rows` to an XLSX sheet; ints and floats become numeric cells.

    `formats` maps (row, column), both 1-based sheet coordinates, to a number format.
    `first_cell` moves the table away from A1, as people's sheets sometimes are.
    """
    book = Workbook()
    worksheet = book.active
    assert worksheet is not None
    worksheet.title = sheet
    top, left = first_cell
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is not None and value != "":
                worksheet.cell(row=top + r, column=left + c, value=value)
    for (r, c), number_format in (formats or {}).items():
        worksheet.cell(row=r, column=c).number_format = number_format
    for name in extra_sheets:
        book.create_sheet(name)
    book.save(path)
    return path


_CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
{overrides}</Types>"""
_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_STYLES_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"
_STRINGS_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
_PACKAGE_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Target="xl/workbook.xml"
 Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>
</Relationships>"""
_DOC_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def sheet_xml(rows: str, *, dimension: str | None = None) -> str:
    """A worksheet part around `rows` (the <row> elements), with an optional <dimension ref>."""
    declared = f'<dimension ref="{dimension}"/>' if dimension else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<worksheet xmlns="{MAIN_NS}">{declared}<sheetData>{rows}</sheetData></worksheet>'
    )


def write_raw_xlsx(
    path: Path,
    sheets: Sequence[tuple[str, str | bytes]],
    *,
    styles: str | None = None,
    shared_strings: str | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Write an XLSX from its XML parts: (name, worksheet XML) per sheet, in order.

    For files no spreadsheet app would write: bombs, odd styles, cells beyond limits.
    A worksheet given as bytes is stored as it is (it may be large: it is compressed).
    """
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{_SHEET_TYPE}"/>'
        for n in range(1, len(sheets) + 1)
    )
    rels = "".join(
        f'<Relationship Id="rId{n}" Type="{_DOC_REL}/worksheet" Target="worksheets/sheet{n}.xml"/>'
        for n in range(1, len(sheets) + 1)
    )
    names = "".join(
        f'<sheet name="{name}" sheetId="{n}" r:id="rId{n}"/>'
        for n, (name, _) in enumerate(sheets, start=1)
    )
    if styles is not None:
        overrides += f'<Override PartName="/xl/styles.xml" ContentType="{_STYLES_TYPE}"/>'
        rels += f'<Relationship Id="rIdS" Type="{_DOC_REL}/styles" Target="styles.xml"/>'
    if shared_strings is not None:
        overrides += f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_STRINGS_TYPE}"/>'
        rels += (
            f'<Relationship Id="rIdT" Type="{_DOC_REL}/sharedStrings" Target="sharedStrings.xml"/>'
        )
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES.format(overrides=overrides))
        archive.writestr("_rels/.rels", _PACKAGE_RELS)
        archive.writestr(
            "xl/workbook.xml",
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<workbook xmlns="{MAIN_NS}" xmlns:r="{_DOC_REL}"><sheets>{names}</sheets></workbook>',
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f"{rels}</Relationships>",
        )
        for n, (_, xml) in enumerate(sheets, start=1):
            archive.writestr(f"xl/worksheets/sheet{n}.xml", xml)
        if styles is not None:
            archive.writestr("xl/styles.xml", styles)
        if shared_strings is not None:
            archive.writestr("xl/sharedStrings.xml", shared_strings)
    return path
