"""Normalising output-parameter values (LLM-extracted text, callers' JSON) into the few shapes a rule maps.

Contract: every normaliser takes any JSON value and returns either a clean value or ``UNKNOWN``. It never
guesses: a value that is not in the tables below (``maybe``, ``shayad``, ``pata nahi``, ``not sure``, empty,
``None``, a list, ...) is ``UNKNOWN``, and the caller records it as unknown instead of writing it.

Matching is done on a *key*: Unicode NFC, zero-width characters removed, whitespace collapsed, casefolded,
surrounding quotes and trailing punctuation (``.``, ``!``, ``,``, ``;``, ``।``, ``॥``) stripped, and
Devanagari chandrabindu folded into anusvara (``हाँ`` and ``हां`` are one word, typed on different
keyboards).
Lookups are whole-key, never substring: ``pata nahi`` ("don't know") contains ``nahi`` but is not "no".
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final


class ValueKind(StrEnum):
    """How a parameter's raw value is normalised (the ``kind`` of a rule in the mapping file)."""

    YES_NO = "yes_no"  # -> YES / NO
    TEXT = "text"  # -> the trimmed text, as typed (case kept)
    NUMBER = "number"  # -> int or float ("50k", "1.5 lakh", "₹ 50,000" understood)
    ENUM = "enum"  # -> the normalised key, looked up in the rule's value map


class _Unknown:
    """The one "no usable value" marker. Falsy, so ``if value:`` reads naturally."""

    __slots__ = ()
    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Final = _Unknown()
YES: Final = "yes"
NO: Final = "no"

# str.translate tables: zero-width characters LLMs and Indic keyboards leave behind; chandrabindu -> anusvara.
_INVISIBLE: Final = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
_NASAL_FOLD: Final = {0x0901: 0x0902}
_QUOTES: Final = "\"'`“”‘’ "
_TRAILING_PUNCTUATION: Final = ".!,;।॥ "
# C0/C1 control characters except tab and newline: never data for a Salesforce field.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def normalise_key(raw: str) -> str:
    """The comparison key of a text value (see the module docstring). ``"  Yes. "`` -> ``"yes"``."""
    text = unicodedata.normalize("NFC", raw).translate(_INVISIBLE).translate(_NASAL_FOLD)
    text = " ".join(text.split()).casefold()
    while True:  # '"Yes."' and 'yes".' both need quotes and punctuation peeled in turn
        peeled = text.strip(_QUOTES).rstrip(_TRAILING_PUNCTUATION)
        if peeled == text:
            return text
        text = peeled


def clean_text(raw: str) -> str:
    """Text as data for a field: NFC, control characters removed, trimmed. Case and inner spacing kept."""
    return _CONTROL.sub("", unicodedata.normalize("NFC", raw)).strip()


def truncate(value: Any, length: int | None) -> tuple[Any, bool]:
    """``(value cut to length characters, whether it was cut)``; only strings are cut, only for length > 0."""
    if isinstance(value, str) and length and length > 0 and len(value) > length:
        return value[:length].rstrip(), True
    return value, False


_YES_WORDS: Final = (
    "yes", "y", "yeah", "yep", "yup", "true", "1", "interested",
    "haan", "haa", "han", "ha", "haanji", "haan ji", "ji haan", "ji haa", "ji han", "ji ha", "ji",
    "हाँ", "हां", "हाँ जी", "जी हाँ", "जी",
)  # fmt: skip
# Not "na": "NA" is as often "not available" as the Hindi "no". "ना" (Devanagari) is unambiguous.
_NO_WORDS: Final = (
    "no", "n", "nope", "nah", "false", "0", "not interested", "no thanks", "no thank you",
    "nahi", "nahin", "nahi ji", "nahin ji", "ji nahi", "ji nahin", "nai",
    "नहीं", "नही", "नहीं जी", "जी नहीं", "ना",
)  # fmt: skip

#: Normalised key -> YES / NO. Everything else is UNKNOWN.
YES_NO_WORDS: Final[dict[str, str]] = {
    **{normalise_key(word): YES for word in _YES_WORDS},
    **{normalise_key(word): NO for word in _NO_WORDS},
}

#: Text an LLM writes when it has no value. A text/enum parameter holding one of these is UNKNOWN, not data.
BLANK_WORDS: Final = frozenset(
    normalise_key(word)
    for word in (
        "", "-", "--", "—", "n/a", "na", "none", "null", "nil", "nan", "undefined", "unknown",
        "not available", "not mentioned", "not specified", "not provided",
    )
)  # fmt: skip

_MULTIPLIERS: Final[dict[str, int]] = {
    "": 1,
    "k": 1_000, "thousand": 1_000,
    "l": 100_000, "lac": 100_000, "lacs": 100_000, "lakh": 100_000, "lakhs": 100_000,
    "m": 1_000_000, "mn": 1_000_000, "million": 1_000_000,
    "cr": 10_000_000, "crore": 10_000_000, "crores": 10_000_000,
}  # fmt: skip
_CURRENCY_PREFIX: Final = re.compile(r"^(?:₹|rs\.?|inr|\$|usd)\s*")
_CURRENCY_SUFFIX: Final = re.compile(r"\s*(?:/-|inr|rs|rupees?)$")
_NUMBER: Final = re.compile(r"(-?\d+(?:\.\d+)?)\s*([a-z]*)")


def yes_no(raw: Any) -> str | _Unknown:
    """YES, NO or UNKNOWN. Booleans and the numbers 1 / 0 count; any other non-text value is UNKNOWN."""
    if isinstance(raw, bool):
        return YES if raw else NO
    if isinstance(raw, int | float):
        return YES if raw == 1 else NO if raw == 0 else UNKNOWN
    if isinstance(raw, str):
        return YES_NO_WORDS.get(normalise_key(raw), UNKNOWN)
    return UNKNOWN


def text_value(raw: Any) -> str | _Unknown:
    """The value as clean text (case kept); UNKNOWN for None, containers and blanks such as ``N/A``."""
    if raw is None or isinstance(raw, dict | list | tuple | set):
        return UNKNOWN
    text = clean_text(str(raw).lower() if isinstance(raw, bool) else str(raw))
    return UNKNOWN if normalise_key(text) in BLANK_WORDS else text


def number_value(raw: Any) -> int | float | _Unknown:
    """An int (or float when fractional). Understands ``50000``, ``"50,000"``, ``"1,50,000"``, ``"50k"``,
    ``"1.5 lakh"``, ``"₹ 2 crore"``, ``"Rs. 5000/-"``. Ranges (``"50-60k"``), words, booleans: UNKNOWN."""
    if isinstance(raw, bool):
        return UNKNOWN
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return _as_number(Decimal(str(raw))) if math.isfinite(raw) else UNKNOWN
    if not isinstance(raw, str):
        return UNKNOWN
    key = _CURRENCY_SUFFIX.sub("", _CURRENCY_PREFIX.sub("", normalise_key(raw)))
    key = re.sub(r"(?<=\d)[, ](?=\d)", "", key)  # digit grouping, Indian (1,50,000) or Western
    match = _NUMBER.fullmatch(key)
    if not match or match.group(2) not in _MULTIPLIERS:
        return UNKNOWN
    try:
        amount = Decimal(match.group(1)) * _MULTIPLIERS[match.group(2)]
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        return UNKNOWN
    return _as_number(amount)


def _as_number(amount: Decimal) -> int | float:
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def enum_key(raw: Any) -> str | _Unknown:
    """The normalised key of the value (numbers as text), or UNKNOWN for blanks and non-scalars."""
    if raw is None or isinstance(raw, bool | dict | list | tuple | set):
        return UNKNOWN
    key = normalise_key(str(raw))
    return UNKNOWN if key in BLANK_WORDS else key


NORMALISERS: Final[dict[ValueKind, Callable[[Any], Any]]] = {
    ValueKind.YES_NO: yes_no,
    ValueKind.TEXT: text_value,
    ValueKind.NUMBER: number_value,
    ValueKind.ENUM: enum_key,
}


def normalise(kind: ValueKind, raw: Any) -> Any:
    """The normalised value of ``raw`` for ``kind``, or UNKNOWN."""
    return NORMALISERS[kind](raw)
