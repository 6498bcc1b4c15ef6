"""Calendar arithmetic for the callback reader: which day a day spec names, counted from the reference day.

Rules:
- A weekday with no modifier is its next occurrence (on that same weekday, `same_weekday` lets the caller
  decide by the time said). "this <weekday>" includes today; "coming <weekday>" does not.
- "next <weekday>" splits when that weekday is still ahead this week ("next Friday" said on a Wednesday):
  the coming one (primary) or the one a week later, AMBIGUOUS, the Task asks to confirm. Otherwise the
  coming one is next week's and nothing splits ("next Monday" said on a Wednesday: OK).
- "<weekday> after next" / "next to next <weekday>" is the occurrence a week after the coming one;
  "3 fridays from now" the third occurrence after today.
- "first/second/last <weekday> of <month>" and "second week of March" (days 8-14) are in this year's
  month, or next year's once it has passed; "the 20th of next month" is in that month.
- A date without a year is this year's, or next year's if this year's is more than 90 days past; one a
  few days past is unparsed (a mishearing is likelier than a callback next year). "on the 30th" is this
  month's 30th, or next month's once past. Impossible dates ("31/02") are unparsed.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

from worker.callbacks.spec import (
    AHEAD,
    DateSpec,
    DaySpec,
    FromDay,
    LaterDays,
    MonthDayInSpec,
    MonthDaySpec,
    NotUnderstood,
    NthWeekdaySpec,
    RelDay,
    WeekdaySpec,
    Which,
)

PAST_DATE_GRACE_DAYS = 90  # a date this recently past is a mishearing, not next year's
NIGHT_ENDS_HOUR = 4  # before this hour, "tomorrow" may still mean the coming day


@dataclass(frozen=True)
class Day:
    """A resolved day: the day, an alternative day (AMBIGUOUS), or `same_weekday` when a bare weekday
    names today (the primary then depends on the time said)."""

    day: date
    alt: date | None = None
    same_weekday: bool = False
    why: str = ""  # why `alt` is possible


def resolve_day(spec: DaySpec, today: date, hour: int) -> Day:
    """The day `spec` names, said at `hour` o'clock on `today`."""
    match spec:
        case RelDay(days=n) if n >= 1 and hour < NIGHT_ENDS_HOUR:
            # at 00:30 "kal subah" usually means the coming morning (the caller has not slept yet)
            first, second = today + timedelta(days=n - 1), today + timedelta(days=n)
            return Day(first, alt=second, why=f"said after midnight: {first:%a %d %b} or {second:%a %d %b}")
        case RelDay(days=n):
            return Day(today + timedelta(days=n))
        case LaterDays():
            return Day(later_days(spec, today))
        case FromDay(base=RelDay(days=n), later=later):
            return Day(later_days(later, today + timedelta(days=n)))
        case WeekdaySpec():
            return weekday(spec, today)
        case DateSpec(day=d, month=m, year=y):
            return Day(calendar_date(d, m, y, today))
        case MonthDaySpec(day=d):
            return Day(month_day(d, today))
        case NthWeekdaySpec():
            return Day(nth_weekday(spec, today))
        case MonthDayInSpec(day=d, month=m, which=which):
            year, month = month_of(m, which, today, last_day=d)
            last = calendar.monthrange(year, month)[1]
            found = valid_date(year, month, last if d == -1 else d, f"day {d} of {calendar.month_name[month]}")
            if found < today:
                raise NotUnderstood(f"{found:%d %b} has already passed")
            return Day(found)
    raise NotUnderstood("day not understood")  # pragma: no cover - the match is exhaustive


def later_days(spec: LaterDays, start: date) -> date:
    if spec.unit == "month":
        return add_months(start, spec.count)
    return start + timedelta(days=spec.count * (7 if spec.unit == "week" else 1))


def weekday(spec: WeekdaySpec, today: date) -> Day:
    wd, mod = spec.weekday, spec.mod
    delta = (wd - today.weekday()) % 7
    coming = today + timedelta(days=delta or 7)
    if spec.count > 1:
        return Day(coming + timedelta(days=7 * (spec.count - 1)))
    if mod is None:
        return Day(today, same_weekday=True) if delta == 0 else Day(today + timedelta(days=delta))
    if mod == "this":
        return Day(today + timedelta(days=delta))
    if mod == "coming":
        return Day(coming)
    if mod == "after_next":
        return Day(coming + timedelta(days=7))
    if wd <= today.weekday():
        return Day(coming)  # "next Monday" said on a Wednesday: the coming one is next week's, no split
    later = coming + timedelta(days=7)
    why = f"'next {calendar.day_name[wd]}' may be {coming:%a %d %b} or {later:%a %d %b}"
    return Day(coming, alt=later, why=why)


def month_of(month: int | None, which: Which, today: date, *, last_day: int = 1) -> tuple[int, int]:
    """(year, month) of "March" (this year's, or next year's once over), "this month" or "next month"."""
    if month is None:
        first = add_months(today.replace(day=1), AHEAD[which])
        return first.year, first.month
    year = today.year if month >= today.month else today.year + 1
    return year, month


def nth_weekday(spec: NthWeekdaySpec, today: date) -> date:
    """The nth (or last) weekday of a month; a month said by name that is over this year is next year's."""
    year, month = month_of(spec.month, spec.which, today)
    found = _nth_in(year, month, spec.nth, spec.weekday)
    if found < today and spec.month is not None and spec.month == today.month:
        found = _nth_in(year + 1, month, spec.nth, spec.weekday)
    if found < today:
        raise NotUnderstood(f"{found:%d %b} has already passed")
    return found


def _nth_in(year: int, month: int, nth: int, wd: int) -> date:
    days = [d for d in calendar.Calendar().itermonthdates(year, month) if d.month == month and d.weekday() == wd]
    if nth == -1:
        return days[-1]
    if nth > len(days):
        raise NotUnderstood(f"there is no {nth}th {calendar.day_name[wd]} in {calendar.month_name[month]}")
    return days[nth - 1]


def week_of_month(nth: int, month: int | None, which: Which, today: date) -> tuple[date, date]:
    """Days of "the second week of March": days 8-14 (the last week: the month's last 7 days)."""
    year, m = month_of(month, which, today)
    last = calendar.monthrange(year, m)[1]
    if nth == -1:
        first = date(year, m, last - 6)
    else:
        first = date(year, m, 7 * (nth - 1) + 1)
        if first.day > last:
            raise NotUnderstood(f"no week {nth} in {calendar.month_name[m]}")
    end = min(first + timedelta(days=6), date(year, m, last))
    if end < today and month is not None:
        return week_of_month(nth, month, which, date(today.year + 1, 1, 1))
    return first, end


def part_of_month(phase: str, month: int | None, which: Which, today: date) -> tuple[date, date]:
    """ "beginning of next month" days 1-7, "mid March" 10-20, "end of the month" its last 7 days; a month
    said by name that is over this year is next year's."""
    year, m = month_of(month, which, today)
    last = calendar.monthrange(year, m)[1]
    first_day, last_day = {"start": (1, 7), "mid": (10, 20), "end": (last - 6, last)}[phase]
    first, end = date(year, m, first_day), date(year, m, last_day)
    if end < today and month is not None:
        return part_of_month(phase, month, which, date(today.year + 1, 1, 1))
    if end < today:
        raise NotUnderstood("that part of the month has passed")
    return first, end


def calendar_date(d: int, m: int, y: int | None, today: date) -> date:
    said = f"{d:02d}/{m:02d}" + (f"/{y}" if y else "")
    if y is not None:
        found = valid_date(y, m, d, said)
        if found < today:
            raise NotUnderstood(f"date {said} has already passed")
        return found
    found = valid_date(today.year, m, d, said)
    if found >= today:
        return found
    if (today - found).days <= PAST_DATE_GRACE_DAYS:
        raise NotUnderstood(f"date {said} has just passed")
    return valid_date(found.year + 1, m, d, said)


def valid_date(y: int, m: int, d: int, said: str) -> date:
    try:
        return date(y, m, d)
    except ValueError:
        raise NotUnderstood(f"no such date {said}") from None


def month_day(d: int, today: date) -> date:
    year, month = today.year, today.month
    if d < today.day:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return valid_date(year, month, d, f"the {d}th of {calendar.month_abbr[month]}")


def weekday_month_day(wd: int, d: int, today: date) -> date:
    """ "Thu 15th": the next 15th that is a Thursday, within the next two months (further away, the caller
    more likely misspoke the weekday or the day: not guessed)."""
    year, month = today.year, today.month
    for _ in range(3):
        last = calendar.monthrange(year, month)[1]
        if d <= last and (found := date(year, month, d)) >= today and found.weekday() == wd:
            return found
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    raise NotUnderstood(f"no {calendar.day_name[wd]} the {d}th in the next two months")


def add_months(day: date, n: int) -> date:
    index = day.month - 1 + n
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
