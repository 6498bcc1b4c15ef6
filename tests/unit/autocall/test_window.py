"""The calling window (pure): inside or not, and its next opening, across the lead's zone and Twenty2's IST."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from worker.autocall.window import IST, Window, inside, next_opening, windows_for

DUBAI = ZoneInfo("Asia/Dubai")


def ist(hour: int, minute: int = 0, day: int = 10) -> datetime:
    return datetime(2030, 1, day, hour, minute, tzinfo=IST)


def test_inside_opening_included_closing_excluded() -> None:
    w = windows_for(IST, (time(9), time(21)))
    assert inside(w, ist(9)) and inside(w, ist(20, 59)) and not inside(w, ist(21)) and not inside(w, ist(8, 59))


def test_before_opening_moves_to_same_day_opening() -> None:
    assert next_opening(windows_for(IST, (time(9), time(21))), ist(7, 30)) == ist(9).astimezone(UTC)


def test_after_closing_moves_to_next_morning() -> None:
    assert next_opening(windows_for(IST, (time(9), time(21))), ist(22)) == ist(9, day=11).astimezone(UTC)


def test_inside_stays() -> None:
    assert next_opening(windows_for(IST, (time(9), time(21))), ist(15, 7)) == ist(15, 7).astimezone(UTC)


def test_lead_zone_and_twenty2_hours_both_apply() -> None:
    # Dubai 08:00-20:00 = IST 09:30-21:30; Twenty2 stops at 21:00 IST: the overlap is 09:30-21:00 IST.
    w = windows_for(DUBAI, (time(8), time(20)))
    assert next_opening(w, ist(9)) == ist(9, 30).astimezone(UTC)
    assert next_opening(w, ist(21, 10)) == ist(9, 30, day=11).astimezone(UTC)


def test_windows_that_never_overlap_raise() -> None:
    never = (Window(IST, time(9), time(10)), Window(IST, time(11), time(12)))
    with pytest.raises(ValueError):
        next_opening(never, ist(8))
