"""A CSV file's bytes as text: every encoding it may be in, and the files refused, with where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import example, given
from hypothesis import strategies as st

from batcher.cli import main
from batcher.errors import InputError
from batcher.loading import load_sheet
from batcher.sandbox import RunningSandbox
from batcher.textfile import Decoded, decode_text
from tests.runs import LINE_A, cli_env, ledger, run_cli
from tests.sheets import write_csv

TEXT = "To\tText\r\n4155551234\tHola Lucía, ¿hablamos? ☕\r\n"
LATIN = 'To,Text\n4155551234,"Hola Lucía, ¿hablamos?"\n'


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (TEXT.encode("utf-8"), "UTF-8"),
        ("\ufeff".encode() + TEXT.encode("utf-8"), "UTF-8"),
        ("\ufeff".encode("utf-16-le") + TEXT.encode("utf-16-le"), "UTF-16 LE"),
        ("\ufeff".encode("utf-16-be") + TEXT.encode("utf-16-be"), "UTF-16 BE"),
        ("\ufeff".encode("utf-32-le") + TEXT.encode("utf-32-le"), "UTF-32 LE"),
        ("\ufeff".encode("utf-32-be") + TEXT.encode("utf-32-be"), "UTF-32 BE"),
        (TEXT.replace("☕", "€").encode("cp1252"), "Windows-1252"),
    ],
)
def test_encodings_read(data: bytes, encoding: str) -> None:
    """With a byte-order mark, in the encoding it names; else UTF-8; else Windows-1252."""
    decoded = decode_text("in.csv", data)
    assert decoded.encoding == encoding
    assert decoded.text == (TEXT.replace("☕", "€") if encoding == "Windows-1252" else TEXT)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            "Text\nHola Lucía\n".encode() + b"bad \xff byte\n",
            "in.csv is UTF-8 text except for 1 byte that is not UTF-8: "
            "line 3, byte 5 (0xFF, after 'bad ').",
        ),
        (
            b"\xef\xbb\xbfText\nx\xe9y\n",
            "in.csv is UTF-8 text except for 1 byte that is not UTF-8: "
            "line 2, byte 2 (0xE9, after 'x').",
        ),
        (
            "Text\n¿sí?\n".encode() + b"\xff\n" * 7,
            "in.csv is UTF-8 text except for 7 bytes that are not UTF-8: line 3, byte 1 (0xFF); "
            "line 4, byte 1 (0xFF); line 5, byte 1 (0xFF); line 6, byte 1 (0xFF); "
            "line 7, byte 1 (0xFF); and 2 more.",
        ),
        (
            b"Text\nab\x81c\n",
            "in.csv is neither UTF-8 nor Windows-1252 text: the byte 0x81 at line 2, byte 3 "
            "is neither.",
        ),
        (
            b"\xff\xfeT\x00\x00\xd8",
            "in.csv starts with the byte-order mark of UTF-16 LE text, but is not UTF-16 LE "
            "text: unexpected end of data at byte 5 of the file.",
        ),
        (b"\x00\x01\x02binary\n", "in.csv is not a text file"),
        ("To\tText\n".encode("utf-16-le"), "in.csv is not a text file"),
    ],
)
def test_refused(data: bytes, message: str) -> None:
    """UTF-8 but for some bytes, no encoding, a wrong mark, binary: refused, saying where."""
    with pytest.raises(InputError) as caught:
        decode_text("in.csv", data)
    assert caught.value.message.startswith(message)
    assert "save" in caught.value.hint


# Any text a file may hold (no lone surrogates: no encoding writes them), on a first line
# without NUL, as a CSV's header line is.
HEADER_LINE = st.text(st.characters(codec="utf-8", exclude_characters="\x00\n"), min_size=1)
ANY_TEXT = st.text(st.characters(codec="utf-8"))
MARKED = ["utf-8-sig", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"]


@given(header=HEADER_LINE, rest=ANY_TEXT, codec=st.sampled_from(MARKED))
@example(header="To", rest="\x00", codec="utf-16-le")
def test_marked_text_reads_back_exactly(header: str, rest: str, codec: str) -> None:
    """Any text written with a byte-order mark is read back exactly, character for character."""
    text = f"{header}\n{rest}"
    data = text.encode(codec) if codec == "utf-8-sig" else ("\ufeff" + text).encode(codec)
    assert decode_text("in.csv", data).text == text


@given(header=HEADER_LINE, rest=ANY_TEXT)
def test_utf8_reads_back_exactly(header: str, rest: str) -> None:
    """Any UTF-8 text without a mark is read back exactly (a leading U+FEFF is the mark)."""
    text = f"{header}\n{rest.replace(chr(0), '')}"  # NULs are rows' problems, tested apart
    decoded = decode_text("in.csv", text.encode())
    assert decoded.encoding == "UTF-8"
    assert decoded.text == text.removeprefix("\ufeff")


@given(
    before=ANY_TEXT.filter(lambda t: any(ord(ch) > 0x7F for ch in t)),
    after=ANY_TEXT,
    byte=st.sampled_from([0x80, 0xA9, 0xC3, 0xE9, 0xF1, 0xFF]),
)
def test_utf8_with_a_stray_byte_is_never_read(before: str, after: str, byte: int) -> None:
    """UTF-8 text with some other byte in it is refused, never read as another encoding."""
    # Before a new line, none of these bytes can complete a UTF-8 sequence.
    stray = before.encode() + bytes([byte]) + b"\n" + after.encode()
    with pytest.raises(InputError, match="is UTF-8 text except for"):
        decode_text("in.csv", b"To,Text\n" + stray.replace(b"\x00", b""))


@given(st.text(st.characters(codec="cp1252", exclude_characters="\x00")))
def test_windows_1252_is_read_only_as_what_it_is(text: str) -> None:
    """cp1252 bytes are read as cp1252 exactly, or as UTF-8 only if they are UTF-8 throughout."""
    data = b"To,Text\n" + text.encode("cp1252")
    try:
        as_utf8: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        as_utf8 = None
    try:
        decoded: Decoded | None = decode_text("in.csv", data)
    except InputError:
        decoded = None  # cp1252 bytes that hold a valid UTF-8 sequence beside invalid ones
    if decoded is None:
        assert as_utf8 is None
    elif decoded.encoding == "Windows-1252":
        assert decoded.text == "To,Text\n" + text
    else:
        assert (decoded.encoding, decoded.text) == ("UTF-8", as_utf8)


def test_nul_after_the_header_is_not_a_binary_file(tmp_path: Path) -> None:
    """A NUL in a data row is that row's problem (batcher.validation), not the file's."""
    path = tmp_path / "in.csv"
    path.write_bytes(b"To,Text\n4155551234,a\x00b\n")
    assert load_sheet(path).rows[0].cells == ("4155551234", "a\x00b")


def test_excel_unicode_text_is_sent(tmp_path: Path, box: RunningSandbox) -> None:
    """Excel's "Unicode Text" (UTF-16 LE, BOM, tabs, CRLF) is read and sent as written."""
    path = write_csv(
        tmp_path / "in.txt",
        [["From", "To", "Text"], [LINE_A, "4155551234", "Grüße, Lucía\tcafé ☕"]],
        encoding="utf-16",
        delimiter="\t",
    )
    assert path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    result = run_cli(["run", str(path), "--yes"], cli_env(box))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Read as UTF-16 LE text." in result.stdout
    [sent] = ledger(box)
    assert sent["parts"] == [{"type": "text", "value": "Grüße, Lucía\tcafé ☕"}]


def test_summary_says_the_encoding(tmp_path: Path) -> None:
    """The summary and --json say which encoding the file was read in."""
    path = tmp_path / "in.csv"
    path.write_bytes(LATIN.encode("cp1252"))
    result = CliRunner().invoke(main, ["validate", str(path), "--from", LINE_A])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "Read as Windows-1252 text."
    result = CliRunner().invoke(main, ["validate", str(path), "--from", LINE_A, "--json"])
    assert json.loads(result.output)["encoding"] == "Windows-1252"


def test_stray_byte_refuses_the_file(tmp_path: Path) -> None:
    """One stray byte in a UTF-8 file: exit 2, where it is, and nothing written."""
    path = tmp_path / "in.csv"
    path.write_bytes(LATIN.encode() + b"4155552671,Se\xf1or\n")
    result = CliRunner().invoke(main, ["validate", str(path), "--from", LINE_A])
    assert result.exit_code == 2
    assert (
        f"Error: {path} is UTF-8 text except for 1 byte that is not UTF-8: "
        "line 3, byte 14 (0xF1, after '4155552671,Se')."
    ) in result.output
    assert not (tmp_path / "in.results.csv").exists()
