"""Phone numbers: normalise with ``phonenumbers``, list the spellings a Salesforce org may hold, mask for logs.

Salesforce keeps phone fields as typed text and SOQL ``=`` compares strings exactly, so finding a Lead by
phone means asking for every common spelling of the same number (``9999999999``, ``+91 99999 99999``,
``099999-99999``, ...) and then confirming each candidate by parsing it back.
"""

from __future__ import annotations

import functools
import re

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat

_DIGITS = re.compile(r"\D+")


def parse_phone(raw: str | None, region: str = "IN") -> PhoneNumber | None:
    """The number as ``phonenumbers`` reads it (national numbers in ``region``), or None if it is not one."""
    if not raw:
        return None
    text = str(raw).strip()
    digits = _DIGITS.sub("", text)
    if not 6 <= len(digits) <= 15:
        return None
    if not text.startswith("+") and text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return number


@functools.lru_cache(maxsize=16_384)
def e164(raw: str | None, region: str = "IN") -> str | None:
    """The number in E.164 (``+919999999999``), or None. Cached: Lead lookups compare the same numbers often."""
    number = parse_phone(raw, region)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164) if number else None


def same_number(a: str | None, b: str | None, region: str = "IN") -> bool:
    first, second = e164(a, region), e164(b, region)
    return first is not None and first == second


def spellings(raw: str | None, region: str = "IN") -> list[str]:
    """Every common way the number may be stored in an org (no duplicates, E.164 first).

    For an Indian mobile ``9999999999``: ``+919999999999``, ``9999999999``, ``09999999999``,
    ``919999999999``, ``+91 99999 99999``, ``+91-99999-99999``, ``099999 99999``, ``099999-99999``,
    ``99999 99999``, ``99999-99999``, ``+91 9999999999``, ``+91-9999999999``, ``(+91) 9999999999``, ...
    """
    number = parse_phone(raw, region)
    if number is None:
        return []
    national = str(number.national_number)
    country = str(number.country_code)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)  # +91 99999 99999
    national_fmt = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)  # 099999 99999
    groups = international.split(" ", 1)[1] if " " in international else national
    trunk = national_fmt[0] if national_fmt and national_fmt[0] == "0" else ""
    candidates = [
        f"+{country}{national}",
        national,
        f"{trunk}{national}" if trunk else national,
        f"{country}{national}",
        international,
        f"+{country}-{groups.replace(' ', '-')}",
        f"+{country} {national}",
        f"+{country}-{national}",
        f"({'+'}{country}) {national}",
        f"00{country}{national}",
        national_fmt,
        national_fmt.replace(" ", "-"),
        groups,
        groups.replace(" ", "-"),
        groups.replace(" ", ""),
        f"{trunk}{groups.replace(' ', '-')}" if trunk else groups.replace(" ", "-"),
    ]
    if len(national) == 10:
        # Indian mobiles are often written 3-3-4 or 5-5 by hand.
        three = f"{national[:3]}-{national[3:6]}-{national[6:]}"
        candidates += [
            three,
            three.replace("-", " "),
            f"+{country} {three.replace('-', ' ')}",
            f"({national[:3]}) {national[3:6]}-{national[6:]}",
        ]
    seen: dict[str, None] = {}
    for candidate in candidates:
        seen.setdefault(candidate, None)
    return list(seen)


def digits_only(raw: str | None) -> str:
    """The ASCII digits of ``raw`` (empty when none)."""
    return re.sub(r"[^0-9]", "", str(raw or ""))


#: A phone-like run: digits with the usual separators, not glued to letters (record ids stay readable).
_NUMBER_RUN = re.compile(r"(?<![A-Za-z0-9])\+?\d[\d\s().-]{7,}\d(?![A-Za-z0-9])")
#: Fewer digits than this are dates, times, amounts or counts, never a phone number.
NUMBER_MIN_DIGITS = 9


def mask_numbers(text: str) -> str:
    """``text`` with every phone-like run (9 or more digits, with the usual separators) replaced by ``mask``:
    for log lines, error messages from either API, the ledger, the CLI and dry runs."""

    def one(match: re.Match[str]) -> str:
        return mask(match.group()) if len(digits_only(match.group())) >= NUMBER_MIN_DIGITS else match.group()

    return _NUMBER_RUN.sub(one, text)


def mask(raw: str | None) -> str:
    """The one phone masker (logs, errors, the ledger, the CLI, dry runs): ``••••`` and the last four digits,
    e.g. ``+91 99999 01234`` → ``••••1234``; fewer than four digits → ``••••``; nothing → ``""``."""
    if not raw:
        return ""
    digits = _DIGITS.sub("", str(raw))
    return f"••••{digits[-4:]}" if len(digits) >= 4 else "••••"
