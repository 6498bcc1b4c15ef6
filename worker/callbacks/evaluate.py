"""Judge readings against the callback-phrase reference set (the one place this logic lives; used by the
tests and by bench/callback_accuracy.py).

A case's `accept` says what a correct reading is (see shared/reference/README.md): kind I an instant within
`tol` minutes of `value`; D a reading on date `value`; W a reading on `date` lying inside hours
`frm`-`to`; R a reading inside dates `frm`..`to`; V vague (no time may be given). `alts` lists other
acceptable readings of an ambiguous phrase.

Verdicts: "accepted" when the reading's primary matches the accept or one of its alts (the primary is
what gets scheduled, so an alternative matching is not enough); "missed" when no time was given (vague or
unparsed) for a phrase that has one, or unparsed for a vague phrase; "wrong" when a time was given (status
ok or ambiguous) that matches nothing acceptable, or any time for a vague phrase.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

from worker.callbacks.parse import parse_callback_time
from worker.callbacks.reading import CallbackReading, CallbackStatus, Grain

Verdict = Literal["accepted", "wrong", "missed"]
_NO_TIME = frozenset({CallbackStatus.VAGUE, CallbackStatus.UNPARSED})


def judge(reading: CallbackReading, accept: Mapping[str, Any]) -> Verdict:
    """The verdict on `reading` for a case's `accept` object."""
    if accept["kind"] == "V":
        if reading.status is CallbackStatus.VAGUE:
            return "accepted"
        return "missed" if reading.status is CallbackStatus.UNPARSED else "wrong"
    if reading.status in _NO_TIME:
        return "missed"
    options = [accept, *accept.get("alts", ())]
    return "accepted" if any(matches(reading, option) for option in options) else "wrong"


def matches(reading: CallbackReading, option: Mapping[str, Any]) -> bool:
    """Whether the reading's primary (not its alternatives) satisfies one accept option."""
    if reading.grain is None or reading.earliest is None or reading.latest is None:
        return False
    zone = reading.earliest.tzinfo
    assert zone is not None
    start, end, grain = reading.earliest, reading.latest, reading.grain
    kind = option["kind"]
    if kind == "I":
        value = _local(datetime.fromisoformat(option["value"]), zone)
        tolerance = timedelta(minutes=float(option.get("tol", 1)))
        return grain is Grain.INSTANT and abs(start.timestamp() - value.timestamp()) <= tolerance.total_seconds()
    if kind == "D":
        day = date.fromisoformat(option["value"])
        return _within(start, end, _midnight(day, zone), _midnight(day + timedelta(days=1), zone))
    if kind == "W":
        day = date.fromisoformat(option["date"])
        lo = _midnight(day, zone) + timedelta(hours=int(option["frm"]))
        hi = _midnight(day, zone) + timedelta(hours=int(option["to"]))
        return grain in (Grain.INSTANT, Grain.PART_OF_DAY, Grain.WINDOW) and _within(start, end, lo, hi, closed=True)
    if kind == "R":
        first, last = date.fromisoformat(option["frm"]), date.fromisoformat(option["to"])
        return _within(start, end, _midnight(first, zone), _midnight(last + timedelta(days=1), zone))
    raise ValueError(f"unknown accept kind {kind!r}")


def _within(start: datetime, end: datetime, lo: datetime, hi: datetime, *, closed: bool = False) -> bool:
    """[start, end) inside [lo, hi); an instant (start == end) must be before hi, or at it when closed."""
    s, e, low, high = start.timestamp(), end.timestamp(), lo.timestamp(), hi.timestamp()
    if s == e:
        return low <= s and (s <= high if closed else s < high)
    return low <= s and e <= high


def _midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


def _local(value: datetime, zone: tzinfo) -> datetime:
    return value.replace(tzinfo=zone) if value.tzinfo is None else value


# ------------------------------------------------------------------------------------------------ cases
@dataclass(frozen=True)
class CaseResult:
    """One reference case, its reading and verdict; `exact` when the primary matches the main accept."""

    case: Mapping[str, Any]
    reading: CallbackReading
    verdict: Verdict
    exact: bool


def parse_cases(text: str) -> list[dict[str, Any]]:
    """The cases of a JSONL reference file's text (blank lines skipped); the caller reads the file."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_case(case: Mapping[str, Any]) -> CaseResult:
    """Read a case's phrase at its reference time (in its zone) and judge it."""
    reference = datetime.fromisoformat(case["ref"]).astimezone(ZoneInfo(case["tz"]))
    reading = parse_callback_time(case["text"], reference=reference)
    accept = case["accept"]
    verdict = judge(reading, accept)
    exact = verdict == "accepted" and (accept["kind"] == "V" or matches(reading, accept))
    return CaseResult(case, reading, verdict, exact)


def run_cases(cases: list[dict[str, Any]]) -> Iterator[CaseResult]:
    return (run_case(case) for case in cases)
