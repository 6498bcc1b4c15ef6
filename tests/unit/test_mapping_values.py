"""Value normalisation: what an LLM (or a caller) may send, and what each kind makes of it."""

from __future__ import annotations

import unicodedata

import pytest

from worker.mapping.values import (
    NO,
    UNKNOWN,
    YES,
    ValueKind,
    clean_text,
    enum_key,
    normalise,
    normalise_key,
    number_value,
    text_value,
    truncate,
    yes_no,
)

# Every spelling the brief lists, plus the variants keyboards and LLMs add (spacing, zero-width joiners,
# chandrabindu vs anusvara, Hindi danda).
YES_SPELLINGS = [
    "yes", "Yes.", "YES", "true", "y", "haan", "haa", "han", "ha", "ji haan", "ji",
    "हाँ", "हां", "जी हाँ", "जी हां", "जी  हाँ", "हाँ\u200d", "हाँ।", " Yes! ", '"yes"', "yeah", 1, True,
]  # fmt: skip
NO_SPELLINGS = [
    "no", "No.", "NO!", "false", "nahi", "nahin", "nahi ji", "Nahi.", "नहीं", "नहीं।", "नहीँ", "ना",
    "not interested", "Not Interested.", 0, False,
]  # fmt: skip
UNKNOWN_SPELLINGS: list[object] = [
    "maybe", "shayad", "pata nahi", "Pata nahi.", "not sure", "later", "", "   ", None, "NA", "n/a",
    "yes?", "yes no", "nahi pata", 2, 0.5, [], {"answer": "yes"},
]  # fmt: skip


@pytest.mark.parametrize("raw", YES_SPELLINGS, ids=repr)
def test_yes_spellings_mean_yes(raw: object) -> None:
    assert yes_no(raw) == YES


@pytest.mark.parametrize("raw", NO_SPELLINGS, ids=repr)
def test_no_spellings_mean_no(raw: object) -> None:
    assert yes_no(raw) == NO


@pytest.mark.parametrize("raw", UNKNOWN_SPELLINGS, ids=repr)
def test_anything_else_is_unknown_never_guessed(raw: object) -> None:
    assert yes_no(raw) is UNKNOWN


def test_unknown_is_one_falsy_marker() -> None:
    assert not UNKNOWN
    assert repr(UNKNOWN) == "UNKNOWN"
    assert type(UNKNOWN)() is UNKNOWN


def test_key_is_the_same_for_composed_and_decomposed_devanagari() -> None:
    composed = "\u095b"  # DEVANAGARI LETTER ZA (ज़) as one code point
    decomposed = "\u091c\u093c"  # ज + nukta
    assert unicodedata.normalize("NFD", composed) == decomposed
    assert normalise_key(composed) == normalise_key(decomposed)


def test_key_peels_quotes_and_trailing_punctuation_in_any_order() -> None:
    assert normalise_key(' "Yes." ') == "yes"
    assert normalise_key("'yes'.") == "yes"
    assert normalise_key("Hot!!") == "hot"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Tomorrow 11am \n", "Tomorrow 11am"),
        ("kal\x00 shaam", "kal shaam"),
        (42, "42"),
        (True, "true"),
        ("N/A", UNKNOWN),
        ("none", UNKNOWN),
        ("-", UNKNOWN),
        ("", UNKNOWN),
        (None, UNKNOWN),
        (["a"], UNKNOWN),
    ],
    ids=repr,
)
def test_text_value(raw: object, expected: object) -> None:
    assert text_value(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (50000, 50000),
        (1.5, 1.5),
        (2.0, 2),
        ("50000", 50000),
        ("50,000", 50000),
        ("1,50,000", 150000),
        ("50k", 50000),
        ("50 K", 50000),
        ("1.5 lakh", 150000),
        ("2 crore", 20000000),
        ("₹ 50,000", 50000),
        ("Rs. 5000/-", 5000),
        ("INR 2.5L", 250000),
        ("12.75", 12.75),
        ("50-60k", UNKNOWN),
        ("fifty thousand", UNKNOWN),
        ("50 apples", UNKNOWN),
        (True, UNKNOWN),
        (float("nan"), UNKNOWN),
        (None, UNKNOWN),
        ("", UNKNOWN),
    ],
    ids=repr,
)
def test_number_value(raw: object, expected: object) -> None:
    value = number_value(raw)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hot.", "hot"),
        ("  Very Warm ", "very warm"),
        (5, "5"),
        ("", UNKNOWN),
        ("N/A", UNKNOWN),
        (True, UNKNOWN),
    ],
    ids=repr,
)
def test_enum_key(raw: object, expected: object) -> None:
    assert enum_key(raw) == expected


def test_normalise_dispatches_on_kind() -> None:
    assert normalise(ValueKind.YES_NO, "haan") == YES
    assert normalise(ValueKind.TEXT, " x ") == "x"
    assert normalise(ValueKind.NUMBER, "50k") == 50000
    assert normalise(ValueKind.ENUM, "HOT") == "hot"


def test_clean_text_keeps_case_and_newlines() -> None:
    assert clean_text("  Call\tback\nLater\x07 ") == "Call\tback\nLater"


@pytest.mark.parametrize(
    ("value", "length", "expected"),
    [
        ("abcdef", 3, ("abc", True)),
        ("ab cd", 3, ("ab", True)),
        ("abc", 3, ("abc", False)),
        ("abcdef", None, ("abcdef", False)),
        ("abcdef", 0, ("abcdef", False)),
        (123456, 3, (123456, False)),
    ],
    ids=repr,
)
def test_truncate(value: object, length: int | None, expected: tuple[object, bool]) -> None:
    assert truncate(value, length) == expected
