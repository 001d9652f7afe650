"""Placeholders as pure functions: parsing, rendering, cleaning, and names no column has."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from batcher.templates import (
    Empty,
    Filler,
    Placeholder,
    TemplateError,
    Unknown,
    all_placeholders_known,
    clean_value,
    column_keys,
    missing_placeholders,
    parse,
    render,
)

ROW = {"firstname": "Sam", "venue": "Café Nord", "empty": "", "spaces": "  Ana  "}


def filled(text: str) -> str | Empty:
    return render(parse(text), lambda key: ROW[key])


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("no placeholder", "no placeholder"),
        ("Hi {{First Name}}!", "Hi Sam!"),
        ("Hi {{first_name}}, {{FIRST-NAME}}, {{ firstName }}", "Hi Sam, Sam, Sam"),
        ("{{Venue}}", "Café Nord"),
        ("Hi {{Empty|there}},", "Hi there,"),
        ("Hi {{Empty | there }},", "Hi there,"),
        ("Hi {{Empty|}},", "Hi ,"),
        ("Hi {{First Name|there}}", "Hi Sam"),
        ("Hi {{Spaces}}.", "Hi Ana."),
        ("a {single} brace, {{Venue}} }{", "a {single} brace, Café Nord }{"),
        ("{{Empty|Grüße, 你好 👋}}", "Grüße, 你好 👋"),
        ("{{Empty|a|b}}", "a|b"),
    ],
)
def test_render(text: str, shown: str) -> None:
    """Each placeholder is filled from its column, or its fallback when the cell is empty."""
    assert filled(text) == shown


@pytest.mark.parametrize(
    ("text", "placeholder"),
    [
        ("Hi {{Empty}}", Placeholder("Empty", None, "empty")),
        ("{{Venue}} {{ empty }}", Placeholder("empty", None, "empty")),
    ],
)
def test_an_empty_cell_without_a_fallback_renders_nothing(
    text: str, placeholder: Placeholder
) -> None:
    """An empty cell behind a placeholder without a fallback is reported, not sent as ''."""
    assert filled(text) == Empty(placeholder, placeholder.name)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("Hi {{First Name}", "a stray '{{' at character 4"),
        ("Hi {First Name}}", "a stray '}}' at character 15"),
        ("Hi {{{First Name}}}", "a stray '{{' at character 4"),
        ("Hi {{First Name}}}", "a stray '}}' at character 17"),
        ("{{a{{b}}}}", "a stray '{{' at character 1"),
        ("}} {{Venue}}", "a stray '}}' at character 1"),
        ("{{{{Venue}}", "a stray '{{' at character 1"),
        ("{{Venue}}}}", "a stray '}}' at character 9"),
        ("{{Venue}} {x}}", "a stray '}}' at character 13"),
        ("Hi {{}}", "'{{}}' at character 4 names no column"),
        ("Hi {{ |x}}", "'{{ |x}}' at character 4 names no column"),
    ],
)
def test_stray_braces_say_where(text: str, said: str) -> None:
    """Braces that are not a whole placeholder are refused, naming the character."""
    with pytest.raises(TemplateError) as raised:
        parse(text)
    assert str(raised.value).startswith(said)


@pytest.mark.parametrize(
    ("value", "cleaned"),
    [
        ("  Sam  ", "Sam"),
        ("Sam\u200b", "Sam"),
        ("\ufeffSam", "Sam"),
        ("S\u2060am", "Sam"),
        ("Mary\u00a0Ann", "Mary Ann"),
        ("Mary\u202fAnn\u00a0", "Mary Ann"),
        ("\u200dSam\u200c", "Sam"),
        ("\u0645\u06cc\u200c\u0631\u0648\u0645", "\u0645\u06cc\u200c\u0631\u0648\u0645"),
        ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),
        ("\u200b \u00a0", ""),
        ("Anne-Marie O'Neil", "Anne-Marie O'Neil"),
    ],
)
def test_clean_value(value: str, cleaned: str) -> None:
    """Values are trimmed, lose invisible characters, and get plain spaces; nothing else."""
    assert clean_value(value) == cleaned


def test_the_cells_own_text_is_not_cleaned() -> None:
    """Only the substituted value is cleaned: the text around it is sent as written."""
    assert filled("Hi\u00a0{{Spaces}}\u200b!") == "Hi\u00a0Ana\u200b!"


@pytest.mark.parametrize(
    ("cells", "missing"),
    [
        ([(2, "Hi {{First Name}}")], {}),
        ([(2, "Hi {{Frist Name}}"), (3, "{{frist_name|x}}")], {"Frist Name": [2, 3]}),
        ([(2, "{{Place}} {{Place}}"), (4, "{{Town}}")], {"Place": [2], "Town": [4]}),
        ([(0, "Hi {{Nick}}"), (2, "{{Nick}}")], {"Nick": [0, 2]}),
        ([(2, "Hi {{Frist Name}")], {}),  # a stray brace: the row's own problem
    ],
)
def test_missing_placeholders(cells: list[tuple[int, str]], missing: dict[str, list[int]]) -> None:
    """Every placeholder naming no column is found, with the rows it is in."""
    headers = ("First Name", "", "Venue")
    assert missing_placeholders(cells, headers) == missing


HEADERS = ("First Name", "Venue", "Empty", "Spaces")
# Pieces of text with every way braces, pipes and names can meet.
FRAGMENTS = st.sampled_from(
    (
        *("{{", "}}", "{", "}", "|", " ", "\u00a0", "\n", "é", "x"),
        *("First Name", "venue", "EMPTY", " spaces", "Nope"),
    )
)
TEXT = st.lists(FRAGMENTS, max_size=14).map("".join)
VALUE = st.text(st.sampled_from(" a\u200b\u00a0'{}|"), max_size=4)


def reference(text: str, cells: tuple[str, ...]) -> str | Empty | Unknown:
    """What validation gave before Filler: parse, the first unknown name, then render."""
    keys = column_keys(HEADERS)
    try:
        template = parse(text)
    except TemplateError as error:
        return f"TemplateError: {error}"
    missing = next((p for p in template.placeholders if p.key not in keys), None)
    if missing is not None:
        return Unknown(missing)
    return render(template, lambda key: cells[keys[key]].strip())


def filled_by(filler: Filler, text: str, cells: tuple[str, ...]) -> str | Empty | Unknown:
    try:
        return filler.fill(text, cells)
    except TemplateError as error:
        return f"TemplateError: {error}"


@given(texts=st.lists(TEXT, min_size=1, max_size=4), cells=st.tuples(*[VALUE] * len(HEADERS)))
@example(
    texts=["{{Nope}} {{ }}", "{{Empty}} {{Nope}}", "{{a{{b}}}}", "x {single} {{Venue}}"],
    cells=("", "", "", ""),
)
def test_filler_gives_what_parse_and_render_give(texts: list[str], cells: tuple[str, ...]) -> None:
    """For any text: the same text, Empty, unknown placeholder or TemplateError message."""
    filler = Filler(
        column_keys(HEADERS), str.strip
    )  # one per sheet: what it keeps serves every text
    for text in texts:
        assert filled_by(filler, text, cells) == reference(text, cells)


def test_a_template_error_is_not_kept() -> None:
    """A text refused for its braces does not change what the next text gives."""
    filler = Filler(column_keys(HEADERS), str.strip)
    with pytest.raises(TemplateError):
        filler.fill("{{ |x}}", ("Sam", "", "", ""))
    assert filler.fill("{{Venue|x}}", ("", "", "", "")) == "x"


@given(texts=st.lists(TEXT, max_size=5))
@example(texts=["x {{", "Nope}}"])
@example(texts=["{{Nope", "}} y"])
@example(texts=["{", "{Nope}}"])
@example(texts=["{{Nope|", "}}"])
def test_the_quick_answer_agrees_with_missing_placeholders(texts: list[str]) -> None:
    """One search of all the cells joined finds a missing name where the cell-by-cell one does."""
    missing = missing_placeholders(enumerate(texts, start=2), HEADERS)
    assert all_placeholders_known(texts, HEADERS) == (not missing)
