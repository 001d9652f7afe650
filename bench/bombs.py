"""Peak memory and time of `chert-batch validate` on XLSX bombs, next to a normal 100,000-row XLSX.

Each file is validated in its own subprocess; the peak RSS is that child's own
ru_maxrss (os.wait4). The baseline is the normal sheet of bench/validate.py, measured
in the same run. The goal: no file takes validate past 2 GB or crashes it (exit 2
for a refused bomb, 0 or 1 for a sheet that is read).

The bombs are built small, with zipfile, in bench/out/ (gitignored):
- xfd: one cell at XFD1048576 (4 KB; aborted the process before, exit 134);
- az: one cell at AZ1048576 (4.2 GB before);
- limit: a cell at J1000000, just within the 10,000,000-cell limit;
- deflate: a sheet of 510 MiB of white space, deflated to about 0.5 MB (within the limit);
- declared: a sheet declaring 4 GiB inflated.

Run: python bench/bombs.py [--rows 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import validate as normal  # the sibling bench: its sheet and its generator

OUT_DIR = normal.OUT_DIR
GOAL_MB = 2048
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
DOC_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
HEAD = (
    '<row r="1"><c r="A1" t="inlineStr"><is><t>From</t></is></c>'
    '<c r="B1" t="inlineStr"><is><t>To</t></is></c>'
    '<c r="C1" t="inlineStr"><is><t>Text</t></is></c></row>'
)


def write_bomb(path: Path, rows: str, padding: int = 0) -> None:
    """A one-sheet XLSX whose sheet XML is `rows` inside <sheetData>, then `padding` spaces.

    The sheet is written to the zip in pieces: a bench that held 510 MiB would pass
    that memory to every child it starts, in the children's own peak RSS.
    """
    partial = path.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="xml" ContentType="application/xml"/></Types>',
        )
        archive.writestr(
            "_rels/.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{DOC_REL}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>',
        )
        archive.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{MAIN_NS}" xmlns:r="{DOC_REL}"><sheets>'
            '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{DOC_REL}/worksheet" '
            'Target="worksheets/sheet1.xml"/></Relationships>',
        )
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(f'<?xml version="1.0"?><worksheet xmlns="{MAIN_NS}"><sheetData>'.encode())
            sheet.write(f"{HEAD}{rows}".encode())
            block = b" " * (1 << 20)
            for start in range(0, padding, len(block)):
                sheet.write(block[: padding - start])
            sheet.write(b"</sheetData></worksheet>")
    partial.replace(path)


def declare(path: Path, member: str, size: int) -> None:
    """Rewrite the inflated size a member declares in the central directory."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(name)] != name:
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 24, size)
    path.write_bytes(bytes(data))


def bombs() -> dict[str, Path]:
    """Build (once) each bomb file in bench/out/."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    made = {
        "xfd": '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>',
        "az": '<row r="1048576"><c r="AZ1048576"><v>1</v></c></row>',
        "limit": '<row r="1000000"><c r="J1000000"><v>1</v></c></row>',
    }
    files = {}
    for name, rows in made.items():
        files[name] = OUT_DIR / f"bomb-{name}.xlsx"
        if not files[name].exists():
            write_bomb(files[name], rows)
    files["deflate"] = OUT_DIR / "bomb-deflate.xlsx"
    if not files["deflate"].exists():
        write_bomb(files["deflate"], "", padding=510 * 1024 * 1024)
    files["declared"] = OUT_DIR / "bomb-declared.xlsx"
    if not files["declared"].exists():
        write_bomb(files["declared"], "")
        declare(files["declared"], "xl/worksheets/sheet1.xml", 4 * 1024**3 - 1)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="normal sheet's rows")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    sheet = OUT_DIR / f"validate-{args.rows}.xlsx"
    if not sheet.exists():
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        print(f"writing {sheet} ({args.rows:,} rows, once)...", file=sys.stderr)
        normal.generate(sheet, args.rows)
    files = {"normal": sheet, **bombs()}
    figures: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in files.items():
            argv = [sys.executable, "-c", "from batcher.cli import main; main()"]
            argv += ["validate", str(path), "--out", str(Path(tmp) / f"{name}.csv")]
            with tempfile.TemporaryFile() as out:
                start = time.perf_counter()
                proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
                _, status, usage = os.wait4(proc.pid, 0)
                seconds = time.perf_counter() - start
                proc.returncode = code = os.waitstatus_to_exitcode(status)
                out.seek(0)
                said = out.read().decode(errors="replace").strip().splitlines()
            figures[name] = {
                "file_kb": round(path.stat().st_size / 1024, 1),
                "seconds": round(seconds, 2),
                "peak_mb": round(usage.ru_maxrss / 1024, 1),
                "exit": code,
                "ok": usage.ru_maxrss / 1024 <= GOAL_MB and code in (0, 1, 2),
                "said": said[0] if said else "",
            }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    base = figures["normal"]
    print(f"{'file':<10}{'size':>12}{'time':>9}{'peak':>11}{'exit':>6}  vs normal")
    for name, row in figures.items():
        ratio = row["peak_mb"] / base["peak_mb"]
        print(
            f"{name:<10}{row['file_kb']:>9} KB{row['seconds']:>7} s{row['peak_mb']:>8} MB"
            f"{row['exit']:>6}  {ratio:.2f}x memory  {'ok' if row['ok'] else 'OVER GOAL'}"
        )
    for name, row in figures.items():
        if name != "normal":
            print(f"  {name}: {row['said'][:150]}")
    verdict = all(row["ok"] for row in figures.values())
    print(f"goal: every file under {GOAL_MB} MB, no crash: {'PASS' if verdict else 'FAIL'}")


if __name__ == "__main__":
    main()
