"""Suppression files read from real CSV, XLSX and text files: numbers, and bad lines by number."""

from __future__ import annotations

from pathlib import Path

import pytest

from batcher.audience import read_numbers
from batcher.errors import InputError
from tests.sheets import write_csv, write_xlsx


def test_a_csv_with_a_phone_column(tmp_path: Path) -> None:
    """The Phone column's numbers, repaired and normalized as recipients are, without repeats."""
    path = write_csv(
        tmp_path / "dnc.csv",
        [
            ["Name", "Phone", "Note"],
            ["Sam", "(415) 555-1234", "asked twice"],
            ["Ana", "+1 415 555 2671; 415.555.7788", ""],
            ["Sam again", "tel:+1-415-555-1234", ""],
        ],
    )
    numbers = read_numbers(path, "US")
    assert numbers.numbers == ("+14155551234", "+14155552671", "+14155557788")
    assert numbers.bad == ()


def test_one_number_a_line(tmp_path: Path) -> None:
    """A file of bare numbers: no header, blank lines ignored, the first line a number too."""
    path = tmp_path / "dnc.txt"
    path.write_text("+14155551234\n\n415-555-2671\n  0044 7911 123456 \n", encoding="utf-8")
    assert read_numbers(path, "US").numbers == ("+14155551234", "+14155552671", "+447911123456")


def test_national_numbers_are_read_for_the_region(tmp_path: Path) -> None:
    """Numbers without a country code are read for --region."""
    path = tmp_path / "dnc.txt"
    path.write_text("020 7946 0958\n07911 123456\n", encoding="utf-8")
    assert read_numbers(path, "GB").numbers == ("+442079460958", "+447911123456")


def test_an_xlsx_with_numeric_cells_and_two_phone_columns(tmp_path: Path) -> None:
    """Numeric cells lose their +; a contact's Phone and Mobile are both read."""
    path = write_xlsx(
        tmp_path / "dnc.xlsx",
        [["Name", "Phone", "Mobile"], ["Sam", 14155551234, "+44 7911 123456"], ["Kim", "", ""]],
    )
    assert read_numbers(path, "US").numbers == ("+14155551234", "+447911123456")


def test_bad_lines_are_named_by_line_column_and_value(tmp_path: Path) -> None:
    """Each bad number says where it is and what it holds; the good ones are still read."""
    headed = write_csv(
        tmp_path / "dnc.csv", [["Phone"], ["+14155551234"], ["12345"], ["sam@example.com"]]
    )
    numbers = read_numbers(headed, "US")
    assert numbers.numbers == ("+14155551234",)
    assert [str(bad).split(":")[0] for bad in numbers.bad] == [
        "line 3, column Phone",
        "line 4, column Phone",
    ]
    assert [bad.value for bad in numbers.bad] == ["12345", "sam@example.com"]
    assert "'12345' is not a valid phone number" in str(numbers.bad[0])
    assert "email address" in str(numbers.bad[1])
    bare = tmp_path / "dnc.txt"
    bare.write_text("+14155551234\n1.41555E+10\n", encoding="utf-8")
    (bad,) = read_numbers(bare, "US").bad
    assert str(bad).startswith("line 2: 1.41555E+10 is in scientific notation")


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        ([["Name", "Email"], ["Sam", "sam@example.com"]], "no phone column. The header row has"),
        ([["Name"], ["Sam"]], "no phone column"),
    ],
)
def test_a_file_without_numbers_is_refused(
    tmp_path: Path, rows: list[list[str]], says: str
) -> None:
    """Neither a phone column nor bare numbers: InputError with what to name the column."""
    path = write_csv(tmp_path / "list.csv", rows)
    with pytest.raises(InputError) as refused:
        read_numbers(path, "US")
    assert says in str(refused.value)
    assert "Name the column of numbers Phone" in str(refused.value)
