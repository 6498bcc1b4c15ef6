"""Place what the grammar read (`Spec`) on the calendar of the reference's zone.

Rules (the reading is what was said; `schedule_followup` moves it into calling hours or out of the past):

- A time or part of day with no day is today if still ahead of the reference, else tomorrow.
- A bare hour (no am/pm, no part of day) takes the office-hours reading: 1-8 pm, 9-11 am, 12 noon. When
  the other half of the day is an hour people take calls at (07:00-21:59: "at 7", "at 8", "at 9") the
  reading is AMBIGUOUS with that as the alternative. A part of day fixes the half: "raat 8" = 20:00.
- A weekday with no modifier is its next occurrence. Said on that same weekday, the primary reading is the
  first occurrence that has not started yet at the reference ("Wednesday 5pm" said Wednesday 15:31 is
  today; "Wednesday" said on a Wednesday is next week, the day having begun) and the other is the
  alternative: AMBIGUOUS. "this <weekday>" includes today; "coming <weekday>" does not.
- "next <weekday>" is AMBIGUOUS: the coming one (primary) or the one a week later.
- A date without a year is this year's, or next year's if this year's is more than 90 days past; one a few
  days past is unparsed (a mishearing is likelier than a callback next year). "on the 30th" is this
  month's 30th, or next month's once past. Impossible dates ("31/02") are unparsed.
- "next week" is Monday..Sunday of next week; "this week" today..Sunday; "end of the week" Friday (or
  today if later)..Sunday; "weekend" the coming Saturday..Sunday ("next weekend" on a weekday is
  AMBIGUOUS: the coming one or the one after); "next month" is the whole next calendar month (a RANGE,
  not vague: the scheduler calls on its first day, which is what a human would do).
- "tomorrow"/"kal" said between 00:00 and 04:00 is AMBIGUOUS: the coming day (primary, the caller has
  not slept yet) or the calendar day after.
- Durations in minutes/hours are elapsed time (correct across DST changes); days/weeks/months are
  calendar days ("in 2 days" is a DAY, "same time tomorrow" is tomorrow's same wall-clock time).
- "after lunch", "after Christmas", "in a few days": VAGUE, even with a day ("kal lunch ke baad": the day
  is known, the time is not). "not now", "later", "anytime": VAGUE unless the phrase also gives a time
  ("not now, call tomorrow" = tomorrow; "later today" = today).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TypeVar

from worker.callbacks.lexicon import PARTS, PLAUSIBLE_ALT_HOURS, office_hour
from worker.callbacks.reading import CallbackReading, CallbackStatus, Grain
from worker.callbacks.spec import (
    DateSpec,
    DaySpec,
    LaterDays,
    MonthDaySpec,
    NotUnderstood,
    RangeSpec,
    RelDay,
    Spec,
    TimeSpec,
    WeekdaySpec,
)

_T = TypeVar("_T")
_PAST_DATE_GRACE_DAYS = 90  # a date this recently past is a mishearing, not next year's
_NIGHT_ENDS_HOUR = 4  # before this hour, "tomorrow" may still mean the coming day


@dataclass(frozen=True)
class _Span:
    """A reading's span; `why` says why it is possible when it is an alternative."""

    grain: Grain
    earliest: datetime
    latest: datetime
    why: str = field(default="", compare=False)


@dataclass(frozen=True)
class _Day:
    """A resolved day: the day, an alternative day (AMBIGUOUS), or `same_weekday` when a bare weekday
    names today (the primary then depends on the time said)."""

    day: date
    alt: date | None = None
    same_weekday: bool = False
    why: str = ""  # why `alt` is possible


@dataclass(frozen=True)
class _ClockChoice:
    """An hour:minute:second and the day shift it implies ("raat 1 baje" is 01:00 the next day)."""

    hour: int
    minute: int
    second: int
    shift: int = 0
    why: str = ""


@dataclass
class _Context:
    zone: tzinfo
    reference: datetime

    @property
    def today(self) -> date:
        return self.reference.date()

    def at(self, day: date, clock: time) -> datetime:
        """The local datetime of `clock` on `day`; a time in a DST gap is moved forward like a clock."""
        naive = datetime.combine(day, clock)
        return naive.replace(tzinfo=self.zone).astimezone(UTC).astimezone(self.zone)

    def ahead(self, moment: datetime) -> bool:
        return moment.timestamp() > self.reference.timestamp()


def resolve(text: str, spec: Spec, reference: datetime) -> CallbackReading:
    """The reading of `spec` against `reference`; raises NotUnderstood when the parts do not fit."""
    assert reference.tzinfo is not None
    ctx = _Context(reference.tzinfo, reference)
    has_time = bool(spec.times or spec.parts or spec.offsets or spec.same_time)
    if not (has_time or spec.days or spec.ranges):
        if spec.words == 0:
            raise NotUnderstood("empty phrase")
        why = (spec.events and f"after {spec.events[0]}") or ", ".join(spec.dismissals) or "no time given"
        return _vague(text, why)
    if spec.events and not (spec.times or spec.offsets):
        return _vague(text, f"day given but the time is vague ({spec.events[0]})")
    spans = _spans(spec, ctx)
    return _reading(text, spans, ctx)


def _vague(text: str, why: str) -> CallbackReading:
    return CallbackReading(text, CallbackStatus.VAGUE, None, None, None, reason=why)


def _unique(items: list[_T]) -> list[_T]:
    return list(dict.fromkeys(items))


def _spans(spec: Spec, ctx: _Context) -> list[_Span]:
    """The primary span first, then the alternatives."""
    days, ranges, times, parts = (_unique(x) for x in (spec.days, spec.ranges, spec.times, spec.parts))
    if len(times) > 1 or len(parts) > 1 or len(ranges) > 1:
        raise NotUnderstood("two different times in one phrase")
    if spec.offsets:
        if len(_unique(spec.offsets)) > 1 or days or ranges or times or parts or spec.same_time:
            raise NotUnderstood("a duration mixed with other times")
        moment = (ctx.reference.astimezone(UTC) + spec.offsets[0]).astimezone(ctx.zone)
        return [_Span(Grain.INSTANT, moment, moment)]
    if spec.same_time:
        if times or parts:
            raise NotUnderstood("'same time' with another time")
        ref = ctx.reference
        times = [TimeSpec(ref.hour, ref.minute, "h24", ref.second)]
        if not days and ranges == [RangeSpec("week", "next")]:
            days, ranges = [LaterDays(1, "week")], []  # "same time next week"
        if not days:
            raise NotUnderstood("'same time' without a day")
    time_spec = times[0] if times else None
    part = parts[0] if parts else None
    if ranges:
        return _range_spans(ranges[0], days, time_spec, part, ctx)
    if not days:
        return _undated_spans(time_spec, part, ctx)
    return _dated_spans(_combine_days(days, ctx), time_spec, part, ctx)


# ------------------------------------------------------------------------------------------------- days
def _combine_days(days: list[DaySpec], ctx: _Context) -> _Day:
    """One day from one or more day specs; weekdays must agree with a date said alongside."""
    weekdays = [d for d in days if isinstance(d, WeekdaySpec)]
    others = [_day(d, ctx) for d in days if not isinstance(d, WeekdaySpec)]
    if not others:
        if len(weekdays) > 1:
            raise NotUnderstood("two different days in one phrase")
        chosen = _day(weekdays[0], ctx)
    elif len(set(others)) > 1:
        raise NotUnderstood("two different days in one phrase")
    else:
        chosen = others[0]
        if weekdays:  # "kal Friday": the weekday must agree, and settles an ambiguous day
            fits = [d for d in (chosen.day, chosen.alt) if d and all(d.weekday() == w.weekday for w in weekdays)]
            if not fits:
                names = "/".join(calendar.day_name[w.weekday] for w in weekdays)
                raise NotUnderstood(f"{chosen.day:%d %b} is not a {names}")
            chosen = _Day(fits[0])
    return chosen


def _day(spec: DaySpec, ctx: _Context) -> _Day:
    today = ctx.today
    match spec:
        case RelDay(days=n) if n >= 1 and ctx.reference.hour < _NIGHT_ENDS_HOUR:
            # at 00:30 "kal subah" usually means the coming morning (the caller has not slept yet)
            first, second = today + timedelta(days=n - 1), today + timedelta(days=n)
            why = f"said after midnight: {first:%a %d %b} or {second:%a %d %b}"
            return _Day(first, alt=second, why=why)
        case RelDay(days=n):
            return _Day(today + timedelta(days=n))
        case LaterDays(count=n, unit="month"):
            return _Day(_add_months(today, n))
        case LaterDays(count=n, unit=unit):
            return _Day(today + timedelta(days=n * (7 if unit == "week" else 1)))
        case WeekdaySpec(weekday=wd, mod=mod):
            return _weekday(wd, mod, ctx)
        case DateSpec(day=d, month=m, year=y):
            return _Day(_calendar_date(d, m, y, today))
        case MonthDaySpec(day=d):
            return _Day(_month_day(d, today))
    raise NotUnderstood("day not understood")  # pragma: no cover - the match is exhaustive


def _weekday(wd: int, mod: str | None, ctx: _Context) -> _Day:
    today = ctx.today
    delta = (wd - today.weekday()) % 7
    if mod is None:
        return _Day(today, same_weekday=True) if delta == 0 else _Day(today + timedelta(days=delta))
    if mod == "this":
        return _Day(today + timedelta(days=delta))
    coming = today + timedelta(days=delta or 7)
    if mod == "coming":
        return _Day(coming)
    later = coming + timedelta(days=7)
    why = f"'next {calendar.day_name[wd]}' may be {coming:%a %d %b} or {later:%a %d %b}"
    return _Day(coming, alt=later, why=why)


def _calendar_date(d: int, m: int, y: int | None, today: date) -> date:
    said = f"{d:02d}/{m:02d}" + (f"/{y}" if y else "")
    if y is not None:
        found = _valid_date(y, m, d, said)
        if found < today:
            raise NotUnderstood(f"date {said} has already passed")
        return found
    found = _valid_date(today.year, m, d, said)
    if found >= today:
        return found
    if (today - found).days <= _PAST_DATE_GRACE_DAYS:
        raise NotUnderstood(f"date {said} has just passed")
    return _valid_date(found.year + 1, m, d, said)


def _valid_date(y: int, m: int, d: int, said: str) -> date:
    try:
        return date(y, m, d)
    except ValueError:
        raise NotUnderstood(f"no such date {said}") from None


def _month_day(d: int, today: date) -> date:
    year, month = today.year, today.month
    if d < today.day:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return _valid_date(year, month, d, f"the {d}th of {calendar.month_abbr[month]}")


def _add_months(day: date, n: int) -> date:
    index = day.month - 1 + n
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


# ------------------------------------------------------------------------------------------------ times
def _clock_choices(spec: TimeSpec, part: str | None) -> list[_ClockChoice]:
    """The hours a time may mean: the primary first. A part of day picks am/pm; without one the
    office-hours reading is primary and a plausible other half is the alternative."""
    if part is not None:
        window = PARTS[part]
        if spec.mode == "bare":
            hours = [h for h in (spec.hour % 12, spec.hour % 12 + 12) if h in window.hours]
        else:
            hours = [spec.hour] if spec.hour in window.hours else []
        if not hours:
            raise NotUnderstood(f"{spec.hour}:{spec.minute:02d} does not fit the {part}")
        shift = 1 if window.night_next_day and hours[0] < 12 else 0
        return [_ClockChoice(hours[0], spec.minute, spec.second, shift)]
    if spec.mode != "bare":
        return [_ClockChoice(spec.hour, spec.minute, spec.second)]
    primary = office_hour(spec.hour)
    other = (primary + 12) % 24
    choices = [_ClockChoice(primary, spec.minute, spec.second)]
    if other in PLAUSIBLE_ALT_HOURS:
        why = f"'{spec.hour}' may be {primary:02d}:{spec.minute:02d} or {other:02d}:{spec.minute:02d}"
        choices.append(_ClockChoice(other, spec.minute, spec.second, why=why))
    return choices


def _on_day(day: date, spec: TimeSpec | None, part: str | None, ctx: _Context) -> list[_Span]:
    """The spans a time/part of day (or neither) gives on `day`: primary first."""
    if spec is not None:
        spans = []
        for c in _clock_choices(spec, part):
            moment = ctx.at(day + timedelta(days=c.shift), time(c.hour, c.minute, c.second))
            spans.append(_Span(Grain.INSTANT, moment, moment, c.why))
        return spans
    if part is not None:
        window = PARTS[part]
        start = ctx.at(day, time(window.start))
        end = ctx.at(day + timedelta(days=window.end // 24), time(window.end % 24))
        return [_Span(Grain.PART_OF_DAY, start, end)]
    return [_Span(Grain.DAY, ctx.at(day, time()), ctx.at(day + timedelta(days=1), time()))]


def _undated_spans(spec: TimeSpec | None, part: str | None, ctx: _Context) -> list[_Span]:
    """No day said: each reading is today if still ahead (a part of day: not yet over), else tomorrow."""
    tomorrow = ctx.today + timedelta(days=1)
    today_spans = _on_day(ctx.today, spec, part, ctx)
    tomorrow_spans = _on_day(tomorrow, spec, part, ctx)
    return [
        today if ctx.ahead(today.latest if today.grain is not Grain.INSTANT else today.earliest) else later
        for today, later in zip(today_spans, tomorrow_spans, strict=True)
    ]


def _dated_spans(day: _Day, spec: TimeSpec | None, part: str | None, ctx: _Context) -> list[_Span]:
    if day.same_weekday:
        return _same_weekday_spans(spec, part, ctx)
    spans = _on_day(day.day, spec, part, ctx)
    if day.alt is not None:
        spans.append(replace(_on_day(day.alt, spec, part, ctx)[0], why=day.why))
    first = spans[0]
    if first.grain is Grain.INSTANT and not ctx.ahead(first.earliest) and spec and spec.mode == "bare" and not part:
        # "aaj 10 baje" said at 15:31: 10:00 is past, so 22:00 is a reading too
        other = (first.earliest.hour + 12) % 24
        moment = ctx.at(first.earliest.date(), time(other, first.earliest.minute))
        if ctx.ahead(moment) and moment.date() == first.earliest.date():
            why = f"{first.earliest:%H:%M} had passed; {moment:%H:%M} is possible"
            spans.append(_Span(Grain.INSTANT, moment, moment, why))
    return spans


def _same_weekday_spans(spec: TimeSpec | None, part: str | None, ctx: _Context) -> list[_Span]:
    """A bare weekday naming today: the primary is the first occurrence not yet begun."""
    today = _on_day(ctx.today, spec, part, ctx)
    next_week = _on_day(ctx.today + timedelta(days=7), spec, part, ctx)
    why = f"'{ctx.today:%A}' said on a {ctx.today:%A}: today or next week"
    if ctx.ahead(today[0].earliest):
        return [*today, replace(next_week[0], why=why)]
    if ctx.ahead(today[0].latest):
        return [*next_week, replace(today[0], why=why)]
    return next_week


# ----------------------------------------------------------------------------------------------- ranges
def _range_spans(
    spec: RangeSpec, days: list[DaySpec], time_spec: TimeSpec | None, part: str | None, ctx: _Context
) -> list[_Span]:
    first, last, alt = _range_dates(spec, ctx.today)
    if days:
        if len(days) != 1 or not isinstance(days[0], WeekdaySpec) or days[0].mod not in (None, "this"):
            raise NotUnderstood("a day together with a range of days")
        wd = days[0].weekday
        found = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        matching = [d for d in found if d.weekday() == wd and spec.kind != "month"]
        if len(matching) != 1:
            raise NotUnderstood(f"no single {calendar.day_name[wd]} in that range")
        return _on_day(matching[0], time_spec, part, ctx)
    if time_spec is not None or part is not None:
        raise NotUnderstood("a time of day without a day in a range of days")
    spans = [_range_span(first, last, ctx)]
    if alt is not None:
        why = f"'next weekend' may be {first:%d %b} or {alt[0]:%d %b}"
        spans.append(replace(_range_span(alt[0], alt[1], ctx), why=why))
    return spans


def _range_span(first: date, last: date, ctx: _Context) -> _Span:
    return _Span(Grain.RANGE, ctx.at(first, time()), ctx.at(last + timedelta(days=1), time()))


def _range_dates(spec: RangeSpec, today: date) -> tuple[date, date, tuple[date, date] | None]:
    """First and last day of a range, and an alternative range when "next weekend" is ambiguous."""
    monday = today - timedelta(days=today.weekday())
    next_monday = monday + timedelta(days=7)
    if spec.kind == "week":
        if spec.which == "next":
            return next_monday, next_monday + timedelta(days=6), None
        return today, monday + timedelta(days=6), None
    if spec.kind == "month":
        if spec.which == "next":
            start = _add_months(today.replace(day=1), 1)
            return start, start.replace(day=calendar.monthrange(start.year, start.month)[1]), None
        return today, today.replace(day=calendar.monthrange(today.year, today.month)[1]), None
    if spec.kind == "end_of_week":
        base = next_monday if spec.which == "next" else monday
        return max(base + timedelta(days=4), today), base + timedelta(days=6), None
    # weekend
    saturday = monday + timedelta(days=5)
    if spec.which == "next" and today.weekday() < 5:
        later = saturday + timedelta(days=7)
        return saturday, saturday + timedelta(days=1), (later, later + timedelta(days=1))
    if spec.which == "next":
        saturday += timedelta(days=7)
    return max(saturday, today), saturday + timedelta(days=1), None


# ---------------------------------------------------------------------------------------------- reading
def _end(span: _Span) -> datetime:
    return span.earliest if span.grain is Grain.INSTANT else span.latest


def _reading(text: str, spans: list[_Span], ctx: _Context) -> CallbackReading:
    primary = spans[0]
    # an alternative already over when the call ended is no reading of a callback time
    rest = [s for s in _unique(spans[1:]) if s != primary and ctx.ahead(_end(s))]
    reasons = _unique([s.why for s in rest if s.why])
    if not ctx.ahead(_end(primary)):
        reasons.append("already past when the call ended")
    alternatives = tuple(CallbackReading(text, CallbackStatus.OK, s.grain, s.earliest, s.latest) for s in rest)
    status = CallbackStatus.AMBIGUOUS if alternatives else CallbackStatus.OK
    return CallbackReading(
        text, status, primary.grain, primary.earliest, primary.latest, alternatives, "; ".join(reasons)
    )
