"""Write samples/contacts.xlsx and samples/contacts.csv from one table of realistic rows.

Run `python samples/make_samples.py` after changing the rows. Some texts greet people
with the placeholder {{First name}} ({{First name|there}} where the cell may be empty).
In the XLSX some
phone numbers are numeric cells, as Excel makes them when someone types them,
and one is formatted as scientific: the damage chert-batch must handle.
"""

from __future__ import annotations

import csv
from pathlib import Path

from openpyxl import Workbook

HERE = Path(__file__).parent
HEADERS = ["First name", "From", "To", "Group name", "Message", "Link", "Image", "Owner"]
DEMO = "+15555550100"
EVENTS = "+15555550101"
# Numbers that are numeric cells in the XLSX (a CSV holds them as the same digits).
NUMERIC = {"14155553390", "16505558812", "442079460123", "14155500000"}
SCIENTIFIC = "14155500000"  # someone typed 1.41555E+10: the digits are already gone

# One row per line reads like the sheet itself.
# fmt: off
ROWS: list[list[str]] = [
    ["Sam", DEMO, "+1 415 555 1234", "", "Hi {{First name}}, thanks for stopping by our booth! "
     "Want a 15-minute demo next week?", "", "", "dana"],
    ["Priya", DEMO, "(415) 555-2671", "", "Hi {{First name}}, great meeting you at SaaStr. "
     "Can I send over the pricing sheet?", "", "", "dana"],
    ["Marcus", DEMO, "14155553390", "", "Hi {{First name|there}}, your trial ends Friday. "
     "Any questions before then?", "", "", "dana"],
    ["Lena", DEMO, "+44 20 7946 0958", "", "Hi Lena, following up on the London pilot. "
     "Does Thursday work?", "", "", "li"],
    ["Tom", DEMO, "0044 7911 123456", "", "Hi Tom, your demo account is ready.", "", "", "li"],
    ["Ana", EVENTS, "415.555.7788", "", "Hi Ana, see you at the launch party on the 12th!",
     "", "launch-banner.png", "li"],
    ["Dev", EVENTS, "tel:+1-628-555-2147", "", "Hi Dev, your badge is waiting at the front desk.",
     "", "", "li"],
    ["Kim", EVENTS, "16505558812", "", "Hi {{First name|there}}, we saved you a seat at the "
     "keynote.", "", "", "li"],
    ["", EVENTS, "1-212-555-4410", "", "Hi {{First name|there}}, the workshop moved to room 4B.",
     "", "", "li"],
    ["Lucía", EVENTS, "+34 612 345 678", "", "Hola Lucía, gracias por venir. ¿Hablamos el lunes?",
     "", "", "li"],
    ["Ben", DEMO, "442079460123", "", "Hi Ben, the contract is ready for your signature.", "",
     "", "dana"],
    ["Chloe", DEMO, "(646) 555-3019", "", "Hi Chloe, quick question about your rollout.", "",
     "", "dana"],
    ["", DEMO, "+14155551234; (415) 555-2671; 14155553390", "Spring launch crew",
     "Starting this group for the launch plan. Dates coming shortly.", "",
     "launch-banner.png", "dana"],
    ["", EVENTS, "415.555.7788, 16505558812", "Pilot kickoff",
     "Kickoff notes are up, agenda below.", "https://example.com/pilot", "", "li"],
    ["Sam", DEMO, "+1 415 555 1234", "", "Here is the deck I mentioned.",
     "https://example.com/deck", "", "dana"],
    ["Priya", DEMO, "(415) 555-2671", "", "Hi {{First name}}, great meeting you at SaaStr. "
     "Can I send over the pricing sheet?", "", "", "dana"],
    [],
    ["Nina", DEMO, "415-555-12", "", "Hi Nina, welcome aboard!", "", "", "li"],
    ["Raj", DEMO, SCIENTIFIC, "", "Hi Raj, your invoice is attached.", "", "", "li"],
    ["Eva", EVENTS, "(312) 555-0199", "", "Hi Eva, book your slot here: "
     "https://example.com/book", "", "", "li"],
]
# fmt: on


def write_xlsx(path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Contacts"
    sheet.append(HEADERS)
    for row in ROWS:
        sheet.append([int(cell) if cell in NUMERIC else cell for cell in row])
    for cells in sheet.iter_rows():
        for cell in cells:
            if cell.value == int(SCIENTIFIC):
                cell.number_format = "0.00E+00"
    for letter, width in zip("ABCDEFGH", (11, 14, 40, 20, 60, 28, 18, 8), strict=True):
        sheet.column_dimensions[letter].width = width
    book.save(path)


def write_csv(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(HEADERS)
        writer.writerows(
            [("1.41555E+10" if cell == SCIENTIFIC else cell) for cell in row] for row in ROWS
        )


if __name__ == "__main__":
    write_xlsx(HERE / "contacts.xlsx")
    write_csv(HERE / "contacts.csv")
